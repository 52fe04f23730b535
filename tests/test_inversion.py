"""DDIM inversion: schedule, trajectory, reconstruction, errors."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.attention import ReferenceAttentionConfig
from dragkit.core.errors import DragKitInputError
from dragkit.core.inversion import ddim_invert
from dragkit.core.sampling import reference_sample
from dragkit.core.schedule import SD15_DDIM_CONFIG, inversion_step_count, inversion_timesteps


@pytest.mark.parametrize(
    "strength, count, t", [(0.7, 35, 681), (0.75, 38, 741), (1.0, 50, 981), (0.02, 1, 1)]
)
def test_strength_maps_to_the_reference_timesteps(strength, count, t):
    timesteps = inversion_timesteps(SD15_DDIM_CONFIG, 50, strength)
    assert len(timesteps) == count and timesteps[-1] == t
    assert timesteps[:3] == [1, 21, 41][:count]


@pytest.mark.parametrize("strength", [0.0, -0.1, 1.5, float("nan")])
def test_strength_outside_range(strength):
    with pytest.raises(DragKitInputError, match="strength"):
        inversion_step_count(50, strength)


def test_strength_too_small_for_the_steps():
    with pytest.raises(DragKitInputError, match="inverts no step"):
        inversion_step_count(10, 0.01)


def test_trajectory_keeps_every_latent(tiny_model, latent):
    inversion = ddim_invert(tiny_model, latent, num_steps=50, strength=0.2)
    assert inversion.timesteps == tuple(range(1, 182, 20))
    assert len(inversion.latents) == 11 and inversion.t == 181
    torch.testing.assert_close(inversion.latents[0], latent)
    torch.testing.assert_close(inversion.source_at(181), inversion.latents[-1])
    assert inversion.source_at(0) is inversion.latents[0]
    # The latent gets noisier along the trajectory.
    assert (inversion.latents[-1] - latent).abs().mean() > (inversion.latents[1] - latent).abs().mean()


def test_inversion_does_not_touch_its_input(tiny_model, latent):
    before = latent.clone()
    ddim_invert(tiny_model, latent, num_steps=10, strength=0.5)
    assert torch.equal(latent, before)


def _reconstruction_error(model, latent, num_steps):
    inversion = ddim_invert(model, latent, num_steps=num_steps, strength=0.7)
    edited, _ = reference_sample(model, inversion, reference=ReferenceAttentionConfig(enabled=False))
    return (edited - latent).abs().mean().item() / latent.abs().mean().item()


def test_inversion_then_sampling_reconstructs_the_latent(tiny_model, latent):
    # DDIM inversion is exact only in the limit of small steps: it predicts epsilon at t and reuses
    # it for the step from t-1000/N, so the error is first order in the step. Measured on this
    # random tiny UNet (whose epsilon swings far more with t than a trained model's): mean relative
    # error 15.6% at N=50, 8.8% at N=100, 4.7% at N=200. We assert the bound and the convergence;
    # the trained toy model's reconstruction is checked in its own tests.
    coarse, fine = _reconstruction_error(tiny_model, latent, 50), _reconstruction_error(tiny_model, latent, 200)
    assert coarse < 0.2
    assert fine < coarse / 2.5


def test_wrong_latent(tiny_model):
    with pytest.raises(DragKitInputError, match="channels"):
        ddim_invert(tiny_model, torch.zeros(1, 3, 8, 8))
    with pytest.raises(DragKitInputError, match="shape"):
        ddim_invert(tiny_model, torch.zeros(4, 8, 8))


def test_edit_must_match_the_source(tiny_model, latent):
    inversion = ddim_invert(tiny_model, latent, num_steps=10, strength=0.3)
    with pytest.raises(DragKitInputError, match="shape"):
        inversion.with_edit(torch.zeros(1, 4, 8, 8))
    edited = inversion.with_edit(inversion.source + 1)
    assert edited.latents is inversion.latents and inversion.edited is None


def test_callback_sees_every_step_and_can_cancel(tiny_model, latent):
    seen = []
    ddim_invert(tiny_model, latent, num_steps=10, strength=0.5, callback=lambda s, n, i: seen.append((s, n)))
    assert seen == [(k, 5) for k in range(1, 6)]

    def cancel(step, total, info):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ddim_invert(tiny_model, latent, num_steps=10, strength=0.5, callback=cancel)
