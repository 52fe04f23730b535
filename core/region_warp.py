"""Region warp: move the selected part of an image in pixel space, and say what must be filled.

Inpaint4Drag (Lu et al., ICCV 2025, arXiv 2509.04582) drags without a diffusion model in the loop:
the region the user selected is deformed so every handle lands on its target, and an inpainting model
then fills what the move uncovered. This module is the first half: a smooth backward map ``g`` from
the output picture to the source, fitted so that ``g(target_k) = handle_k`` exactly, and the masks
around it.

- one pair: ``g`` is the translation ``p - (target - handle)``;
- several pairs: a thin-plate spline through the pairs (kornia's :func:`get_tps_transform`). Two
  pairs, or pairs whose targets lie on one line, leave the spline's affine part undetermined; then a
  virtual pair off that line, moved by the best-fitting similarity (rotation, scale, shift) of the
  real pairs, pins it, so two pairs give exactly that similarity.

Backward mapping samples the source at ``g(p)`` for every output pixel ``p``, so the moved region has
no holes. The moved region is ``W = {p : region(g(p)) > 0.5}``; the part of the region it no longer
covers is *uncovered*. The picture keeps the source everywhere except in ``W`` (the moved content) and
the uncovered pixels; the fill mask is the uncovered area grown by ``fill_grow`` pixels plus a band of
``seam`` pixels either side of ``W``'s outline, where the moved content meets its new surroundings.

Convention: points ``(x, y)`` in image pixels, origin at the top-left corner, pixel ``(i, j)``'s
centre at ``(j + 0.5, i + 0.5)`` (as :mod:`.points`). The spline is fitted on coordinates divided by
the image's longer side, so its conditioning does not depend on the resolution; the Point Picker's
preview (``web/dragkit/warp.js``) fits the same spline the same way, and a test holds the two equal.
"""

from __future__ import annotations

import dataclasses
import math

import torch
import torch.nn.functional as F
from kornia.geometry.transform import get_tps_transform, warp_points_tps

from .errors import DragKitInputError, check_shape
from .masks import as_mask
from .points import DragPoints

UNCOVERED_MODES = ("smooth", "source")
# Targets closer than this (in pixels) cannot take two different handles.
MIN_TARGET_SEPARATION = 0.5
# Targets spread less than this across their line (a share of the longer side) count as collinear.
COLLINEAR_SPREAD = 1e-3


@dataclasses.dataclass(frozen=True)
class RegionWarpConfig:
    """How the masks around the moved region are drawn.

    Attributes:
        fill_grow: pixels the uncovered area is grown by before filling (2; Inpaint4Drag's dilation
            kernel of 5). 0 fills exactly the uncovered pixels.
        seam: half-width in pixels of the band along the moved region's outline that is filled too
            (2), so the moved content blends into its new surroundings. 0: no band.
        uncovered: what the uncovered pixels hold before filling: ``"smooth"`` (the surrounding
            background spread inward, so a partial denoise does not bring the old content back) or
            ``"source"`` (the old pixels, as Inpaint4Drag passes them to a full-strength fill).
    """

    fill_grow: int = 2
    seam: int = 2
    uncovered: str = "smooth"

    def __post_init__(self):
        if self.fill_grow < 0 or self.seam < 0:
            raise DragKitInputError(f"`fill_grow` and `seam` must be 0 or more pixels, got {self.fill_grow} and {self.seam}.")
        if self.uncovered not in UNCOVERED_MODES:
            raise DragKitInputError(f"`uncovered` must be one of {', '.join(UNCOVERED_MODES)}, got {self.uncovered!r}.")


