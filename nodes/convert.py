"""Conversions between ComfyUI's data types and DragKit's core tensors.

ComfyUI conventions: IMAGE ``(B, H, W, C)`` in [0, 1]; MASK ``(B, H, W)`` in [0, 1]; LATENT a dict
whose ``samples`` are UNSCALED VAE latents ``(B, C, h, w)`` (the 0.18215 factor of SD1.5 is applied
inside sampling); CONDITIONING a list of ``[embedding (1, 77, 768), options]``.
"""

from __future__ import annotations

import torch

from ..core.errors import DragKitInputError
from ..core.keep import keep_mask
from ..core.model import DragModel
from ..core.points import DragPoints
from .comfy import intermediate_device, plain_tensor


def latent_in(model: DragModel, latent: dict, name: str = "latent") -> torch.Tensor:
    """ComfyUI LATENT -> the UNet's scaled float32 latent on the model's device (a new tensor)."""
    if not isinstance(latent, dict) or "samples" not in latent:
        raise DragKitInputError(f"`{name}` must be a LATENT (connect VAE Encode), got {type(latent).__name__}.")
    samples = plain_tensor(latent["samples"]).to(model.device, torch.float32) * model.latent_scale
    model.check_latent(samples, name)
    return samples


def latent_out(model: DragModel, samples: torch.Tensor, like: dict | None = None) -> dict:
    """Scaled latent -> a new ComfyUI LATENT dict (other keys of ``like`` are copied, not shared)."""
    out = {k: v for k, v in (like or {}).items() if k not in ("samples", "noise_mask")}
    out["samples"] = (samples.detach().float() / model.latent_scale).to(intermediate_device())
    return out


def points_in(points, name: str = "points") -> DragPoints:
    """A DRAG_POINTS input that must hold pairs (the Point Picker outputs none while it has no pairs)."""
    if points is None:
        raise DragKitInputError(
            f"`{name}` has no drag pairs: click a handle, then its target, in the Point Picker. (A picker with only "
            "a painted mask suits the Regional SDE Sampler's move and resize modes.)"
        )
    if not isinstance(points, DragPoints):
        raise DragKitInputError(f"`{name}` must be DRAG_POINTS (from the Point Picker or DragKit Points), got "
                                f"{type(points).__name__}.")
    return points


def conditioning_embeds(conditioning) -> torch.Tensor | None:
    """The prompt embedding ``(1, L, D)`` of a CONDITIONING (the first entry), or ``None``."""
    if conditioning is None:
        return None
    try:
        embeds = conditioning[0][0]
    except (IndexError, KeyError, TypeError):
        raise DragKitInputError("`conditioning` is empty or not a CONDITIONING; connect CLIP Text Encode.")
    if not isinstance(embeds, torch.Tensor):
        raise DragKitInputError("`conditioning` is not a CONDITIONING; connect CLIP Text Encode.")
    return plain_tensor(embeds).float()


def keep_mask_out(model: DragModel, latent: torch.Tensor, region: torch.Tensor | None, keep: bool) -> torch.Tensor:
    """A sampler's ``keep_mask`` output: ComfyUI MASK ``(1, H, W)`` at the image size of ``latent``."""
    image_size = model.image_size(latent)
    mask = keep_mask(region if keep else None, image_size, model.vae_scale)
    return mask[None].to(intermediate_device())


def mask_or_none(mask):
    """First mask of a ComfyUI MASK ``(B, H, W)`` as a plain tensor, or ``None``."""
    if mask is None:
        return None
    mask = plain_tensor(mask)
    return mask[0] if mask.ndim == 3 else mask
