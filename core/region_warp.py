"""Region warp: move the selected part of an image in pixel space, and say what must be filled.

Inpaint4Drag (Lu et al., ICCV 2025, arXiv 2509.04582) drags without a diffusion model in the loop:
the region the user selected is deformed so every handle lands on its target, and an inpainting model
then fills what the move uncovered. This module is the first half: a smooth backward map ``g`` from
the output picture to the source, fitted so that ``g(target_k) = handle_k`` exactly, and the masks
around it.

- one pair: ``g`` is the translation ``p - (target - handle)``;
- several pairs: a thin-plate spline through the pairs, centred on the targets, with kornia's kernel
  ``U = r^2 log r`` (fitted and evaluated here: kornia's :func:`get_tps_transform` centres its kernels
  on the other point set and turns singular for ordinary drags). Far from the pairs the spline follows their
  best-fitting similarity (rotation, scale, shift): :data:`ANCHORS` virtual pairs on a ring around the
  targets, twice as wide as they spread, are moved by it. So two pairs, or targets on one line, give a
  well-posed warp (two pairs: exactly their similarity), and the warp changes smoothly as points move,
  whatever their order.

Backward mapping samples the source at ``g(p)`` for every output pixel ``p``, so the moved region has
no holes. The moved region is ``W = {p : region(g(p)) > 0.5}`` for ``g(p)`` inside the picture; the part of the region it no longer
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

from .errors import DragKitInputError, check_shape
from .masks import as_mask
from .points import DragPoints

UNCOVERED_MODES = ("smooth", "source")
# Targets closer than this (in pixels) cannot take two different handles.
MIN_TARGET_SEPARATION = 0.5
# Virtual pairs on a ring around the targets, moved by the pairs' similarity (see the docstring): the
# ring's radius is ANCHOR_REACH times the targets' spread from their centre, at least
# ANCHOR_REACH * MIN_ANCHOR_SPREAD of the longer image side.
ANCHORS = 8
ANCHOR_REACH = 2.0
MIN_ANCHOR_SPREAD = 0.25


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

    ``g(p) = a0 + p @ A + sum_k w_k U(|p - c_k|)`` with ``U(r) = r^2 log r`` (kornia's layout:
    ``affine`` is ``(3, 2)`` = ``[a0; A]``, ``kernel`` ``(K, 2)``, ``centres`` ``(K, 2)``). A
    translation has no centres.
    """

    scale: float
    affine: torch.Tensor
    centres: torch.Tensor
    kernel: torch.Tensor

    def __call__(self, points: torch.Tensor) -> torch.Tensor:
        """``(N, 2)`` output points in pixels -> ``(N, 2)`` source points in pixels, computed in float64."""
        p = points.double() / self.scale
        x, y = p[:, 0].contiguous(), p[:, 1].contiguous()
        gx = self.affine[0, 0] + x * self.affine[1, 0] + y * self.affine[2, 0]
        gy = self.affine[0, 1] + x * self.affine[1, 1] + y * self.affine[2, 1]
        # One centre at a time, on x and y apart: no (N, K) matrix (about 4x faster than kornia's
        # warp_points_tps on a 190k-pixel crop with 11 centres, the same values to 1e-15).
        for (cx, cy), (wx, wy) in zip(self.centres.tolist(), self.kernel.tolist()):
            u = thin_plate_kernel((x - cx) ** 2 + (y - cy) ** 2)
            gx += wx * u
            gy += wy * u
        mapped = torch.stack([gx, gy], dim=1)
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


def distinct_pairs(points: DragPoints) -> list[int]:
    """The pairs the warp is fitted on: each target at least :data:`MIN_TARGET_SEPARATION` pixels from
    every earlier kept one (a repeated pair counts once).

    Raises:
        DragKitInputError: two targets at one spot with different handles.
    """
    kept: list[int] = []
    for i, (handle, target) in enumerate(zip(points.handles, points.targets)):
        same = next((j for j in kept if math.dist(target, points.targets[j]) < MIN_TARGET_SEPARATION), None)
        if same is None:
            kept.append(i)
        elif math.dist(handle, points.handles[same]) >= MIN_TARGET_SEPARATION:
            raise DragKitInputError(
                f"pairs {same + 1} and {i + 1} drag two different handles to one target; move one of the "
                "targets apart or remove a pair."
            )
    return kept


