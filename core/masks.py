"""Editable-region masks: 1 = may change, 0 = keep (DragDiffusion's and GoodDrag's convention)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import DragKitInputError, check_finite


def as_mask(mask: torch.Tensor, image_size: tuple[int, int], name: str = "mask") -> torch.Tensor:
    """Validate a ``(H, W)`` or ``(1, H, W)`` mask of an image of ``image_size = (w, h)``; return ``(H, W)`` float."""
    if mask.ndim == 3 and mask.shape[0] == 1:
        mask = mask[0]
    if mask.ndim != 2:
        raise DragKitInputError(f"`{name}` must be one (H, W) mask, got shape {tuple(mask.shape)}.")
    width, height = image_size
    if tuple(mask.shape) != (height, width):
        raise DragKitInputError(
            f"`{name}` is {mask.shape[1]}x{mask.shape[0]} but the image is {width}x{height}; paint the mask on "
            "the same image (or resize it)."
        )
    check_finite(mask, name)
    return mask.float().clamp(0, 1)


def resize_mask(mask: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``(H, W)`` mask -> ``(1, 1, rows, cols)`` by nearest neighbour (as the reference code resizes)."""
    return F.interpolate(mask[None, None].float(), size=tuple(size), mode="nearest")


def is_empty(mask: torch.Tensor | None) -> bool:
    return mask is None or not bool((mask > 0.5).any())
