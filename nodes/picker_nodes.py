"""The Point Picker (with its browser widget in web/) and feature-correspondence regions."""

from __future__ import annotations

import dataclasses

from ..core.editor_state import EMPTY_STATE, EditorState
from ..core.errors import DragKitInputError
from ..core.limits import check_image_side
from ..core.overlay import draw_drag_overlay, to_pil
from ..core.regions import RegionConfig, feature_region
from ..core.regions import for_model as region_for_model
from . import comfy
from .convert import conditioning_embeds, latent_in, points_in
from .drag_nodes import mask_or_none
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP
from .specs import seed_input


class DragKitPointPicker:
    DESCRIPTION = (
        "Click handle -> target pairs and paint the editable region on the image, in the node's editor. "
        "Click: handle, next click: its target; drag a point to move it; right-click or Delete removes a pair; "
        "Brush/Eraser paint the mask; Preview warp (W) shows the painted region moved by the pairs as DragKit Region "
        "Warp will move it, live while you drag a target. Outputs DRAG_POINTS, the MASK and a preview IMAGE with the "
        "arrows. A mask with "
        "no pairs is a valid result (for the Regional SDE Sampler's move and resize modes); nodes that need pairs "
        "then say so."
    )
    CATEGORY = "DragKit/points"
    FUNCTION = "pick"
    RETURN_TYPES = ("DRAG_POINTS", "MASK", "IMAGE")
    RETURN_NAMES = ("points", "mask", "preview")
    OUTPUT_TOOLTIPS = (
        "The handle -> target pairs in image pixels (empty while there are none).",
        "The editable region: white may change.",
        "The image with the arrows and the tinted region drawn on it.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The image to edit (from Load Image the editor shows it before running)."}),
                "editor_state": ("STRING", {"default": EMPTY_STATE, "multiline": False,
                                            "tooltip": "The editor's points and mask strokes as JSON (image pixels); "
                                            "written by the editor, editable by hand for API use."}),
            },
            "optional": {"mask": ("MASK", {"tooltip": "A mask to start from (e.g. painted in Load Image's mask "
                                           "editor); the editor's strokes are painted on top."})},
        }

    @comfy.with_grad
    def pick(self, image, editor_state, mask=None):
        image = comfy.plain_tensor(image)
        if image.ndim != 4 or image.shape[-1] < 3:
            raise DragKitInputError(f"`image` must be an IMAGE (B, H, W, C), got shape {tuple(image.shape)}.")
        height, width = image.shape[1:3]
        check_image_side(width, height)
        state = EditorState.from_json(editor_state)
        base = mask_or_none(mask)
        if base is not None and tuple(base.shape) != (height, width):
            if bool((base > 0.5).any()):
                raise DragKitInputError(f"`mask` is {base.shape[1]}x{base.shape[0]} but the image is {width}x{height}.")
            base = None  # Load Image's empty 64x64 placeholder for images without alpha
        editable = state.mask((width, height), base)
        picture = image[0, :, :, :3].permute(2, 0, 1)
        background = comfy.save_temp_image(to_pil(picture), "dragkit_picker")
        ui = {"dragkit_background": [background]} if background else {}
        points = state.points((width, height))
        preview = draw_drag_overlay(picture, points, editable).permute(1, 2, 0)[None]
        device = comfy.intermediate_device()
        return {"ui": ui, "result": (points, editable[None].to(device), preview.to(device))}


class DragKitFeatureRegion:
    DESCRIPTION = (
        "Finds the part of the image each handle belongs to (DIFT-style): noises the latent to step t, reads "
        "UNet decoder features and keeps the connected area whose features are cosine-similar to the handle's. "
        "Use it as the editable MASK of a drag, or to start the mask you paint."
    )
    CATEGORY = "DragKit/points"
    FUNCTION = "region"
    RETURN_TYPES = ("MASK",)
    RETURN_NAMES = ("mask",)
    OUTPUT_TOOLTIPS = ("The region of the handles: white = the part of the image each handle belongs to.",)

    @classmethod
    def INPUT_TYPES(cls):
        defaults = RegionConfig()
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "latent": ("LATENT", {"tooltip": "VAE Encode of the image the points were drawn on."}),
                "points": ("DRAG_POINTS", {"tooltip": "Only the handles are used."}),
                "timestep": ("INT", {"default": defaults.timestep, "min": 0, "max": 999,
                                     "tooltip": "Noise level of the features (DIFT: 261). Lower = more detail."}),
                "threshold": ("FLOAT", {"default": defaults.threshold, "min": -0.99, "max": 1.0, "step": 0.01,
                                        "tooltip": "Cosine similarity needed to belong to the region. Higher = tighter."}),
                "dilation": ("INT", {"default": defaults.dilation, "min": 0, "max": 64,
                                     "tooltip": "Grow the region by this many pixels (0 = none)."}),
                "feature_layer": ("INT", {"default": -1, "min": -1, "max": 8, "tooltip": "Decoder feature: 0 = mid "
                                          "block, k = up block k-1. -1 = the model's recommendation (SD1.5: 2)."}),
                "ensemble": ("INT", {"default": defaults.ensemble, "min": 1, "max": 16,
                                     "tooltip": "Noise draws averaged (DIFT: 8). More = steadier, slower."}),
                "seed": seed_input("Seed of the noise added to the latent; the same seed gives the same region."),
            },
            "optional": {"conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP})},
        }

    @comfy.with_grad
    def region(self, drag_model, latent, points, timestep, threshold, dilation, feature_layer, ensemble, seed,
               conditioning=None):
        comfy.make_room(drag_model)
        points = points_in(points)
        config = region_for_model(RegionConfig(timestep=timestep, threshold=threshold, dilation=dilation,
                                               ensemble=ensemble, seed=seed), drag_model)
        if feature_layer >= 0:
            config = dataclasses.replace(config, feature_layers=(feature_layer,))
        mask = feature_region(drag_model, latent_in(drag_model, latent), points, conditioning_embeds(conditioning), config)
        return (mask[None].to(comfy.intermediate_device()),)
