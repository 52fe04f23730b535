"""LoRA files: DragKit's LoRAs saved for ComfyUI, and LoRA files loaded into a DragModel.

Files use the kohya key layout, ``lora_unet_<diffusers module path, '.' -> '_'>.lora_down.weight``,
``.lora_up.weight`` and ``.alpha`` (converted with diffusers' ``convert_state_dict_to_kohya``). It is
the layout ComfyUI's LoraLoader maps for SD1.5 UNets (``comfy/lora.py`` ``model_lora_keys_unet``
builds ``lora_unet_{diffusers key}`` from ``comfy.utils.unet_to_diffusers``); the newer peft layout
(``unet.<module>.lora_A.weight``) is not among the keys ComfyUI maps for SD1.5. Loading reads both.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import json
import logging
import re
from pathlib import Path

import torch
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from . import adapters
from .errors import DragKitInputError, DragKitModelError
from .files import atomic_write, check_writable_target, confined_path
from .lora import LoraTrainingConfig, lora_key, tensor_hash
from .model import DragModel

logger = logging.getLogger(__name__)

KOHYA_PREFIX = "lora_unet_"


def dragkit_version() -> str:
    try:
        return importlib.metadata.version("comfyui-dragkit")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def lora_save_path(folder: str | Path, name: str) -> Path:
    """``folder/name.safetensors`` for a user-given ``save_name``, resolved and confined to ``folder``."""
    return confined_path(folder, name, "save_name", ".safetensors", example="cat_drag")


def check_save_target(model: DragModel, latent: torch.Tensor, embeds: torch.Tensor | None,
                      config: LoraTrainingConfig, path: Path, overwrite: bool) -> None:
    """Before training: raise if saving the LoRA these inputs make to ``path`` would fail.

    A file that already holds this very LoRA (same :func:`lora_key`) is fine: :func:`save_lora`
    leaves it as it is.
    """
    if path.is_file() and not overwrite:
        key = lora_key(model, latent, model.prompt_embeds(embeds, 1), config)
        if _file_metadata(path).get("dragkit_key") == key:
            return
    check_writable_target(path, "save_name", overwrite)


def kohya_state_dict(model: DragModel) -> dict[str, torch.Tensor]:
    """The bundle's adapter as float32 CPU tensors under kohya keys, ``.alpha`` included."""
    unet, name = model.unet, model.adapter
    state = get_peft_model_state_dict(unet, adapter_name=name)
    kohya = convert_state_dict_to_kohya({"unet." + key: value for key, value in state.items()})
    # convert_state_dict_to_kohya writes alpha = rank; write each layer's real alpha (scale * rank).
    for module_name, module in unet.named_modules():
        if isinstance(module, LoraLayer) and name in module.lora_A:
            alpha_key = KOHYA_PREFIX + module_name.replace(".", "_") + ".alpha"
            if alpha_key not in kohya:
                raise DragKitModelError(f"cannot convert the LoRA `{name}` to kohya keys ({alpha_key} is missing).")
            kohya[alpha_key] = torch.tensor(float(module.scaling[name] * module.r[name]))
    return {key: value.detach().float().cpu().contiguous() for key, value in kohya.items()}


