"""Image prompt through IP-Adapter weights (DiffEditor's optional image prompt).

IP-Adapter (Ye et al., 2023) turns a CLIP-vision image embedding into a few extra tokens
(``image_proj``: linear + LayerNorm) and gives every cross-attention layer its own keys and values
for them (``to_k_ip``, ``to_v_ip``); the layer's output adds ``scale * attention(q, k_ip, v_ip)`` to
the text attention before the output projection (decoupled cross-attention). DiffEditor uses it
with scale 0.1 on denoising steps 10-19 (``MC-E/DragonDiffusion`` ``Sampler.edit``).

Files: the IP-Adapter SD1.5 layout, ``image_proj.{proj,norm}.{weight,bias}`` and
``ip_adapter.<k>.to_{k,v}_ip.weight``, where k numbers the UNet's attention processors in
``unet.attn_processors`` order and only the cross-attention ones (odd k) carry weights (the same
numbering as diffusers' ``_convert_ip_adapter_attn_to_diffusers``). ``.safetensors`` files hold
those keys flat; ``.bin`` files nest them in ``{"image_proj": ..., "ip_adapter": ...}``.

The adapter is never loaded into the UNet: :func:`image_prompt` wraps the cross-attention
processors only while a sampler runs and gives the originals back, and a per-batch scale lets the
sampler apply the prompt to the edited branch only.
"""

from __future__ import annotations

import contextlib
import dataclasses
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F
from diffusers.models.embeddings import ImageProjection
from safetensors.torch import load_file

from .errors import DragKitInputError, DragKitModelError

# DiffEditor's image-prompt schedule (Sampler.edit): scale 0.1 on steps 10..19.
DIFFEDITOR_IMAGE_PROMPT_SCALE = 0.1
DIFFEDITOR_IMAGE_PROMPT_STEPS = (10, 19)


def cross_attention_processors(unet) -> dict[str, int]:
    """``{processor name: IP-Adapter key index}`` of the cross-attention layers, in file order."""
    indices, key_id = {}, 1
    for name in unet.attn_processors:
        if name.endswith("attn2.processor"):
            indices[name] = key_id
            key_id += 2
    return indices


