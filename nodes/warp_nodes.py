"""Instant drag: the region warped in pixel space (Inpaint4Drag), and a fill on a DRAG_MODEL."""

from __future__ import annotations

import torch

from ..core.fill import FillConfig, fill_masked
from ..core.keep import keep_mask
from ..core.region_warp import UNCOVERED_MODES, RegionWarpConfig, warp_region
from ..core.preview import previewer
from . import comfy
from .convert import conditioning_embeds, latent_out, mask_or_none, points_in
from .drag_nodes import RESCALE_INPUT
from .image_nodes import image_in, image_out
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP
from .specs import seed_input

DEFAULT_WARP = RegionWarpConfig()


class DragKitRegionWarp:
    DESCRIPTION = (
        "Inpaint4Drag's instant drag: moves the selected region of the image in pixel space so every handle lands "
        "exactly on its target (a shift for one pair, a thin-plate spline through several), and outputs the MASK an "
        "inpainting model must fill: what the move uncovered plus a thin seam around the moved region. Takes "
        "milliseconds, runs on any model: fill with VAE Encode (for Inpainting) and your inpainting checkpoint, "
        "InpaintModelConditioning and FLUX Fill, or DragKit Fill Sampler on a DRAG_MODEL. Made for rigid or near-rigid "
        "moves; articulated changes (opening a mouth, turning a head) are what the optimisation methods are for."
    )
    CATEGORY = "DragKit/warp"
    FUNCTION = "warp"
    RETURN_TYPES = ("IMAGE", "MASK", "MASK")
    RETURN_NAMES = ("image", "fill", "region")
    OUTPUT_TOOLTIPS = (
        "The image with the region moved; outside the region, where it went and the fill mask it is the input, "
        "pixel for pixel.",
        "White where an inpainting model must fill: the uncovered area (grown by fill_grow) and the seam band.",
        "The moved region.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "image": ("IMAGE", {"tooltip": "The picture to edit (every image of a batch gets the same warp)."}),
                "points": ("DRAG_POINTS", {"tooltip": "Handle -> target pairs from the Point Picker or DragKit Points."}),
                "region": ("MASK", {"tooltip": "What moves (white): paint it in the Point Picker or connect DragKit "
                                    "Feature Region. Of a batch of masks the first is used."}),
                "fill_grow": ("INT", {"default": DEFAULT_WARP.fill_grow, "min": 0, "max": 64, "tooltip": "Pixels the "
                              "uncovered area is grown by before filling (Inpaint4Drag: 2). 0 = exactly what the move "
                              "uncovered."}),
                "seam": ("INT", {"default": DEFAULT_WARP.seam, "min": 0, "max": 64, "tooltip": "Half-width in pixels "
                         "of the band along the moved region's outline that is filled too, so it blends into its new "
                         "surroundings. 0 = no band."}),
                "uncovered": (list(UNCOVERED_MODES), {"default": DEFAULT_WARP.uncovered, "tooltip": "What the "
                              "uncovered pixels hold before the fill: smooth = the surrounding background spread "
                              "inward (best for a partial denoise), source = the old pixels (fine for a full-strength "
                              "fill)."}),
                "rescale_points": RESCALE_INPUT,
            }
        }

    def warp(self, image, points, region, fill_grow, seam, uncovered, rescale_points=False):
        pictures = image_in(image)
        height, width = pictures.shape[-2:]
        pairs = points_in(points).fit((width, height), rescale=rescale_points)
        selected = mask_or_none(region)
        config = RegionWarpConfig(fill_grow=fill_grow, seam=seam, uncovered=uncovered)
        results = [warp_region(picture, selected, pairs, config) for picture in pictures]
        out = torch.stack([r.image for r in results])
        return (image_out(out), results[0].fill[None].to(comfy.intermediate_device()),
                results[0].region[None].to(comfy.intermediate_device()))


class DragKitFillSampler:
    DESCRIPTION = (
        "Fills a MASK of an inverted picture with the DRAG_MODEL itself (blended-latent inpainting with DDIM): inside "
        "the mask denoising starts from fresh seeded noise at the inversion's step, outside it follows the inversion "
        "at every step. With Region Warp before it, Inpaint4Drag's method runs on the embedded model with nothing "
        "downloaded. For photos, an inpainting checkpoint in ComfyUI's own nodes fills better (see the workflows)."
    )
    CATEGORY = "DragKit/warp"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "MASK")
    RETURN_NAMES = ("latent", "keep_mask")
    OUTPUT_TOOLTIPS = (
        "The filled latent (ComfyUI's convention): decode it with the model's VAE.",
        "1 outside the (feathered) fill mask, where the warped picture is kept: the mask for Image Composite Masked "
        "(destination = the decoded fill, source = the warped image).",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "inversion": ("DRAG_INVERSION", {"tooltip": "DDIM Inverter on the warped image; its strength sets how "
                              "much noise the fill starts from (1.0 = pure noise inside the mask)."}),
                "fill": ("MASK", {"tooltip": "What to fill (white): Region Warp's fill output."}),
                "seed": seed_input("Seed of the noise inside the mask. The same seed gives the same fill."),
            },
            "optional": {
                "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
            },
        }

    @comfy.with_grad
    def sample(self, drag_model, inversion, fill, seed, conditioning=None):
        comfy.make_room(drag_model)
        config = FillConfig(seed=seed)
        mask = mask_or_none(fill)
        with comfy.progress(len(inversion.timesteps), "Filling", previewer(drag_model)) as callback:
            latent, _ = fill_masked(drag_model, inversion, mask, config, conditioning_embeds(conditioning), callback)
        keep = keep_mask(mask, drag_model.image_size(latent), drag_model.vae_scale, config.keep)
        return latent_out(drag_model, latent), keep[None].to(comfy.intermediate_device())

