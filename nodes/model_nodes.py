"""DRAG_MODEL sources: DragKit's own loader and the bridge from a ComfyUI MODEL."""

from __future__ import annotations

from ..core import model as core_model
from ..core.errors import DragKitModelError
from . import comfy

TOY_CHOICE = "dragkit-toy (embedded)"
DIFFUSERS_PREFIX = "diffusers/"
LOW_VRAM_INPUT = ("BOOLEAN", {"default": False, "tooltip": (
    "Less GPU memory, slower: every DragKit stage on this model recomputes activations in the backward "
    "pass (drag and LoRA), trains the LoRA one batch copy at a time, and first unloads ComfyUI's own "
    "models from the GPU; the model's own VAE waits on the CPU between encodes and decodes. Results stay "
    "equal within float rounding.")})


class DragKitModelLoader:
    DESCRIPTION = (
        "Loads an SD1.5-family UNet for DragKit from ComfyUI's checkpoints or diffusers folder, from a "
        "path, or DragKit's small embedded toy model. Works offline; the model is converted once."
    )
    CATEGORY = "DragKit/model"
    FUNCTION = "load"
    RETURN_TYPES = ("DRAG_MODEL",)
    RETURN_NAMES = ("drag_model",)
    OUTPUT_TOOLTIPS = ("The UNet (and, for checkpoints and the toy model, its VAE) ready for DragKit's nodes.",)

    @classmethod
    def INPUT_TYPES(cls):
        choices = [TOY_CHOICE] + comfy.model_choices("checkpoints")
        choices += [DIFFUSERS_PREFIX + name for name in comfy.model_choices("diffusers")]
        return {
            "required": {
                "model_name": (choices, {"tooltip": "A checkpoint (.safetensors) in models/checkpoints, a "
                                         "diffusers folder in models/diffusers, or the embedded toy model."}),
            },
            "optional": {
                "path": ("STRING", {"default": "", "tooltip": "A checkpoint file or diffusers folder "
                                    "anywhere on disk; overrides model_name when not empty."}),
                "low_vram": LOW_VRAM_INPUT,
            },
        }

    @comfy.with_grad
    def load(self, model_name, path="", low_vram=False):
        return (self._load(model_name, path).with_low_vram(low_vram),)

    @staticmethod
    def _load(model_name: str, path: str):
        device = comfy.torch_device()
        if path.strip():
            return core_model.load_model(path.strip(), device)
        if model_name == TOY_CHOICE:
            return core_model.load_toy_model(device)
        kind, name = ("diffusers", model_name[len(DIFFUSERS_PREFIX):]) if model_name.startswith(
            DIFFUSERS_PREFIX) else ("checkpoints", model_name)
        full = comfy.model_path(kind, name)
        if full is None:
            raise DragKitModelError(f"'{name}' is not in {comfy.folder_hint(kind)}; put it there or give a path.")
        return core_model.load_model(full, device)


class DragKitModelFromComfy:
    DESCRIPTION = (
        "Turns a ComfyUI MODEL (e.g. from Load Checkpoint, with LoRAs applied) into a DRAG_MODEL: its "
        "UNet weights, patches baked in, converted once to diffusers and cached per model."
    )
    CATEGORY = "DragKit/model"
    FUNCTION = "convert"
    RETURN_TYPES = ("DRAG_MODEL",)
    RETURN_NAMES = ("drag_model",)
    OUTPUT_TOOLTIPS = ("The MODEL's UNet as a DRAG_MODEL (no VAE: use ComfyUI's VAE nodes).",)

    _cache: dict = {}

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"model": ("MODEL", {"tooltip": "An SD1.5-family MODEL from Load Checkpoint "
                                                 "(LoRA loaders in between are baked in)."})},
                "optional": {"low_vram": LOW_VRAM_INPUT}}

    @comfy.with_grad
    def convert(self, model, low_vram=False):
        key = comfy.model_cache_key(model)
        if key not in self._cache:
            state, latent_scale, model_type = comfy.comfy_unet_state_dict(model)
            name = f"comfy-{model_type}"
            converted = core_model.from_ldm_state_dict(state, latent_scale, device=comfy.torch_device(), name=name)
            self._cache.clear()  # one converted UNet at a time: they are large
            self._cache[key] = converted
        converted = self._cache[key].with_low_vram() if low_vram else self._cache[key]
        comfy.make_room(converted)  # ComfyUI's copy was loaded on the GPU for the conversion
        return (converted,)
