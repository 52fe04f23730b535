"""Deterministic DDIM inversion that keeps the whole trajectory.

Later stages need the source latent at every step: GoodDrag's time-matched references, the
reference branch of sampling, DiffEditor's regional SDE. So :func:`ddim_invert` returns every
intermediate latent with its timestep, not only the last one.

Inversion runs without classifier-free guidance and with the prompt embedding only, as
DragDiffusion and GoodDrag do for real images.
"""

from __future__ import annotations

import dataclasses
from typing import Callable

import torch

from .errors import DragKitInputError, check_shape, check_stage_finite
from .model import DragModel
from .schedule import DEFAULT_NUM_STEPS, DRAGDIFFUSION_STRENGTH, inversion_step_count, make_ddim_inverse

ProgressCallback = Callable[[int, int, dict], None]


@dataclasses.dataclass(frozen=True, eq=False)
class Inversion:
    """A DDIM inversion trajectory and the latent to denoise from.

    Attributes:
        latents: ``latents[0]`` is the clean latent, ``latents[k]`` the latent at ``timesteps[k-1]``;
            each ``(B, C, h, w)``, float32, in the UNet's (scaled) latent space.
        timesteps: ascending timesteps of ``latents[1:]``, e.g. ``(1, 21, ..., 681)``.
        num_steps: N of the DDIM schedule (50).
        strength: share of the schedule that was inverted.
        prompt_embeds: ``(1, L, D)`` float32 embedding used for the inversion.
        edited: the latent to start denoising from; ``None`` means the inverted ``latents[-1]``.
            Drag methods return a copy of the inversion with this set.
    """

    latents: tuple[torch.Tensor, ...]
    timesteps: tuple[int, ...]
    num_steps: int
    strength: float
    prompt_embeds: torch.Tensor
    edited: torch.Tensor | None = None

    @property
    def t(self) -> int:
        """The timestep the edit starts at (681 for DragDiffusion's defaults)."""
        return self.timesteps[-1]

    @property
    def source(self) -> torch.Tensor:
        """The inverted latent at :attr:`t`."""
        return self.latents[-1]

    @property
    def start(self) -> torch.Tensor:
        """The latent to denoise from: the edited one if any, else the inverted source."""
        return self.source if self.edited is None else self.edited

    @property
    def denoise_timesteps(self) -> tuple[int, ...]:
        """Descending timesteps of the denoising pass, e.g. ``(681, 661, ..., 1)``."""
        return tuple(reversed(self.timesteps))

    def source_at(self, timestep: int) -> torch.Tensor:
        """The source trajectory's latent at ``timestep`` (the clean latent for timestep < first)."""
        if timestep < self.timesteps[0]:
            return self.latents[0]
        try:
            return self.latents[self.timesteps.index(timestep) + 1]
        except ValueError:
            raise DragKitInputError(f"timestep {timestep} is not on this inversion's schedule {self.timesteps}.")

    def source_after(self, timestep: int) -> torch.Tensor:
        """The source trajectory's latent one denoising step after ``timestep`` (the clean latent after
        the last step)."""
        try:
            return self.latents[self.timesteps.index(timestep)]
        except ValueError:
            raise DragKitInputError(f"timestep {timestep} is not on this inversion's schedule {self.timesteps}.")

    def with_edit(self, edited: torch.Tensor) -> "Inversion":
        """A copy whose denoising starts from ``edited`` (the trajectory is shared, not copied)."""
        if edited.shape != self.source.shape:
            raise DragKitInputError(
                f"edited latent has shape {tuple(edited.shape)}, the inversion {tuple(self.source.shape)}."
            )
        return dataclasses.replace(self, edited=edited)


def ddim_invert(
    model: DragModel,
    latent: torch.Tensor,
    prompt_embeds: torch.Tensor | None = None,
    num_steps: int = DEFAULT_NUM_STEPS,
    strength: float = DRAGDIFFUSION_STRENGTH,
    callback: ProgressCallback | None = None,
) -> Inversion:
    """Invert a clean latent for ``round(strength * num_steps)`` of ``num_steps`` DDIM steps.

    Args:
        model: the bundle to invert with (its LoRA adapter, if any, is active).
        latent: ``(B, C, h, w)`` clean latent in the UNet's (scaled) latent space.
        prompt_embeds: ``(1, L, D)`` prompt embedding, or ``None`` for the model's default.
        num_steps: DDIM steps of the full schedule (N).
        strength: share of the schedule to invert, in (0, 1]; 0.7 -> t=681 with N=50.
        callback: ``callback(step, total, info)`` after each step; it may raise to cancel.

    Returns:
        The :class:`Inversion` with every intermediate latent.
    """
    count = inversion_step_count(num_steps, strength)
    check_shape(latent, "B C H W", "latent")
    model.check_latent(latent)
    embeds = model.prompt_embeds(prompt_embeds, latent.shape[0])
    scheduler = make_ddim_inverse(model.scheduler_config, num_steps)
    timesteps = scheduler.timesteps[:count].tolist()  # the schedule lives on the CPU

    x = latent.detach().to(model.device, torch.float32).clone()
    trajectory = [x]
    with torch.no_grad():
        for step, t in enumerate(timesteps):
            # x at the noise level of t - 1000/N  ->  x at t, with epsilon predicted at t.
            noise = model.predict_noise(x, t, embeds)
            x = scheduler.step(noise, t, x).prev_sample.float()
            trajectory.append(x)
            if callback is not None:
                callback(step + 1, count, {"timestep": t})
    check_stage_finite(x, "the DDIM inversion", "the latent's values are probably not a VAE latent's (encode the "
                       "image with this model's VAE), or the UNet overflowed in fp16")
    return Inversion(
        latents=tuple(trajectory),
        timesteps=tuple(timesteps),
        num_steps=num_steps,
        strength=strength,
        prompt_embeds=embeds[:1].detach().float(),
    )
