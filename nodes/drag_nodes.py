"""DRAG_POINTS from JSON, and DragDiffusion's latent optimisation (with GoodDrag's IPMS)."""

from __future__ import annotations

import dataclasses

from ..core.errors import DragKitInputError
from ..core.methods.dragdiffusion import DRAGDIFFUSION, DRAGDIFFUSION_IPMS, drag_latent
from ..core.points import DragPoints
from . import comfy
from .convert import conditioning_embeds
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP

SUPERVISION_PRESETS = {"DragDiffusion": DRAGDIFFUSION, "GoodDrag IPMS": DRAGDIFFUSION_IPMS}
POINTS_EXAMPLE = '{"image_size": [512, 512], "pairs": [{"handle": [200, 256], "target": [280, 256]}]}'


def mask_or_none(mask):
    """First mask of a ComfyUI MASK ``(B, H, W)`` as a plain tensor, or ``None``."""
    if mask is None:
        return None
    mask = comfy.plain_tensor(mask)
    return mask[0] if mask.ndim == 3 else mask


class DragKitPoints:
    DESCRIPTION = (
        "Handle -> target pairs typed as JSON, for API workflows and scripts: "
        '{"image_size": [w, h], "pairs": [{"handle": [x, y], "target": [x, y]}]} in image pixels. '
        "The DragBench form (a flat list alternating handle, target) is accepted with image_size given."
    )
    CATEGORY = "DragKit/points"
    FUNCTION = "parse"
    RETURN_TYPES = ("DRAG_POINTS",)
    RETURN_NAMES = ("points",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"points_json": ("STRING", {
            "default": POINTS_EXAMPLE, "multiline": True,
            "tooltip": "Pairs in image pixels (x right, y down, origin top-left), with the size of the image they "
                       'were drawn on. Also: {"image_size": [w, h], "points": [[hx, hy], [tx, ty], ...]}.'})}}

    def parse(self, points_json):
        return (DragPoints.from_json(points_json),)


class DragKitDragOptimizer:
    DESCRIPTION = (
        "DragDiffusion: optimises the inverted latent so the content under each handle moves to its target "
        "(motion supervision on UNet features + point tracking), keeping the area outside the mask. "
        "'GoodDrag IPMS' supervises against the original handle features so points don't drift. Follow with "
        "DragKit Sampler. Outputs the edited inversion and the points where the handles ended."
    )
    CATEGORY = "DragKit"
    FUNCTION = "drag"
    RETURN_TYPES = ("DRAG_INVERSION", "DRAG_POINTS")
    RETURN_NAMES = ("inversion", "final_points")

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "inversion": ("DRAG_INVERSION", {"tooltip": "From DragKit DDIM Inverter (strength 0.7 for DragDiffusion)."}),
                "points": ("DRAG_POINTS", {"tooltip": "Handle -> target pairs from the Point Picker or DragKit Points."}),
                "supervision": (list(SUPERVISION_PRESETS), {"tooltip": "DragDiffusion: r1=1, r2=3, unit steps. GoodDrag "
                                "IPMS: r1=4, r2=12, steps up to 4, against the original handle feature."}),
                "max_steps": ("INT", {"default": DRAGDIFFUSION.max_steps, "min": 0, "max": 1000,
                                      "tooltip": "Most optimisation steps (80); 80-100 for long drags. 0 = no drag."}),
                "learning_rate": ("FLOAT", {"default": DRAGDIFFUSION.learning_rate, "min": 1e-4, "max": 1.0, "step": 1e-3,
                                            "tooltip": "Adam step on the latent (0.01). 0.02-0.04 is faster, rougher."}),
                "lam": ("FLOAT", {"default": DRAGDIFFUSION.lam, "min": 0.0, "max": 10.0, "step": 0.01,
                                  "tooltip": "Weight of keeping the area outside the mask (0.1). 0 = off; no effect without a mask."}),
                "patch_radius": ("INT", {"default": -1, "min": -1, "max": 32, "tooltip": "Motion-supervision patch "
                                         "radius r1 in half-resolution pixels. -1 = the supervision's default (1 or 4)."}),
                "track_radius": ("INT", {"default": -1, "min": -1, "max": 64, "tooltip": "Tracking window radius r2 in "
                                         "half-resolution pixels. -1 = the supervision's default (3 or 12)."}),
                "feature_layer": ("INT", {"default": -1, "min": -1, "max": 8, "tooltip": "UNet decoder feature: 0 = mid "
                                          "block, k = up block k-1. -1 = the model's recommendation (SD1.5: 3)."}),
                "rescale_points": ("BOOLEAN", {"default": False, "tooltip": "Scale the points when they were drawn on an "
                                               "image of another size. Off = such a mismatch is an error."}),
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "Editable region (white = may change). Empty = no background term."}),
                "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
            },
        }

    @comfy.with_grad
    def drag(self, drag_model, inversion, points, supervision, max_steps, learning_rate, lam, patch_radius,
             track_radius, feature_layer, rescale_points, mask=None, conditioning=None):
        if not isinstance(points, DragPoints):
            raise DragKitInputError("`points` must be DRAG_POINTS (from the Point Picker or DragKit Points).")
        preset = SUPERVISION_PRESETS[supervision]
        layers = (feature_layer,) if feature_layer >= 0 else tuple(drag_model.settings.get("feature_layers", preset.feature_layers))
        config = dataclasses.replace(
            preset, max_steps=max_steps, learning_rate=learning_rate, lam=lam, feature_layers=layers,
            patch_radius=preset.patch_radius if patch_radius < 0 else patch_radius,
            track_radius=preset.track_radius if track_radius < 0 else track_radius,
        )
        latent = inversion.start
        scale = drag_model.vae_scale
        points = points.fit((latent.shape[-1] * scale, latent.shape[-2] * scale), rescale=rescale_points)
        with comfy.progress(max(max_steps, 1), "drag") as callback:
            result = drag_latent(drag_model, inversion, points, mask_or_none(mask), config,
                                 conditioning_embeds(conditioning), callback)
        return (inversion.with_edit(result.latent), result.points)
