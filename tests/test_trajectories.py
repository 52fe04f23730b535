"""Each method held to a recorded trajectory of its own, at the paper's settings, on the tiny UNet.

The faithfulness of DragDiffusion, GoodDrag, DragonDiffusion and DiffEditor to their official code
was measured once, stage by stage, on the embedded model (README, "Faithfulness"); these recordings
keep it: any change to a method's numbers at the paper's settings (losses, energies, tracked
handles, the latent after each stage) fails here, so a regression cannot pass unnoticed. Options
that go beyond the papers (keep, GoodDrag without early stop) are off.

A deliberate change re-records with ``python tests/test_trajectories.py`` and says why in its commit.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import pytest
import torch

if __name__ == "__main__":  # recording: make the tests' helpers importable
    sys.path.insert(0, str(Path(__file__).parent))
from conftest import inverted_tiny_model  # noqa: E402

from dragkit.core.methods import diffeditor, dragdiffusion, gooddrag  # noqa: E402
from dragkit.core.points import DragPoints  # noqa: E402

RECORDING = Path(__file__).parent / "data" / "trajectories.json"
SIZE = (128, 128)
POINTS = DragPoints.from_pairs(SIZE, [((40, 64), (72, 64)), ((90, 40), (96, 56))])
TINY_LAYERS = (1,)  # the tiny UNet has two up blocks: the papers' layer 3 does not exist in it
TINY_GUIDANCE_LAYERS = (1, 2)
LATENT_DECIMALS = 5


def _mask() -> torch.Tensor:
    mask = torch.zeros(*SIZE)
    mask[20:110, 20:110] = 1
    return mask


def _latent(latent: torch.Tensor) -> list[float]:
    return [round(v, LATENT_DECIMALS) for v in latent.flatten().tolist()]


def dragdiffusion_trajectory() -> dict:
    model, inversion = inverted_tiny_model(num_steps=20, strength=0.7)
    config = dataclasses.replace(dragdiffusion.DRAGDIFFUSION, feature_layers=TINY_LAYERS, max_steps=12)
    result = dragdiffusion.edit(model, inversion, POINTS, _mask(), config)
    drag = result.drag
    return {"distances": drag.distances, "steps": drag.steps, "handles": drag.points.handles,
            "optimised": _latent(drag.latent), "final": _latent(result.latent)}


def gooddrag_trajectory() -> dict:
    model, inversion = inverted_tiny_model(num_steps=20, strength=0.75)
    drag = dataclasses.replace(gooddrag.GOODDRAG_DRAG, feature_layers=TINY_LAYERS)
    config = gooddrag.AlDDConfig(drag=drag, drag_steps=3, rounds=4, early_stop=True)  # the paper's loop
    latents = []
    result = gooddrag.edit(model, inversion, POINTS, _mask(), config,
                           callback=lambda step, total, info: latents.append(info["estimate"]) if "timestep" in info else None)
    return {"distances": result.distances, "rounds": result.rounds, "stopped": result.stopped,
            "handles": result.points.handles, "after_drag_steps": [_latent(x) for x in latents[:3]],
            "final": _latent(result.latent)}


def _number(value):
    """A progress value (a 0-d tensor on the device, or None) as a float."""
    return None if value is None else float(value)


def _guided_trajectory(config: diffeditor.RegionalSDEConfig) -> dict:
    model, inversion = inverted_tiny_model(num_steps=20, strength=1.0)
    config = dataclasses.replace(config, guidance=dataclasses.replace(config.guidance, feature_layers=TINY_GUIDANCE_LAYERS))
    energies = []
    result = diffeditor.edit(model, inversion, POINTS, _mask(), config,
                             callback=lambda step, total, info: energies.append([_number(info.get("edit")),
                                                                                  _number(info.get("content"))]))
    return {"energies": energies, "final": _latent(result.latent)}


TRAJECTORIES = {
    "dragdiffusion": dragdiffusion_trajectory,
    "gooddrag": gooddrag_trajectory,
    "dragondiffusion": lambda: _guided_trajectory(diffeditor.dragondiffusion_config()),
    "diffeditor": lambda: _guided_trajectory(diffeditor.diffeditor_config()),
}


def _close(actual, expected, path: str) -> None:
    if isinstance(expected, dict):
        assert set(actual) == set(expected), f"{path}: keys {sorted(actual)} != {sorted(expected)}"
        for key in expected:
            _close(actual[key], expected[key], f"{path}.{key}")
    elif isinstance(expected, list):
        assert len(actual) == len(expected), f"{path}: length {len(actual)} != {len(expected)}"
        if expected and all(isinstance(v, (int, float)) for v in expected):
            torch.testing.assert_close(torch.tensor(actual, dtype=torch.float64), torch.tensor(expected, dtype=torch.float64),
                                       atol=2e-4, rtol=1e-3, msg=lambda m: f"{path}: {m}")
        else:
            for k, (a, e) in enumerate(zip(actual, expected)):
                _close(a, e, f"{path}[{k}]")
    elif isinstance(expected, float):
        assert actual == pytest.approx(expected, rel=1e-3, abs=2e-4), f"{path}: {actual} != {expected}"
    else:
        assert actual == expected, f"{path}: {actual!r} != {expected!r}"


def _plain(value):
    """JSON's view of a trajectory (tuples become lists), so a fresh run compares like the recording."""
    return json.loads(json.dumps(value))


@pytest.mark.parametrize("method", list(TRAJECTORIES))
def test_method_follows_its_recorded_trajectory(method):
    recorded = json.loads(RECORDING.read_text())[method]
    with torch.enable_grad():
        actual = _plain(TRAJECTORIES[method]())
    _close(actual, recorded, method)


def test_the_recording_moves_the_handles():
    """The recorded trajectories are of real drags: the handles advance toward their targets."""
    recorded = json.loads(RECORDING.read_text())
    for method in ("dragdiffusion", "gooddrag"):
        distances = recorded[method]["distances"]
        assert distances[-1] < distances[0], method
    for method in ("dragondiffusion", "diffeditor"):
        assert any(edit is not None and edit > 0 for edit, _ in recorded[method]["energies"]), method


if __name__ == "__main__":
    with torch.enable_grad():
        RECORDING.write_text(json.dumps({name: _plain(run()) for name, run in TRAJECTORIES.items()}) + "\n")
    print(f"recorded {', '.join(TRAJECTORIES)} in {RECORDING}")
