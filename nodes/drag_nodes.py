"""DRAG_POINTS from JSON, and DragDiffusion's latent optimisation (with GoodDrag's IPMS)."""

from __future__ import annotations

import dataclasses

from ..core.attention import ReferenceAttentionConfig
from ..core.drag import DragConfig, for_model
from ..core.keep import KeepConfig
from ..core.methods import dragdiffusion, gooddrag
from ..core.methods.dragdiffusion import DRAGDIFFUSION, drag_latent
from ..core.methods.gooddrag import GOODDRAG_DRAG, AlDDConfig, progress_steps
from ..core.methods.registry import methods_of
from ..core.points import DragPoints
from ..core.preview import previewer
from . import comfy
from .convert import conditioning_embeds, keep_mask_out, latent_out, mask_or_none, points_in
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP
from .specs import KEEP_INPUT, KEEP_MASK_TOOLTIP

SUPERVISION_METHODS = methods_of(dragdiffusion)  # DragDiffusion, GoodDrag IPMS
POINTS_EXAMPLE = '{"image_size": [512, 512], "pairs": [{"handle": [200, 256], "target": [280, 256]}]}'


FEATURE_LAYER_INPUT = ("INT", {"default": -1, "min": -1, "max": 8, "tooltip": "UNet decoder feature: 0 = mid block, "
                                "k = up block k-1. -1 = the model's recommendation (SD1.5: 3)."})
RESCALE_INPUT = ("BOOLEAN", {"default": False, "tooltip": "Scale the points when they were drawn on an image of another "
                             "size. Off = such a mismatch is an error."})
POINTS_INPUT = ("DRAG_POINTS", {"tooltip": "Handle -> target pairs from the Point Picker or DragKit Points."})
DRAG_OPTIONAL_INPUTS = {
    "mask": ("MASK", {"tooltip": "Editable region (white = may change). Empty = no background term."}),
    "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
}


def lam_input(default: float) -> tuple:
    return ("FLOAT", {"default": -1.0, "min": -1.0, "max": 10.0, "step": 0.01,
                      "tooltip": "Weight of keeping the area outside the mask. -1 = the model's recommendation (its "
                                 f"dragkit.json), else the method's ({default}). 0 = off; no effect without a mask."})


def drag_config(preset: DragConfig, drag_model, feature_layer: int, **widgets) -> DragConfig:
    """The preset with the model's recommendations (:func:`for_model`), then the node's widgets; a
    ``feature_layer`` or ``lam`` of -1 keeps the recommendation."""
    if feature_layer >= 0:
        widgets["feature_layers"] = (feature_layer,)
    if widgets.get("lam", 0.0) < 0:
        del widgets["lam"]
    return dataclasses.replace(for_model(preset, drag_model), **widgets)


def checked_points(points, drag_model, inversion, rescale: bool) -> DragPoints:
    points = points_in(points)
    return points.fit(drag_model.image_size(inversion.start), rescale=rescale)


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
    OUTPUT_TOOLTIPS = ("The pairs, with the size of the image they were drawn on.",)

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
    OUTPUT_TOOLTIPS = (
        "The inversion with its start latent edited: feed it to DragKit Sampler.",
        "Where each handle ended, by point tracking (the targets are unchanged).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "inversion": ("DRAG_INVERSION", {"tooltip": "From DragKit DDIM Inverter (strength 0.7 for DragDiffusion)."}),
                "points": POINTS_INPUT,
                "supervision": (list(SUPERVISION_METHODS), {"tooltip": "DragDiffusion: r1=1, r2=3, unit steps. GoodDrag "
                                "IPMS: r1=4, r2=12, steps up to 4, against the original handle feature."}),
                "max_steps": ("INT", {"default": DRAGDIFFUSION.max_steps, "min": 0, "max": 1000,
                                      "tooltip": "Most optimisation steps (80); 80-100 for long drags. 0 = no drag."}),
                "learning_rate": ("FLOAT", {"default": DRAGDIFFUSION.learning_rate, "min": 1e-4, "max": 1.0, "step": 1e-3,
                                            "tooltip": "Adam step on the latent (0.01). 0.02-0.04 is faster, rougher."}),
                "lam": lam_input(DRAGDIFFUSION.lam),
                "patch_radius": ("INT", {"default": -1, "min": -1, "max": 32, "tooltip": "Motion-supervision patch "
                                         "radius r1 in half-resolution pixels. -1 = the supervision's default (1 or 4)."}),
                "track_radius": ("INT", {"default": -1, "min": -1, "max": 64, "tooltip": "Tracking window radius r2 in "
                                         "half-resolution pixels. -1 = the supervision's default (3 or 12)."}),
                "feature_layer": FEATURE_LAYER_INPUT,
                "rescale_points": RESCALE_INPUT,
            },
            "optional": dict(DRAG_OPTIONAL_INPUTS),
        }

    @comfy.with_grad
    def drag(self, drag_model, inversion, points, supervision, max_steps, learning_rate, lam, patch_radius,
             track_radius, feature_layer, rescale_points, mask=None, conditioning=None):
        comfy.make_room(drag_model)
        preset = SUPERVISION_METHODS[supervision].preset()
        config = drag_config(preset, drag_model, feature_layer, max_steps=max_steps, learning_rate=learning_rate,
                             lam=lam, patch_radius=preset.patch_radius if patch_radius < 0 else patch_radius,
                             track_radius=preset.track_radius if track_radius < 0 else track_radius)
        points = checked_points(points, drag_model, inversion, rescale_points)
        with comfy.progress(max(max_steps, 1), "drag", previewer(drag_model)) as callback:
            result = drag_latent(drag_model, inversion, points, mask_or_none(mask), config,
                                 conditioning_embeds(conditioning), callback)
        return (inversion.with_edit(result.latent), result.points)


