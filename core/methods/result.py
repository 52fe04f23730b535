"""What every method's ``edit`` returns."""

from __future__ import annotations

import dataclasses

import torch

from ..points import DragPoints


@dataclasses.dataclass
class EditResult:
    """The outcome of one edit.

    Attributes:
        latent: ``(1, C, h, w)`` float32 clean edited latent (decode it with the model's VAE).
        points: where the handles ended (methods that track them), the pairs as given (guidance
            methods), or ``None`` (move and resize, which have no pairs).
        region: ``(H, W)`` what the edit was allowed to change, in image pixels (what keep protects
            the outside of), or ``None`` when everything was.
    """

    latent: torch.Tensor
    points: DragPoints | None
    region: torch.Tensor | None = None
