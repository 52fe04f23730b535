"""The LoRA adapters of a shared UNet: which one runs, switched only when it changes, and how many stay.

Every DragKit bundle over one UNet shares its peft adapters (one per trained or loaded LoRA). Two
costs would grow with a long session if left to peft's defaults:

- **Switching.** ``unet.set_adapter`` / ``enable_adapters`` walk every module of the UNet (some
  1,500 on SD1.5) and flip ``requires_grad`` on every LoRA weight. Here the LoRA layers are listed
  once per set of adapters and the state is changed only when a bundle asks for another one, so a
  stage of many UNet calls with one bundle switches at most once.
- **Memory.** Every adapter stays in the UNet until deleted. Here at most
  :func:`max_loaded_adapters` stay (least recently used evicted first: ``DRAGKIT_MAX_LORAS``, or
  :func:`set_max_loaded_adapters`); a bundle whose adapter was evicted puts it back from its own CPU
  copy when it runs next (see :class:`AdapterWeights`), so ComfyUI's cached outputs stay usable.

Adapter weights never require grad outside training (peft's ``set_adapter`` would make the active
one trainable, so every drag step would also compute LoRA gradients).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
import os
import re
import warnings
import weakref

import torch
from peft.tuners.tuners_utils import BaseTunerLayer

from .errors import DragKitInputError

logger = logging.getLogger(__name__)

MAX_LORAS_ENV = "DRAGKIT_MAX_LORAS"
# Adapters kept in a UNet at once. An SD1.5 rank-16 LoRA on q, k, v, out is 3.2 M float32 weights
# (12 MiB); four cover a graph that compares a few LoRAs without re-adding any.
DEFAULT_MAX_LOADED_ADAPTERS = 4


def _env_limit() -> int:
    value = os.environ.get(MAX_LORAS_ENV, "").strip()
    if not value:
        return DEFAULT_MAX_LOADED_ADAPTERS
    if not value.isdigit() or int(value) < 1:
        logger.warning("%s=%r is not a whole number >= 1; keeping %d LoRAs", MAX_LORAS_ENV, value,
                       DEFAULT_MAX_LOADED_ADAPTERS)
        return DEFAULT_MAX_LOADED_ADAPTERS
    return int(value)


_limit = {"adapters": _env_limit()}


def max_loaded_adapters() -> int:
    """How many LoRA adapters a UNet keeps at most (``DRAGKIT_MAX_LORAS``, default 4)."""
    return _limit["adapters"]


def set_max_loaded_adapters(count: int) -> None:
    """Keep at most ``count`` adapters per UNet from now on (the next adapter added evicts the surplus)."""
    if not isinstance(count, int) or count < 1:
        raise DragKitInputError(f"the LoRA cache size must be a whole number >= 1, got {count!r}.")
    _limit["adapters"] = count


@dataclasses.dataclass(frozen=True, eq=False)
class AdapterWeights:
    """A CPU copy of one adapter and what it was made from, enough to add it back after eviction.

    Attributes:
        name: the adapter's name in the UNet.
        config: its ``peft.LoraConfig``.
        state: peft state dict (``<module>.lora_A.weight`` ...) as float32 CPU tensors.
        key: a hash of everything that decided the weights (two adapters with one key are the same).
        metadata: what the LoRA file records (training settings, hashes, source file).
    """

    name: str
    config: object
    state: dict
    key: str = ""
    metadata: dict = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class _UNetAdapters:
    layers: tuple[BaseTunerLayer, ...] | None = None  # None: list again on next use
    current: tuple[str | None, bool] | None = None  # (adapter, trainable) last applied; None: unknown
    used: collections.OrderedDict = dataclasses.field(default_factory=collections.OrderedDict)  # LRU order
    modules_touched: int = 0  # LoRA layers switched so far (tests count work with it, not time)
    weights: dict = dataclasses.field(default_factory=dict)  # loaded adapter name -> its AdapterWeights


_state: "weakref.WeakKeyDictionary[torch.nn.Module, _UNetAdapters]" = weakref.WeakKeyDictionary()


def _of(unet) -> _UNetAdapters:
    if unet not in _state:
        _state[unet] = _UNetAdapters()
    return _state[unet]


def loaded_adapters(unet) -> list[str]:
    """Names of the adapters in ``unet``, least recently used first."""
    names = list(getattr(unet, "peft_config", None) or {})
    order = list(_of(unet).used)
    return [n for n in order if n in names] + [n for n in names if n not in order]


def modules_touched(unet) -> int:
    """How many LoRA layers adapter switching has changed in ``unet`` so far."""
    return _of(unet).modules_touched


def changed(unet) -> None:
    """Call after adding or deleting an adapter: relist the layers, freeze every adapter weight."""
    state = _of(unet)
    state.layers, state.current = None, None
    for name, parameter in unet.named_parameters():
        if "lora_" in name:
            parameter.requires_grad_(False)
    loaded = getattr(unet, "peft_config", None) or {}
    for name in [n for n in state.used if n not in loaded]:
        del state.used[name]
    for name in [n for n in state.weights if n not in loaded]:
        del state.weights[name]


def register(unet, weights: AdapterWeights) -> None:
    """Record what the loaded adapter ``weights.name`` of ``unet`` is (see :func:`registered`)."""
    _of(unet).weights[weights.name] = weights


def registered(unet, name: str) -> AdapterWeights | None:
    """What the loaded adapter ``name`` was made from, or ``None`` (not loaded, or not DragKit's)."""
    return _of(unet).weights.get(name)


def ensure_loaded(unet, name: str, weights: AdapterWeights | None) -> None:
    """Make sure adapter ``name`` in ``unet`` holds ``weights``: put it back if it was evicted, or if the
    name now holds another LoRA (a reused name); without ``weights`` it must simply be loaded."""
    loaded = getattr(unet, "peft_config", None) or {}
    if weights is None:
        if name not in loaded:
            raise DragKitInputError(f"Adapter `{name}` is not loaded in this model; run the LoRA node again.")
        return
    current = registered(unet, name)
    if name in loaded and current is not None and current.key == weights.key:
        return
    if name in loaded:
        delete_adapter(unet, name)
    restore_adapter(unet, weights)


def activate(unet, adapter: str | None, trainable: bool = False) -> None:
    """Make ``unet`` run with ``adapter`` (``None``: no adapter); a no-op when it already does.

    ``trainable`` makes the adapter's weights require grad (LoRA training only).
    """
    state = _of(unet)
    if adapter is not None:
        state.used[adapter] = None
        state.used.move_to_end(adapter)
    if state.current == (adapter, trainable):
        return
    if state.layers is None:
        state.layers = tuple(m for m in unet.modules() if isinstance(m, BaseTunerLayer))
    for layer in state.layers:
        if adapter is None:
            layer.enable_adapters(False)  # also stops grads on every adapter
        else:
            layer.enable_adapters(True)
            layer.set_adapter(adapter, inference_mode=not trainable)
    state.modules_touched += len(state.layers)
    state.current = (adapter, trainable)


def make_room(unet, keep: tuple[str, ...] = ()) -> list[str]:
    """Before adding an adapter: delete the least recently used until one more fits; returns their names."""
    evicted = []
    while True:
        names = [n for n in loaded_adapters(unet) if n not in keep]
        if len(loaded_adapters(unet)) < max_loaded_adapters() or not names:
            break
        oldest = names[0]
        unet.delete_adapters(oldest)
        evicted.append(oldest)
        changed(unet)
        logger.info("evicted LoRA adapter %s (keeping at most %d)", oldest, max_loaded_adapters())
    return evicted


def snapshot(unet, name: str, key: str, metadata: dict) -> AdapterWeights:
    """A CPU copy of adapter ``name`` of ``unet`` (for :func:`restore_adapter`), registered as what it is."""
    from peft import get_peft_model_state_dict

    state = get_peft_model_state_dict(unet, adapter_name=name)
    weights = AdapterWeights(name, unet.peft_config[name],
                             {k: v.detach().float().cpu().clone() for k, v in state.items()}, key, metadata)
    register(unet, weights)
    return weights


def add_adapter(unet, name: str, config) -> list[torch.nn.Parameter]:
    """``unet.add_adapter`` after making room for it under :func:`max_loaded_adapters`; returns the
    adapter's parameters, float32 and frozen.

    peft draws the initial weights from torch's global generators; their state is put back after,
    so adding an adapter never changes what a later unseeded draw gives.
    """
    make_room(unet)
    device = next(unet.parameters()).device
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if device.type == "cuda" else []
    try:
        with torch.random.fork_rng(devices=devices), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*multiple adapters.*")  # one per image is the design
            unet.add_adapter(config, adapter_name=name)
    finally:
        changed(unet)
    _of(unet).used[name] = None
    return float32_parameters(unet, name)


def float32_parameters(unet, name: str) -> list[torch.nn.Parameter]:
    """Adapter ``name``'s parameters cast to float32 (as diffusers' ``cast_training_params``: trainable
    weights in fp32 even with an fp16 UNet), frozen."""
    parameters = [p for n, p in unet.named_parameters() if f".{name}." in n]
    for parameter in parameters:
        parameter.data = parameter.data.float()
        parameter.requires_grad_(False)
    return parameters


def delete_adapter(unet, name: str) -> None:
    """Remove adapter ``name`` (a failed or cancelled one) and freeze what is left."""
    if name in (getattr(unet, "peft_config", None) or {}):
        unet.delete_adapters(name)
    changed(unet)


def restore_adapter(unet, weights: AdapterWeights) -> None:
    """Put an evicted adapter back from its CPU copy (evicting the least recently used if needed)."""
    from peft import set_peft_model_state_dict

    add_adapter(unet, weights.name, weights.config)
    device = next(unet.parameters()).device
    set_peft_model_state_dict(unet, {k: v.to(device) for k, v in weights.state.items()}, adapter_name=weights.name)
    float32_parameters(unet, weights.name)
    changed(unet)
    register(unet, weights)
    logger.info("put back evicted LoRA adapter %s", weights.name)


# ------------------------------------------------------------------- a DragModel and its adapter
def check_base(model) -> None:
    """Refuse a bundle that already runs a LoRA: DragKit applies one at a time."""
    if model.adapter is not None:
        raise DragKitInputError(f"the model already runs the LoRA `{model.adapter}`; connect the model from before "
                                "the LoRA Trainer / Loader (DragKit applies one LoRA at a time).")


def reuse(model, name: str, key: str) -> bool:
    """True when adapter ``name`` is loaded and was made from ``key``; an error when the name is taken."""
    if not re.fullmatch(r"[A-Za-z0-9_]+", name):
        raise DragKitInputError(f"`adapter_name` must be letters, digits and '_', got {name!r}.")
    if name not in (getattr(model.unet, "peft_config", None) or {}):
        return False
    record = registered(model.unet, name)
    if record is not None and record.key == key:
        return True
    raise DragKitInputError(f"`adapter_name` {name!r} is already used by another LoRA in the model `{model.name}`; "
                            "choose another name or leave it empty.")


def attach(model, name: str, key: str, metadata: dict):
    """The bundle running the new adapter ``name``, with a CPU copy registered as made from ``key``."""
    return model.with_adapter(name, snapshot(model.unet, name, key, metadata))


def attach_registered(model, name: str):
    """The bundle running the already loaded adapter ``name``."""
    return model.with_adapter(name, registered(model.unet, name))
