"""Self-attention edits installed as diffusers attention processors.

Drag methods keep the identity of the image by letting the edited branch's self-attention look at
the source image's keys and values: DragDiffusion and GoodDrag replace them (MasaCtrl's mutual
self-attention), DragonDiffusion concatenates a memory bank recorded during inversion. All of these
are an :class:`AttentionEdit` that rewrites ``(key, value)`` of chosen self-attention layers; the
processor below does the rest of attention exactly as diffusers does, calling ``attn.to_q`` /
``to_k`` / ``to_v`` / ``to_out`` so LoRA adapters on those projections keep working.

Processors go in by layer name through :func:`attention_edit`, a context manager that restores the
UNet's original processors on every exit, exceptions included. The sampling loop sets the step on
the edit explicitly (``edit.step = i``); nothing is inferred by counting calls.
"""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Iterator, Protocol, Sequence

import torch
import torch.nn.functional as F

from .errors import DragKitInputError

# DragDiffusion shares K/V in the last 6 of SD1.5's 16 transformer blocks (MasaCtrl start_layer=10).
DRAGDIFFUSION_REFERENCE_LAYERS = 6


class AttentionEdit(Protocol):
    """Rewrites the keys and values of one self-attention call."""

    step: int

    def edit_kv(
        self, layer_index: int, layer_name: str, key: torch.Tensor, value: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``key``/``value`` are ``(B, N, C)`` projections of the layer's input; return the pair to attend to."""


def self_attention_layers(unet) -> list[str]:
    """Names of the self-attention (``attn1``) modules in forward order: down, mid, then up blocks."""
    names = [name for name, _ in unet.named_modules() if name.endswith("attn1")]
    order = {"down_blocks": 0, "mid_block": 1, "up_blocks": 2}

    def forward_position(name: str):
        parts = name.split(".")
        numbers = tuple(int(p) for p in parts if p.isdigit())
        return (order.get(parts[0], 3), numbers)

    return sorted(names, key=forward_position)


class EditedSelfAttnProcessor:
    """Scaled dot-product attention whose keys/values pass through an :class:`AttentionEdit` first."""

    def __init__(self, edit: AttentionEdit, layer_index: int, layer_name: str):
        self.edit = edit
        self.layer_index = layer_index
        self.layer_name = layer_name

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        residual = hidden_states
        spatial = hidden_states.ndim == 4
        if spatial:
            batch, channels, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channels, height * width).transpose(1, 2)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states

        query = attn.to_q(hidden_states)
        key, value = self.edit.edit_kv(self.layer_index, self.layer_name, attn.to_k(context), attn.to_v(context))

        batch = query.shape[0]
        head_dim = query.shape[-1] // attn.heads

        def split_heads(x: torch.Tensor) -> torch.Tensor:  # (B, N, H*d) -> (B, H, N, d)
            return x.view(x.shape[0], -1, attn.heads, head_dim).transpose(1, 2)

        query, key, value = split_heads(query), split_heads(key), split_heads(value)
        if getattr(attn, "norm_q", None) is not None:
            query = attn.norm_q(query)
        if getattr(attn, "norm_k", None) is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[1](attn.to_out[0](out))
        if spatial:
            out = out.transpose(-1, -2).reshape(batch, channels, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


@contextlib.contextmanager
def attention_edit(unet, edit: AttentionEdit, layers: Sequence[int]) -> Iterator[list[str]]:
    """Install ``edit`` on the self-attention layers with the given forward-order indices.

    Yields the names of the edited layers. The UNet's own processors come back on exit.
    """
    names = self_attention_layers(unet)
    chosen = {index: names[index] for index in layers if 0 <= index < len(names)}
    original = unet.attn_processors
    replaced = dict(original)
    for index, name in chosen.items():
        replaced[name + ".processor"] = EditedSelfAttnProcessor(edit, index, name)
    try:
        unet.set_attn_processor(replaced)
        yield list(chosen.values())
    finally:
        unet.set_attn_processor(original)


@dataclasses.dataclass
class ReferenceAttentionConfig:
    """Where and when the edited branch attends to the source branch's keys and values.

    Attributes:
        enabled: ``False`` denoises the edited latent alone, with no reference branch.
        start_step: first denoising step (0-based) that shares K/V; DragDiffusion: 0 (every step).
        start_layer: first self-attention layer (forward order) that shares K/V; ``None`` means
            the last :data:`DRAGDIFFUSION_REFERENCE_LAYERS` (= 10 of 16 on SD1.5, as MasaCtrl's
            ``start_layer=10``).
    """

    enabled: bool = True
    start_step: int = 0
    start_layer: int | None = None

    def __post_init__(self):
        if self.start_step < 0:
            raise DragKitInputError(f"`start_step` must be 0 or more, got {self.start_step}.")
        if self.start_layer is not None and self.start_layer < 0:
            raise DragKitInputError(f"`start_layer` must be 0 or more (or None for the last 6), got {self.start_layer}.")

    def layer_indices(self, num_layers: int) -> list[int]:
        start = max(0, num_layers - DRAGDIFFUSION_REFERENCE_LAYERS) if self.start_layer is None else self.start_layer
        return list(range(start, num_layers))


class ReferenceAttention:
    """MasaCtrl mutual self-attention for a batch ``[source..., edited...]``.

    From ``start_step`` on, the edited half's queries attend to the source half's keys and values
    only (replaced, not concatenated); the source half runs unchanged.
    """

    def __init__(self, start_step: int = 0):
        self.start_step = start_step
        self.step = 0

    def edit_kv(self, layer_index, layer_name, key, value):
        if self.step < self.start_step:
            return key, value
        if key.shape[0] % 2:
            raise DragKitInputError("reference attention needs a batch of [source, edited] pairs (even batch).")
        half = key.shape[0] // 2
        return torch.cat([key[:half], key[:half]]), torch.cat([value[:half], value[:half]])


class MemoryBankAttention:
    """DragonDiffusion's cross-branch self-attention for a batch ``[source..., edited...]``.

    The source branch runs on the inversion trajectory's latent of the same step, so its keys and
    values are the memory bank of the image. From ``start_step`` on, the edited half attends to
    its own tokens plus the source's (``"concat"``, drag mode) or to the source's only
    (``"replace"``, move mode). The source half runs unchanged.
    """

    MODES = ("concat", "replace")

    def __init__(self, mode: str = "concat", start_step: int = 5):
        if mode not in self.MODES:
            raise DragKitInputError(f"memory bank mode must be one of {self.MODES}, got {mode!r}.")
        self.mode = mode
        self.start_step = start_step
        self.step = 0
        self.enabled = True

    def edit_kv(self, layer_index, layer_name, key, value):
        if not self.enabled or self.step < self.start_step:
            return key, value
        if key.shape[0] % 2:
            raise DragKitInputError("the memory bank needs a batch of [source, edited] pairs (even batch).")
        half = key.shape[0] // 2
        if self.mode == "replace":
            return torch.cat([key[:half], key[:half]]), torch.cat([value[:half], value[:half]])
        # Concatenating along tokens changes the edited half's length: pad the source half with
        # its own tokens (attending to duplicated keys and values is attention to the same set).
        edited_key = torch.cat([key[half:], key[:half]], dim=1)
        edited_value = torch.cat([value[half:], value[:half]], dim=1)
        source_key = torch.cat([key[:half], key[:half]], dim=1)
        source_value = torch.cat([value[:half], value[:half]], dim=1)
        return torch.cat([source_key, edited_key]), torch.cat([source_value, edited_value])


def decoder_self_attention_layers(unet) -> list[int]:
    """Forward-order indices (see :func:`self_attention_layers`) of the self-attention layers in up blocks."""
    return [i for i, name in enumerate(self_attention_layers(unet)) if name.startswith("up_blocks")]
