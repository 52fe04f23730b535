"""DragonDiffusion / DiffEditor: training-free editing by energy guidance during sampling."""

from __future__ import annotations

import dataclasses

import torch

from ..core.errors import DragKitInputError
from ..core.guidance import GUIDANCE_MODES, drag_geometry, move_geometry
from ..core.masks import as_mask, is_empty, rasterize_strokes
from ..core.methods.diffeditor import diffeditor_config, dragondiffusion_config, initial_latent, regional_sde_sample
from ..core.points import DragPoints
from . import comfy
from .convert import conditioning_embeds, latent_out
from .drag_nodes import mask_or_none
from .inversion_nodes import CONDITIONING_TOOLTIP, MODEL_TOOLTIP

METHODS = {"DiffEditor": diffeditor_config, "DragonDiffusion": dragondiffusion_config}


def path_mask(points: DragPoints) -> torch.Tensor:
    """A default edit region for a drag: a band of 1/8 of the image around each handle -> target path."""
    radius = max(points.image_size) / 8
    strokes = [{"mode": "paint", "radius": radius, "points": [list(h), list(t)]} for h, t in zip(points.handles, points.targets)]
    return rasterize_strokes(strokes, points.image_size)


class DragKitRegionalSDESampler:
    DESCRIPTION = (
        "DragonDiffusion / DiffEditor: no LoRA and no optimisation. Samples from the inversion while energy "
        "guidance on UNet features pulls the content at the handles (drag), or a masked object (move, resize), "
        "to its destination; a memory bank of the source's attention keeps identity; DiffEditor adds noise only "
        "in the edit region (regional SDE) and time travel. Invert with strength 1.0 for the reference setting."
    )
    CATEGORY = "DragKit"
    FUNCTION = "sample"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)

    @classmethod
    def INPUT_TYPES(cls):
        defaults = diffeditor_config()
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
                            "DiffEditor: noise inside the edit region on steps 11-19 (0.4). 0 = deterministic."}),
                "time_travel": ("BOOLEAN", {"default": True, "tooltip": "DiffEditor: repeat steps 22, 24, 26, 28 three "
                                "times, stepping back in between (refines the edit)."}),
                "memory_bank": ("BOOLEAN", {"default": True, "tooltip": "Decoder self-attention also reads the source's "
                                "keys/values from step 5 on (keeps identity)."}),
                "energy_scale": ("FLOAT", {"default": g.energy_scale, "min": 0.0, "max": 1e5, "step": 10, "tooltip":
                                 "Strength of the guidance (drag 2000, move 500). 0 = no guidance."}),
                "w_edit": ("FLOAT", {"default": g.w_edit, "min": 0.0, "max": 100, "step": 0.1, "tooltip": "Weight "
                           "of moving the content (4)."}),
                "w_content": ("FLOAT", {"default": g.w_content, "min": 0.0, "max": 100, "step": 0.1, "tooltip":
                              "Weight of keeping everything outside the edit region (6)."}),
                "w_inpaint": ("FLOAT", {"default": g.w_inpaint, "min": 0.0, "max": 100, "step": 0.05, "tooltip":
                              "Weight of clearing the place the content leaves (drag 0.2, move 0.8)."}),
                "feature_layers": ("STRING", {"default": "2,3", "tooltip": "Decoder features for the energies, comma "
                                   "separated (0 = mid block, k = up block k-1). DragonDiffusion: 2,3."}),
                "seed": ("INT", {"default": 0, "min": 0, "max": 2**31 - 1, "tooltip": "Seed of the regional SDE noise."}),
            },
            "optional": {
                "points": ("DRAG_POINTS", {"tooltip": "drag mode: handle -> target pairs."}),
                "mask": ("MASK", {"tooltip": "drag: the editable area; move/resize: the object."}),
                "conditioning": ("CONDITIONING", {"tooltip": CONDITIONING_TOOLTIP}),
            },
        }

    @comfy.with_grad
    def sample(self, drag_model, inversion, method, mode, dx, dy, scale, sde_eta, time_travel, memory_bank,
               energy_scale, w_edit, w_content, w_inpaint, feature_layers, seed, points=None, mask=None,
               conditioning=None):
        config = METHODS[method](mode)
        try:
            layers = tuple(int(v) for v in feature_layers.replace(" ", "").split(",") if v)
        except ValueError:
            raise DragKitInputError(f"`feature_layers` must be comma-separated integers like 2,3, got {feature_layers!r}.")
        config = dataclasses.replace(
            config, sde_eta=sde_eta if method == "DiffEditor" else 0.0, memory_bank=memory_bank, seed=seed,
            time_travel_steps=config.time_travel_steps if time_travel else (),
            guidance=dataclasses.replace(config.guidance, energy_scale=energy_scale, w_edit=w_edit,
                                         w_content=w_content, w_inpaint=w_inpaint, feature_layers=layers),
        )
        start = inversion.start
        latent_size = tuple(start.shape[-2:])
        image_size = (latent_size[1] * drag_model.vae_scale, latent_size[0] * drag_model.vae_scale)
        region = mask_or_none(mask)
        if mode == "drag":
            if not isinstance(points, DragPoints):
                raise DragKitInputError("drag mode needs `points` (connect the Point Picker or DragKit Points).")
            points = points.fit(image_size)
            editable = path_mask(points) if is_empty(region) else as_mask(region, image_size)
            handles = torch.tensor(points.handles)
            geometry = drag_geometry(handles, torch.tensor(points.targets), editable, latent_size, image_size, config.guidance)
        else:
            if is_empty(region):
                raise DragKitInputError(f"{mode} mode needs a `mask` of the object to {mode}; paint it in the Point Picker.")
            geometry = move_geometry(as_mask(region, image_size), (dx, dy), scale if mode == "resize" else 1.0,
                                     latent_size, config.guidance)
        edited = inversion.with_edit(initial_latent(start.to(drag_model.device), geometry, config.guidance.upsample))
        with comfy.progress(len(inversion.timesteps), method) as callback:
            latent = regional_sde_sample(drag_model, edited, geometry, config, conditioning_embeds(conditioning), callback)
        return (latent_out(drag_model, latent),)
