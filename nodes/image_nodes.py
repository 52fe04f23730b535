"""Images in and out through a DRAG_MODEL's own VAE, and DragKit's bundled example pictures.

With these a graph needs no ComfyUI checkpoint at all: the embedded toy model carries its own VAE
(ComfyUI's VAE Loader cannot read it), so a newcomer can run an edit with nothing downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image

from ..core.errors import DragKitInputError, DragKitModelError
from ..core.limits import check_image_side
from ..core.overlay import from_pil
from . import comfy
from .convert import latent_in, latent_out
from .inversion_nodes import MODEL_TOOLTIP

# The pictures live in the web folder so the Point Picker can show them before anything runs
# (ComfyUI serves WEB_DIRECTORY at /extensions/<pack>/); this node reads the same files.
EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "web" / "examples"


def example_names() -> list[str]:
    """The bundled example pictures, sorted (PNG files in ``web/examples``)."""
    return sorted(p.name for p in EXAMPLES_DIR.glob("*.png"))


def image_in(image, name: str = "image") -> torch.Tensor:
    """ComfyUI IMAGE ``(B, H, W, C)`` -> ``(B, 3, H, W)`` float32 in [0, 1] (a new, non-inference tensor)."""
    if not isinstance(image, torch.Tensor) or image.ndim != 4 or image.shape[-1] < 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise DragKitInputError(f"`{name}` must be an IMAGE (B, H, W, C) with 3 or 4 channels, got {shape}.")
    check_image_side(image.shape[2], image.shape[1], name)
    return comfy.plain_tensor(image)[..., :3].permute(0, 3, 1, 2).float()


def image_out(image: torch.Tensor) -> torch.Tensor:
    """``(B, 3, H, W)`` in [0, 1] -> ComfyUI IMAGE ``(B, H, W, 3)`` on the intermediate device."""
    return image.detach().permute(0, 2, 3, 1).contiguous().to(comfy.intermediate_device())


def require_vae(drag_model, node: str) -> None:
    if drag_model.vae is None:
        raise DragKitModelError(
            f"{node}: the model `{drag_model.name}` has no VAE of its own (a DRAG_MODEL from DragKit Model From "
            "Comfy); use ComfyUI's VAE Encode / VAE Decode with the checkpoint's VAE instead."
        )


class DragKitVAEEncode:
    DESCRIPTION = (
        "Encodes an IMAGE with the DRAG_MODEL's own VAE (the embedded toy model's, or the VAE inside a checkpoint "
        "loaded by DragKit Model Loader) into a LATENT in ComfyUI's convention. Use ComfyUI's VAE Encode instead "
        "when the model came from Load Checkpoint."
    )
    CATEGORY = "DragKit/model"
    FUNCTION = "encode"
    RETURN_TYPES = ("LATENT",)
    RETURN_NAMES = ("latent",)
    OUTPUT_TOOLTIPS = ("The image latent, unscaled as ComfyUI's VAE Encode gives it.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP + " It must carry a VAE."}),
            "image": ("IMAGE", {"tooltip": "The image to edit; both sides a multiple of the VAE's factor (8 for "
                                "SD1.5, 4 for the toy model)."}),
        }}

    @comfy.with_grad
    def encode(self, drag_model, image):
        require_vae(drag_model, "DragKit VAE Encode")
        pixels = image_in(image)
        return (latent_out(drag_model, drag_model.encode(pixels)),)


class DragKitVAEDecode:
    DESCRIPTION = (
        "Decodes a LATENT with the DRAG_MODEL's own VAE into an IMAGE: the counterpart of DragKit VAE Encode, for "
        "the embedded toy model and checkpoints loaded by DragKit Model Loader."
    )
    CATEGORY = "DragKit/model"
    FUNCTION = "decode"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The decoded image, values in [0, 1].",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "drag_model": ("DRAG_MODEL", {"tooltip": MODEL_TOOLTIP + " It must carry a VAE."}),
            "latent": ("LATENT", {"tooltip": "A LATENT of this model, e.g. from a DragKit sampler."}),
        }}

    @comfy.with_grad
    def decode(self, drag_model, latent):
        require_vae(drag_model, "DragKit VAE Decode")
        return (image_out(drag_model.decode(latent_in(drag_model, latent))),)


class DragKitExampleImage:
    DESCRIPTION = (
        "One of DragKit's bundled example pictures: synthetic scenes like those the embedded toy model was trained "
        "on (64x64, a flat shape on a smooth background), so a drag can be tried with nothing downloaded."
    )
    CATEGORY = "DragKit/examples"
    FUNCTION = "load"
    RETURN_TYPES = ("IMAGE",)
    RETURN_NAMES = ("image",)
    OUTPUT_TOOLTIPS = ("The example picture, 64x64.",)

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"example": (example_names(), {"tooltip": "A picture in DragKit's web/examples folder; "
                                                          "the Point Picker shows it before the graph runs."})}}

    def load(self, example):
        if example not in example_names():
            raise DragKitInputError(f"`example` {example!r} is not a bundled example; choose one of "
                                    f"{', '.join(example_names())}.")
        with Image.open(EXAMPLES_DIR / example) as picture:
            image = from_pil(picture)
        return (image_out(image[None]),)
