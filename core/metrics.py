"""Metrics for drag edits: GoodDrag's Dragging Accuracy Index, and the image/shape measures the
toy benchmark scores with. Images are ``(3, H, W)`` float tensors in [0, 1]; masks ``(H, W)`` bool.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from .errors import check_shape
from .points import DragPoints

DAI_GAMMAS = (1, 5, 10, 20)


def dai(
    original: torch.Tensor,
    edited: torch.Tensor,
    points: DragPoints,
    gammas: Sequence[int] = DAI_GAMMAS,
    reference_normalisation: bool = False,
) -> dict[int, float]:
    """Dragging Accuracy Index (GoodDrag, ``evaluation/compute_DAI.py``): lower is better.

    For each pair, the ``(2 gamma + 1)^2`` RGB patch of ``original`` around the handle is compared with
    the patch of ``edited`` around the target: squared L2 summed over pixels and channels, divided
    by the number of patch pixels, averaged over pairs. Near a border, only offsets that fall inside
    the image for both patches are used (the reference slices and fails on unequal shapes).

    Args:
        original, edited: ``(3, H, W)`` images in [0, 1] of the same size, the points' image size.
        points: the drag pairs (rounded to whole pixels).
        gammas: patch radii (GoodDrag reports 1, 5, 10, 20).
        reference_normalisation: divide by the number of pairs twice, as the reference script does,
            so numbers compare with the paper's; the default averages once.

    Returns:
        ``{gamma: value}``.
    """
    check_shape(original, "3 H W", "original")
    check_shape(edited, "3 H W", "edited")
    points = points.fit((original.shape[-1], original.shape[-2]))
    height, width = original.shape[-2:]
    results = {}
    for gamma in gammas:
        total = 0.0
        for (hx, hy), (tx, ty) in zip(points.handles, points.targets):
            hx, hy, tx, ty = (min(int(round(v)), limit - 1) for v, limit in ((hx, width), (hy, height), (tx, width), (ty, height)))
            top = -min(gamma, hy, ty)
            left = -min(gamma, hx, tx)
            bottom = min(gamma, height - 1 - hy, height - 1 - ty)
            right = min(gamma, width - 1 - hx, width - 1 - tx)
            source = original[:, hy + top: hy + bottom + 1, hx + left: hx + right + 1]
            target = edited[:, ty + top: ty + bottom + 1, tx + left: tx + right + 1]
            total += float(((source - target) ** 2).sum()) / (source.shape[-1] * source.shape[-2])
        count = len(points)
        results[gamma] = total / count / (count if reference_normalisation else 1)
    return results


def psnr(a: torch.Tensor, b: torch.Tensor, region: torch.Tensor | None = None) -> float:
    """PSNR in dB between images in [0, 1], over ``region`` ``(H, W)`` bool if given."""
    squared = ((a.float() - b.float()) ** 2).mean(dim=0)
    if region is not None:
        squared = squared[region]
    mse = float(squared.mean()) if squared.numel() else 0.0
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def colour_mask(image: torch.Tensor, colour: Sequence[float], tolerance: float = 0.12) -> torch.Tensor:
    """``(H, W)`` bool: pixels within ``tolerance`` (max over channels) of ``colour``."""
    reference = torch.tensor(colour, dtype=image.dtype).view(3, 1, 1)
    return (image - reference).abs().amax(dim=0) <= tolerance


def centroid(mask: torch.Tensor) -> tuple[float, float] | None:
    """``(x, y)`` centre of mass of a bool mask, or ``None`` if empty."""
    ys, xs = torch.nonzero(mask, as_tuple=True)
    if len(xs) == 0:
        return None
    return float(xs.float().mean()), float(ys.float().mean())


def iou(a: torch.Tensor, b: torch.Tensor) -> float:
    union = int((a | b).sum())
    return int((a & b).sum()) / union if union else 1.0
