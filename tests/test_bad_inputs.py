"""A catalogue of bad and hostile inputs through the nodes: each one a clear DragKit error, nothing changed.

Every case asserts the message's content (the input, the problem, the fix), that no file appeared,
vanished or changed anywhere under the test's folders, and that the shared model is as it was: the
same adapters, attention processors and ``requires_grad`` flags. The save-name cases also assert
that no training ran (the check comes first).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from pathlib import Path
from typing import Callable

import pytest
import torch
from conftest import make_tiny_model, smooth_latent
from safetensors.torch import save_file

from dragkit.core import limits
from dragkit.core.errors import DragKitError
from dragkit.core.inversion import ddim_invert
from dragkit.core.lora import LoraTrainingConfig, train_lora
from dragkit.core.lora_files import save_lora
from dragkit.nodes import comfy, drag_nodes, inversion_nodes, lora_nodes, model_nodes, picker_nodes

STATE = {"version": 1, "image_size": [128, 128], "pairs": [{"handle": [40, 64], "target": [60, 64]}],
         "mask": {"strokes": []}}


@dataclasses.dataclass
class Env:
    root: Path
    loras: Path
    outside: Path
    model: object
    latent: dict
    inversion: object


@pytest.fixture(scope="module")
def shared():
    """A tiny model with one trained LoRA saved, its inversion; built once (the cases must not change it)."""
    model = make_tiny_model()
    model.hints = model.hints.replace(vae_scale=8)
    trained = train_lora(model, smooth_latent(), None, LoraTrainingConfig(steps=1, rank=2))
    return model, trained, ddim_invert(model, smooth_latent(), num_steps=4, strength=0.5)


@pytest.fixture
def env(tmp_path, monkeypatch, shared):
    model, trained, inversion = shared
    loras, outside = tmp_path / "models" / "loras", tmp_path / "outside"
    for folder in (loras / "real_sub", outside, tmp_path / "models" / "checkpoints"):
        folder.mkdir(parents=True)
    (outside / "victim.safetensors").write_bytes(b"precious")
    (loras / "linked_sub").symlink_to(outside, target_is_directory=True)
    (loras / "linked_file.safetensors").symlink_to(outside / "victim.safetensors")
    (loras / "taken.safetensors").write_bytes(b"someone else's LoRA")
    (loras / "a_folder.safetensors").mkdir()
    save_lora(trained, loras / "good.safetensors")
    monkeypatch.setattr(comfy, "loras_folder", lambda: str(loras))

    def no_training(*args, **kwargs):
        raise AssertionError("trained before checking the save name")

    monkeypatch.setattr(lora_nodes, "train_lora", no_training)
    return Env(tmp_path, loras, outside, model, {"samples": smooth_latent() / model.latent_scale}, inversion)


def _files(root: Path) -> dict:
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = Path(folder) / name
            stat = path.lstat()
            found[str(path.relative_to(root))] = (stat.st_mode, stat.st_size, stat.st_mtime_ns)
    return found


def _model_state(model) -> tuple:
    unet = model.unet
    return (sorted(getattr(unet, "peft_config", None) or {}),
            sorted((n, type(p).__name__) for n, p in unet.attn_processors.items()),
            tuple(p.requires_grad for p in unet.parameters()))


# ------------------------------------------------------------------------------------ callers
# Each caller takes the test's Env, makes any input files, and returns the call to check.
def train(save_name, overwrite=False):
    def call(env):
        return lambda: lora_nodes.DragKitLoraTrainer().train(env.model, env.latent, "DragDiffusion", 1, 2, 5e-4, 1, 0,
                                                     save_name, overwrite)
    return call


def load_lora_path(make: Callable[[Env], str]):
    def call(env):
        path = make(env)
        return lambda: lora_nodes.DragKitLoraLoader().load(env.model, "ignored", path=path)
    return call


def write(name: str, data: bytes | None = None, tensors: dict | None = None):
    def make(env):
        path = env.outside / name
        if tensors is not None:
            save_file(tensors, str(path))
        else:
            path.write_bytes(data or b"")
        return str(path)
    return make


def truncated(env):
    data = (env.loras / "good.safetensors").read_bytes()
    path = env.outside / "truncated.safetensors"
    path.write_bytes(data[: len(data) // 2])
    return str(path)


def nan_lora(env):
    from safetensors.torch import load_file

    tensors = load_file(str(env.loras / "good.safetensors"))
    key = next(k for k in tensors if k.endswith("lora_up.weight"))
    tensors[key] = torch.full_like(tensors[key], math.nan)
    path = env.outside / "nan.safetensors"
    save_file(tensors, str(path))
    return str(path)


def model_path(make: Callable[[Env], str]):
    def call(env):
        path = make(env)
        return lambda: model_nodes.DragKitModelLoader().load("ignored", path=path)
    return call


def broken_settings(env):
    folder = env.outside / "model"
    (folder / "unet").mkdir(parents=True)
    env.model.unet.save_config(folder / "unet")
    save_file({k: v.contiguous() for k, v in env.model.unet.state_dict().items() if "lora_" not in k and "base_layer" not in k},
              str(folder / "unet" / "diffusion_pytorch_model.safetensors"))
    (folder / "dragkit.json").write_text('{"lam": 0.1,')
    return str(folder)


def points_json(value):
    def call(env):
        return lambda: drag_nodes.DragKitPoints().parse(value if isinstance(value, str) else json.dumps(value))
    return call


def picker(state, size=(128, 128), mask=None):
    def call(env):
        image = torch.rand(1, size[1], size[0], 3)
        text = state if isinstance(state, str) else json.dumps(state)
        return lambda: picker_nodes.DragKitPointPicker().pick(image, text, mask)
    return call


def with_state(**changes):
    return {**STATE, **changes}


def strokes(*items):
    return with_state(mask={"strokes": list(items)})


def invert(samples):
    def call(env):
        return lambda: inversion_nodes.DragKitDDIMInverter().invert(env.model, {"samples": samples}, 4, 0.5)
    return call


def drag(mask=None, points=None):
    def call(env):
        from dragkit.core.points import DragPoints

        chosen = points if points is not None else DragPoints.from_pairs((128, 128), [((40, 64), (60, 64))])
        return lambda: drag_nodes.DragKitDragOptimizer().drag(env.model, env.inversion, chosen, "DragDiffusion", 2, 0.01, 0.1,
                                                      -1, -1, 1, False, mask=mask)
    return call


STROKE = {"mode": "paint", "radius": 4, "points": [[10, 10], [20, 20]]}

CASES = {
    # --- LoRA save names: all refused before training, nothing written
    "save_name parent escape": (train("../checkpoints/sd15"), r"`save_name`.*'\.\.' and absolute paths are not"),
    "save_name double parent": (train("../../x"), r"`save_name`.*inside"),
    "save_name absolute": (train("/var/dragkit_escape"), r"`save_name`.*absolute"),
    "save_name dot": (train("."), r"`save_name`.*(outside|folder)"),
    "save_name inner parent": (train("real_sub/../../x"), r"`save_name`.*'\.\.'"),
    "save_name home": (train("~/x"), r"`save_name`"),
    "save_name drive": (train("C:evil"), r"`save_name`.*absolute"),
    "save_name symlinked sub-folder": (train("linked_sub/x"), r"`save_name`.*outside.*symlink"),
    "save_name symlinked file": (train("linked_file", overwrite=True), r"`save_name`.*outside.*symlink"),
    "save_name NUL": (train("a\x00b"), r"`save_name` contains a NUL"),
    "save_name too long": (train("a" * 300), r"`save_name`.*limited to 255"),
    "save_name a folder": (train("a_folder", overwrite=True), r"`save_name` names the folder"),
    "save_name taken": (train("taken"), r"already exists.*overwrite"),
    "save_name whitespace only with folder": (train("real_sub/"), r"`save_name`"),
    # --- LoRA files
    "lora path missing": (load_lora_path(lambda env: str(env.outside / "nope.safetensors")), r"`path`: no file"),
    "lora path folder": (load_lora_path(lambda env: str(env.outside)), r"`path`.*not a regular file"),
    "lora path wrong kind": (load_lora_path(write("notes.txt", b"hello")), r"`path` 'notes.txt' is not a \.safetensors"),
    "lora corrupt": (load_lora_path(write("junk.safetensors", b"\x00" * 64)), r"'junk.safetensors' is not a readable.*again"),
    "lora truncated": (load_lora_path(truncated), r"'truncated.safetensors' is not a readable"),
    "lora NaN weights": (load_lora_path(nan_lora), r"'nan.safetensors' holds NaN"),
    "lora not a LoRA": (load_lora_path(write("other.safetensors", tensors={"weight": torch.ones(2)})),
                        r"'other.safetensors'.*cannot place"),
    "lora wrong shapes": (load_lora_path(write("big.safetensors", tensors={
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_down.weight": torch.ones(2, 999),
        "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q.lora_up.weight": torch.ones(999, 2)})),
        r"'big.safetensors' does not fit"),
    # --- model files
    "model path missing": (model_path(lambda env: str(env.outside / "none.safetensors")), r"not found at"),
    "model corrupt checkpoint": (model_path(write("m.safetensors", b"garbage" * 10)), r"'m.safetensors' cannot be read"),
    "model wrong kind": (model_path(write("m.txt", b"x")), r"'m.txt' is not a checkpoint"),
    "model broken dragkit.json": (model_path(broken_settings), r"dragkit.json' is not valid JSON"),
    # --- points JSON (API)
    "points not JSON": (points_json("{pairs"), r"not valid JSON"),
    "points pairs null": (points_json({"image_size": [64, 64], "pairs": None}), r"`pairs` must be a list"),
    "points image_size zero": (points_json({"image_size": [0, 0], "pairs": [{"handle": [0, 0], "target": [0, 0]}]}),
                               r"`image_size` must be two positive"),
    "points too many pairs": (points_json({"image_size": [64, 64], "pairs": [{"handle": [1, 1], "target": [2, 2]}] * 65}),
                              r"drag pairs is 65.*DRAGKIT_MAX_PAIRS"),
    "points NaN": (points_json('{"image_size": [64, 64], "pairs": [{"handle": [NaN, 1], "target": [2, 2]}]}'),
                   r"not a finite point"),
    "points outside": (points_json({"image_size": [64, 64], "pairs": [{"handle": [90, 1], "target": [2, 2]}]}),
                       r"outside the 64x64 image"),
    "points odd flat list": (points_json({"image_size": [64, 64], "points": [[1, 1]]}), r"even count"),
    "points huge image": (points_json({"image_size": [5000, 64], "pairs": [{"handle": [1, 1], "target": [2, 2]}]}),
                          r"DRAGKIT_MAX_IMAGE_SIDE"),
    # --- Point Picker state (an API client can send anything)
    "picker not JSON": (picker("{oops"), r"not valid JSON"),
    "picker not an object": (picker("[1, 2]"), r"must be a JSON object"),
    "picker stroke not a dict": (picker(strokes(5)), r"mask stroke 1 must be"),
    "picker stroke point strings": (picker(strokes({**STROKE, "points": [["a", 1]]})), r"stroke 1 point 1 must be \[x, y\]"),
    "picker stroke negative radius": (picker(strokes({**STROKE, "radius": -2})), r"mask stroke 1 must be"),
    "picker stroke NaN radius": (picker('{"mask": {"strokes": [{"mode": "paint", "radius": NaN, "points": [[1, 1]]}]}}'),
                                 r"mask stroke 1 must be"),
    "picker too many strokes": (picker(strokes(*[STROKE] * (limits.MAX_STROKES + 1))), r"DRAGKIT_MAX_STROKES"),
    "picker too many points": (picker(strokes({**STROKE, "points": [[1, 1]] * (limits.MAX_STROKE_POINTS + 1)})),
                               r"DRAGKIT_MAX_STROKE_POINTS"),
    "picker image_size zero": (picker(with_state(image_size=[0, 0])), r"`image_size` must be \[w, h\]"),
    "picker pairs not a list": (picker(with_state(pairs="abc")), r"`pairs` must be a list"),
    "picker handle not a point": (picker(with_state(pairs=[{"handle": [1], "target": [2, 2]}])), r"pair 1 handle"),
    "picker mask not an object": (picker(with_state(mask=[1])), r"`mask` must be"),
    "picker huge integer": (picker('{"image_size": [64, 64], "pairs": [{"handle": [1' + "0" * 400 + ', 1], '
                                   '"target": [2, 2]}]}'), r"pair 1 handle must be \[x, y\], two numbers within"),
    "picker stroke point beyond float32": (picker(strokes({**STROKE, "points": [[1e39, 1]]})), r"stroke 1 point 1"),
    "picker huge image": (picker(STATE, size=(limits.MAX_IMAGE_SIDE + 8, 8)), r"DRAGKIT_MAX_IMAGE_SIDE"),
    # --- latents
    "latent batch 0": (invert(torch.zeros(0, 4, 16, 16)), r"`latent` is empty \(shape \(0, 4"),
    "latent huge values": (invert(torch.full((1, 4, 16, 16), 1e6)), r"far beyond a VAE latent"),
    "latent NaN": (invert(torch.full((1, 4, 16, 16), math.nan)), r"NaN or infinite"),
    "latent too large": (invert(torch.zeros(1, 4, limits.MAX_LATENT_SIDE + 1, 8)), r"DRAGKIT_MAX_LATENT_SIDE"),
    "latent wrong channels": (invert(torch.zeros(1, 3, 16, 16)), r"3 channels"),
    "latent zero height": (invert(torch.zeros(1, 4, 0, 8)), r"`latent` is empty"),
    # --- masks
    "mask all NaN": (drag(mask=torch.full((1, 128, 128), math.nan)), r"`mask` contains NaN"),
    "mask wrong size": (drag(mask=torch.ones(1, 64, 64)), r"`mask` is 64x64 but the image is 128x128"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gives_a_clear_error_and_changes_nothing(case, env):
    prepare, message = CASES[case]
    call = prepare(env)
    files, state = _files(env.root), _model_state(env.model)
    with pytest.raises(DragKitError, match=message):
        call()
    assert _files(env.root) == files, "a file appeared, vanished or changed"
    assert _model_state(env.model) == state, "the model changed"
    assert not Path("/var/dragkit_escape.safetensors").exists()


def test_the_catalogue_is_large_enough():
    assert len(CASES) >= 40
