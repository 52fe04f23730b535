"""Per-image LoRA fine-tuning (DragDiffusion ``utils/lora_utils.py:train_lora``; GoodDrag's copy).

A LoRA on every attention projection of the UNet (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) is
trained to denoise the image's own latent, so a drag keeps the image's identity. Adapters are
added to the bundle's UNet through diffusers' peft integration under a content-hash name, and the
returned bundle activates only that adapter while it runs: the input bundle behaves exactly as
before, and asking again for the same model, latent, prompt and settings trains nothing.

Files are saved in the kohya key format (``lora_unet_<module>.lora_down.weight``, ``.lora_up``,
``.alpha``), converted with diffusers' ``convert_state_dict_to_kohya``; ComfyUI's LoraLoader and
other UIs read it.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from .errors import DragKitInputError, DragKitModelError
from .model import DragModel

ProgressCallback = Callable[[int, int, dict], None]
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")


@dataclasses.dataclass(frozen=True)
class LoraTrainingConfig:
    """LoRA training settings. Defaults: DragDiffusion's (``drag_ui.py``, ``lora_utils.py``).

    Attributes:
        steps: optimisation steps (80; GoodDrag 70).
        rank: LoRA rank (16); alpha equals the rank (scale 1).
        learning_rate: AdamW learning rate (5e-4), constant.
        batch_size: copies of the image latent per step, each with its own noise and timestep (4).
        seed: seed of the noise and timesteps.
        betas, weight_decay, eps: AdamW settings (0.9/0.999, 1e-2, 1e-8).
        gradient_checkpointing: trade compute for memory on small GPUs.
    """

    steps: int = 80
    rank: int = 16
    learning_rate: float = 5e-4
    batch_size: int = 4
    seed: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    gradient_checkpointing: bool = False

    def __post_init__(self):
        for name, ok in (("steps", self.steps >= 1), ("rank", self.rank >= 1), ("batch_size", self.batch_size >= 1),
                         ("learning_rate", self.learning_rate > 0)):
            if not ok:
                raise DragKitInputError(f"`{name}` must be {'positive' if name == 'learning_rate' else 'at least 1'}, "
                                        f"got {getattr(self, name)}.")


DRAGDIFFUSION_LORA = LoraTrainingConfig()
# GoodDrag trains 70 steps with the EMPTY prompt: pair this preset with an empty CLIP Text Encode.
GOODDRAG_LORA = LoraTrainingConfig(steps=70)

_fingerprints: dict[int, str] = {}


def model_fingerprint(model: DragModel) -> str:
    """A short hash of a few UNet weights, memoised per UNet object."""
    key = id(model.unet)
    if key not in _fingerprints:
        digest = hashlib.sha256()
        for name in ("conv_in.weight", "conv_out.weight", "time_embedding.linear_1.weight"):
            digest.update(model.unet.state_dict()[name].detach().float().cpu().numpy().tobytes())
        _fingerprints[key] = digest.hexdigest()[:16]
    return _fingerprints[key]


def tensor_hash(tensor: torch.Tensor) -> str:
    return hashlib.sha256(tensor.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def adapter_name(model: DragModel, latent: torch.Tensor, embeds: torch.Tensor, config: LoraTrainingConfig) -> str:
    """The adapter's name: a hash of everything that decides its weights."""
    digest = hashlib.sha256(json.dumps(
        [model_fingerprint(model), model.adapter, tensor_hash(latent), tensor_hash(embeds), dataclasses.asdict(config)]
    ).encode())
    return "dragkit_" + digest.hexdigest()[:16]


def train_lora(
    model: DragModel,
    latent: torch.Tensor,
    prompt_embeds: torch.Tensor | None = None,
    config: LoraTrainingConfig = DRAGDIFFUSION_LORA,
    callback: ProgressCallback | None = None,
) -> DragModel:
    """Fine-tune a LoRA on one image latent; return a bundle that runs with it.

    Args:
        model: the base bundle (not modified in behaviour; the adapter is added, inactive, to its UNet).
        latent: ``(1, C, h, w)`` scaled image latent.
        prompt_embeds: ``(1, L, D)``; ``None`` for the model's default.
        config: :data:`DRAGDIFFUSION_LORA`, :data:`GOODDRAG_LORA` or your own.
        callback: ``callback(step, total, {"loss": ...})`` after each step; may raise to cancel (the
            half-trained adapter is then removed).
    """
    model.check_latent(latent)
    if latent.shape[0] != 1:
        raise DragKitInputError(f"train the LoRA on one image; the latent has batch {latent.shape[0]}.")
    if model.adapter is not None:
        raise DragKitInputError("the model already runs a LoRA from the trainer; connect the base model instead.")
    embeds = model.prompt_embeds(prompt_embeds, 1)
    name = adapter_name(model, latent, embeds, config)
    unet = model.unet
    if name in (getattr(unet, "peft_config", None) or {}):
        return model.with_adapter(name)  # cached: same model, image, prompt and settings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*multiple adapters.*")  # one per image is the design
        unet.add_adapter(LoraConfig(r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",
                                    target_modules=list(LORA_TARGETS)), adapter_name=name)
    trained = model.with_adapter(name)
    parameters = [p for n, p in unet.named_parameters() if f".{name}." in n]
    for parameter in parameters:
        parameter.data = parameter.data.float()  # trainable weights in fp32 even with fp16 UNets
        parameter.requires_grad_(True)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=config.betas,
                                  weight_decay=config.weight_decay, eps=config.eps)
    noise_schedule = DDPMScheduler.from_config(model.scheduler_config)
    generator = torch.Generator().manual_seed(config.seed)
    clean = latent.to(model.device, torch.float32).expand(config.batch_size, -1, -1, -1)
    batch_embeds = embeds.expand(config.batch_size, -1, -1)
    autocast = (torch.autocast("cuda", dtype=model.dtype) if model.device.type == "cuda"
                else contextlib.nullcontext())
    if config.gradient_checkpointing:
        unet.enable_gradient_checkpointing()
    completed = False
    try:
        with trained.active():
            unet.train()
            for step in range(config.steps):
                noise = torch.randn(clean.shape, generator=generator).to(model.device)
                timesteps = torch.randint(0, noise_schedule.config.num_train_timesteps, (config.batch_size,),
                                          generator=generator).to(model.device)
                noisy = noise_schedule.add_noise(clean, noise, timesteps)
                target = (noise_schedule.get_velocity(clean, noise, timesteps)
                          if noise_schedule.config.prediction_type == "v_prediction" else noise)
                with autocast:
                    prediction = unet(noisy.to(model.dtype), timesteps, encoder_hidden_states=batch_embeds).sample
                loss = F.mse_loss(prediction.float(), target)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                if callback is not None:
                    callback(step + 1, config.steps, {"loss": float(loss.detach())})
        completed = True
    finally:
        unet.eval()
        if config.gradient_checkpointing:
            unet.disable_gradient_checkpointing()
        for parameter in parameters:
            parameter.requires_grad_(False)
        if not completed:
            unet.delete_adapters(name)
    return trained