class DragKitAlDDSampler:
    DESCRIPTION = (
        "GoodDrag: drags a little at each of the first denoising steps (Alternating Drag and Denoising) with "
        "IPMS, then denoises with reference attention. Use an inversion at strength 0.75 and the LoRA "
        "Trainer's GoodDrag preset. Outputs the edited LATENT and the points where the handles ended."
    )
    CATEGORY = "DragKit"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "DRAG_POINTS", "MASK")
    RETURN_NAMES = ("latent", "final_points", "keep_mask")
    OUTPUT_TOOLTIPS = (
        "The edited image latent (ComfyUI's convention): decode it with the model's VAE.",
        "Where each handle ended, by point tracking (the targets are unchanged).",
        KEEP_MASK_TOOLTIP,
    )

    @classmethod
    def INPUT_TYPES(cls):
        defaults = AlDDConfig()
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "inversion": ("DRAG_INVERSION", {"tooltip": "From DragKit DDIM Inverter at strength 0.75 (GoodDrag: t=741)."}),
                "points": POINTS_INPUT,
                "drag_steps": ("INT", {"default": defaults.drag_steps, "min": 0, "max": 50, "tooltip": "T: the first "
                               "denoising steps that get drag rounds (7). 0 = plain reference sampling."}),
                "rounds": ("INT", {"default": defaults.rounds, "min": 0, "max": 100, "tooltip": "B: tracking rounds "
                           "per drag step (10)."}),
                "steps_per_round": ("INT", {"default": defaults.steps_per_round, "min": 1, "max": 20, "tooltip": "J: "
                                    "Adam steps on the latent before each tracking round (3)."}),
                "learning_rate": ("FLOAT", {"default": GOODDRAG_DRAG.learning_rate, "min": 1e-4, "max": 1.0, "step": 1e-3,
                                            "tooltip": "Adam step on the latent (0.02)."}),
                "lam": lam_input(GOODDRAG_DRAG.lam),
                "patience": ("INT", {"default": defaults.patience, "min": 1, "max": 100, "tooltip": "Stop dragging after "
                             "this many rounds in which no handle moved (5; only with early_stop)."}),
                "early_stop": ("BOOLEAN", {"default": defaults.early_stop, "tooltip": "Stop dragging for good once "
                               "tracking says every handle arrived, or after `patience` still rounds (on = GoodDrag's "
                               "loop, faster). Off (default): every round of every drag step runs, about 4x the drag "
                               "time; on DragKit's toy benchmark it moved shapes much further (README)."}),
                "feature_layer": FEATURE_LAYER_INPUT,
                "reference_attention": ("BOOLEAN", {"default": True, "tooltip": "After the drag phase the edited image "
                                        "attends to the source's keys/values (MasaCtrl), keeping identity."}),
                "rescale_points": RESCALE_INPUT,
                "keep_outside_mask": KEEP_INPUT,
            },
            "optional": dict(DRAG_OPTIONAL_INPUTS),
        }

    @comfy.with_grad
    def sample(self, drag_model, inversion, points, drag_steps, rounds, steps_per_round, learning_rate, lam,
               patience, feature_layer, reference_attention, rescale_points, keep_outside_mask=False, mask=None,
               conditioning=None, early_stop=AlDDConfig.early_stop):
        comfy.make_room(drag_model)
        drag = drag_config(GOODDRAG_DRAG, drag_model, feature_layer, learning_rate=learning_rate, lam=lam)
        config = AlDDConfig(drag=drag, drag_steps=drag_steps, rounds=rounds, steps_per_round=steps_per_round,
                            patience=patience, early_stop=early_stop,
                            reference=ReferenceAttentionConfig(enabled=reference_attention))
        points = checked_points(points, drag_model, inversion, rescale_points)
        with comfy.progress(progress_steps(config, inversion), "AlDD", previewer(drag_model)) as callback:
            result = gooddrag.edit(drag_model, inversion, points, mask_or_none(mask), config,
                                   conditioning_embeds(conditioning), callback,
                                   keep=KeepConfig() if keep_outside_mask else None)
        return (latent_out(drag_model, result.latent), result.points,
                keep_mask_out(drag_model, result.latent, result.region, keep_outside_mask))
