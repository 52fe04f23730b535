"""Per-image LoRA fine-tuning (DragDiffusion ``utils/lora_utils.py:train_lora``; GoodDrag's copy).

A LoRA on every attention projection of the UNet (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) is
trained to denoise the image's own latent, so a drag keeps the image's identity. Adapters are
added to the bundle's UNet through diffusers' peft integration (``unet.add_adapter``), as in
diffusers ``examples/dreambooth/train_dreambooth_lora.py``, and the returned bundle activates only
that adapter while it runs: the input bundle behaves exactly as before.

Adapters are named by a hash of everything that decides their weights (model, latent, prompt,
schedule, settings), so asking again for the same LoRA trains nothing.

Files use the kohya key layout, ``lora_unet_<diffusers module path, '.' -> '_'>.lora_down.weight``,
``.lora_up.weight`` and ``.alpha`` (converted with diffusers' ``convert_state_dict_to_kohya``). It is
the layout ComfyUI's LoraLoader maps for SD1.5 UNets (``comfy/lora.py`` ``model_lora_keys_unet``
builds ``lora_unet_{diffusers key}`` from ``comfy.utils.unet_to_diffusers``); the newer peft layout
(``unet.<module>.lora_A.weight``) is not among the keys ComfyUI maps for SD1.5.
"""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import hashlib
import importlib.metadata
import json
import logging
import math
import re
import weakref
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from diffusers import DDPMScheduler
from diffusers.utils import convert_state_dict_to_kohya
from peft import LoraConfig, get_peft_model_state_dict, set_peft_model_state_dict
from peft.tuners.lora import LoraLayer
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as safetensors_bytes

from . import adapters
from .errors import DragKitInputError, DragKitModelError, DragKitNumericalError
from .files import atomic_write, check_writable_target, confined_path
from .model import DragModel

logger = logging.getLogger(__name__)

ProgressCallback = Callable[[int, int, dict], None]
LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
KOHYA_PREFIX = "lora_unet_"


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
        mixed_precision: on CUDA, run the UNet under autocast (fp16, or bf16 for bf16 weights) with
            a gradient scaler; the LoRA weights stay float32. Ignored on the CPU (always float32).
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
    # Gradient checkpointing recomputes the same activations: it trades memory, not the result.
    settings = {k: v for k, v in config.to_dict().items() if k != "gradient_checkpointing"}
    parts = [model_fingerprint(model), model.scheduler_config, tensor_hash(latent), tensor_hash(embeds), settings]
    return "dragkit_" + hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _loaded(unet) -> dict:
    return getattr(unet, "peft_config", None) or {}


