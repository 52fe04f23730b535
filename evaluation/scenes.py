"""Synthetic scenes for the embedded toy model, its demo and the toy benchmark.

A scene is a smooth background (a linear gradient plus low-frequency noise) with one main shape
(disk, square or triangle) of a flat saturated colour and an antialiased edge, and optionally a
small distractor shape of another colour. Everything is drawn from ``torch.Generator(seed)``, so
a seed is a scene. :meth:`Scene.moved` renders the ground truth of a drag: the same scene with the
main shape moved, background and distractor unchanged.

Images are ``(3, H, W)`` float in [0, 1]; masks ``(H, W)`` float coverage in [0, 1]; positions
``(x, y)`` in pixels, origin at the top-left corner.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F

SHAPES = ("disk", "square", "triangle")
# Saturated colours the benchmark can find again by colour (far from any background).
PALETTE = (
    (0.90, 0.10, 0.10), (0.10, 0.75, 0.15), (0.10, 0.25, 0.95), (0.95, 0.85, 0.05),
    (0.85, 0.10, 0.85), (0.05, 0.85, 0.85), (0.98, 0.50, 0.05),
)
TRAINING_SEEDS = range(0, 1_000_000)  # held-out scenes use seeds >= 1_000_000


@dataclasses.dataclass(frozen=True)
class Shape:
    kind: str
    centre: tuple[float, float]
    size: float  # radius of the circumscribed circle, pixels
    angle: float
    colour: tuple[float, float, float]


@dataclasses.dataclass(frozen=True)
class Scene:
    """One rendered scene.

    Attributes:
        image: ``(3, H, W)`` in [0, 1].
        mask: ``(H, W)`` coverage of the main shape (antialiased edge).
        background: ``(3, H, W)`` the scene without any shape.
        shape: the main shape; ``distractor`` the small one or ``None``.
    """

    image: torch.Tensor
    mask: torch.Tensor
    background: torch.Tensor
    shape: Shape
    distractor: Shape | None

    @property
    def colour(self) -> tuple[float, float, float]:
        return self.shape.colour

    def moved(self, dx: float, dy: float) -> "Scene":
        """The same scene with the main shape moved by ``(dx, dy)`` pixels."""
        x, y = self.shape.centre
        return compose(self.background, dataclasses.replace(self.shape, centre=(x + dx, y + dy)), self.distractor)


def shape_coverage(shape: Shape, height: int, width: int, supersample: int = 4) -> torch.Tensor:
    """``(H, W)`` fraction of each pixel covered by ``shape`` (supersampled antialiasing)."""
    n = supersample
    offsets = (torch.arange(n, dtype=torch.float32) + 0.5) / n
    ys = (torch.arange(height, dtype=torch.float32)[:, None] + offsets[None, :]).reshape(-1)
    xs = (torch.arange(width, dtype=torch.float32)[:, None] + offsets[None, :]).reshape(-1)
    cx, cy = shape.centre
    dx, dy = xs[None, :] - cx, ys[:, None] - cy
    cos, sin = math.cos(shape.angle), math.sin(shape.angle)
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy
    if shape.kind == "disk":
        inside = u * u + v * v <= shape.size**2
    elif shape.kind == "square":
        half = shape.size / math.sqrt(2)
        inside = (u.abs() <= half) & (v.abs() <= half)
    elif shape.kind == "triangle":
        inside = torch.ones_like(u, dtype=torch.bool)
        for k in range(3):  # inside all three edges of an equilateral triangle
            a = 2 * math.pi * k / 3 + math.pi / 2
            inside &= (u * math.cos(a) + v * math.sin(a)) <= shape.size / 2
    else:
        raise ValueError(f"unknown shape {shape.kind!r}; expected one of {SHAPES}")
    return inside.float().reshape(height, n, width, n).mean(dim=(1, 3))


def compose(background: torch.Tensor, shape: Shape, distractor: Shape | None) -> Scene:
    """Paint the distractor, then the main shape, over the background."""
    height, width = background.shape[-2:]
    image = background.clone()
    for item in (distractor, shape):
        if item is not None:
            cover = shape_coverage(item, height, width)
            colour = torch.tensor(item.colour).view(3, 1, 1)
            image = image * (1 - cover) + colour * cover
    return Scene(image.clamp(0, 1), shape_coverage(shape, height, width), background, shape, distractor)


def make_background(generator: torch.Generator, size: int) -> torch.Tensor:
    """A muted linear gradient plus smooth low-frequency noise, ``(3, size, size)``."""
    base = 0.25 + 0.5 * torch.rand(3, generator=generator)
    tint = 0.15 * (torch.rand(3, generator=generator) - 0.5)
    angle = float(torch.rand((), generator=generator)) * 2 * math.pi
    ramp = torch.linspace(-1, 1, size)
    gradient = math.cos(angle) * ramp[None, :] + math.sin(angle) * ramp[:, None]
    noise = F.interpolate(torch.randn(1, 3, 4, 4, generator=generator), size=(size, size), mode="bicubic",
                          align_corners=True)[0]
    image = base.view(3, 1, 1) + tint.view(3, 1, 1) * gradient + 0.06 * noise
    # Keep backgrounds muted: pull them toward their grey so shape colours stay distinct.
    grey = image.mean(dim=0, keepdim=True)
    return (grey + 0.5 * (image - grey)).clamp(0.05, 0.95)


def make_scene(seed: int, size: int = 64, margin: float = 0.2) -> Scene:
    """The scene of ``seed``: a main shape that stays inside the image for moves up to ``margin`` x size."""
    generator = torch.Generator().manual_seed(int(seed))

    def uniform(low: float, high: float) -> float:
        return low + (high - low) * float(torch.rand((), generator=generator))

    background = make_background(generator, size)
    radius = uniform(0.14, 0.22) * size
    room = radius + 1
    low, high = room + margin * size, size - room - margin * size
    centre = (uniform(min(low, size / 2), max(high, size / 2)), uniform(min(low, size / 2), max(high, size / 2)))
    colours = torch.randperm(len(PALETTE), generator=generator).tolist()
    kind = SHAPES[int(torch.randint(len(SHAPES), (1,), generator=generator))]
    shape = Shape(kind, centre, radius, uniform(0, math.pi), PALETTE[colours[0]])
    distractor = None
    if uniform(0, 1) < 0.5:
        small = uniform(0.05, 0.08) * size
        # Put it in a corner away from the main shape.
        cx = small + 1 if centre[0] > size / 2 else size - small - 1
        cy = small + 1 if centre[1] > size / 2 else size - small - 1
        distractor = Shape(SHAPES[int(torch.randint(len(SHAPES), (1,), generator=generator))], (cx, cy), small,
                           uniform(0, math.pi), PALETTE[colours[1]])
    return compose(background, shape, distractor)


def scene_batch(seeds, size: int = 64) -> torch.Tensor:
    """``(B, 3, size, size)`` images of the given seeds."""
    return torch.stack([make_scene(seed, size).image for seed in seeds])
