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


def is_empty(mask: torch.Tensor | None, name: str = "mask") -> bool:
    """True for no mask or one with nothing painted; a mask holding NaN is an error, never "empty"."""
    if mask is None:
        return True
    check_finite(mask, name)
    return not bool((mask > 0.5).any())


def rasterize_strokes(strokes: list[dict], image_size: tuple[int, int], base: torch.Tensor | None = None) -> torch.Tensor:
    """Paint and erase brush strokes, in order, onto an ``(H, W)`` mask.

    Each stroke is ``{"mode": "paint" | "erase", "radius": r, "points": [[x, y], ...]}`` in image
    pixels; every pixel whose centre ``(i + 0.5, j + 0.5)`` lies within ``r`` of the stroke's
    polyline is set to 1 (paint) or 0 (erase). This is the Point Picker widget's mask format.

    Each segment is measured only over its bounding box grown by ``r``, so the cost follows the
    painted area, not segments x image pixels (a 100-point stroke on a 1024x1024 image touches a
    few thousand pixels per segment, not a million).
    """
    width, height = image_size
    mask = torch.zeros(height, width) if base is None else base.float().clone()
    for index, stroke in enumerate(strokes, start=1):
        mode, radius, points = stroke.get("mode"), stroke.get("radius"), stroke.get("points")
        if mode not in ("paint", "erase") or not isinstance(radius, (int, float)) or radius <= 0 or not points:
            raise DragKitInputError(
                f"mask stroke {index} must be {{\"mode\": \"paint\"|\"erase\", \"radius\": r > 0, \"points\": [[x, y], ...]}}."
            )
        path = torch.tensor(points, dtype=torch.float32).reshape(-1, 2)
        inside = torch.zeros(height, width, dtype=torch.bool)
        for (x0, y0), (x1, y1) in zip(path.tolist(), torch.cat([path[1:], path[-1:]]).tolist()):
            _paint_segment(inside, x0, y0, x1, y1, float(radius))
        mask[inside] = 1.0 if mode == "paint" else 0.0
    return mask


def _paint_segment(inside: torch.Tensor, x0: float, y0: float, x1: float, y1: float, radius: float) -> None:
    """Set the pixels of ``inside`` ``(H, W)`` whose centres lie within ``radius`` of segment (x0, y0)-(x1, y1)."""
    height, width = inside.shape
    left, right = max(int(min(x0, x1) - radius), 0), min(int(max(x0, x1) + radius) + 1, width)
    top, bottom = max(int(min(y0, y1) - radius), 0), min(int(max(y0, y1) + radius) + 1, height)
    if left >= right or top >= bottom:
        return
    ys = torch.arange(top, bottom, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(left, right, dtype=torch.float32)[None, :] + 0.5
    dx, dy = x1 - x0, y1 - y0
    length2 = dx * dx + dy * dy
    u = (((xs - x0) * dx + (ys - y0) * dy) / length2).clamp(0, 1) if length2 > 0 else torch.zeros(1, 1)
    near = (xs - (x0 + u * dx)) ** 2 + (ys - (y0 + u * dy)) ** 2 <= radius * radius
    inside[top:bottom, left:right] |= near
