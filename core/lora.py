"""Per-image LoRA fine-tuning (DragDiffusion ``utils/lora_utils.py:train_lora``; GoodDrag's copy).

A LoRA on every attention projection of the UNet (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) is
trained to denoise the image's own latent, so a drag keeps the image's identity. Adapters are
added to the bundle's UNet through diffusers' peft integration (``unet.add_adapter``), as in
diffusers ``examples/dreambooth/train_dreambooth_lora.py``, and the returned bundle activates only
that adapter while it runs: the input bundle behaves exactly as before.

Adapters are named by a hash of everything that decides their weights (model, latent, prompt,
schedule, settings), so asking again for the same LoRA trains nothing. Saving and loading LoRA
files: :mod:`.lora_files`; which adapter a shared UNet runs: :mod:`.adapters`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import math
import weakref
from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from peft import LoraConfig

from . import adapters, precision
from .errors import DragKitInputError, DragKitNumericalError
from .model import DragModel

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, dict], None]
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
# Settings that change how much memory training takes, not what it learns.
MEMORY_SETTINGS = ("gradient_checkpointing", "micro_batch_size")


@dataclasses.dataclass(frozen=True)
class LoraTrainingConfig:
    """LoRA training settings. Defaults: DragDiffusion's (``drag_ui.py``, ``utils/lora_utils.py``).

    Attributes:
        steps: optimisation steps (80; GoodDrag 70). At least 1.
        rank: LoRA rank (16); alpha equals the rank, so the LoRA's scale is 1.
        learning_rate: AdamW learning rate (5e-4), constant, no warm-up.
        batch_size: copies of the image latent per step, each with its own noise and timestep (4).
        seed: seed of the noise and timesteps (a private generator; nothing global is seeded).
        betas, weight_decay, eps: AdamW settings (0.9/0.999, 1e-2, 1e-8).
        target_modules: attention projections that get a LoRA (q, k, v, out of every attention).
        gradient_checkpointing: recompute activations in the backward pass: less memory, slower.
        mixed_precision: run the UNet under autocast with a loss scaler (:mod:`.precision`: fp16,
            or bf16 for bf16 weights); the LoRA weights stay float32. No effect for float32
            weights on the CPU.
        micro_batch_size: run the batch this many copies at a time and accumulate the gradients
            (less memory, the same step within float rounding); ``None`` = all at once.
    """

    steps: int = 80
    rank: int = 16
    learning_rate: float = 5e-4
    batch_size: int = 4
    seed: int = 0
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 1e-2
    eps: float = 1e-8
    target_modules: tuple[str, ...] = LORA_TARGETS
    gradient_checkpointing: bool = False
    mixed_precision: bool = True
    micro_batch_size: int | None = None

    def __post_init__(self):
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        for name, hint in (("steps", "DragDiffusion trains 80 steps, GoodDrag 70"), ("rank", "the papers use 16"),
                           ("batch_size", "the papers use 4")):
            if getattr(self, name) < 1:
                raise DragKitInputError(f"`{name}` must be at least 1, got {getattr(self, name)}; {hint}.")
        if not self.learning_rate > 0 or not math.isfinite(self.learning_rate):
            raise DragKitInputError(f"`learning_rate` must be positive, got {self.learning_rate}; the papers use 5e-4.")
        if len(self.betas) != 2 or not all(0 <= beta < 1 for beta in self.betas):
            raise DragKitInputError(f"`betas` must be two numbers in [0, 1), got {self.betas}; the default is (0.9, 0.999).")
        if self.weight_decay < 0 or not self.eps > 0:
            raise DragKitInputError(f"`weight_decay` must be >= 0 and `eps` > 0, got {self.weight_decay} and {self.eps}.")
        if self.micro_batch_size is not None and self.micro_batch_size < 1:
            raise DragKitInputError(f"`micro_batch_size` must be at least 1 (or None), got {self.micro_batch_size}.")
        if not self.target_modules or not all(isinstance(t, str) and t for t in self.target_modules):
            raise DragKitInputError(f"`target_modules` must name modules, got {self.target_modules}; e.g. {LORA_TARGETS}.")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "LoraTrainingConfig":
        return cls(**{f.name: values[f.name] for f in dataclasses.fields(cls) if f.name in values})


DRAGDIFFUSION_LORA = LoraTrainingConfig()
"""DragDiffusion: 80 steps, trained with the user's prompt (the one used for the drag)."""
GOODDRAG_LORA = LoraTrainingConfig(steps=70)
"""GoodDrag: 70 steps. The preset means "use an EMPTY prompt" (``bench_gooddrag.py`` trains and drags
with ``''``): connect an empty CLIP Text Encode, here and downstream."""
LORA_PRESETS = {"DragDiffusion": DRAGDIFFUSION_LORA, "GoodDrag": GOODDRAG_LORA}