def thin_plate_kernel(squared: torch.Tensor) -> torch.Tensor:
    """``U = r^2 log r`` from squared distances (0 at 0), kornia's kernel."""
    return torch.where(squared > 0, 0.5 * squared * squared.clamp(min=1e-300).log(), torch.zeros_like(squared))


def fit_backward_map(points: DragPoints) -> BackwardMap:
    """The map ``g`` with ``g(target_k) = handle_k`` for every pair (see the module docstring).

    Raises:
        DragKitInputError: two targets at one spot with different handles.
    """
    width, height = points.image_size
    scale = float(max(width, height))
    kept = distinct_pairs(points)
    targets = torch.tensor([points.targets[i] for i in kept], dtype=torch.float64) / scale
    handles = torch.tensor([points.handles[i] for i in kept], dtype=torch.float64) / scale
    if len(targets) == 1:
        shift = handles[0] - targets[0]
        affine = torch.cat([shift[None], torch.eye(2, dtype=torch.float64)])
        return BackwardMap(scale, affine, torch.zeros(0, 2, dtype=torch.float64), torch.zeros(0, 2, dtype=torch.float64))
    c, d = similarity(targets, handles)
    centre = targets.mean(0)
    radius = ANCHOR_REACH * max(float((targets - centre).norm(dim=1).max()), MIN_ANCHOR_SPREAD)
    angles = torch.arange(ANCHORS, dtype=torch.float64) * (2 * math.pi / ANCHORS)
    anchors = centre + radius * torch.stack([angles.cos(), angles.sin()], dim=1)
    moved = torch.tensor([[z.real, z.imag] for z in (c * complex(x, y) + d for x, y in anchors.tolist())],
                         dtype=torch.float64)
    centres = torch.cat([targets, anchors])
    values = torch.cat([handles, moved])
    # [K P; P^T 0] [w; a] = [values; 0], K_ij = U(|c_i - c_j|), P_i = [1, c_i].
    count = len(centres)
    system = torch.zeros(count + 3, count + 3, dtype=torch.float64)
    system[:count, :count] = thin_plate_kernel(torch.cdist(centres, centres) ** 2)
    system[:count, count] = system[count, :count] = 1
    system[:count, count + 1:] = centres
    system[count + 1:, :count] = centres.T
    try:
        solution = torch.linalg.solve(system, torch.cat([values, torch.zeros(3, 2, dtype=torch.float64)]))
    except torch.linalg.LinAlgError:  # distinct targets off the anchor ring cannot get here
        raise DragKitInputError("these pairs do not define a warp; move the targets apart.") from None
    return BackwardMap(scale, solution[count:], centres, solution[:count])


def pixel_centres(height: int, width: int) -> torch.Tensor:
    """``(H * W, 2)`` float64: the ``(x, y)`` centres of every pixel, row by row."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64) + 0.5,
                            torch.arange(width, dtype=torch.float64) + 0.5, indexing="ij")
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

    centres = pixel_centres(bottom - top, right - left) + torch.tensor([left, top], dtype=torch.float64)
    where = backward(centres).reshape(bottom - top, right - left, 2)
    source = image.float()
    moved = torch.zeros(height, width, dtype=torch.bool)
    # A pixel belongs to the moved region when g sends it into the region, inside the picture (the
    # border's repetition would otherwise smear a region that touches the edge across the output).
    inside = (where[..., 0] >= 0) & (where[..., 0] <= width) & (where[..., 1] >= 0) & (where[..., 1] <= height)
    moved[top:bottom, left:right] = (sample(selected.float()[None], where)[0] > 0.5) & inside
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