def save_lora(model: DragModel, path: str | Path, metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Write the bundle's adapter to ``path`` (.safetensors, kohya keys), atomically.

    The safetensors metadata holds the rank, alpha, training settings, base-model / image / prompt
    hashes (for LoRAs trained here), the DragKit version and ``metadata``. An existing file is
    replaced only with ``overwrite``; one holding this very LoRA is left as it is.

    Raises:
        DragKitInputError: no adapter, the file exists (and is another LoRA) without ``overwrite``,
            or the folder cannot be written. Nothing is written then.
    """
    if model.adapter is None:
        raise DragKitInputError("this model has no trained LoRA to save; connect the LoRA Trainer's output.")
    path = Path(path)
    if path.suffix.lower() != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    record = model.adapter_weights or adapters.registered(model.unet, model.adapter)
    key = record.key if record is not None else model.adapter
    if path.exists() and not overwrite:
        if _file_metadata(path).get("dragkit_key") == key:
            logger.info("'%s' already holds this LoRA; not writing it again", path)
            return path
        raise DragKitInputError(f"'{path}' already exists; choose another save name or turn on overwrite.")
    check_writable_target(path, "save_name", overwrite=True)
    with model.active():  # puts the adapter back if the cache evicted it
        tensors = kohya_state_dict(model)
        config = model.unet.peft_config[model.adapter]
    info = {**(record.metadata if record is not None else {}), "rank": config.r, "alpha": config.lora_alpha,
            **(metadata or {}), "format": "kohya", "dragkit_adapter": model.adapter, "dragkit_key": key,
            "dragkit_version": dragkit_version()}
    info = {str(k): v if isinstance(v, str) else json.dumps(v, default=str) for k, v in info.items()}
    return atomic_write(path, safetensors_bytes(tensors, metadata=info), "save_name")


def _file_metadata(path: Path) -> dict:
    try:
        with safe_open(str(path), "pt") as handle:
            return handle.metadata() or {}
    except (SafetensorError, OSError):
        return {}


def load_lora(model: DragModel, path: str | Path, adapter_name: str | None = None) -> DragModel:
    """Load a LoRA file into the bundle's UNet as a named adapter; return a bundle that runs with it.

    Reads kohya keys (``lora_unet_*.lora_down/up.weight``, ``.alpha``: what :func:`save_lora` and
    most SD1.5 trainers write) and peft/diffusers keys (``[unet.]<module>.lora_A/B.weight``). Text
    encoder weights are ignored. The same file loaded twice is loaded once.
    """
    adapters.check_base(model)
    path = Path(path)
    if not path.is_file():
        raise DragKitModelError(f"LoRA file not found at '{path}'; put it in ComfyUI's models/loras folder.")
    try:
        with safe_open(str(path), "pt") as handle:
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as error:
        raise DragKitModelError(f"'{path.name}' is not a readable .safetensors LoRA ({error}); it may be truncated "
                                "or another kind of file: save or download it again.") from None
    bad = [key for key, value in tensors.items() if value.is_floating_point() and not torch.isfinite(value).all()]
    if bad:
        raise DragKitModelError(f"'{path.name}' holds NaN or infinite weights ({len(bad)} tensors, e.g. {bad[0]!r}); "
                                "the file is broken: train or download it again.")
    state, ranks, alphas = _peft_state(tensors, model, path.name)
    key = "file_" + hashlib.sha256(json.dumps([tensor_hash(v) for _, v in sorted(tensors.items())]).encode()).hexdigest()[:16]
    name = adapter_name or "dragkit_" + key
    if adapters.reuse(model, name, key):
        return adapters.attach_registered(model, name)
    rank = collections.Counter(ranks.values()).most_common(1)[0][0]
    alpha = collections.Counter(alphas.values()).most_common(1)[0][0]
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=sorted(ranks),
                        rank_pattern={re.escape(m): r for m, r in ranks.items() if r != rank},
                        alpha_pattern={re.escape(m): a for m, a in alphas.items() if a != alpha})
    parameters = adapters.add_adapter(model.unet, name, config)
    try:
        result = set_peft_model_state_dict(model.unet, state, adapter_name=name)
        if getattr(result, "unexpected_keys", None):
            raise DragKitModelError(f"'{path.name}' has weights this UNet cannot take, e.g. {result.unexpected_keys[:2]}.")
    except RuntimeError as error:  # shape mismatch: another architecture
        adapters.delete_adapter(model.unet, name)
        raise DragKitModelError(f"'{path.name}' does not fit the model `{model.name}` (was it trained on another "
                                f"model?): {str(error).splitlines()[0]}") from None
    except DragKitModelError:
        adapters.delete_adapter(model.unet, name)
        raise
    for parameter in parameters:
        parameter.data = parameter.data.float()
    return adapters.attach(model, name, key, {**_file_metadata(path), "source_file": path.name})


def _peft_state(tensors: dict[str, torch.Tensor], model: DragModel, source: str):
    """kohya or peft keys -> ({'<module>.lora_A.weight': ...}, {module: rank}, {module: alpha})."""
    modules = {n.replace(".", "_"): n for n, m in model.unet.named_modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.Conv2d, LoraLayer)) and ".lora_" not in n
               and not n.endswith("base_layer")}
    state, ranks, alphas = {}, {}, {}
    for key, value in tensors.items():
        if key.startswith(("lora_te", "text_encoder")):
            continue  # text-encoder LoRA: DragKit has no text encoder
        if key.startswith(KOHYA_PREFIX):
            flat, _, kind = key[len(KOHYA_PREFIX):].partition(".")
            module = modules.get(flat)
            kind = {"lora_down.weight": "lora_A.weight", "lora_up.weight": "lora_B.weight"}.get(kind, kind)
        else:
            module, _, kind = key.removeprefix("unet.").partition(".lora_")
            kind = "lora_" + kind
            if kind not in ("lora_A.weight", "lora_B.weight") or module not in modules.values():
                module = None
        if module is None:
            raise DragKitModelError(f"'{source}' has a weight DragKit cannot place in this UNet: {key!r}; is it an "
                                    "SD1.5 UNet LoRA (kohya or diffusers keys)?")
        if kind == "alpha":
            alphas[module] = float(value)
        elif kind in ("lora_A.weight", "lora_B.weight"):
            state[f"{module}.{kind}"] = value
            if kind == "lora_A.weight":
                ranks[module] = value.shape[0]
        else:
            raise DragKitModelError(f"'{source}' holds {key!r}, which is not a plain LoRA weight (LoCon/LoHa/DoRA "
                                    "files are not supported).")
    if not ranks:
        raise DragKitModelError(f"'{source}' holds no UNet LoRA weights DragKit can read.")
    alphas = {module: alphas.get(module, float(rank)) for module, rank in ranks.items()}
    return state, ranks, alphas