def preset_config(preset: str, seed: int = 0, gradient_checkpointing: bool = False, **custom) -> LoraTrainingConfig:
    """A preset by name with ``seed`` and ``gradient_checkpointing`` set, or ``"custom"`` built from ``custom``."""
    if preset == "custom":
        return LoraTrainingConfig(seed=seed, gradient_checkpointing=gradient_checkpointing, **custom)
    if preset not in LORA_PRESETS:
        raise DragKitInputError(f"`preset` must be one of {', '.join(map(repr, [*LORA_PRESETS, 'custom']))}; "
                                f"got {preset!r}.")
    return dataclasses.replace(LORA_PRESETS[preset], seed=seed, gradient_checkpointing=gradient_checkpointing)


# ------------------------------------------------------------------------------------ names
_fingerprints: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


def model_fingerprint(model: DragModel) -> str:
    """A short hash of the UNet's base weights (64 evenly spaced values of every tensor), once per UNet."""
    unet = model.unet
    if unet not in _fingerprints:
        digest = hashlib.sha256()
        with torch.no_grad():
            for name, parameter in unet.named_parameters():
                if "lora_" in name:  # adapters are not part of the model's identity
                    continue
                flat = parameter.detach().reshape(-1)
                digest.update(flat[:: max(1, flat.numel() // 64)][:64].float().cpu().numpy().tobytes())
        _fingerprints[unet] = digest.hexdigest()[:16]
    return _fingerprints[unet]


def tensor_hash(tensor: torch.Tensor) -> str:
    """A short hash of a tensor's shape and float32 values."""
    digest = hashlib.sha256(str(tuple(tensor.shape)).encode())
    digest.update(tensor.detach().float().cpu().contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def lora_key(model: DragModel, latent: torch.Tensor, embeds: torch.Tensor, config: LoraTrainingConfig) -> str:
    """The default adapter name: a hash of everything that decides the LoRA's weights."""
    # Checkpointing and micro-batches trade memory, not the result.
    settings = {k: v for k, v in config.to_dict().items() if k not in MEMORY_SETTINGS}
    parts = [model_fingerprint(model), model.scheduler_config, tensor_hash(latent), tensor_hash(embeds), settings]
    return "dragkit_" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


@contextlib.contextmanager
def _seeded(seed: int, device: torch.device):
    """Torch's global generators seeded with ``seed`` inside, and as they were after: so the same seed gives
    the same LoRA whatever ran before, and nothing else's randomness changes."""
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


# ---------------------------------------------------------------------------------- training
def train_lora(
    model: DragModel,
    latent: torch.Tensor,
    prompt_embeds: torch.Tensor | None = None,
    config: LoraTrainingConfig = DRAGDIFFUSION_LORA,
    adapter_name: str | None = None,
    callback: ProgressCallback | None = None,
) -> DragModel:
    """Fine-tune a LoRA on one image latent; return a bundle over the same UNet that runs with it.

    Args:
        model: the base bundle (``adapter`` None). Its behaviour does not change: the adapter is
            added to its UNet but only the returned bundle activates it.
        latent: ``(1, C, h, w)`` scaled image latent (float32).
        prompt_embeds: ``(1, L, D)``; ``None`` for the model's default. GoodDrag: the empty prompt.
        config: :data:`DRAGDIFFUSION_LORA`, :data:`GOODDRAG_LORA` or your own.
        adapter_name: the adapter's name; ``None`` = :func:`lora_key` (content hash). If an adapter
            made from the same inputs is loaded already, it is returned without training.
        callback: ``callback(step, total, {"loss": ...})`` after each step; it may raise to cancel,
            and the half-trained adapter is then removed (the UNet is as before).
    """
    model.check_latent(latent)
    if latent.shape[0] != 1:
        raise DragKitInputError(f"`latent` has batch {latent.shape[0]}; train the LoRA on one image (batch 1).")
    adapters.check_base(model)
    embeds = model.prompt_embeds(prompt_embeds, 1)
    key = lora_key(model, latent, embeds, config)
    name = adapter_name or key
    if adapters.reuse(model, name, key):
        logger.info("LoRA %s is loaded already; not training", name)
        return adapters.attach_registered(model, name)

    noise_schedule = DDPMScheduler.from_config(model.scheduler_config)
    prediction_type = noise_schedule.config.prediction_type
    if prediction_type not in ("epsilon", "v_prediction"):
        raise DragKitInputError(f"the model's prediction_type is {prediction_type!r}; DragKit trains "
                                "LoRAs for 'epsilon' and 'v_prediction' models.")
    unet = model.unet
    trained = model.with_adapter(name)
    with _seeded(config.seed, model.device):  # peft draws the initial weights from torch's global generator
        parameters = adapters.add_adapter(unet, name, LoraConfig(
            r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",  # DragDiffusion: A ~ N(0, 1/r), B = 0
            target_modules=list(config.target_modules)))
    frozen = [p for p in unet.parameters() if p.requires_grad]
    device = model.device
    # Noise and timesteps are drawn where they are used: a draw on the CPU would be copied over,
    # and that copy waits for the GPU.
    generator = torch.Generator(device).manual_seed(config.seed)
    clean = latent.to(device, torch.float32).expand(config.batch_size, -1, -1, -1)
    micro = config.micro_batch_size or (1 if model.low_vram else config.batch_size)
    compute_dtype = precision.compute_dtype(model.dtype, device, config.mixed_precision)
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=config.betas,
                                  weight_decay=config.weight_decay, eps=config.eps, **precision.optimizer_options(device))
    scaler = precision.grad_scaler(device, compute_dtype)
    checkpointing = config.gradient_checkpointing or model.low_vram
    was_training, was_checkpointing = unet.training, unet.is_gradient_checkpointing
    completed = False
    losses: list[torch.Tensor] = []  # 0-d, on the device: read once at the end
    try:
        for parameter in frozen:  # only the LoRA learns
            parameter.requires_grad_(False)
        for parameter in parameters:
            parameter.requires_grad_(True)
        if checkpointing and not was_checkpointing:
            unet.enable_gradient_checkpointing()
        unet.train()
        with trained.active(trainable=True), torch.enable_grad():
            for step in range(config.steps):
                # 1. x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps, t ~ U{0, ..., T-1}, a fresh draw per copy
                noise = torch.randn(clean.shape, generator=generator, device=device)
                timesteps = torch.randint(0, noise_schedule.config.num_train_timesteps, (config.batch_size,),
                                          generator=generator, device=device)
                noisy = noise_schedule.add_noise(clean, noise, timesteps)
                # 2. target: eps, or v = sqrt(a_t) eps - sqrt(1 - a_t) x_0 for v-prediction models
                if prediction_type == "epsilon":
                    target = noise
                else:
                    target = noise_schedule.get_velocity(clean, noise, timesteps)
                # 3. loss = || f_theta(x_t, t, c) - target ||^2, one AdamW step on the LoRA weights
                #    (the batch in micro-batches, each weighted by its share of the mean)
                optimizer.zero_grad(set_to_none=True)
                loss = torch.zeros((), device=device)
                for first in range(0, config.batch_size, micro):
                    rows = slice(first, min(first + micro, config.batch_size))
                    copies = rows.stop - rows.start
                    with precision.autocast(device, compute_dtype):
                        prediction = unet(noisy[rows].to(model.dtype), timesteps[rows],
                                          encoder_hidden_states=embeds.expand(copies, -1, -1)).sample
                    part = F.mse_loss(prediction.float(), target[rows]) * (copies / config.batch_size)
                    scaler.scale(part).backward()
                    loss = loss + part.detach()
                scaler.step(optimizer)
                scaler.update()
                losses.append(loss)
                if callback is not None:
                    callback(step + 1, config.steps, {"loss": loss})
        history = torch.stack(losses).tolist()
        finite = torch.stack([torch.isfinite(p).all() for p in parameters]).all()
        if not all(math.isfinite(value) for value in history) or not bool(finite):
            raise DragKitNumericalError("LoRA training produced NaN or infinite values, so it stopped and the "
                                        f"adapter was removed; lower learning_rate (the papers use 5e-4, got "
                                        f"{config.learning_rate:g}) or check the latent.")
        completed = True
    finally:
        unet.train(was_training)
        if checkpointing and not was_checkpointing:
            unet.disable_gradient_checkpointing()
        for parameter in parameters:
            parameter.requires_grad_(False)
            parameter.grad = None
        for parameter in frozen:
            parameter.requires_grad_(True)
        if not completed:
            adapters.delete_adapter(unet, name)
    logger.info("trained LoRA %s: %d steps, loss %.4f -> %.4f", name, config.steps, history[0], history[-1])
    metadata = {**{k: v for k, v in config.to_dict().items() if k not in (*MEMORY_SETTINGS, "mixed_precision")},
                "alpha": config.rank, "base_model_hash": model_fingerprint(model), "image_hash": tensor_hash(latent),
                "prompt_hash": tensor_hash(embeds), "final_loss": round(history[-1], 6)}
    return adapters.attach(model, name, key, metadata)
