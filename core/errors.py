"""Exceptions and input checks shared by every DragKit entry point.

Messages name the input, show the value, say what is expected and how to fix it.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch


class DragKitError(Exception):
    """Base class of every error DragKit raises on purpose."""


class DragKitInputError(DragKitError, ValueError):
    """An input has the wrong shape, range or kind. The message says which input and how to fix it."""


class DragKitModelError(DragKitError, FileNotFoundError):
    """A model file is missing or is not a model DragKit can run."""


class DragKitNumericalError(DragKitError, RuntimeError):
    """A stage produced NaN or infinite values; the message names the stage and a likely cause."""


class DragKitInterrupted(DragKitError):
    """The user cancelled a running job between two steps."""


def check_shape(tensor: torch.Tensor, spec: str, name: str) -> dict[str, int]:
    """Check ``tensor`` against a space-separated shape spec such as ``"B C H W"`` or ``"B 4 H W"``.

    Letters name free dimensions (the same letter twice must match), integers fix a size.

    Returns:
        The size bound to each letter, e.g. ``{"B": 1, "C": 4, "H": 64, "W": 64}``.
    """
    if not isinstance(tensor, torch.Tensor):
        raise DragKitInputError(f"`{name}` must be a tensor of shape ({spec}), got {type(tensor).__name__}.")
    dims = spec.split()
    if tensor.ndim != len(dims):
        raise DragKitInputError(
            f"`{name}` must have shape ({spec}) with {len(dims)} dimensions, got shape {tuple(tensor.shape)}."
        )
    bound: dict[str, int] = {}
    for dim, size in zip(dims, tensor.shape):
        if dim.isdigit():
            if size != int(dim):
                raise DragKitInputError(f"`{name}` must have shape ({spec}), got {tuple(tensor.shape)}.")
        elif bound.setdefault(dim, size) != size:
            raise DragKitInputError(
                f"`{name}` must have shape ({spec}) with equal sizes for {dim}, got {tuple(tensor.shape)}."
            )
    return bound


def check_finite(tensor: torch.Tensor, name: str) -> None:
    """Raise if ``tensor`` holds NaN or infinity (an upstream node broke, or fp16 overflowed)."""
    if not torch.isfinite(tensor).all():
        raise DragKitInputError(
            f"`{name}` contains NaN or infinite values; check the node that produced it "
            "(a VAE in fp16 can overflow: try the fp32 VAE)."
        )


def check_stage_finite(tensor: torch.Tensor, stage: str, cause: str) -> None:
    """After a stage: raise :class:`DragKitNumericalError` naming it instead of passing NaN downstream."""
    if not torch.isfinite(tensor).all():
        raise DragKitNumericalError(f"{stage} produced NaN or infinite values, so it stopped; {cause}.")


def check_range(value: float, name: str, low: float, high: float, *, low_open: bool = False) -> None:
    """Check ``low <= value <= high`` (``low < value`` when ``low_open``)."""
    bad = math.isnan(value) or value > high or (value <= low if low_open else value < low)
    if bad:
        left = "(" if low_open else "["
        raise DragKitInputError(f"`{name}` must be in {left}{low}, {high}], got {value}.")


def check_choice(value: str, name: str, choices: Sequence[str]) -> None:
    if value not in choices:
        raise DragKitInputError(f"`{name}` must be one of {', '.join(map(repr, choices))}; got {value!r}.")
