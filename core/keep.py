"""Keeping what must not change: the source brought back outside the editable mask.

No published drag method guarantees that pixels outside its mask survive: the background term and
the attention sharing only pull toward the source, and the VAE round trip alone blurs small
details. With *keep* on, a sampler blends the source trajectory back outside the mask after every
denoising step (so the edited content settles against the true surroundings), and after decoding
the source pixels are pasted back outside it, so those pixels equal the input exactly.

The weight map is 1 where the image may change and 0 where the source is kept: the editable mask
grown by ``grow`` latent cells, then feathered over ``feather`` more cells so no seam shows. A
pixel farther than ``grow + feather`` cells from the mask has weight exactly 0.
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F

from .errors import DragKitInputError
from .masks import as_mask, is_empty


@dataclasses.dataclass(frozen=True)
class KeepConfig:
    """How far the editable region reaches before the source takes over.

    Attributes:
        grow: latent cells the mask is grown by (1: one cell, 8 image pixels on SD1.5).
        feather: latent cells of the soft transition beyond it (1).
    """

    grow: int = 1
    feather: int = 1

    def __post_init__(self):
        if self.grow < 0 or self.feather < 0:
            raise DragKitInputError(f"keep `grow` and `feather` must be 0 or more, got {self.grow} and {self.feather}.")


def keep_weights(mask: torch.Tensor, size: tuple[int, int], cell: float, config: KeepConfig = KeepConfig()) -> torch.Tensor:
    """The blend weights of :func:`blend` on a ``size`` grid.

    Args:
        mask: ``(H, W)`` editable region (> 0.5 may change), any resolution.
        size: ``(rows, cols)`` of the grid to weigh (the latent, or the image).
        cell: grid pixels per latent cell (1 for the latent, the VAE scale for the image).

    Returns:
        ``(1, 1, rows, cols)`` float32 in [0, 1]; 1 = the edit, 0 = the source.
    """
    region = F.interpolate((mask > 0.5).float()[None, None], size=size, mode="area") > 0
    grow, feather = round(config.grow * cell), round(config.feather * cell)
    weights = region.float()
    if grow:
        weights = F.max_pool2d(weights, 2 * grow + 1, stride=1, padding=grow)
    # A linear ramp over `feather` pixels beyond the grown region: weight 1 - k / (feather + 1) at
    # (chessboard) distance k, 0 past it.
    ring, ramp = weights, weights
    for k in range(1, feather + 1):
        ring = F.max_pool2d(ring, 3, stride=1, padding=1)
        ramp = torch.maximum(ramp, ring * (1 - k / (feather + 1)))
    return ramp


def blend(edited: torch.Tensor, source: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """``weights * edited + (1 - weights) * source``, exactly ``source`` where the weight is 0."""
    return torch.where(weights > 0, weights * edited + (1 - weights) * source.to(edited), source.to(edited))


def paste_outside(image: torch.Tensor, source: torch.Tensor, mask: torch.Tensor, cell: float,
                  config: KeepConfig = KeepConfig()) -> torch.Tensor:
    """The decoded ``image`` with the ``source`` pixels back outside the editable ``mask``.

    Args:
        image, source: ``(..., 3, H, W)`` pictures of one size.
        mask: ``(H, W)`` editable region.
        cell: image pixels per latent cell (the model's VAE scale).

    Returns:
        like ``image``; equal to ``source`` wherever :func:`keep_weights` is 0.
    """
    weights = keep_weights(mask, tuple(image.shape[-2:]), cell, config).to(image.device)
    return blend(image, source, weights.reshape(weights.shape[-2:]))


def latent_keep_weights(model, inversion, mask: torch.Tensor | None, config: KeepConfig | None) -> torch.Tensor | None:
    """The sampler's ``keep`` weights for an image-size ``mask`` over ``inversion``'s latent, or
    ``None`` when keep is off or there is no mask (everything may change)."""
    if config is None or mask is None or is_empty(mask):
        return None
    latent = inversion.source
    editable = as_mask(mask, model.image_size(latent))
    return keep_weights(editable, tuple(latent.shape[-2:]), 1.0, config).to(model.device)


def keep_mask(region: torch.Tensor | None, image_size: tuple[int, int], cell: float,
              config: KeepConfig = KeepConfig()) -> torch.Tensor:
    """``(H, W)`` float at ``image_size = (w, h)``: 1 where the source is kept, 0 where the edit shows,
    in between on the feather (1 - :func:`keep_weights`); all 0 when ``region`` is ``None`` or empty
    (everything may change). ComfyUI's Image Composite Masked pastes the source with it."""
    width, height = image_size
    if region is None or is_empty(region):
        return torch.zeros(height, width)
    return 1 - keep_weights(region.float().cpu(), (height, width), cell, config)[0, 0]