@dataclasses.dataclass(frozen=True)
class BackwardMap:
    """``g``: output pixel -> source pixel, in coordinates divided by ``scale``.

    ``g(p) = a0 + p @ A + sum_k w_k U(|p - c_k|)`` with ``U(r) = r^2 log r`` (kornia's convention:
    ``affine`` is ``(3, 2)`` = ``[a0; A]``, ``kernel`` ``(K, 2)``, ``centres`` ``(K, 2)``). A
    translation has no centres.
    """

    scale: float
    affine: torch.Tensor
    centres: torch.Tensor
    kernel: torch.Tensor

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` output points in pixels -> ``(N, 2)`` source points in pixels."""
        p = points.double() / self.scale
        if len(self.centres):
            mapped = warp_points_tps(p[None], self.centres[None], self.kernel[None], self.affine[None])[0]
        else:
            mapped = self.affine[0] + p @ self.affine[1:]
        return (mapped * self.scale).to(points.dtype)


@dataclasses.dataclass(frozen=True)
class RegionWarp:
    """The warp's result.

    Attributes:
        image: ``(3, H, W)`` the source with the region moved (and the uncovered pixels pre-filled).
        fill: ``(H, W)`` float, 1 where an inpainting model must fill.
        region: ``(H, W)`` float, 1 on the moved region.
        uncovered: ``(H, W)`` float, 1 where the region was and no longer is.
    """

    image: torch.Tensor
    fill: torch.Tensor
    region: torch.Tensor
    uncovered: torch.Tensor


def similarity(source: torch.Tensor, target: torch.Tensor) -> tuple[complex, complex]:
    """The least-squares similarity ``z -> c z + d`` taking ``source`` to ``target`` ``(N, 2)``, as
    complex numbers (``c`` = scale and rotation, ``d`` = shift); exact for two distinct points."""
    s = torch.complex(source[:, 0].double(), source[:, 1].double())
    t = torch.complex(target[:, 0].double(), target[:, 1].double())
    s0, t0 = s - s.mean(), t - t.mean()
    spread = float((s0.abs() ** 2).sum())
    c = complex((s0.conj() * t0).sum()) / spread if spread > 0 else 1.0
    return c, complex(t.mean()) - c * complex(s.mean())


def fit_backward_map(points: DragPoints) -> BackwardMap:
    """The map ``g`` with ``g(target_k) = handle_k`` for every pair (see the module docstring).

    Raises:
        DragKitInputError: two targets at one spot with different handles.
    """
    width, height = points.image_size
    scale = float(max(width, height))
    targets = torch.tensor(points.targets, dtype=torch.float64) / scale
    handles = torch.tensor(points.handles, dtype=torch.float64) / scale
    for i in range(len(targets)):
        for j in range(i):
            if float((targets[i] - targets[j]).norm()) * scale < MIN_TARGET_SEPARATION:
                if float((handles[i] - handles[j]).norm()) * scale < MIN_TARGET_SEPARATION:
                    continue
                raise DragKitInputError(
                    f"pairs {j + 1} and {i + 1} drag two different handles to one target; move one of the "
                    "targets apart or remove a pair."
                )
    # Duplicate pairs add nothing and would make the spline's system singular.
    keep = [i for i in range(len(targets))
            if all(float((targets[i] - targets[j]).norm()) * scale >= MIN_TARGET_SEPARATION for j in range(i))]
    targets, handles = targets[keep], handles[keep]
    if len(targets) == 1:
        shift = handles[0] - targets[0]
        affine = torch.cat([shift[None], torch.eye(2, dtype=torch.float64)])
        return BackwardMap(scale, affine, torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64))
    centred = targets - targets.mean(0)
    spread = float(torch.linalg.eigvalsh(centred.T @ centred / len(targets))[0].clamp(min=0).sqrt())
    if spread < COLLINEAR_SPREAD:
        # Pin the affine part with a virtual pair off the targets' line, moved by their similarity.
        c, d = similarity(targets, handles)
        direction = centred[int(centred.norm(dim=1).argmax())]
        normal = torch.stack([-direction[1], direction[0]]) / direction.norm()
        anchor = targets.mean(0) + normal * float(direction.norm())
        moved = c * complex(anchor[0], anchor[1]) + d
        targets = torch.cat([targets, anchor[None]])
        handles = torch.cat([handles, torch.tensor([[moved.real, moved.imag]], dtype=torch.float64)])
    kernel, affine = get_tps_transform(targets[None], handles[None])
    return BackwardMap(scale, affine[0], handles, kernel[0])


def pixel_centres(height: int, width: int) -> torch.Tensor:
    """``(H * W, 2)`` the ``(x, y)`` centres of every pixel, row by row."""
    ys, xs = torch.meshgrid(torch.arange(height) + 0.5, torch.arange(width) + 0.5, indexing="ij")
    return torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=1)


def sample(image: torch.Tensor, where: torch.Tensor) -> torch.Tensor:
    """Bilinear samples of ``image`` ``(C, H, W)`` at ``where`` ``(H', W', 2)`` pixel points ``(x, y)``;
    border pixels repeat outside. A point at a pixel's centre returns that pixel exactly (so a shift by
    whole pixels copies the region losslessly): the interpolation runs in float64 on the part of the
    image the points reach. Returns ``(C, H', W')`` float32."""
    height, width = image.shape[-2:]
    where = where.double()
    left = min(max(int(where[..., 0].min().floor()) - 1, 0), width - 1)
    right = max(min(int(where[..., 0].max().ceil()) + 1, width), left + 1)
    top = min(max(int(where[..., 1].min().floor()) - 1, 0), height - 1)
    bottom = max(min(int(where[..., 1].max().ceil()) + 1, height), top + 1)
    part = image[..., top:bottom, left:right].double()
    grid = torch.stack([(where[..., 0] - left) * (2 / (right - left)) - 1,
                        (where[..., 1] - top) * (2 / (bottom - top)) - 1], dim=-1)
    return F.grid_sample(part[None], grid[None], mode="bilinear", padding_mode="border", align_corners=False)[0].float()


def dilate(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """``(H, W)`` bool grown by a ``(2 radius + 1)`` square: the OR of shifted copies, row then column."""
    if radius <= 0:
        return mask
    height, width = mask.shape
    padded = F.pad(mask[None].float(), (radius, radius, 0, 0))[0] > 0
    rows = padded[:, 0:width].clone()
    for k in range(1, 2 * radius + 1):
        rows |= padded[:, k:k + width]
    padded = F.pad(rows[None].float(), (0, 0, radius, radius))[0] > 0
    grown = padded[0:height].clone()
    for k in range(1, 2 * radius + 1):
        grown |= padded[k:k + height]
    return grown


def erode(mask: torch.Tensor, radius: int) -> torch.Tensor:
    """``(H, W)`` bool shrunk by a ``(2 radius + 1)`` square."""
    return ~dilate(~mask, radius)


def spread_inward(image: torch.Tensor, known: torch.Tensor) -> torch.Tensor:
    """Fill the pixels of ``image`` ``(C, H, W)`` where ``known`` ``(H, W)`` is False from the known
    ones around them (push-pull: average down a pyramid, then fill each level's holes from the level
    below). Known pixels are returned unchanged; with nothing known, the picture is returned as is."""
    if bool(known.all()) or not bool(known.any()):
        return image.clone()
    weight = known.float()[None]
    levels = [(image * weight, weight)]
    while min(levels[-1][1].shape[-2:]) > 1 and not bool((levels[-1][1] > 0).all()):
        value, weight = levels[-1]
        levels.append((F.avg_pool2d(value[None], 2, ceil_mode=True)[0], F.avg_pool2d(weight[None], 2, ceil_mode=True)[0]))
    filled = levels[-1][0] / levels[-1][1].clamp(min=1e-12)
    for value, weight in reversed(levels[:-1]):
        coarse = F.interpolate(filled[None], size=value.shape[-2:], mode="bilinear", align_corners=False)[0]
        filled = torch.where(weight > 0, value / weight.clamp(min=1e-12), coarse)
    return torch.where(known[None], image, filled)


def bounding_box(mask: torch.Tensor) -> tuple[int, int, int, int]:
    """``(top, bottom, left, right)`` of the True pixels of ``(H, W)`` ``mask``, end-exclusive."""
    rows, cols = mask.any(1).nonzero()[:, 0], mask.any(0).nonzero()[:, 0]
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


# Output pixels the moved region's extent is first estimated on (every COARSE_STEP-th one).
COARSE_STEP = 8


def moved_box(backward: BackwardMap, box: tuple[int, int, int, int], height: int, width: int
              ) -> tuple[int, int, int, int]:
    """A box ``(top, bottom, left, right)`` holding every output pixel ``g`` sends into ``box``.

    A translation moves the box exactly. A spline is evaluated on every :data:`COARSE_STEP`-th pixel;
    a coarse point counts when ``g`` sends it within the largest step ``g`` takes between coarse
    neighbours of the box, and the box around those points grows by a step.
    """
    top, bottom, left, right = box
    if not len(backward.centres):
        dx, dy = (float(v) * backward.scale for v in backward.affine[0])
        return (max(math.floor(top - dy) - 1, 0), min(math.ceil(bottom - dy) + 1, height),
                max(math.floor(left - dx) - 1, 0), min(math.ceil(right - dx) + 1, width))
    ys = torch.arange(0, height + COARSE_STEP, COARSE_STEP).clamp(max=height).double()
    xs = torch.arange(0, width + COARSE_STEP, COARSE_STEP).clamp(max=width).double()
    grid = torch.stack(torch.meshgrid(xs, ys, indexing="xy"), dim=-1)  # (rows, cols, 2)
    mapped = backward(grid.reshape(-1, 2)).reshape(grid.shape)
    step = max(float((mapped[1:] - mapped[:-1]).norm(dim=-1).max()), float((mapped[:, 1:] - mapped[:, :-1]).norm(dim=-1).max()))
    near = ((mapped[..., 0] >= left - step) & (mapped[..., 0] <= right + step)
            & (mapped[..., 1] >= top - step) & (mapped[..., 1] <= bottom + step))
    if not bool(near.any()):
        return 0, 0, 0, 0
    inside = grid[near]
    return (max(math.floor(float(inside[:, 1].min())) - COARSE_STEP, 0), min(math.ceil(float(inside[:, 1].max())) + COARSE_STEP, height),
            max(math.floor(float(inside[:, 0].min())) - COARSE_STEP, 0), min(math.ceil(float(inside[:, 0].max())) + COARSE_STEP, width))


# Background pixels around the region the uncovered pixels are spread from, beyond the masks' reach.
CONTEXT = 8


def warp_region(image: torch.Tensor, region: torch.Tensor, points: DragPoints,
                config: RegionWarpConfig = RegionWarpConfig()) -> RegionWarp:
    """Move ``region`` of ``image`` so each handle lands on its target.

    Only the box around the region, where it goes and the masks' reach is computed; the rest of the
    picture is the source.

    Args:
        image: ``(3, H, W)`` in [0, 1].
        region: ``(H, W)`` mask of what moves (> 0.5), at the image's size.
        points: pairs on an image of the same size.

    Returns:
        the :class:`RegionWarp`; outside the region, the moved region and the fill mask the picture is
        the source, bit for bit.
    """
    check_shape(image, "3 H W", "image")
    height, width = image.shape[-2:]
    if points.image_size != (width, height):
        raise DragKitInputError(
            f"the points were drawn on a {points.image_size[0]}x{points.image_size[1]} image but `image` is "
            f"{width}x{height}; pick the points on this image (or resize it)."
        )
    selected = as_mask(region, (width, height), "region") > 0.5
    if not bool(selected.any()):
        raise DragKitInputError("`region` is empty: paint the part of the image that moves in the Point Picker, "
                                "or connect a mask from DragKit Feature Region.")
    backward = fit_backward_map(points)
    box = bounding_box(selected)
    boxes = (box, moved_box(backward, box, height, width))
    reach = max(config.fill_grow, config.seam) + CONTEXT
    top = max(min(b[0] for b in boxes if b[1] > b[0]) - reach, 0)
    bottom = min(max(b[1] for b in boxes if b[1] > b[0]) + reach, height)
    left = max(min(b[2] for b in boxes if b[3] > b[2]) - reach, 0)
    right = min(max(b[3] for b in boxes if b[3] > b[2]) + reach, width)

    centres = pixel_centres(bottom - top, right - left) + torch.tensor([left, top], dtype=torch.float32)
    where = backward(centres).reshape(bottom - top, right - left, 2)
    source = image.float()
    moved = torch.zeros(height, width, dtype=torch.bool)
    moved[top:bottom, left:right] = sample(selected.float()[None], where)[0] > 0.5
    uncovered = selected & ~moved
    crop = (slice(top, bottom), slice(left, right))
    picture = source.clone()
    window = picture[(slice(None), *crop)]
    if config.uncovered == "smooth":
        known = ~(selected | moved)[crop]
        window.copy_(torch.where(uncovered[crop][None], spread_inward(window, known), window))
    window.copy_(torch.where(moved[crop][None], sample(source, where).clamp(0, 1), window))
    fill = torch.zeros(height, width, dtype=torch.bool)
    fill[crop] = dilate(uncovered[crop], config.fill_grow)
    if config.seam:
        band = dilate(moved[crop], config.seam) & ~erode(moved[crop], config.seam)
        fill[crop] |= band
    return RegionWarp(picture.to(image.dtype), fill.float(), moved.float(), uncovered.float())
