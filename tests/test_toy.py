"""The toy benchmark's cases and scores, and the embedded toy model (skipped until it is present)."""

from __future__ import annotations

import math

import pytest
import torch

from dragkit.core.metrics import psnr
from dragkit.core.model import TOY_MODEL_PATH, load_toy_model
from dragkit.toybench import HELD_OUT_SEED, METHODS, make_case, score

HAS_TOY = (TOY_MODEL_PATH / "unet").is_dir()


@pytest.mark.parametrize("seed", [HELD_OUT_SEED + k for k in range(6)])
def test_cases_follow_the_protocol(seed):
    case = make_case(seed)
    assert make_case(seed).offset == case.offset  # deterministic
    (hx, hy), (tx, ty) = case.points.handles[0], case.points.targets[0]
    distance = math.hypot(tx - hx, ty - hy)
    assert 0.08 * 64 - 1 <= distance <= 0.20 * 64 + 1
    assert case.scene.mask[int(hy), int(hx)] > 0.5  # the handle is on the shape ...
    cx, cy = [float(v) for v in torch.nonzero(case.scene.mask > 0.5).float().mean(0).flip(0)]
    assert math.hypot(hx - cx, hy - cy) > 2  # ... but not at its centre
    assert ((tx - hx) * (hx - cx) + (ty - hy) * (hy - cy)) > 0  # on the leading side
    assert (case.editable[(case.scene.mask > 0.5) | (case.moved.mask > 0.5)] == 1).all()


def test_scores_see_a_correct_move_and_a_missing_one():
    case = make_case(HELD_OUT_SEED)
    perfect = score(case, case.moved.image)
    assert perfect["success"] == 1 and perfect["iou"] == pytest.approx(1.0, abs=0.02)
    assert perfect["fraction"] == pytest.approx(1.0, abs=0.05) and perfect["bg_psnr_db"] == math.inf
    unmoved = score(case, case.scene.image)
    assert unmoved["success"] == 0 and unmoved["fraction"] == pytest.approx(0.0, abs=1e-6)
    erased = score(case, case.scene.background)
    assert erased["success"] == 0 and erased["area_kept"] < 0.1


@pytest.mark.skipif(not HAS_TOY, reason="assets/toy_model is not trained yet")
def test_toy_model_reconstructs_and_the_oracle_succeeds():
    model = load_toy_model()
    assert model.vae_scale == 4 and model.latent_channels == 4
    # Reconstruction PSNR over held-out scenes, as the model card reports it (>= 30 dB).
    images = torch.stack([make_case(HELD_OUT_SEED + k).scene.image for k in range(16)])
    with torch.no_grad():
        reconstructions = model.decode(model.encode(images))
    assert sum(psnr(r, i) for r, i in zip(reconstructions, images)) / len(images) >= 30
    case = make_case(HELD_OUT_SEED + 1)
    assert score(case, METHODS["oracle"](model, case))["success"] == 1
    baseline = METHODS["baseline"](model, case)
    assert score(case, baseline)["bg_psnr_db"] >= 30
