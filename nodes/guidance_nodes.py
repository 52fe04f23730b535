"""DragonDiffusion / DiffEditor: training-free editing by energy guidance during sampling."""

from __future__ import annotations

import dataclasses
import logging

from ..core.errors import DragKitInputError, DragKitModelError
from ..core.guidance import DRAG_GUIDANCE, GUIDANCE_MODES, MOVE_GUIDANCE
from ..core.image_prompt import (
    DIFFEDITOR_IMAGE_PROMPT_SCALE, DIFFEDITOR_IMAGE_PROMPT_STEPS, ImagePrompt, load_image_prompt_adapter,
)
from ..core.keep import KeepConfig
from ..core.methods import diffeditor
from ..core.methods.registry import methods_of
from ..core.preview import previewer
from . import comfy
from .convert import conditioning_embeds, keep_mask_out, latent_out, mask_or_none, points_in
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP
from .specs import KEEP_INPUT, KEEP_MASK_TOOLTIP, seed_input

logger = logging.getLogger(__name__)

METHODS = methods_of(diffeditor)  # DiffEditor, DragonDiffusion
comfy.register_model_folder("ipadapter")  # models/ipadapter, as IP-Adapter packs name it


MODEL_LAYERS = "-1"  # the feature_layers value that means "what the model recommends"
MODEL_DEFAULT = -1.0  # a guidance widget at this value keeps the method's default for the mode and model


def widget_or(value: float, default: float) -> float:
    """A guidance widget's value, or ``default`` (the mode's and model's) when it is left at -1."""
    return default if value < 0 else value


def parse_layers(text: str) -> tuple[int, ...]:
    """The widget's comma-separated decoder indices, e.g. ``"2,3"`` -> ``(2, 3)``."""
    try:
        layers = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        layers = ()
    if not layers or min(layers) < 0:
        raise DragKitInputError(f"`feature_layers` must be comma-separated decoder indices like 2,3 (or -1 for the "
                                f"model's recommendation), got {text!r}.")
    return layers


def sampler_config(drag_model, method: str, mode: str, *, sde_eta: float, time_travel: bool, memory_bank: bool,
                   energy_scale: float, w_edit: float, w_content: float, w_inpaint: float, feature_layers: str,
                   seed: int) -> diffeditor.RegionalSDEConfig:
    """The Regional SDE Sampler's settings: the method's preset for ``mode`` with the model's
    recommendations (:func:`~dragkit.core.methods.diffeditor.for_model`), then every widget not left at -1.
    With all of them at their defaults this is the configuration the benchmark and the library use."""
    config = diffeditor.for_model(diffeditor.for_mode(METHODS[method].preset(), mode), drag_model)
    guidance = config.guidance
    if feature_layers.strip() != MODEL_LAYERS:
        guidance = dataclasses.replace(guidance, feature_layers=parse_layers(feature_layers))
    guidance = dataclasses.replace(
        guidance, energy_scale=widget_or(energy_scale, guidance.energy_scale), w_edit=widget_or(w_edit, guidance.w_edit),
        w_content=widget_or(w_content, guidance.w_content), w_inpaint=widget_or(w_inpaint, guidance.w_inpaint))
    return dataclasses.replace(
        config, guidance=guidance, sde_eta=sde_eta if config.sde_eta > 0 else 0.0, memory_bank=memory_bank, seed=seed,
        time_travel_steps=config.time_travel_steps if time_travel else ())


