"""Live previews: a small RGB picture of a loop's current clean-latent estimate.

Every DragKit loop reports its estimate of the clean latent (the predicted x0) to its callback;
this module turns such a latent into an image cheaply enough to do it every few steps. Two ways:

- ``"projection"``: a fixed linear map from the 4 latent channels to RGB, one matrix product at
  latent resolution (SD1.5: 64x64 for a 512x512 image). Colours and shapes, no detail.
- ``"vae"``: the model's own VAE decoder. Exact, but only cheap for small VAEs, such as the
  embedded toy model's (0.95 M parameters, 16x16x4 latents -> 64x64 images).

Which one a model uses is a recommendation in its ``dragkit.json`` (``"preview": "vae"``); without
it, models with 4 latent channels use the projection and others get no preview.
"""

from __future__ import annotations

import logging
from typing import Callable

import torch

from .hints import PREVIEW_METHODS
from .model import DragModel
from .sd15 import SD15_LATENT_SCALE

logger = logging.getLogger(__name__)

# Longest side ComfyUI shows a preview at (ComfyUI's own default, its `--preview-size`).
MAX_PREVIEW_SIDE = 512

# SD1.5 latent -> RGB in [-1, 1], one row per latent channel, columns R, G, B. The numbers are the
# ones ComfyUI's Latent2RGB previewer uses: Comfy-Org/ComfyUI comfy/latent_formats.py, class SD15,
# `latent_rgb_factors` (v0.3.64, GPL-3.0). ComfyUI applies them to the latent its samplers see, the
# VAE latent times SD1.5's scale factor 0.18215 (`LatentFormat.process_in`), with no bias.
SD15_LATENT_RGB_FACTORS = (
    (0.3512, 0.2297, 0.3227),
    (0.3250, 0.4974, 0.2350),
    (-0.2829, 0.1762, 0.2721),
    (-0.2120, -0.2616, -0.7177),
)

Previewer = Callable[[torch.Tensor], torch.Tensor]


def latent_to_rgb(latent: torch.Tensor, latent_scale: float = SD15_LATENT_SCALE) -> torch.Tensor:
    """SD1.5's linear latent-to-RGB projection of one latent.

    Args:
        latent: ``(1, 4, h, w)`` or ``(4, h, w)`` latent scaled by ``latent_scale`` (DragKit's
            convention: the VAE latent times the model's scale). Only the first image is used.
        latent_scale: the factor ``latent`` is scaled by; the projection's own space is SD1.5's
            0.18215, so other scales are converted first.

    Returns:
        ``(3, h, w)`` float32 image in [0, 1] on the latent's device.
    """
    x = latent[0] if latent.ndim == 4 else latent
    factors = torch.tensor(SD15_LATENT_RGB_FACTORS, device=x.device)
    x = x.float() * (SD15_LATENT_SCALE / latent_scale)
    rgb = torch.einsum("chw,cr->rhw", x, factors)
    return ((rgb + 1) / 2).clamp(0, 1)


def preview_method(model: DragModel) -> str:
    """``"vae"``, ``"projection"`` or ``"none"``: the model's recommendation, else the default.

    The default is the projection for 4-channel latents (SD1.5's) and none otherwise; ``"vae"``
    falls back to that default when the bundle carries no VAE (a ComfyUI model).
    """
    default = "projection" if model.latent_channels == len(SD15_LATENT_RGB_FACTORS) else "none"
    method = model.hints.preview or default  # checked against PREVIEW_METHODS when the hints were read
    if method == "vae" and model.vae is None:
        logger.debug("model %s recommends VAE previews but has no VAE; using %s", model.name, default)
        return default
    if method == "projection" and model.latent_channels != len(SD15_LATENT_RGB_FACTORS):
        return "none"
    return method


def preview_image(model: DragModel, latent: torch.Tensor, method: str | None = None) -> torch.Tensor | None:
    """A small picture of a scaled latent, or ``None`` when the model has no preview.

    Args:
        model: the bundle the latent belongs to.
        latent: ``(B, C, h, w)`` scaled latent; only the first image is shown.
        method: one of :data:`PREVIEW_METHODS`; ``None`` = :func:`preview_method` of the model.

    Returns:
        ``(3, H, W)`` float32 in [0, 1] on the CPU: ``H, W = h, w`` for the projection, the decoded
        image size for the VAE.
    """
    method = method or preview_method(model)
    if method == "none":
        return None
    # A diverging estimate must still make a picture, never an error in the middle of a run.
    first = torch.nan_to_num(latent[:1].detach().float())
    if method == "vae":
        return model.decode(first)[0].cpu()
    return latent_to_rgb(first, model.latent_scale).cpu()


def previewer(model: DragModel) -> Previewer | None:
    """``latent -> (3, H, W)`` picture function for the model's live previews, or ``None`` for none.

    The method is chosen (and a bad ``dragkit.json`` value reported) once, here.
    """
    method = preview_method(model)
    if method == "none":
        return None
    return lambda latent: preview_image(model, latent, method)
