"""AlDD: the schedule and UNet call count, equivalence with plain reference sampling, early stop,
handles advancing on the tiny UNet."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.errors import DragKitInputError
from dragkit.core.methods.gooddrag import GOODDRAG_DRAG, AlDDConfig, edit
from dragkit.core.points import DragPoints
from dragkit.core.sampling import reference_sample

POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64))])


@pytest.fixture(scope="module")
def setup():
    return inverted_tiny_model(num_steps=20, strength=0.75)


def _config(**changes):
    drag = dataclasses.replace(GOODDRAG_DRAG, feature_layers=(1,), **changes.pop("drag", {}))
    return AlDDConfig(drag=drag, **changes)


def _count_unet_calls(model):
    calls = []
    handle = model.unet.register_forward_pre_hook(lambda *a: calls.append(1))
    return calls, handle


def test_without_drag_rounds_aldd_is_reference_sampling(setup):
    model, inversion = setup
    expected, expected_source = reference_sample(model, inversion)
    for config in (_config(drag_steps=0), _config(rounds=0)):
        result = edit(model, inversion, POINTS, config=config)
        torch.testing.assert_close(result.latent, expected)
        torch.testing.assert_close(result.source, expected_source)
        assert result.rounds == 0


def test_schedule_and_unet_call_count(setup):
    model, inversion = setup
    # No early stop: targets can't be reached (stop_distance 0) and patience is long.
    config = _config(drag_steps=2, rounds=2, steps_per_round=3, patience=100, drag={"stop_distance": 0.0})
    calls, handle = _count_unet_calls(model)
    seen = []
    try:
        result = edit(model, inversion, POINTS, config=config, callback=lambda s, n, i: seen.append((s, n, i)))
    finally:
        handle.remove()
    # Per drag step: 1 reference pass + 1 tracking pass + rounds * J Adam steps; then 1 batched
    # DDIM call per denoising step (15 steps).
    assert len(calls) == 2 * (1 + 1 + 2 * 3) + 15
    assert result.rounds == 4 and result.stopped == "schedule"
    rounds_reported = [i["round"] for _, _, i in seen if "round" in i]
    timesteps_reported = [i["timestep"] for _, _, i in seen if "timestep" in i]
    assert rounds_reported == [1, 2, 3, 4]
    assert timesteps_reported == list(inversion.denoise_timesteps)
    assert seen[-1][:2] == (4 + 15, 4 + 15)


def test_early_stop_without_movement(setup):
    model, inversion = setup
    config = _config(patience=3, early_stop=True, drag={"learning_rate": 1e-9})
    result = edit(model, inversion, POINTS, config=config)
    assert result.stopped == "no movement" and result.rounds == 3


def test_early_stop_when_arrived(setup):
    model, inversion = setup
    near = DragPoints.from_pairs((128, 128), [((64, 64), (66, 64))])
    result = edit(model, inversion, near, config=_config(early_stop=True))
    assert result.stopped == "arrived" and result.rounds == 0


@pytest.mark.parametrize("stop", ["arrived", "no movement"])
def test_reference_attention_starts_at_the_first_step_without_drag(setup, monkeypatch, stop):
    """As GoodDrag registers MasaCtrl after its last drag step: dragging that stops during step 0
    leaves reference attention to start at step 1, not at drag_steps (7)."""
    from dragkit.core.methods import gooddrag

    model, inversion = setup
    started = []

    class Recorded(gooddrag.ReferenceAttention):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(gooddrag, "ReferenceAttention", Recorded)
    if stop == "arrived":
        points, config = DragPoints.from_pairs((128, 128), [((64, 64), (66, 64))]), _config(early_stop=True)
    else:
        points, config = POINTS, _config(patience=2, early_stop=True, drag={"learning_rate": 1e-9})
    result = edit(model, inversion, points, config=config)
    assert result.stopped == stop and result.rounds <= 2
    assert started[0].start_step == 1


def test_without_early_stop_every_round_runs(setup):
    """early_stop off: neither an arrived handle nor a still one ends the drag; the whole schedule runs."""
    model, inversion = setup
    near = DragPoints.from_pairs((128, 128), [((64, 64), (66, 64))])
    arrived = edit(model, inversion, near, config=_config(drag_steps=2, rounds=3, steps_per_round=1, early_stop=False))
    still = edit(model, inversion, POINTS, config=_config(drag_steps=2, rounds=3, steps_per_round=1, patience=1,
                                                          early_stop=False, drag={"learning_rate": 1e-9}))
    for result in (arrived, still):
        assert result.stopped == "schedule" and result.rounds == 2 * 3 and len(result.distances) == 6


def test_handles_advance(setup):
    model, inversion = setup
    result = edit(model, inversion, POINTS, config=_config(drag_steps=3, rounds=4))
    assert result.distances[-1] < 16.0 * 0.6
    assert result.points.handles[0][0] > 50
    unedited, _ = reference_sample(model, inversion)
    assert not torch.allclose(result.latent, unedited)


def test_config_errors():
    with pytest.raises(DragKitInputError, match="rounds"):
        AlDDConfig(rounds=-1)
    with pytest.raises(DragKitInputError, match="patience"):
        AlDDConfig(patience=0)


def test_aldd_node(setup):
    from dragkit.nodes.drag_nodes import DragKitAlDDSampler

    model, inversion = setup
    latent, final, _ = DragKitAlDDSampler().sample(
        model, inversion, POINTS, drag_steps=2, rounds=2, steps_per_round=2, learning_rate=0.02, lam=0.1,
        patience=5, feature_layer=1, reference_attention=True, rescale_points=False, mask=torch.ones(1, 128, 128),
    )
    assert latent["samples"].shape == inversion.source.shape
    assert final.handles[0][0] > POINTS.handles[0][0] and inversion.edited is None


def test_the_tracking_pass_stops_after_the_feature_layer(setup):
    # Per drag step: the references (a whole pass: the background term needs epsilon), the tracking
    # pass (features only: it never reaches conv_out), then one whole pass per Adam step; then one
    # batched pass per denoising step.
    model, inversion = setup
    mask = torch.zeros(128, 128)
    mask[16:112, 16:112] = 1
    config = _config(drag_steps=2, rounds=2, steps_per_round=2)
    whole = []
    handle = model.unet.conv_out.register_forward_pre_hook(lambda *a: whole.append(1))
    try:
        edit(model, inversion, POINTS, mask, config=config)
    finally:
        handle.remove()
    assert len(whole) == 2 * (1 + 2 * 2) + len(inversion.denoise_timesteps)
