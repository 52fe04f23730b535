"""The only module that touches ComfyUI. Every function degrades gracefully without it.

Inside ComfyUI: progress bars, the interrupt check, the torch device, model folders and the
server. Outside (plain Python, tests): no progress, never interrupted, CPU unless CUDA is there,
no model folders beyond paths the user gives.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import time
from typing import Callable, Iterator

import torch

from ..core.files import confined_path
from ..core.overlay import to_pil
from ..core.preview import MAX_PREVIEW_SIDE

logger = logging.getLogger(__name__)

try:  # ComfyUI's modules are top-level names; importing them must never break the pack.
    import comfy.model_management as model_management
    import comfy.utils as comfy_utils
    import folder_paths
except ImportError:  # plain Python, tests
    model_management = comfy_utils = folder_paths = None

IN_COMFYUI = folder_paths is not None

ProgressCallback = Callable[[int, int, dict], None]
# Live previews: at most one per this many seconds (the first step with an estimate always gets one) ...
PREVIEW_INTERVAL_S = 0.5
# ... and at most this share of the run's time: after a preview that took c seconds the next one waits
# c / PREVIEW_BUDGET (a 40 ms VAE decode on two CPU cores: 2 s), so slow decoders never slow the steps.
PREVIEW_BUDGET = 0.02
# Loops report their loss and distance as values on the GPU; reading one makes Python wait for the GPU,
# so the node's text reads them at most this often (and at the last step).
PROGRESS_TEXT_INTERVAL_S = 0.5


# ------------------------------------------------------------------------------ progress/cancel
def check_interrupt() -> None:
    """Raise if the user pressed Cancel in ComfyUI (a no-op elsewhere)."""
    if model_management is not None:
        model_management.throw_exception_if_processing_interrupted()


@contextlib.contextmanager
def progress(
    total: int,
    label: str = "",
    preview: Callable[[torch.Tensor], object] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> Iterator[ProgressCallback]:
    """A ``callback(step, total, info)`` for core loops: moves the node's progress bar and is a cancel point.

    Args:
        total: steps of the bar.
        label: prefix of the progress text.
        preview: ``latent -> (3, H, W) tensor in [0, 1] or PIL image`` (or ``None``), e.g.
            :func:`dragkit.core.preview.previewer`. When a step's ``info["estimate"]`` holds a latent
            and :data:`PREVIEW_INTERVAL_S` (or the :data:`PREVIEW_BUDGET` wait) has passed since the
            last preview, the picture goes to the bar as ComfyUI's samplers send theirs:
            ``("JPEG", image, max_size)``. Never called outside ComfyUI. Numbers in ``info``
            (Python numbers, or 0-d tensors read at most every :data:`PROGRESS_TEXT_INTERVAL_S`)
            go to the node's text.
        clock: seconds, for the preview interval (tests pass a fake one).
    """
    bar = comfy_utils.ProgressBar(total) if comfy_utils is not None else None
    previews = {"next": None, "on": preview is not None and bar is not None}
    texts = {"next": None}

    def numbers_of(step: int, steps: int, info: dict) -> dict[str, float]:
        numbers = {key: value for key, value in info.items() if isinstance(value, (int, float))
                   or (isinstance(value, torch.Tensor) and value.ndim == 0)}
        if any(isinstance(value, torch.Tensor) for value in numbers.values()):
            now = clock()
            if step < steps and texts["next"] is not None and now < texts["next"]:
                return {}
            texts["next"] = now + PROGRESS_TEXT_INTERVAL_S
        return {key: float(value) for key, value in numbers.items()}

    def preview_of(info: dict):
        estimate = info.get("estimate")
        if estimate is None:
            return None
        start = clock()
        if previews["next"] is not None and start < previews["next"]:
            return None
        try:
            image = preview(estimate)
            if isinstance(image, torch.Tensor):
                image = to_pil(image)
        except Exception:  # a preview must never end the run
            logger.warning("%s: live preview failed; no more previews for this run", label, exc_info=True)
            previews["on"] = False
            return None
        previews["next"] = start + max(PREVIEW_INTERVAL_S, (clock() - start) / PREVIEW_BUDGET)
        return None if image is None else ("JPEG", image, _preview_max_size())

    def callback(step: int, steps: int, info: dict) -> None:
        check_interrupt()
        if bar is not None:
            bar.update_absolute(step, steps, preview_of(info) if previews["on"] else None)
        numbers = numbers_of(step, steps, info)
        if numbers:  # e.g. the LoRA loss or the drag's distance to go, shown on the node
            progress_text(f"{label} {step}/{steps}  " + "  ".join(f"{k} {v:.4g}" for k, v in numbers.items()))
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("%s %d/%d %s", label, step, steps, {k: v for k, v in info.items() if k != "estimate"})

    yield callback


@functools.cache
def _preview_max_size() -> int:
    """ComfyUI's ``--preview-size`` (the longest side it shows previews at), else :data:`MAX_PREVIEW_SIDE`."""
    try:
        from comfy.cli_args import args
    except ImportError:
        return MAX_PREVIEW_SIDE
    return int(getattr(args, "preview_size", MAX_PREVIEW_SIDE) or MAX_PREVIEW_SIDE)


# ------------------------------------------------------------------------------- device, grads
def torch_device() -> torch.device:
    if model_management is not None:
        return model_management.get_torch_device()
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def intermediate_device() -> torch.device:
    """Where node outputs (IMAGE, MASK, LATENT) live between nodes."""
    if model_management is not None:
        return model_management.intermediate_device()
    return torch.device("cpu")


