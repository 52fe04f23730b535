"""DDIM inversion and reference sampling nodes."""

from __future__ import annotations

from ..core.attention import ReferenceAttentionConfig
from ..core.inversion import ddim_invert
from ..core.preview import previewer
from ..core.sampling import reference_sample
from ..core.schedule import DEFAULT_NUM_STEPS, DRAGDIFFUSION_STRENGTH, inversion_step_count
from . import comfy
from ..core.keep import KeepConfig, latent_keep_weights
from .convert import conditioning_embeds, keep_mask_out, latent_in, latent_out, mask_or_none
from .specs import KEEP_INPUT, KEEP_MASK_TOOLTIP

MODEL_TOOLTIP = "From DragKit Model Loader or DragKit Model From Comfy (optionally through the LoRA Trainer)."
CONDITIONING_TOOLTIP = (
    "CLIP Text Encode of the prompt describing the image (an empty prompt works). Optional for models "
    "that carry their own prompt embedding, like the embedded toy model."
)


class DragKitDDIMInverter:
    DESCRIPTION = (
        "Inverts the image latent with deterministic DDIM to step t (50 steps at strength 0.7 -> t=681, "
        "DragDiffusion's default) and keeps the whole trajectory. Feed it to a drag node or the sampler."
    )
    CATEGORY = "DragKit"
    FUNCTION = "invert"
    RETURN_TYPES = ("DRAG_INVERSION",)
    RETURN_NAMES = ("inversion",)
    OUTPUT_TOOLTIPS = (
        "The DDIM trajectory from the image to step t (every intermediate latent), for a drag node or the sampler.",
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "latent": ("LATENT", {"tooltip": "VAE Encode of the image to edit."}),
                "steps": ("INT", {"default": DEFAULT_NUM_STEPS, "min": 1, "max": 1000,
                                  "tooltip": "DDIM steps of the full schedule (N). 50 in DragDiffusion and GoodDrag."}),
                "strength": ("FLOAT", {"default": DRAGDIFFUSION_STRENGTH, "min": 0.01, "max": 1.0, "step": 0.01,
                                       "tooltip": "Share of the schedule to invert: round(strength*steps) steps. "
                                       "0.7 = DragDiffusion (t=681), 0.75 = GoodDrag (t=741); 1 = pure noise."}),
            },
            "optional": {"conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP})},
        }

    @comfy.with_grad
    def invert(self, drag_model, latent, steps, strength, conditioning=None):
        comfy.make_room(drag_model)
        total = inversion_step_count(steps, strength)
        samples = latent_in(drag_model, latent)
        with comfy.progress(total, "DDIM inversion") as callback:
            inversion = ddim_invert(drag_model, samples, conditioning_embeds(conditioning), steps, strength, callback)
        return (inversion,)


class DragKitSampler:
    DESCRIPTION = (
        "Denoises the (edited) inversion back to a LATENT with DDIM, no CFG. With reference attention on, "
        "the edited image's decoder self-attention reads the source image's keys/values (MasaCtrl, as in "
        "DragDiffusion) so identity and texture are kept. Decode the result with VAE Decode."
    )
    CATEGORY = "DragKit"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "MASK")
    RETURN_NAMES = ("latent", "keep_mask")
    OUTPUT_TOOLTIPS = (
        "The denoised latent of the edited branch (ComfyUI's convention): decode it with the model's VAE.",
        KEEP_MASK_TOOLTIP,
    )

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "inversion": ("DRAG_INVERSION", {"tooltip": "From DDIM Inverter, or a drag node's edited inversion."}),
                "reference_attention": ("BOOLEAN", {"default": True, "tooltip": "Edited branch attends to the "
                                        "source's keys/values. Off = plain DDIM sampling of the edited latent."}),
                "start_step": ("INT", {"default": 0, "min": 0, "max": 1000, "tooltip": "First denoising step "
                                       "(0-based) that shares keys/values. 0 = every step (DragDiffusion)."}),
                "start_layer": ("INT", {"default": -1, "min": -1, "max": 64, "tooltip": "First self-attention "
                                        "layer (forward order) that shares keys/values. -1 = the last 6 "
                                        "(DragDiffusion: 10 of SD1.5's 16)."}),
                "keep_outside_mask": KEEP_INPUT,
            },
            "optional": {
                "mask": ("MASK", {"tooltip": "The editable region the drag used: with keep on, everything outside it "
                                  "stays the source."}),
                "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
            },
        }

    @comfy.with_grad
    def sample(self, drag_model, inversion, reference_attention, start_step, start_layer, keep_outside_mask=False,
               mask=None, conditioning=None):
        comfy.make_room(drag_model)
        reference = ReferenceAttentionConfig(
            enabled=reference_attention, start_step=start_step, start_layer=None if start_layer < 0 else start_layer
        )
        region = mask_or_none(mask)
        weights = latent_keep_weights(drag_model, inversion, region, KeepConfig() if keep_outside_mask else None)
        with comfy.progress(len(inversion.timesteps), "DDIM sampling", previewer(drag_model)) as callback:
            edited, _ = reference_sample(drag_model, inversion, conditioning_embeds(conditioning), reference, callback,
                                         keep=weights)
        return (latent_out(drag_model, edited), keep_mask_out(drag_model, edited, region, keep_outside_mask))
