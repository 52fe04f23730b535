"""Metrics for drag edits, as a node: GoodDrag's Dragging Accuracy Index."""

from __future__ import annotations

import json

from ..core.errors import DragKitInputError
from ..core.metrics import DAI_GAMMAS, dai
from . import comfy
from .convert import points_in


class DragKitDAI:
    DESCRIPTION = (
        "GoodDrag's Dragging Accuracy Index: how far the content under each handle in the original image is from "
        "the content at its target in the edited image (mean squared RGB distance of patches; lower = the drag "
        "landed). Reports one value per patch radius gamma."
    )
    CATEGORY = "DragKit/metrics"
    FUNCTION = "measure"
    OUTPUT_NODE = True
    RETURN_TYPES = ("STRING", "FLOAT")
    RETURN_NAMES = ("report", "dai_first_gamma")
    OUTPUT_TOOLTIPS = (
        "DAI per patch radius, as JSON text.",
        "DAI at the first radius in gammas (lower = the drag landed).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "original": ("IMAGE", {"tooltip": "The image the points were drawn on."}),
                "edited": ("IMAGE", {"tooltip": "The drag result (VAE Decode), same size."}),
                "points": ("DRAG_POINTS", {"tooltip": "The handle -> target pairs of the edit (the requested ones)."}),
                "gammas": ("STRING", {"default": ",".join(map(str, DAI_GAMMAS)), "tooltip": "Patch radii in pixels, "
                           "comma separated (GoodDrag reports 1,5,10,20)."}),
                "reference_normalisation": ("BOOLEAN", {"default": False, "tooltip": "Divide by the number of pairs twice "
                                            "as GoodDrag's script does (to compare with the paper). Off = a plain mean."}),
            }
        }

    def measure(self, original, edited, points, gammas, reference_normalisation):
        if tuple(original.shape) != tuple(edited.shape):
            raise DragKitInputError(f"`original` {tuple(original.shape)} and `edited` {tuple(edited.shape)} differ in "
                                    "size; resize the edited image to the original's.")
        points = points_in(points)
        try:
            radii = [int(g) for g in gammas.replace(" ", "").split(",") if g]
        except ValueError:
            raise DragKitInputError(f"`gammas` must be comma-separated integers, got {gammas!r}.") from None
        if not radii or min(radii) < 0:
            raise DragKitInputError(f"`gammas` needs at least one radius >= 0, got {gammas!r}.")
        values = dai(comfy.plain_tensor(original)[0, ..., :3].permute(2, 0, 1),
                     comfy.plain_tensor(edited)[0, ..., :3].permute(2, 0, 1), points, radii, reference_normalisation)
        report = json.dumps({f"dai_gamma_{g}": round(v, 6) for g, v in values.items()})
        return {"ui": {"text": [report]}, "result": (report, values[radii[0]])}
