"""Motion supervision: the loss that pulls the content under each handle one step toward its target.

DragDiffusion (``utils/drag_utils.py:drag_diffusion_update``): for each handle ``p`` with target
``t``, take the feature patch of radius ``r1`` around ``p`` (detached) and ask the features on the
same patch shifted by one unit step ``d = (t - p) / |t - p|`` to equal it (L1). Moving the latent so
that this holds drags the content at ``p`` toward ``t``.

GoodDrag's information-preserving variant (IPMS, ``pipeline.py:cal_motion_supervision_loss``)
compares the shifted patch with the ORIGINAL features at the ORIGINAL handle instead of the current
ones, so that errors do not accumulate as the handle drifts, and takes steps of up to ``beta`` pixels.

Coordinates here are ``(row, col)`` on the supervision grid (half the image size).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .errors import check_shape


def patch_offsets(radius: int, device=None) -> torch.Tensor:
    """``(k, k, 2)`` integer ``(row, col)`` offsets of a square window, ``k = 2 * radius + 1``."""
    span = torch.arange(-radius, radius + 1, device=device, dtype=torch.float32)
    rows, cols = torch.meshgrid(span, span, indexing="ij")
    return torch.stack([rows, cols], dim=-1)


def sample_patches(features: torch.Tensor, centers: torch.Tensor, radius: int) -> torch.Tensor:
    """Bilinear feature patches around sub-pixel centres.

    Args:
        features: ``(1, C, H, W)`` feature map.
        centers: ``(N, 2)`` patch centres as ``(row, col)`` in feature-grid pixels.
        radius: patch radius r; patches are ``(2r+1) x (2r+1)``.

    Returns:
        ``(N, C, 2r+1, 2r+1)``. Samples outside the map repeat the border (``padding_mode="border"``);
        DragDiffusion clips the window to the map instead, which differs only for points within
        ``radius`` of the border.
    """
    check_shape(features, "1 C H W", "features")
    height, width = features.shape[-2:]
    positions = centers.to(features.device, torch.float32)[:, None, None, :] + patch_offsets(radius, features.device)
    # grid_sample wants (x, y) in [-1, 1] with -1 and 1 at the centres of the corner pixels.
    grid = torch.stack(
        [positions[..., 1] / max(width - 1, 1) * 2 - 1, positions[..., 0] / max(height - 1, 1) * 2 - 1], dim=-1
    )
    batch = features.expand(len(centers), -1, -1, -1)
    return F.grid_sample(batch, grid.to(features.dtype), mode="bilinear", padding_mode="border", align_corners=True)


def drag_steps(handles: torch.Tensor, targets: torch.Tensor, max_step: float) -> torch.Tensor:
    """``(N, 2)`` steps from each handle toward its target: the unit direction times ``min(max_step, distance)``."""
    delta = targets - handles
    distance = delta.norm(dim=-1, keepdim=True)
    return delta / distance.clamp_min(1e-8) * distance.clamp(max=max_step)


def motion_supervision_loss(
    features: torch.Tensor,
    handles: torch.Tensor,
    targets: torch.Tensor,
    radius: int,
    max_step: float = 1.0,
    reference_patches: torch.Tensor | None = None,
    stop_distance: float = 2.0,
    patch_weight: float | None = None,
) -> torch.Tensor:
    """Sum over unfinished handles of ``patch_weight * mean |F(window + d) - reference|``.

    Args:
        features: ``(1, C, H, W)`` current features (with grad).
        handles, targets: ``(N, 2)`` current handles and targets, ``(row, col)``.
        radius: patch radius r1 (DragDiffusion 1, GoodDrag 4).
        max_step: largest step length (DragDiffusion 1 = unit step, GoodDrag beta = 4).
        reference_patches: ``(N, C, k, k)`` fixed patches to match (IPMS: the original features at
            the original handles). ``None``: the current features at the current handles, detached.
        stop_distance: handles closer than this to their target are skipped (2.0 in both papers).
        patch_weight: factor per point; default ``(2r+1)^2`` (DragDiffusion's). GoodDrag uses ``(2r)^2``.

    Returns:
        A scalar loss (zero, with grad, when every handle has arrived).
    """
    weight = (2 * radius + 1) ** 2 if patch_weight is None else patch_weight
    steps = drag_steps(handles, targets, max_step)
    # Every handle is sampled and the arrived ones weighted 0: selecting the unfinished ones would
    # make the host wait for the GPU to learn how many there are.
    active = ((targets - handles).norm(dim=-1) >= stop_distance).to(features.dtype)
    moved = sample_patches(features, handles + steps, radius)
    if reference_patches is None:
        reference = sample_patches(features.detach(), handles, radius)
    else:
        reference = reference_patches.detach()
    per_point = (moved - reference).abs().flatten(1).mean(dim=1)
    return weight * (per_point * active).sum()


def background_loss(prediction: torch.Tensor, reference: torch.Tensor, editable: torch.Tensor | None) -> torch.Tensor:
    """``sum |prediction - reference| * (1 - editable)``: keep what lies outside the mask unchanged.

    Args:
        prediction, reference: ``(1, C, h, w)`` one-step DDIM predictions of x_{t-1} from the current
            and from the original latent.
        editable: ``(1, 1, h, w)`` mask, 1 = may change; ``None`` means the whole image is constrained.
    """
    difference = (prediction - reference).abs()
    if editable is not None:
        difference = difference * (1 - editable)
    return difference.sum()
