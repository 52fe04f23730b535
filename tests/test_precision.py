"""The precision policy (issue 18, item 3): half-precision weights, float32 latents, autocast and loss
scaling give the drag the same gradient direction as float32 (:mod:`dragkit.core.precision`)."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F
from conftest import inverted_tiny_model

from dragkit.core.drag import DragConfig, LatentOptimizer, drag_forward, drag_loss, prepare_drag
from dragkit.core.methods.dragdiffusion import drag_latent
from dragkit.core.points import DragPoints
from dragkit.core.precision import HALF_GRADIENT_MIN_COSINE, compute_dtype

POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64)), ((40, 40), (56, 44))])
MASK = torch.zeros(128, 128)
MASK[24:104, 24:104] = 1
HALF = [torch.float16, torch.bfloat16]


@pytest.fixture(scope="module")
def setup():
    return inverted_tiny_model(num_steps=20, strength=0.7)


def _in(model, dtype):
    """The bundle with a copy of its UNet in ``dtype`` (on the CPU, as a GPU would hold it)."""
    return dataclasses.replace(model, unet=copy.deepcopy(model.unet).to(dtype))


def _latent_gradient(model, inversion, mixed_precision=True, loss_factor=1.0) -> torch.Tensor:
    """The gradient of the first drag step's loss on the latent, as the drag loops compute it."""
    config = DragConfig(feature_layers=(1,), mixed_precision=mixed_precision)
    embeds = model.prompt_embeds(inversion.prompt_embeds, 1)
    scheduler = model.scheduler(inversion.num_steps)
    problem = prepare_drag(model, inversion.start, inversion.t, embeds, scheduler, POINTS, MASK, config)
    opt = LatentOptimizer(model, inversion.start, config)
    with opt.autocast():
        features, noise = drag_forward(model, opt.latent, embeds, problem, config)
        loss = drag_loss(features, noise, opt.latent, problem.handles0, problem, scheduler, config) * loss_factor
    opt.scaler.scale(loss).backward()
    opt.scaler.unscale_(opt.optimizer)
    return opt.latent.grad


def _cosine(a: torch.Tensor, b: torch.Tensor) -> float:
    return float(F.cosine_similarity(a.flatten(), b.flatten(), dim=0))


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_half_precision_gradient_points_where_float32_does(setup, dtype):
    model, inversion = setup
    reference = _latent_gradient(model, inversion)
    assert _cosine(_latent_gradient(_in(model, dtype), inversion), reference) > HALF_GRADIENT_MIN_COSINE


def test_loss_scaling_keeps_small_float16_gradients_from_vanishing(setup):
    # A loss a million times smaller: its gradients fall below float16's smallest number on the way
    # back through the UNet. Unscaled they are all zero; scaled, the direction is float32's.
    model, inversion = setup
    half = _in(model, torch.float16)
    reference = _latent_gradient(model, inversion, loss_factor=1e-6)
    unscaled = _latent_gradient(half, inversion, mixed_precision=False, loss_factor=1e-6)
    assert torch.count_nonzero(unscaled) == 0
    assert _cosine(_latent_gradient(half, inversion, loss_factor=1e-6), reference) > HALF_GRADIENT_MIN_COSINE


@pytest.mark.parametrize("dtype", HALF, ids=str)
def test_a_half_precision_drag_ends_where_the_float32_one_does(setup, dtype):
    model, inversion = setup
    config = DragConfig(feature_layers=(1,), max_steps=20)
    reference = drag_latent(model, inversion, POINTS, MASK, config)
    half = drag_latent(_in(model, dtype), inversion, POINTS, MASK, config)
    assert half.latent.dtype == torch.float32  # latents stay float32 whatever the weights
    assert half.points.handles == reference.points.handles
    assert half.distances[-1] == pytest.approx(reference.distances[-1], abs=1e-4)
    moved, moved_reference = half.latent - inversion.start, reference.latent - inversion.start
    assert _cosine(moved, moved_reference) > 0.95


def test_the_policy_picks_the_compute_dtype_from_the_weights_and_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert compute_dtype(torch.float32, cpu) is None  # the CPU default: float32 as it is
    assert compute_dtype(torch.float16, cpu) == torch.float16
    assert compute_dtype(torch.bfloat16, cuda) == torch.bfloat16
    assert compute_dtype(torch.float16, cuda) == torch.float16
    assert compute_dtype(torch.float32, cuda) == torch.float16  # as the official code: fp32 weights, fp16 autocast
    assert compute_dtype(torch.float16, cuda, mixed_precision=False) is None


def test_the_fused_optimizer_cuda_uses_gives_the_same_half_precision_drag(setup, monkeypatch):
    # On CUDA the drag's Adam is the fused one, which takes the loss scaler's overflow check on the
    # device; torch has it on the CPU too, so the pairing is checked here on a float16 UNet.
    from dragkit.core import precision

    model, inversion = setup
    half = _in(model, torch.float16)
    config = DragConfig(feature_layers=(1,), max_steps=10)
    unfused = drag_latent(half, inversion, POINTS, MASK, config)
    monkeypatch.setattr(precision, "optimizer_options", lambda device: {"fused": True})
    fused = drag_latent(half, inversion, POINTS, MASK, config)
    # The fused kernel unscales and updates in other arithmetic: equal for the first steps (to 6e-8),
    # then Adam, which divides by the gradient's size, turns rounding in near-zero gradients into
    # differences of about one learning rate in a few cells.
    assert fused.points.handles == unfused.points.handles
    assert _cosine(fused.latent - inversion.start, unfused.latent - inversion.start) > 0.99
