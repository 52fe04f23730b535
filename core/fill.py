"""Filling a masked area with the drag model itself: the second half of a region warp, offline.

Real photos are best filled by a dedicated inpainting model in ComfyUI's own nodes (the shipped
workflows do that). This sampler lets the whole warp-then-fill method run on any DRAG_MODEL, the
embedded toy one included, with nothing downloaded, and gives the benchmark its ``warp-inpaint`` row.

It is blended-latent inpainting with DDIM: the picture (the warped image, its uncovered pixels
pre-filled) is inverted to step t; inside the fill mask the start latent is instead the clean latent
noised afresh to t with a seeded draw (what a KSampler with a noise mask and denoise < 1 does), and
after every denoising step the latent outside the mask is reset to the inversion trajectory, so the
filled content settles against the true surroundings. A paste after decoding
(:func:`.keep.paste_outside`) makes every pixel outside the mask the input's.
"""

from __future__ import annotations

import dataclasses

import torch

from .attention import ReferenceAttentionConfig
from .errors import DragKitInputError
from .inversion import Inversion
from .keep import KeepConfig, latent_keep_weights
from .masks import is_empty
from .model import DragModel
from .sampling import ProgressCallback, reference_sample


@dataclasses.dataclass(frozen=True)
class FillConfig:
    """How the fill mask reaches the latent.

    Attributes:
        seed: seed of the fresh noise inside the mask.
        grow: latent cells the mask is grown by (0: the fill mask is grown already, by the warp).
        feather: latent cells of the soft edge beyond it (1).
    """

    seed: int = 0
    grow: int = 0
    feather: int = 1

    @property
    def keep(self) -> KeepConfig:
        return KeepConfig(grow=self.grow, feather=self.feather)


def fill_start(inversion: Inversion, weights: torch.Tensor, model: DragModel, seed: int) -> torch.Tensor:
    """The latent denoising starts from: the inverted one outside, the clean latent noised to step t
    with fresh seeded noise inside, blended by ``weights`` ``(1, 1, h, w)`` (1 = fill)."""
    clean = inversion.latents[0].to(model.device, torch.float32)
    generator = torch.Generator(clean.device).manual_seed(seed)  # drawn where it is used
    noise = torch.randn(clean.shape, generator=generator, device=clean.device, dtype=clean.dtype)
    alpha = model.scheduler(inversion.num_steps).alphas_cumprod[inversion.t].to(clean)
    noised = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
    source = inversion.source.to(clean)
    weights = weights.to(clean)
    return weights * noised + (1 - weights) * source


def fill_masked(model: DragModel, inversion: Inversion, mask: torch.Tensor, config: FillConfig = FillConfig(),
                prompt_embeds: torch.Tensor | None = None, callback: ProgressCallback | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill ``mask`` of the inverted picture.

    Args:
        model: the bundle.
        inversion: the inversion of the picture to fill (its strength sets how much noise the fill
            starts from: 1.0 = pure noise inside the mask).
        mask: ``(H, W)`` image-size fill mask (> 0.5 = fill).
        config: seed and latent edge.
        prompt_embeds: ``(1, L, D)``; ``None`` uses the inversion's embedding.
        callback: ``callback(step, total, info)`` after each DDIM step; it may raise to cancel.

    Returns:
        ``(latent, weights)``: the clean latent ``(B, C, h, w)`` and the ``(1, 1, h, w)`` weights used
        (1 = filled), for the paste after decoding.
    """
    if is_empty(mask, "fill mask"):
        raise DragKitInputError("the fill mask is empty: nothing to fill. Connect the `fill` mask of DragKit Region "
                                "Warp (a drag that uncovers nothing needs no fill).")
    weights = latent_keep_weights(model, inversion, mask, config.keep)
    start = fill_start(inversion, weights, model, config.seed)
    latent, _ = reference_sample(model, inversion.with_edit(start), prompt_embeds,
                                 ReferenceAttentionConfig(enabled=False), callback, keep=weights)
    return latent, weights