# ------------------------------------------------------------------------------------- files
def save_lora(model: DragModel, path: str | Path, metadata: dict | None = None, overwrite: bool = False) -> Path:
    """Write the bundle's adapter to ``path`` (.safetensors, kohya keys), atomically.

    Raises:
        DragKitInputError: no adapter, the file exists and ``overwrite`` is off, or the folder is
            not writable. Nothing is written in that case.
    """
    if model.adapter is None:
        raise DragKitInputError("this model has no trained LoRA to save; connect the LoRA Trainer's output.")
    path = Path(path)
    if path.suffix != ".safetensors":
        path = path.with_name(path.name + ".safetensors")
    if path.exists() and not overwrite:
        raise DragKitInputError(f"'{path}' already exists; choose another save name or turn on overwrite.")
    folder = path.parent
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise DragKitInputError(f"cannot write to '{folder}' ({error.strerror}); choose another folder.") from None
    if not os.access(folder, os.W_OK):
        raise DragKitInputError(f"cannot write to '{folder}'; check its permissions or choose another folder.")
    state = get_peft_model_state_dict(model.unet, adapter_name=model.adapter)
    kohya = convert_state_dict_to_kohya({"unet." + key: value for key, value in state.items()})
    tensors = {key: value.detach().float().cpu().contiguous() for key, value in kohya.items()}
    info = {"dragkit_adapter": model.adapter, "rank": str(model.unet.peft_config[model.adapter].r),
            **{k: str(v) for k, v in (metadata or {}).items()}}
    handle, temporary = tempfile.mkstemp(prefix=".dragkit_lora_", suffix=".tmp", dir=folder)
    os.close(handle)
    try:
        save_file(tensors, temporary, metadata=info)
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def load_lora(model: DragModel, path: str | Path, adapter_name: str | None = None) -> DragModel:
    """Load a LoRA file saved by :func:`save_lora` (kohya keys) into the bundle's UNet; return a bundle using it."""
    path = Path(path)
    if not path.is_file():
        raise DragKitModelError(f"LoRA file not found at '{path}'; put it in ComfyUI's models/loras folder.")
    tensors = load_file(str(path))
    names = {name.replace(".", "_"): name for name, _ in model.unet.named_modules() if name.endswith(LORA_TARGETS)}
    state, rank, alpha = {}, None, None
    for key, value in tensors.items():
        if not key.startswith("lora_unet_"):
            continue
        module, _, kind = key[len("lora_unet_"):].partition(".")
        if module not in names:
            raise DragKitModelError(f"'{path.name}' has weights for '{module}', which this UNet does not have; "
                                    "was it trained on another model?")
        if kind == "alpha":
            alpha = float(value)
        elif kind == "lora_down.weight":
            state[names[module] + ".lora_A.weight"] = value
            rank = value.shape[0]
        elif kind == "lora_up.weight":
            state[names[module] + ".lora_B.weight"] = value
    if not state:
        raise DragKitModelError(f"'{path.name}' holds no UNet LoRA weights DragKit can read.")
    name = adapter_name or "dragkit_file_" + tensor_hash(next(iter(state.values())))
    if name not in (getattr(model.unet, "peft_config", None) or {}):
        modules = {key.split(".lora_")[0] for key in state}
        targets = [target for target in LORA_TARGETS if any(m.endswith("." + target) for m in modules)]
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")
            model.unet.add_adapter(LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=targets), adapter_name=name)
        set_peft_model_state_dict(model.unet, {k: v.to(model.device) for k, v in state.items()}, adapter_name=name)
    return model.with_adapter(name)
