"""The DDIM schedule every DragKit method inverts and samples with.

Stable Diffusion 1.5's schedule as DragDiffusion and GoodDrag configure it (``drag_pipeline.py``,
``pipeline.py``): scaled-linear betas 0.00085 to 0.012 over 1000 training steps, no clipping,
``set_alpha_to_one=False`` and ``steps_offset=1``. With 50 steps the timesteps are 981, 961, ..., 1.

Inversion "strength" s inverts ``round(s * N)`` of N steps (Python's banker's rounding, as the
reference code does): s=0.7, N=50 gives 35 steps and t=681; s=0.75 gives 38 steps and t=741.
"""

from __future__ import annotations

import torch
from diffusers import DDIMInverseScheduler, DDIMScheduler

from .errors import DragKitInputError, check_range

SD15_DDIM_CONFIG = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "clip_sample": False,
    "set_alpha_to_one": False,
    "steps_offset": 1,
    "prediction_type": "epsilon",
}

DEFAULT_NUM_STEPS = 50
DRAGDIFFUSION_STRENGTH = 0.7
GOODDRAG_STRENGTH = 0.75


def make_ddim(config: dict, num_steps: int) -> DDIMScheduler:
    """A fresh DDIM scheduler with ``num_steps`` set (schedulers are stateful: never share one)."""
    scheduler = DDIMScheduler.from_config(config)
    scheduler.set_timesteps(num_steps)
    return scheduler


def make_ddim_inverse(config: dict, num_steps: int) -> DDIMInverseScheduler:
    """The inverse of :func:`make_ddim`: timesteps ascend 1, 21, ..., 981 for 50 steps.

    Each step evaluates the UNet at the destination timestep and moves from the noise level of
    ``t - 1000/N`` (the clean level ``alphas_cumprod[0]`` for the first step) to ``t``, which is
    DragDiffusion's ``inv_step``.
    """
    scheduler = DDIMInverseScheduler.from_config(config)
    scheduler.set_timesteps(num_steps)
    return scheduler


def inversion_step_count(num_steps: int, strength: float) -> int:
    """How many of ``num_steps`` DDIM steps an inversion of ``strength`` runs: ``round(strength * N)``."""
    if num_steps < 1:
        raise DragKitInputError(f"`steps` must be at least 1, got {num_steps}.")
    check_range(strength, "strength", 0.0, 1.0, low_open=True)
    count = round(strength * num_steps)
    if count < 1:
        raise DragKitInputError(
            f"`strength` {strength} with {num_steps} steps inverts no step at all; raise the strength "
            f"to at least {0.5 / num_steps:.3f} or use more steps."
        )
    return count


def inversion_timesteps(config: dict, num_steps: int, strength: float) -> list[int]:
    """The ascending timesteps an inversion visits, e.g. [1, 21, ..., 681] for 50 steps at 0.7."""
    count = inversion_step_count(num_steps, strength)
    return [int(t) for t in make_ddim_inverse(config, num_steps).timesteps[:count]]


def predicted_x0(latent: torch.Tensor, noise: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """The clean latent an epsilon prediction implies (DDIM, Song et al. eq. 12's "predicted x0").

    ``x0 = (x_t - sqrt(1 - a_t) * eps) / sqrt(a_t)``, with ``a_t`` = ``alphas_cumprod[t]``; the same
    arithmetic as diffusers' ``DDIMScheduler.step`` for ``prediction_type="epsilon"``.

    Args:
        latent: ``(B, C, h, w)`` x_t.
        noise: ``(B, C, h, w)`` epsilon predicted for ``latent``.
        alpha: ``alphas_cumprod[t]``, a float or a 0-d tensor.
    """
    return (latent - (1 - alpha) ** 0.5 * noise) / alpha**0.5


def implied_noise(latent: torch.Tensor, x0: torch.Tensor, alpha: torch.Tensor | float) -> torch.Tensor:
    """The epsilon that links ``x0`` to ``latent`` at ``a_t``: the inverse of :func:`predicted_x0`.

    ``eps = (x_t - sqrt(a_t) * x0) / sqrt(1 - a_t)``; ``(B, C, h, w)`` like its inputs.
    """
    return (latent - alpha**0.5 * x0) / (1 - alpha) ** 0.5