def with_grad(function):
    """Run a node function outside ``torch.inference_mode``.

    ComfyUI executes every node under inference mode; tensors made there can never take part in
    autograd, and DragKit optimises latents and trains LoRAs. So DragKit's nodes build their
    models and tensors with inference mode off (cloning any inference tensors they receive).
    """

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with torch.inference_mode(False), torch.enable_grad():
            return function(*args, **kwargs)

    return wrapper


def plain_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """A normal (non-inference) copy of ``tensor``; call inside :func:`with_grad`."""
    return tensor.clone() if tensor.is_inference() else tensor


# -------------------------------------------------------------------------------------- folders
def model_choices(kind: str) -> list[str]:
    """File names in one of ComfyUI's model folders (``checkpoints``, ``diffusers``, ``loras``)."""
    if folder_paths is None:
        return []
    try:
        if kind == "diffusers":
            names = []
            for root in folder_paths.get_folder_paths("diffusers"):
                if os.path.isdir(root):
                    names += sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d, "unet")))
            return names
        return list(folder_paths.get_filename_list(kind))
    except Exception:  # a folder name unknown to an old ComfyUI
        logger.debug("no ComfyUI folder %s", kind, exc_info=True)
        return []


def register_model_folder(kind: str) -> None:
    """Make ``models/<kind>`` a ComfyUI model folder unless ComfyUI or another pack already has
    (``ipadapter`` is registered by IP-Adapter packs, not by ComfyUI itself)."""
    if folder_paths is not None and kind not in folder_paths.folder_names_and_paths:
        folder_paths.add_model_folder_path(kind, os.path.join(folder_paths.models_dir, kind))


def model_path(kind: str, name: str) -> str | None:
    """Full path of ``name`` in ComfyUI's ``kind`` folder, or ``None``."""
    if folder_paths is None:
        return None
    if kind == "diffusers":
        for root in folder_paths.get_folder_paths("diffusers"):
            # Reading a model the user put there: a symlink to another drive is fine, '..' is not.
            candidate = confined_path(root, name, "model_name", follow_links=False)
            if candidate.is_dir():
                return str(candidate)
        return None
    return folder_paths.get_full_path(kind, name)  # ComfyUI's own lookup, confined the same way


def folder_hint(kind: str) -> str:
    """Where the user should put a file of this kind, for error messages."""
    if folder_paths is not None:
        paths = folder_paths.get_folder_paths(kind)
        if paths:
            return paths[0]
    return f"ComfyUI/models/{kind}"


# ----------------------------------------------------------------------------------- MODEL bridge
def comfy_unet_state_dict(model) -> tuple[dict[str, torch.Tensor], float, str]:
    """LDM-format UNet weights of a ComfyUI MODEL with its patches (LoRAs) baked in.

    Returns:
        ``(state_dict, latent_scale, model_type)``; keys without the ``model.diffusion_model.``
        prefix, tensors as fresh CPU copies (never ComfyUI's inference tensors).
    """
    base = model.model
    model_type = type(getattr(base, "model_config", None)).__name__
    latent_scale = float(base.latent_format.scale_factor)
    if model_management is not None:
        model_management.load_models_gpu([model], force_patch_weights=True)
    state = base.diffusion_model.state_dict()
    with torch.inference_mode(False):
        state = {key: value.detach().to("cpu", copy=True).clone() for key, value in state.items()}
    return state, latent_scale, model_type


def make_room(drag_model) -> None:
    """Low-VRAM mode: before a DragKit stage, unload ComfyUI's own models (its copy of the UNet, the
    text encoder, the VAE) from the GPU. DragKit runs its own copy of the UNet, and ComfyUI loads its
    models back when one of its nodes needs them. A no-op otherwise, and outside ComfyUI."""
    if getattr(drag_model, "low_vram", False) and model_management is not None:
        model_management.unload_all_models()
        model_management.soft_empty_cache()


def model_cache_key(model) -> tuple:
    """Identifies a MODEL's weights and patches, to convert each combination once."""
    return (id(model.model), getattr(model, "patches_uuid", None), len(getattr(model, "patches", {})))


# ---------------------------------------------------------------------------------- temp images
def save_temp_image(image, prefix: str = "dragkit") -> dict | None:
    """Write a PIL image to ComfyUI's temp folder; the ``{filename, subfolder, type}`` the UI loads via /view."""
    if folder_paths is None:
        return None
    import uuid

    folder = folder_paths.get_temp_directory()
    os.makedirs(folder, exist_ok=True)
    filename = f"{prefix}_{uuid.uuid4().hex[:12]}.png"
    image.save(os.path.join(folder, filename), compress_level=1)
    return {"filename": filename, "subfolder": "", "type": "temp"}


# ----------------------------------------------------------------------------- LoRA Trainer
def loras_folder() -> str | None:
    """The first of ComfyUI's LoRA folders (where the LoRA Trainer saves), or ``None`` outside ComfyUI."""
    if folder_paths is None:
        return None
    paths = folder_paths.get_folder_paths("loras")
    return paths[0] if paths else None


def progress_text(text: str) -> None:
    """Show a line of text on the running node (e.g. the training loss); a no-op outside ComfyUI."""
    send = _progress_text_sender()
    if send is not None:
        send(text)


@functools.cache
def _progress_text_sender() -> Callable[[str], None] | None:
    """Resolved once: progress callbacks run every step, and a failing import is not free."""
    try:
        from comfy_execution.utils import get_executing_context
        from server import PromptServer
    except ImportError:  # plain Python, tests, or a ComfyUI without progress text
        return None

    def send(text: str) -> None:
        context, instance = get_executing_context(), getattr(PromptServer, "instance", None)
        if context is not None and instance is not None and hasattr(instance, "send_progress_text"):
            instance.send_progress_text(text, context.node_id)

    return send