def _read(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise DragKitModelError(f"IP-Adapter file not found at '{path}'; put it in ComfyUI's models/ipadapter folder.")
    if path.suffix == ".safetensors":
        return load_file(str(path))
    nested = torch.load(path, map_location="cpu", weights_only=True)
    return {f"{group}.{key}": value for group, values in nested.items() for key, value in values.items()}


class ImagePromptAdapter(torch.nn.Module):
    """The image projection and the per-layer image keys/values of an IP-Adapter, for one UNet."""

    def __init__(self, state: dict[str, torch.Tensor], unet, source: str = "the IP-Adapter"):
        super().__init__()
        proj = state.get("image_proj.proj.weight")
        if proj is None or "image_proj.norm.weight" not in state:
            raise DragKitModelError(f"{source} has no `image_proj.proj` / `image_proj.norm` weights: only the plain "
                                    "IP-Adapter SD1.5 layout (not Plus/FaceID) is supported.")
        cross_dim = state["image_proj.norm.weight"].shape[0]
        if cross_dim != unet.config.cross_attention_dim:
            raise DragKitModelError(f"{source} is for cross-attention size {cross_dim}, the model's is "
                                    f"{unet.config.cross_attention_dim}: use an IP-Adapter made for this base model.")
        self.num_tokens = proj.shape[0] // cross_dim
        self.image_proj = ImageProjection(image_embed_dim=proj.shape[1], cross_attention_dim=cross_dim,
                                          num_image_text_embeds=self.num_tokens)
        self.image_proj.load_state_dict({"image_embeds.weight": proj, "image_embeds.bias": state["image_proj.proj.bias"],
                                         "norm.weight": state["image_proj.norm.weight"],
                                         "norm.bias": state["image_proj.norm.bias"]})
        self.layers = torch.nn.ModuleDict()
        modules = dict(unet.named_modules())
        for name, index in cross_attention_processors(unet).items():
            key, value = state.get(f"ip_adapter.{index}.to_k_ip.weight"), state.get(f"ip_adapter.{index}.to_v_ip.weight")
            attn = modules[name.removesuffix(".processor")]
            if key is None or value is None or key.shape != (attn.to_k.out_features, cross_dim):
                raise DragKitModelError(f"{source} does not fit this UNet at {name} (key ip_adapter.{index}): was it "
                                        "made for another base model?")
            pair = torch.nn.ModuleDict({"to_k_ip": torch.nn.Linear(cross_dim, key.shape[0], bias=False),
                                        "to_v_ip": torch.nn.Linear(cross_dim, value.shape[0], bias=False)})
            pair.to_k_ip.weight.data.copy_(key)
            pair.to_v_ip.weight.data.copy_(value)
            self.layers[name.replace(".", "_")] = pair
        self.requires_grad_(False).eval()
        self.image_embed_dim = proj.shape[1]

    def tokens(self, image_embeds: torch.Tensor) -> torch.Tensor:
        """``(1, image_embed_dim)`` CLIP-vision image embedding -> ``(1, num_tokens, cross_dim)`` tokens."""
        if image_embeds.ndim != 2 or image_embeds.shape[-1] != self.image_embed_dim:
            raise DragKitInputError(f"the CLIP-vision embedding has shape {tuple(image_embeds.shape)}; this IP-Adapter "
                                    f"takes (1, {self.image_embed_dim}) (e.g. ViT-H for ip-adapter_sd15): pick the "
                                    "matching CLIP Vision model.")
        if not torch.isfinite(image_embeds).all():
            raise DragKitInputError("the CLIP-vision embedding contains NaN or Inf; re-encode the image prompt.")
        return self.image_proj(image_embeds[:1].float())


def load_image_prompt_adapter(path: str | Path, unet) -> ImagePromptAdapter:
    """Read an IP-Adapter SD1.5 file for ``unet`` (weights on the UNet's device, float32)."""
    return ImagePromptAdapter(_read(path), unet, source=f"'{Path(path).name}'").to(unet.device)


@dataclasses.dataclass
class ImagePrompt:
    """An image prompt for a sampler: the adapter, the image embedding, and when and how strongly.

    Attributes:
        adapter: from :func:`load_image_prompt_adapter`.
        image_embeds: ``(1, D)`` CLIP-vision image embedding (ComfyUI's CLIP Vision Encode).
        scale: weight of the image attention (DiffEditor 0.1).
        steps: ``(first, last)`` denoising steps, inclusive, that use it (DiffEditor 10..19).
    """

    adapter: ImagePromptAdapter
    image_embeds: torch.Tensor
    scale: float = DIFFEDITOR_IMAGE_PROMPT_SCALE
    steps: tuple[int, int] = DIFFEDITOR_IMAGE_PROMPT_STEPS

    def active_at(self, step: int) -> bool:
        return self.scale != 0 and self.steps[0] <= step <= self.steps[1]


class _Switch:
    """What the wrapped layers read: the image tokens and the scale of each batch element (None = off)."""

    def __init__(self, tokens: torch.Tensor):
        self.tokens = tokens
        self.scales: torch.Tensor | None = None


class ImagePromptAttnProcessor:
    """Runs the layer's own processor, then adds the image attention (IP-Adapter's decoupled cross-attention)."""

    def __init__(self, base, pair: torch.nn.ModuleDict, switch: _Switch):
        self.base, self.pair, self.switch = base, pair, switch

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None, *args, **kwargs):
        out = self.base(attn, hidden_states, encoder_hidden_states, attention_mask, temb, *args, **kwargs)
        scales = self.switch.scales
        if scales is None:
            return out
        batch, heads = hidden_states.shape[0], attn.heads
        tokens = self.switch.tokens.to(hidden_states.dtype).expand(batch, -1, -1)
        query = attn.to_q(hidden_states)
        key, value = self.pair.to_k_ip(tokens.float()).to(query.dtype), self.pair.to_v_ip(tokens.float()).to(query.dtype)
        split = lambda x: x.view(batch, -1, heads, x.shape[-1] // heads).transpose(1, 2)  # noqa: E731
        image = F.scaled_dot_product_attention(split(query), split(key), split(value))
        image = image.transpose(1, 2).reshape(batch, -1, query.shape[-1])
        # to_out(text + s * image) = to_out(text) + s * linear part of to_out(image); the difference
        # below is that linear part for any affine layer, a LoRA on to_out included.
        projection = attn.to_out[0]
        linear = projection(image) - projection(torch.zeros_like(image[:, :1]))
        return out + scales.to(out.dtype).view(-1, 1, 1) * linear / attn.rescale_output_factor


@contextlib.contextmanager
def image_prompt(unet, prompt: ImagePrompt) -> Iterator[_Switch]:
    """Wrap the cross-attention layers of ``unet`` with ``prompt`` while the block runs.

    Yields the switch: set ``switch.scales`` to a ``(B,)`` tensor before a UNet call to give each
    batch element its scale, or ``None`` for no image prompt. The UNet's processors come back on exit.
    """
    switch = _Switch(prompt.adapter.tokens(prompt.image_embeds.to(unet.device)))
    original = unet.attn_processors
    wrapped = dict(original)
    for name in cross_attention_processors(unet):
        wrapped[name] = ImagePromptAttnProcessor(original[name], prompt.adapter.layers[name.replace(".", "_")], switch)
    try:
        unet.set_attn_processor(wrapped)
        yield switch
    finally:
        unet.set_attn_processor(original)
