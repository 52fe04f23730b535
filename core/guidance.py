"""Energy guidance from feature correspondence (DragonDiffusion, ICLR 2024; DiffEditor, CVPR 2024).

Reference: ``MC-E/DragonDiffusion`` ``src/models/Sampler.py`` (``guidance_drag``, ``guidance_move``).
No training and no latent optimisation: at a denoising step, UNet decoder features of the current
latent (with gradient) are compared with those of the source image at the same step, energies are
built from the similarity ``s = (cos + 1) / 2``, and their gradients w.r.t. the latent are added to
the noise prediction, the edit energy's gradient inside the edit region and the content energy's
outside it (regional gradient guidance).

Energies (per feature layer, then averaged):

- edit: ``w_edit / (1 + 4 s)`` (move/resize: with the raw cosine instead of ``s``, as ``guidance_move``) between the current features at the destination and the source
  features at the origin (drag: 3x3 boxes at target and handle; move/resize: the object warped);
- inpaint: drag: ``w_inpaint * s`` on the part of the handle box the target box does not cover
  (the content should leave); move: ``w_inpaint / (1 + 4 s)`` pulling the vacated region's mean
  feature toward the background's, plus ``w_contrast * s`` pushing it from the object's;
- content: ``w_content / (1 + 4 s)`` on everything outside the edit region (move/resize: raw cosine).
"""

from __future__ import annotations

import dataclasses

import torch
import torch.nn.functional as F
from kornia.geometry.transform import warp_affine

from .errors import DragKitInputError
from .features import unet_feature_maps
from .model import DragModel
from .points import grid_cells

GUIDANCE_MODES = ("drag", "move", "resize")


@dataclasses.dataclass
class GuidanceConfig:
    """Energy weights and scales. Defaults: DragonDiffusion's content-drag demo (``demo.py``).

    Attributes:
        w_edit, w_content, w_inpaint, w_contrast: energy weights (drag 4 / 6 / 0.2; move uses
            4 / 6 / 0.8 and ``w_contrast`` 0.2).
        energy_scale: multiplies the energies before differentiation (drag 2e3, move 5e2).
        step_scale: factor from the gradient to the noise prediction (drag 4e-2, move 8e-2).
        feature_layers: decoder features (DragonDiffusion's up-blocks 1 and 2 = DragKit 2 and 3).
        upsample: feature maps are resized (nearest) to ``upsample`` x the latent size.
        box_radius: radius of the point boxes on that grid (1: 3x3).
    """

    w_edit: float = 4.0
    w_content: float = 6.0
    w_inpaint: float = 0.2
    w_contrast: float = 0.2
    energy_scale: float = 2000.0
    step_scale: float = 4e-2
    feature_layers: tuple[int, ...] = (2, 3)
    upsample: int = 2
    box_radius: int = 1

    def __post_init__(self):
        self.feature_layers = tuple(int(i) for i in self.feature_layers)
        if self.energy_scale < 0 or self.step_scale < 0 or self.upsample < 1 or self.box_radius < 0:
            raise DragKitInputError("guidance scales must be >= 0, `upsample` >= 1 and `box_radius` >= 0.")


DRAG_GUIDANCE = GuidanceConfig()
MOVE_GUIDANCE = GuidanceConfig(w_inpaint=0.8, energy_scale=500.0, step_scale=8e-2)


