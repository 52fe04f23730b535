"""Per-image LoRA: train (cached, optionally saved for ComfyUI's LoraLoader) and load."""

from __future__ import annotations

import dataclasses

from ..core.errors import DragKitInputError, DragKitModelError
from ..core.files import checked_file
from ..core.lora import DRAGDIFFUSION_LORA, LORA_PRESETS, preset_config, train_lora
from ..core.lora_files import check_save_target, load_lora, lora_save_path, save_lora
from . import comfy
from .convert import conditioning_embeds, latent_in
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP
from .specs import seed_input

PRESET_STEPS = 0  # the steps widget's "use the preset's" value, so GoodDrag trains its 70 steps


class DragKitLoraTrainer:
    DESCRIPTION = (
        "Fine-tunes a LoRA on the image (DragDiffusion/GoodDrag) so the drag keeps its identity. Cached: the same "
        "model, image, prompt and settings never train twice, and moving points downstream never retrains. The "
        "input model is left untouched. Optionally saves the LoRA to models/loras (usable by ComfyUI's LoraLoader)."
    )
    CATEGORY = "DragKit/model"
    FUNCTION = "train"
    RETURN_TYPES = ("DRAG_MODEL",)
    RETURN_NAMES = ("drag_model",)
    OUTPUT_TOOLTIPS = ("The same model with the trained LoRA active (the input model is unchanged).",)

    @classmethod
    def INPUT_TYPES(cls):
        d = DRAGDIFFUSION_LORA
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "latent": ("LATENT", {"tooltip": "VAE Encode of the image to edit (the same one you invert)."}),
                "preset": (list(LORA_PRESETS), {"tooltip": "DragDiffusion: 80 steps with your prompt. GoodDrag: 70 steps, "
                           "meant with an EMPTY prompt. The widgets below are the preset's values unless changed."}),
                "steps": ("INT", {"default": PRESET_STEPS, "min": 0, "max": 2000, "tooltip": "Training steps; 0 = "
                          "the preset's (80 DragDiffusion, 70 GoodDrag)."}),
                "rank": ("INT", {"default": d.rank, "min": 1, "max": 256, "tooltip": "LoRA rank (16)."}),
                "learning_rate": ("FLOAT", {"default": d.learning_rate, "min": 1e-6, "max": 1e-1, "step": 1e-5,
                                            "tooltip": "AdamW learning rate (5e-4)."}),
                "batch_size": ("INT", {"default": d.batch_size, "min": 1, "max": 64, "tooltip": "Noisy copies of the "
                               "image per step (4)."}),
                "seed": seed_input("Seed of the noise and timesteps; the same seed gives the same LoRA.", d.seed),
                "save_name": ("STRING", {"default": "", "tooltip": "Empty = keep in memory only. Otherwise the file "
                              "name to write in models/loras (.safetensors added)."}),
                "overwrite": ("BOOLEAN", {"default": False, "tooltip": "Replace an existing file of that name. Off = "
                              "an existing file is an error and stays as it is."}),
            },
            "optional": {
                "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
                "gradient_checkpointing": ("BOOLEAN", {"default": False, "tooltip": "Less GPU memory, slower."}),
            },
        }

    @comfy.with_grad
    def train(self, drag_model, latent, preset, steps, rank, learning_rate, batch_size, seed, save_name, overwrite,
              conditioning=None, gradient_checkpointing=False):
        comfy.make_room(drag_model)
        config = dataclasses.replace(preset_config(preset, seed, gradient_checkpointing),
                                     rank=rank, learning_rate=learning_rate, batch_size=batch_size)
        if steps != PRESET_STEPS:
            config = dataclasses.replace(config, steps=steps)
        samples = latent_in(drag_model, latent)
        embeds = conditioning_embeds(conditioning)
        target = None
        if save_name.strip():  # checked before training, so a bad name never costs a run
            folder = comfy.loras_folder()
            if folder is None:
                raise DragKitInputError("saving needs ComfyUI's models/loras folder; leave save_name empty here.")
            target = lora_save_path(folder, save_name)
            check_save_target(drag_model, samples, embeds, config, target, overwrite)
        with comfy.progress(config.steps, "LoRA") as callback:
            trained = train_lora(drag_model, samples, embeds, config, callback=callback)
        if target is not None:
            save_lora(trained, target, {"preset": preset}, overwrite)
        return (trained,)


class DragKitLoraLoader:
    DESCRIPTION = "Loads a LoRA saved by the DragKit LoRA Trainer (or any kohya-format SD1.5 UNet LoRA) into a DRAG_MODEL."
    CATEGORY = "DragKit/model"
    FUNCTION = "load"
    RETURN_TYPES = ("DRAG_MODEL",)
    RETURN_NAMES = ("drag_model",)
    OUTPUT_TOOLTIPS = ("The same model with the loaded LoRA active (the input model is unchanged).",)

    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP}),
                "lora_name": (comfy.model_choices("loras") or ["(none in models/loras)"],
                              {"tooltip": "A .safetensors file in ComfyUI's models/loras folder."}),
            },
            "optional": {"path": ("STRING", {"default": "", "tooltip": "A LoRA file anywhere on disk; overrides "
                                             "lora_name when not empty."})},
        }

    @comfy.with_grad
    def load(self, drag_model, lora_name, path=""):
        if path.strip():
            return (load_lora(drag_model, checked_file(path, "path", (".safetensors",))),)
        full = comfy.model_path("loras", lora_name)
        if not full:
            raise DragKitModelError(f"'{lora_name}' is not in {comfy.folder_hint('loras')}; put it there or give a path.")
        return (load_lora(drag_model, full),)
