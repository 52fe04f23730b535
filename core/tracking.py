"""Point tracking: where did the content of each handle go after a latent update?

DragDiffusion (``utils/drag_utils.py:point_tracking``): the new handle is the position, inside a
``(2 r2 + 1)^2`` window around the current handle, whose feature vector is nearest (L1 over
channels) to the ORIGINAL handle's feature in the original features. GoodDrag does the same with a
larger window and time-matched original features.
"""

from __future__ import annotations

import torch

from .errors import check_shape


def track_points(
    features: torch.Tensor, reference: torch.Tensor, handles: torch.Tensor, radius: int
) -> torch.Tensor:
    """Nearest-neighbour search of each reference vector in a window around its handle.

    Args:
        features: ``(1, C, H, W)`` current features.
        reference: ``(N, C)`` feature vector of each original handle.
        handles: ``(N, 2)`` current handles, ``(row, col)``, integer-valued.
        radius: search radius r2 (DragDiffusion 3, GoodDrag 12); the window is clipped to the map.

    Returns:
        ``(N, 2)`` new handles (integer-valued float tensor); ties go to the first in raster order.

    All handles are searched at once on the features' device, with no copy to the host (the drag
    loops call this every step).
    """
    check_shape(features, "1 C H W", "features")
    channels, height, width = features.shape[1:]
    span = torch.arange(-radius, radius + 1, device=features.device)
    with torch.no_grad():
        centre = handles.round().long().to(features.device)
        # Every window position of every handle, in raster order; positions off the map never win.
        rows = (centre[:, 0, None, None] + span[None, :, None]).expand(-1, -1, len(span)).reshape(len(handles), -1)
        cols = (centre[:, 1, None, None] + span[None, None, :]).expand(-1, len(span), -1).reshape(len(handles), -1)
        inside = (rows >= 0) & (rows < height) & (cols >= 0) & (cols < width)
        flat = features[0].reshape(channels, -1)
        index = rows.clamp(0, height - 1) * width + cols.clamp(0, width - 1)
        window = flat[:, index]  # (C, N, positions)
        distance = (window - reference.to(window).T[:, :, None]).abs().sum(dim=0)
        distance = distance.masked_fill(~inside, float("inf"))
        best = distance.argmin(dim=1)  # the first minimum: raster order, as the clipped window's
        tracked = torch.stack([rows.gather(1, best[:, None])[:, 0], cols.gather(1, best[:, None])[:, 0]], dim=1)
    return tracked.float().to(handles.device)
