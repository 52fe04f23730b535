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


KEEP_INPUT = ("BOOLEAN", {"default": False, "tooltip": "Keep everything outside the editable mask (grown by one "
                          "latent cell, feathered by one more) equal to the source while sampling; paste the source "
                          "pixels back after decoding with Image Composite Masked and the keep_mask output. Off = the "
                          "paper's sampling. No effect without a mask."})
KEEP_MASK_TOOLTIP = ("1 where the source is kept (outside the grown, feathered mask), 0 where the edit shows: the mask "
                     "for Image Composite Masked (destination = the decoded edit, source = the input image). All 0 "
                     "with keep off.")
