"""Input specs shared by several nodes."""

from __future__ import annotations

SEED_MAX = 2**31 - 1
# The frontend adds a "control after generate" widget to every INT input named `seed`, set to
# `randomize` unless the spec names another mode. A DragKit seed must stay put: a new seed on every
# Queue would retrain the LoRA (or redo the region or the sampling) and defeat ComfyUI's cache.
SEED_CONTROL = "fixed"


def seed_input(tooltip: str, default: int = 0) -> tuple:
    """An INT seed widget whose frontend control starts at ``fixed``."""
    return ("INT", {"default": default, "min": 0, "max": SEED_MAX, "control_after_generate": SEED_CONTROL,
                    "tooltip": tooltip})
