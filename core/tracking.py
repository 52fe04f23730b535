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
    """
    check_shape(features, "1 C H W", "features")
    height, width = features.shape[-2:]
    tracked = []
    with torch.no_grad():
        for vector, (row, col) in zip(reference, handles.round().long().tolist()):
            top, bottom = max(row - radius, 0), min(row + radius + 1, height)
            left, right = max(col - radius, 0), min(col + radius + 1, width)
            window = features[0, :, top:bottom, left:right]
            distance = (window - vector.to(window)[:, None, None]).abs().sum(dim=0)
            index = int(distance.flatten().argmin())
            tracked.append([top + index // (right - left), left + index % (right - left)])
    return torch.tensor(tracked, dtype=torch.float32, device=handles.device)
