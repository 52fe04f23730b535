"""Size limits on what a user or an API client can hand DragKit, named once and checked before any work.

Each limit keeps one request from running for an hour or filling memory by accident (a 4096x4096
photo, a 512x512 latent, an editor state with a million points). They are generous for the
methods' real use (SD1.5 works at 512-768 px) and each can be raised with an environment variable
of the same name, read when DragKit loads (e.g. ``DRAGKIT_MAX_IMAGE_SIDE=3072``).
"""

from __future__ import annotations

import logging
import os

from .errors import DragKitInputError

logger = logging.getLogger(__name__)


def _limit(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < 1:
        logger.warning("%s=%r is not a whole number >= 1; using %d", name, value, default)
        return default
    return int(value)


# Longest image side in pixels (SD1.5 drags run at 512; 2048 is 64x that many pixels).
MAX_IMAGE_SIDE = _limit("DRAGKIT_MAX_IMAGE_SIDE", 2048)
# Longest latent side (an image of MAX_IMAGE_SIDE through an 8x VAE).
MAX_LATENT_SIDE = _limit("DRAGKIT_MAX_LATENT_SIDE", 256)
# Handle/target pairs in one edit (the papers' benchmarks use at most about 10).
MAX_PAIRS = _limit("DRAGKIT_MAX_PAIRS", 64)
# Brush strokes in one Point Picker state, and points in all of them together.
MAX_STROKES = _limit("DRAGKIT_MAX_STROKES", 512)
MAX_STROKE_POINTS = _limit("DRAGKIT_MAX_STROKE_POINTS", 100_000)


def check_limit(count: int, limit: int, limit_name: str, what: str, fix: str) -> None:
    """Raise when ``count > limit``: the message says what, the limit and how to change it."""
    if count > limit:
        raise DragKitInputError(f"{what} is {count}, over DragKit's limit of {limit}; {fix}, or raise the limit "
                                f"with the environment variable {limit_name} before starting ComfyUI.")


def check_image_side(width: int, height: int, name: str = "image") -> None:
    check_limit(max(width, height), MAX_IMAGE_SIDE, "DRAGKIT_MAX_IMAGE_SIDE", f"the longest side of `{name}`",
                "scale the image down (SD1.5 works best at 512-768 px)")


def check_latent_side(width: int, height: int, name: str = "latent") -> None:
    check_limit(max(width, height), MAX_LATENT_SIDE, "DRAGKIT_MAX_LATENT_SIDE", f"the longest side of `{name}`",
                "encode a smaller image")