class DragKitRegionalSDESampler:
    DESCRIPTION = (
        "DragonDiffusion / DiffEditor: no LoRA and no optimisation. Samples from the inversion while energy "
        "guidance on UNet features pulls the content at the handles (drag), or a masked object (move, resize), "
        "to its destination; a memory bank of the source's attention keeps identity; DiffEditor adds noise only "
        "in the edit region (regional SDE) and time travel. Invert with strength 1.0 for the reference setting."
    )
    CATEGORY = "DragKit"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT", "MASK")
    RETURN_NAMES = ("latent", "keep_mask")
    OUTPUT_TOOLTIPS = ("The edited image latent (ComfyUI's convention): decode it with the model's VAE.",
                       KEEP_MASK_TOOLTIP)

    @classmethod
    def INPUT_TYPES(cls):
        defaults = diffeditor.diffeditor_config()
        g = defaults.guidance
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "inversion": ("DRAG_INVERSION", {"tooltip": "From DragKit DDIM Inverter (reference: 50 steps, strength 1.0)."}),
                "method": (list(METHODS), {"tooltip": "DiffEditor = guidance on every step below 10 then every other, "
                           "regional SDE and time travel. DragonDiffusion = guidance on every step below 30, deterministic."}),
                "mode": (list(GUIDANCE_MODES), {"tooltip": "drag: points (mask = editable area, default a band around "
                         "each path). move: the masked object by (dx, dy). resize: the masked object by scale."}),
                "dx": ("FLOAT", {"default": 0.0, "min": -8192, "max": 8192, "step": 1, "tooltip": "move: pixels right."}),
                "dy": ("FLOAT", {"default": 0.0, "min": -8192, "max": 8192, "step": 1, "tooltip": "move: pixels down."}),
                "scale": ("FLOAT", {"default": 1.0, "min": 0.1, "max": 4.0, "step": 0.05, "tooltip": "resize: size "
                          "factor about the object's centre (1 = same size)."}),
                "sde_eta": ("FLOAT", {"default": defaults.sde_eta, "min": 0.0, "max": 1.0, "step": 0.05, "tooltip":
                            "DiffEditor: noise inside the edit region on the SDE steps (0.4; SD1.5: steps 11-19, "
                            "or the model's sde_steps). 0 = deterministic."}),
                "time_travel": ("BOOLEAN", {"default": True, "tooltip": "DiffEditor: repeat some late guided steps three "
                                "times, stepping back in between (refines the edit; SD1.5: 22, 24, 26, 28, or the "
                                "model's time_travel_steps)."}),
                "memory_bank": ("BOOLEAN", {"default": True, "tooltip": "Decoder self-attention also reads the source's "
                                "keys/values from step 5 on (keeps identity)."}),
                "energy_scale": ("FLOAT", {"default": MODEL_DEFAULT, "min": MODEL_DEFAULT, "max": 1e5, "step": 10,
                                 "tooltip": "Strength of the guidance. -1 = the method's for the mode (drag "
                                 f"{DRAG_GUIDANCE.energy_scale:g}, move/resize {MOVE_GUIDANCE.energy_scale:g}) times the "
                                 "model's energy_scale_factor (dragkit.json). 0 = no guidance."}),
                "w_edit": ("FLOAT", {"default": MODEL_DEFAULT, "min": MODEL_DEFAULT, "max": 100, "step": 0.1,
                           "tooltip": f"Weight of moving the content. -1 = the method's ({DRAG_GUIDANCE.w_edit:g})."}),
                "w_content": ("FLOAT", {"default": MODEL_DEFAULT, "min": MODEL_DEFAULT, "max": 100, "step": 0.1,
                              "tooltip": "Weight of keeping everything outside the edit region. -1 = the method's "
                              f"({DRAG_GUIDANCE.w_content:g})."}),
                "w_inpaint": ("FLOAT", {"default": MODEL_DEFAULT, "min": MODEL_DEFAULT, "max": 100, "step": 0.05,
                              "tooltip": "Weight of clearing the place the content leaves. -1 = the method's for the "
                              f"mode (drag {DRAG_GUIDANCE.w_inpaint:g}, move/resize {MOVE_GUIDANCE.w_inpaint:g})."}),
                "feature_layers": ("STRING", {"default": MODEL_LAYERS, "tooltip": "Decoder features for the energies, "
                                   "comma separated (0 = mid block, k = up block k-1). -1 = the model's recommendation "
                                   "(SD1.5: 2,3 as DragonDiffusion; the toy model: 1,2)."}),
                "seed": seed_input("Seed of the regional SDE noise (DiffEditor). The same seed gives the same edit."),
                "keep_outside_mask": KEEP_INPUT,
            },
            "optional": {
                "points": ("DRAG_POINTS", {"tooltip": "drag mode: handle -> target pairs."}),
                "mask": ("MASK", {"tooltip": "drag: the editable area; move/resize: the object."}),
                "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
                "image_prompt": ("CLIP_VISION_OUTPUT", {"tooltip": "Optional image prompt: CLIP Vision Encode of a "
                                 "reference image (usually the input photo), used with the IP-Adapter below."}),
                "ipadapter": (["none"] + comfy.model_choices("ipadapter"), {"tooltip": "IP-Adapter SD1.5 weights in "
                              "models/ipadapter (e.g. ip-adapter_sd15.safetensors with a ViT-H CLIP Vision). 'none' or "
                              "no image_prompt = no image prompt."}),
                "image_prompt_scale": ("FLOAT", {"default": DIFFEDITOR_IMAGE_PROMPT_SCALE, "min": 0.0, "max": 2.0,
                                       "step": 0.01, "tooltip": "Weight of the image prompt on denoising steps "
                                       f"{DIFFEDITOR_IMAGE_PROMPT_STEPS[0]}-{DIFFEDITOR_IMAGE_PROMPT_STEPS[1]} "
                                       f"(DiffEditor {DIFFEDITOR_IMAGE_PROMPT_SCALE}). 0 = off."}),
            },
        }

    @comfy.with_grad
    def sample(self, drag_model, inversion, method, mode, dx, dy, scale, sde_eta, time_travel, memory_bank,
               energy_scale, w_edit, w_content, w_inpaint, feature_layers, seed, keep_outside_mask=False, points=None,
               mask=None,
               conditioning=None, image_prompt=None, ipadapter="none",
               image_prompt_scale=DIFFEDITOR_IMAGE_PROMPT_SCALE):
        comfy.make_room(drag_model)
        config = sampler_config(drag_model, method, mode, sde_eta=sde_eta, time_travel=time_travel,
                                memory_bank=memory_bank, energy_scale=energy_scale, w_edit=w_edit, w_content=w_content,
                                w_inpaint=w_inpaint, feature_layers=feature_layers, seed=seed)
        drag_points = points_in(points) if mode == "drag" else None
        image = load_image_prompt(drag_model, image_prompt, ipadapter, image_prompt_scale)
        with comfy.progress(len(inversion.timesteps), method, previewer(drag_model)) as callback:
            result = diffeditor.edit(drag_model, inversion, drag_points, mask_or_none(mask), config,
                                     conditioning_embeds(conditioning), callback, mode=mode, offset=(dx, dy),
                                     scale=scale, image=image, keep=KeepConfig() if keep_outside_mask else None)
        return (latent_out(drag_model, result.latent),
                keep_mask_out(drag_model, result.latent, result.region, keep_outside_mask))


def load_image_prompt(drag_model, clip_vision_output, ipadapter: str, scale: float) -> ImagePrompt | None:
    """The node's image prompt, or ``None`` when it has no embedding, no IP-Adapter or scale 0."""
    if clip_vision_output is None or ipadapter == "none" or scale == 0:
        if clip_vision_output is not None or ipadapter != "none":
            logger.info("image prompt off: it needs both `image_prompt` and an `ipadapter` file (and a scale > 0)")
        return None
    path = comfy.model_path("ipadapter", ipadapter)
    if not path:
        raise DragKitModelError(f"IP-Adapter '{ipadapter}' is not in {comfy.folder_hint('ipadapter')}; put it there.")
    embeds = getattr(clip_vision_output, "image_embeds", None)
    if embeds is None:
        raise DragKitInputError("`image_prompt` has no image embedding; connect CLIP Vision Encode (not a style model).")
    adapter = load_image_prompt_adapter(path, drag_model.unet)
    return ImagePrompt(adapter, comfy.plain_tensor(embeds)[:1].float(), scale)
