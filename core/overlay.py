"""Drawing drag pairs on an image: numbered, colour-coded arrows (for previews, docs and the demo)."""

from __future__ import annotations

import math

import numpy as np
import torch
from PIL import Image, ImageDraw

from .points import DragPoints

# Colour per pair, cycling; the widget uses the same palette.
PAIR_COLOURS = ((230, 57, 70), (29, 161, 242), (46, 204, 113), (241, 196, 15), (155, 89, 182), (230, 126, 34))
HANDLE_COLOUR = (255, 40, 40)
TARGET_COLOUR = (40, 120, 255)


def to_pil(image: torch.Tensor) -> Image.Image:
    """``(3, H, W)`` float image in [0, 1] -> PIL RGB."""
    array = (image.detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return Image.fromarray(array)


def from_pil(image: Image.Image) -> torch.Tensor:
    """PIL image -> ``(3, H, W)`` float in [0, 1]."""
    return torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def draw_drag_overlay(image: torch.Tensor, points: DragPoints | None, mask: torch.Tensor | None = None) -> torch.Tensor:
    """The image with the editable mask tinted and an arrow from each handle to its target.

    Args:
        image: ``(3, H, W)`` in [0, 1], the points' image size.
        points: the pairs, or ``None`` for the mask alone.
        mask: optional ``(H, W)`` editable region, shown as a light tint.

    Returns:
        ``(3, H, W)`` in [0, 1].
    """
    height, width = image.shape[-2:]
    if mask is not None:
        tint = torch.tensor([1.0, 1.0, 1.0]).view(3, 1, 1)
        image = torch.where(mask[None] > 0.5, image * 0.7 + tint * 0.3, image)
    canvas = to_pil(image)
    draw = ImageDraw.Draw(canvas)
    size = max(2.0, min(width, height) / 64)
    if points is None:
        return from_pil(canvas)
    points = points.fit((width, height), rescale=True)
    for index, ((hx, hy), (tx, ty)) in enumerate(zip(points.handles, points.targets)):
        colour = PAIR_COLOURS[index % len(PAIR_COLOURS)]
        draw.line([(hx, hy), (tx, ty)], fill=colour, width=max(1, round(size / 2)))
        angle = math.atan2(ty - hy, tx - hx)
        head = [(tx, ty)] + [
            (tx - 2.5 * size * math.cos(angle + s * 0.45), ty - 2.5 * size * math.sin(angle + s * 0.45)) for s in (-1, 1)
        ]
        draw.polygon(head, fill=colour)
        draw.ellipse([hx - size, hy - size, hx + size, hy + size], fill=HANDLE_COLOUR, outline=(255, 255, 255))
        draw.ellipse([tx - size, ty - size, tx + size, ty + size], fill=TARGET_COLOUR, outline=(255, 255, 255))
        draw.text((hx + size + 1, hy - 3 * size), str(index + 1), fill=(255, 255, 255))
    return from_pil(canvas)