def _reuse(model: DragModel, name: str, key: str) -> bool:
    """True when adapter ``name`` is loaded and was made from ``key``; an error when the name is taken."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise DragKitInputError(f"`adapter_name` must be letters, digits and '_', got {name!r}.")
    if name not in _loaded(model.unet):
        return False
    record = adapters.registered(model.unet, name)
    if record is not None and record.key == key:
        return True
    raise DragKitInputError(f"`adapter_name` {name!r} is already used by another LoRA in the model `{model.name}`; "
                            "choose another name or leave it empty.")


def _check_base(model: DragModel) -> None:
    if model.adapter is not None:
        raise DragKitInputError(f"the model already runs the LoRA `{model.adapter}`; connect the model from before "
                                "the LoRA Trainer / Loader (DragKit applies one LoRA at a time).")


def _register(model: DragModel, name: str, key: str, metadata: dict) -> DragModel:
    return model.with_adapter(name, adapters.snapshot(model.unet, name, key, metadata))


def _existing(model: DragModel, name: str) -> DragModel:
    return model.with_adapter(name, adapters.registered(model.unet, name))


def _add_adapter(unet, name: str, config: LoraConfig) -> list[torch.nn.Parameter]:
    """Add an adapter (inactive outside :meth:`DragModel.active`); its parameters, float32 and frozen."""
    adapters.add_adapter(unet, name, config)
    parameters = [p for n, p in unet.named_parameters() if f".{name}." in n]
    for parameter in parameters:
        # diffusers' cast_training_params: trainable weights in fp32 even with an fp16 UNet.
        parameter.data = parameter.data.float()
        parameter.requires_grad_(False)
    return parameters


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
    _check_base(model)
    embeds = model.prompt_embeds(prompt_embeds, 1)
    key = lora_key(model, latent, embeds, config)
    name = adapter_name or key
    if _reuse(model, name, key):
        logger.info("LoRA %s is loaded already; not training", name)
        return _existing(model, name)

    unet = model.unet
    trained = model.with_adapter(name)
    with _seeded(config.seed, model.device):  # peft draws the initial weights from torch's global generator
        parameters = _add_adapter(unet, name, LoraConfig(
            r=config.rank, lora_alpha=config.rank, init_lora_weights="gaussian",  # DragDiffusion: A ~ N(0, 1/r), B = 0
            target_modules=list(config.target_modules)))
    frozen = [p for p in unet.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(parameters, lr=config.learning_rate, betas=config.betas,
                                  weight_decay=config.weight_decay, eps=config.eps)
    noise_schedule = DDPMScheduler.from_config(model.scheduler_config)
    prediction_type = noise_schedule.config.prediction_type
    generator = torch.Generator().manual_seed(config.seed)
    device = model.device
    clean = latent.to(device, torch.float32).expand(config.batch_size, -1, -1, -1)
    batch_embeds = embeds.expand(config.batch_size, -1, -1)
    amp = config.mixed_precision and device.type == "cuda"
    compute_dtype = (torch.bfloat16 if model.dtype == torch.bfloat16 else torch.float16) if amp else model.dtype
    scaler = torch.amp.GradScaler(device.type, enabled=device.type == "cuda" and compute_dtype == torch.float16)
    was_training, was_checkpointing = unet.training, unet.is_gradient_checkpointing
    completed = False
    losses = []
    try:
        for parameter in frozen:  # only the LoRA learns
            parameter.requires_grad_(False)
        for parameter in parameters:
            parameter.requires_grad_(True)
        if config.gradient_checkpointing and not was_checkpointing:
            unet.enable_gradient_checkpointing()
        unet.train()
        with trained.active(trainable=True), torch.enable_grad():
            for step in range(config.steps):
                # 1. x_t = sqrt(a_t) x_0 + sqrt(1 - a_t) eps, t ~ U{0, ..., T-1}, a fresh draw per copy
                noise = torch.randn(clean.shape, generator=generator).to(device)
                timesteps = torch.randint(0, noise_schedule.config.num_train_timesteps, (config.batch_size,),
                                          generator=generator).to(device)
                noisy = noise_schedule.add_noise(clean, noise, timesteps)
                # 2. target: eps, or v = sqrt(a_t) eps - sqrt(1 - a_t) x_0 for v-prediction models
                if prediction_type == "epsilon":
                    target = noise
                elif prediction_type == "v_prediction":
                    target = noise_schedule.get_velocity(clean, noise, timesteps)
                else:
                    raise DragKitInputError(f"the model's prediction_type is {prediction_type!r}; DragKit trains "
                                            "LoRAs for 'epsilon' and 'v_prediction' models.")
                # 3. loss = || f_theta(x_t, t, c) - target ||^2, one AdamW step on the LoRA weights
                with torch.autocast(device.type, dtype=compute_dtype, enabled=amp):
                    prediction = unet(noisy.to(model.dtype), timesteps, encoder_hidden_states=batch_embeds).sample
                loss = F.mse_loss(prediction.float(), target)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                losses.append(float(loss.detach()))
                if callback is not None:
                    callback(step + 1, config.steps, {"loss": losses[-1]})
        if not all(math.isfinite(loss) for loss in losses) or not all(torch.isfinite(p).all() for p in parameters):
            raise DragKitNumericalError("LoRA training produced NaN or infinite values, so it stopped and the "
                                        f"adapter was removed; lower learning_rate (the papers use 5e-4, got "
                                        f"{config.learning_rate:g}) or check the latent.")
        completed = True
    finally:
        unet.train(was_training)
        if config.gradient_checkpointing and not was_checkpointing:
            unet.disable_gradient_checkpointing()
        for parameter in parameters:
            parameter.requires_grad_(False)
            parameter.grad = None
        for parameter in frozen:
            parameter.requires_grad_(True)
        if not completed:
            adapters.delete_adapter(unet, name)
    logger.info("trained LoRA %s: %d steps, loss %.4f -> %.4f", name, config.steps, losses[0], losses[-1])
    metadata = {**{k: v for k, v in config.to_dict().items() if k not in ("gradient_checkpointing", "mixed_precision")},
                "alpha": config.rank, "base_model_hash": model_fingerprint(model), "image_hash": tensor_hash(latent),
                "prompt_hash": tensor_hash(embeds), "final_loss": round(losses[-1], 6)}
    return _register(model, name, key, metadata)


# ------------------------------------------------------------------------------------- files
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
    _check_base(model)
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
    if _reuse(model, name, key):
        return _existing(model, name)
    rank = collections.Counter(ranks.values()).most_common(1)[0][0]
    alpha = collections.Counter(alphas.values()).most_common(1)[0][0]
    config = LoraConfig(r=rank, lora_alpha=alpha, target_modules=sorted(ranks),
                        rank_pattern={re.escape(m): r for m, r in ranks.items() if r != rank},
                        alpha_pattern={re.escape(m): a for m, a in alphas.items() if a != alpha})
    parameters = _add_adapter(model.unet, name, config)
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
    return _register(model, name, key, {**_file_metadata(path), "source_file": path.name})


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