@dataclasses.dataclass
class EditGeometry:
    """Where the edit happens, on the guidance feature grid (2x latent) and at latent resolution.

    Attributes:
        mode: "drag", "move" or "resize".
        handles, targets: ``(N, 2)`` ``(row, col)`` on the feature grid (drag).
        affine: ``(1, 2, 3)`` map from source to edited feature-grid pixels (move/resize).
        object_mask: ``(h, w)`` bool object on the feature grid (move/resize).
        edit_region: ``(1, 1, h_lat, w_lat)`` float, where the edit gradient (and regional SDE) acts.
        content_region: ``(h, w)`` bool on the feature grid, where the content energy holds.
        sde_region: ``(1, 1, h_lat, w_lat)`` float, where regional SDE acts when it differs from
            ``edit_region`` (move/resize: the object and its destination, ``Sampler.edit``); ``None`` =
            ``edit_region``.
        pulls_background: move/resize: the object leaves cells behind and background remains to
            fill them from, so the inpainting terms apply (fixed for the edit; read once here).
        target_boxes, handle_boxes: drag: ``(N, h, w)`` bool squares of ``box_radius`` around each
            target and handle on the feature grid.
        target_pixels, handle_pixels: drag: ``(N, k * k)`` flat indices of the same squares, row-major.
        destination, vacated: move/resize: ``(h, w)`` bool, where the object goes and the cells it leaves.

    Everything the guidance reads at every step is computed here once; :meth:`to` puts it on the
    model's device once per edit.
    """

    mode: str
    handles: torch.Tensor | None
    targets: torch.Tensor | None
    affine: torch.Tensor | None
    object_mask: torch.Tensor | None
    edit_region: torch.Tensor
    content_region: torch.Tensor
    sde_region: torch.Tensor | None = None
    pulls_background: bool = False
    target_boxes: torch.Tensor | None = None
    handle_boxes: torch.Tensor | None = None
    target_pixels: torch.Tensor | None = None
    handle_pixels: torch.Tensor | None = None
    destination: torch.Tensor | None = None
    vacated: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> "EditGeometry":
        """The geometry with every tensor on ``device``."""
        return dataclasses.replace(self, **{
            field.name: getattr(self, field.name).to(device) for field in dataclasses.fields(self)
            if isinstance(getattr(self, field.name), torch.Tensor)})


def similarity(a: torch.Tensor, b: torch.Tensor, dim: int = 1) -> torch.Tensor:
    """``(cos + 1) / 2`` along ``dim``: 1 for equal directions, 0 for opposite."""
    return (F.cosine_similarity(a, b, dim=dim) + 1) / 2


def box_mask(centers: torch.Tensor, radius: int, size: tuple[int, int]) -> torch.Tensor:
    """``(N, h, w)`` bool squares of side ``2 radius + 1`` around integer ``(row, col)`` centres."""
    rows = torch.arange(size[0], device=centers.device)[:, None]
    cols = torch.arange(size[1], device=centers.device)[None, :]
    r, c = centers.round().long().unbind(-1)
    return ((rows[None] - r[:, None, None]).abs() <= radius) & ((cols[None] - c[:, None, None]).abs() <= radius)


def warp(tensor: torch.Tensor, affine: torch.Tensor, mode: str = "bilinear") -> torch.Tensor:
    """Warp ``(B, C, h, w)`` by a ``(1, 2, 3)`` pixel-space affine map (kornia), zeros outside."""
    return warp_affine(tensor, affine.to(tensor).expand(tensor.shape[0], -1, -1), tensor.shape[-2:], mode=mode,
                       padding_mode="zeros", align_corners=True)


