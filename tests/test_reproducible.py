"""The same graph and seed give bit-identical LoRA weights and edits: fresh, in another process, after other work."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import torch
from conftest import make_tiny_model, smooth_latent

from dragkit.core.inversion import ddim_invert
from dragkit.core.lora import LoraTrainingConfig, train_lora
from dragkit.core.lora_files import kohya_state_dict
from dragkit.core.methods.dragdiffusion import DragConfig, drag_latent
from dragkit.core.points import DragPoints
from dragkit.core.sampling import reference_sample

TESTS = Path(__file__).resolve().parent
CONFIG = LoraTrainingConfig(steps=3, rank=2, seed=11)
POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (64, 64))])


def _digest(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().float().contiguous().numpy().tobytes()).hexdigest()[:16]


def edit_fingerprints() -> dict:
    """Train a LoRA, invert, drag and sample on the tiny model; hashes of the LoRA and the edit."""
    model = make_tiny_model()
    model.hints = model.hints.replace(vae_scale=8)
    latent = smooth_latent()
    trained = train_lora(model, latent, None, CONFIG)
    lora = kohya_state_dict(trained)
    inversion = ddim_invert(trained, latent, num_steps=10, strength=0.7)
    result = drag_latent(trained, inversion, POINTS, None, DragConfig(feature_layers=(1,), max_steps=4))
    edited, _ = reference_sample(trained, inversion.with_edit(result.latent))
    return {"lora": hashlib.sha256("".join(_digest(lora[k]) for k in sorted(lora)).encode()).hexdigest()[:16],
            "edit": _digest(edited)}


def _in_fresh_process() -> dict:
    code = (f"import sys, json; sys.path.insert(0, {str(TESTS)!r}); import torch; torch.set_num_threads(1); "
            "from test_reproducible import edit_fingerprints; print(json.dumps(edit_fingerprints()))")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=300)
    return json.loads(output.stdout.strip().splitlines()[-1])


def test_same_seed_same_lora_and_edit_in_fresh_processes_and_after_other_work():
    first, second = _in_fresh_process(), _in_fresh_process()
    assert first == second
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the fresh processes' thread count: float sums depend on it
    try:
        # Other work first: another LoRA on the same UNet, global random draws, another seed.
        model = make_tiny_model()
        train_lora(model, smooth_latent(3), None, LoraTrainingConfig(steps=2, rank=4, seed=5))
        torch.manual_seed(1234)
        torch.randn(1000)
        after_other_work = edit_fingerprints()
    finally:
        torch.set_num_threads(threads)
    assert after_other_work == first