def _masked_mean(values: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of ``(h, w)`` values over a bool ``(h, w)`` region, 0 (with grad) when it is empty.

    A weighted sum rather than ``values[region]``: selecting by a mask makes the host wait for the
    GPU to count the selected pixels."""
    weights = region.to(values.dtype)
    return (values * weights).sum() / weights.sum().clamp_min(1)


def _mean_cosine(current: torch.Tensor, source: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of the per-location raw cosine (-1..1) over a bool ``(h, w)`` region (0 with grad when empty):
    ``guidance_move``'s edit and content similarity (it does not map them to ``(cos + 1) / 2``)."""
    return _masked_mean(F.cosine_similarity(current, source, dim=1)[0], region)


def _mean_similarity(current: torch.Tensor, source: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """Mean of the per-location similarity over a bool ``(h, w)`` region (0 with grad when empty)."""
    return _masked_mean(similarity(current, source)[0], region)


def _region_mean(features: torch.Tensor, region: torch.Tensor) -> torch.Tensor:
    """``(C,)`` mean feature of ``(1, C, h, w)`` over a bool ``(h, w)`` region."""
    weights = region.to(features.dtype)
    return (features[0] * weights).sum((1, 2)) / weights.sum().clamp_min(1)


def box_indices(centers: torch.Tensor, radius: int, size: tuple[int, int]) -> torch.Tensor:
    """``(N, k * k)`` flat indices (row-major) of the squares of :func:`box_mask`, for boxes inside the map."""
    offsets = torch.arange(-radius, radius + 1, device=centers.device)
    r, c = centers.round().long().unbind(-1)
    rows = r[:, None, None] + offsets[None, :, None]
    cols = c[:, None, None] + offsets[None, None, :]
    return (rows * size[1] + cols).flatten(1)


def energies(current: list[torch.Tensor], source: list[torch.Tensor], geometry: EditGeometry,
             config: GuidanceConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """``(edit, content)`` energies from per-layer ``(1, C, h, w)`` current and source features."""
    edit = current[0].sum() * 0.0
    content = current[0].sum() * 0.0
    for cur, src in zip(current, source):
        if geometry.mode == "drag":
            # drag_geometry keeps every box whole, so the boxes' pixels pair up in row-major order
            flat_cur, flat_src = cur[0].flatten(1), src[0].flatten(1)
            for target_box, handle_box, target_at, handle_at in zip(geometry.target_boxes, geometry.handle_boxes,
                                                                    geometry.target_pixels, geometry.handle_pixels):
                s = similarity(flat_cur[:, target_at], flat_src[:, handle_at], dim=0).mean()
                edit = edit + config.w_edit / (1 + 4 * s)
                edit = edit + config.w_inpaint * _mean_similarity(cur, src, handle_box & ~target_box)
        else:
            moved_source = warp(src, geometry.affine)
            edit = edit + config.w_edit / (1 + 4 * _mean_cosine(cur, moved_source, geometry.destination))
            if geometry.pulls_background:
                pulled = similarity(_region_mean(cur, geometry.vacated), _region_mean(src, geometry.content_region), dim=0)
                # guidance_move adds this term once per layer without its 1/#layers weight
                content = content + len(current) * config.w_inpaint / (1 + 4 * pulled)
                content = content + config.w_contrast * _mean_similarity(cur, src, geometry.vacated)
        content_similarity = _mean_similarity if geometry.mode == "drag" else _mean_cosine
        content = content + config.w_content / (1 + 4 * content_similarity(cur, src, geometry.content_region))
    layers = len(current)
    points = len(geometry.targets) if geometry.mode == "drag" else 1
    return edit / layers / points, content / layers


def guidance(
    model: DragModel,
    latent: torch.Tensor,
    source_latent: torch.Tensor,
    timestep: int,
    embeds: torch.Tensor,
    geometry: EditGeometry,
    config: GuidanceConfig,
) -> tuple[torch.Tensor, dict]:
    """The term to add to the noise prediction of ``latent`` at ``timestep``.

    Args:
        latent: ``(1, C, h, w)`` current edited latent.
        source_latent: ``(1, C, h, w)`` the source image's latent at the same step.
        embeds: ``(1, L, D)`` prompt embedding (text only, as DragonDiffusion's estimator).

    Returns:
        ``(1, C, h, w)`` guidance, and the energies' values for progress reports (0-d tensors
        on the model's device: reading one waits for the GPU).
    """
    grid = (latent.shape[-2] * config.upsample, latent.shape[-1] * config.upsample)
    with torch.no_grad():
        source, _ = unet_feature_maps(model, source_latent, timestep, embeds, config.feature_layers, grid, mode="nearest")
    z = latent.detach().clone().requires_grad_(True)
    current, _ = unet_feature_maps(model, z, timestep, embeds, config.feature_layers, grid, mode="nearest")
    edit, content = energies(current, source, geometry, config)
    grad_edit, grad_content = (
        torch.autograd.grad(energy * config.energy_scale, z, retain_graph=True, allow_unused=True)[0]
        for energy in (edit, content)
    )
    grad_edit = torch.zeros_like(z) if grad_edit is None else grad_edit
    grad_content = torch.zeros_like(z) if grad_content is None else grad_content
    region = geometry.edit_region
    term = config.step_scale * (grad_edit * region + grad_content * (1 - region))
    return term.detach(), {"edit": edit.detach(), "content": content.detach()}


def drag_geometry(handles_image: torch.Tensor, targets_image: torch.Tensor, editable: torch.Tensor,
                  latent_size: tuple[int, int], image_size: tuple[int, int], config: GuidanceConfig) -> EditGeometry:
    """Geometry of a point drag.

    Args:
        handles_image, targets_image: ``(N, 2)`` ``(x, y)`` in image pixels.
        editable: ``(H, W)`` edit mask in image pixels (1 = may change).
    """
    rows, cols = latent_size[0] * config.upsample, latent_size[1] * config.upsample
    grid_mask = F.interpolate(editable[None, None].float(), size=(rows, cols), mode="nearest")[0, 0] > 0.5
    region = F.interpolate(editable[None, None].float(), size=latent_size, mode="nearest")
    handles, targets = (grid_cells(xy.float(), image_size, (rows, cols)) for xy in (handles_image, targets_image))
    if min(rows, cols) < 2 * config.box_radius + 1:
        raise DragKitInputError(f"the guidance grid ({rows}x{cols}) is smaller than one point box "
                                f"(`box_radius` {config.box_radius}); use a larger image or a smaller box_radius.")
    # Keep every box whole (process_drag clips the centres to [1, size - 2]): a box cut by the border
    # would pair a different number of target and handle cells.
    low = torch.tensor([float(config.box_radius)] * 2)
    high = torch.tensor([rows - 1.0 - config.box_radius, cols - 1.0 - config.box_radius])
    handles, targets = handles.clamp(min=low, max=high), targets.clamp(min=low, max=high)
    grid = (rows, cols)
    return EditGeometry("drag", handles, targets, None, None, (region > 0.5).float(), ~grid_mask,
                        target_boxes=box_mask(targets, config.box_radius, grid),
                        handle_boxes=box_mask(handles, config.box_radius, grid),
                        target_pixels=box_indices(targets, config.box_radius, grid),
                        handle_pixels=box_indices(handles, config.box_radius, grid))


def move_geometry(object_mask: torch.Tensor, offset: tuple[float, float], scale: float,
                  latent_size: tuple[int, int], config: GuidanceConfig) -> EditGeometry:
    """Geometry of moving (``offset`` in image pixels) and/or resizing (``scale`` about the object's
    centre) the object in ``object_mask`` ``(H, W)``."""
    height, width = object_mask.shape
    rows, cols = latent_size[0] * config.upsample, latent_size[1] * config.upsample
    grid_object = F.interpolate(object_mask[None, None].float(), size=(rows, cols), mode="nearest")[0, 0] > 0.5
    if not bool(grid_object.any()):
        raise DragKitInputError("the object mask is empty at the model's resolution; paint the object to move.")
    affine = object_affine(grid_object, (offset[0] * cols / width, offset[1] * rows / height), scale)
    destination = warp(grid_object[None, None].float(), affine, "nearest")[0, 0] > 0.5
    edited = (grid_object | destination).float()
    region = F.interpolate(destination[None, None].float(), size=latent_size, mode="nearest")
    sde_region = F.interpolate(edited[None, None], size=latent_size, mode="nearest")
    vacated = grid_object & ~destination
    pulls_background = bool(vacated.any()) and bool((edited <= 0.5).any())
    return EditGeometry("move" if scale == 1 else "resize", None, None, affine, grid_object,
                        (region > 0.5).float(), ~(edited > 0.5), (sde_region > 0.5).float(), pulls_background,
                        destination=destination, vacated=vacated)


def object_affine(object_mask: torch.Tensor, offset: tuple[float, float], scale: float) -> torch.Tensor:
    """``(1, 2, 3)`` pixel map: scale by ``scale`` about the mask's centroid, then shift by ``offset``
    ``(dx, dy)`` (same pixels as the mask)."""
    if scale <= 0:
        raise DragKitInputError(f"`scale` must be positive, got {scale}.")
    ys, xs = torch.nonzero(object_mask, as_tuple=True)
    cx, cy = xs.float().mean(), ys.float().mean()
    return torch.tensor([[[scale, 0.0, (1 - scale) * cx + offset[0]], [0.0, scale, (1 - scale) * cy + offset[1]]]])
