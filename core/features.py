"""UNet decoder feature taps.

Index convention (DragDiffusion ``drag_pipeline.py``): 0 = output of the mid block, k >= 1 = output
of ``up_blocks[k-1]`` (after its upsampler). For SD1.5 at 512x512: 1 -> 1280x16x16,
2 -> 1280x32x32, 3 -> 640x64x64 (the drag methods' default), 4 -> 320x64x64.

Features are read with forward hooks, never by replacing the UNet's forward; when the noise
prediction is not needed the forward pass stops right after the deepest requested block.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F

from .errors import DragKitInputError
from .model import DragModel

DRAGDIFFUSION_FEATURE_LAYERS = (3,)


class _StopForward(Exception):
    """Raised by a hook to end the UNet forward once every requested feature is captured."""


def feature_block(unet, index: int) -> torch.nn.Module:
    """The module whose output is feature ``index`` (0 = mid block, k = up_blocks[k-1])."""
    num_up = len(unet.up_blocks)
    if not 0 <= index <= num_up:
        raise DragKitInputError(
            f"feature layer {index} does not exist: this UNet has layers 0 (mid block) to {num_up} (last up block)."
        )
    return unet.mid_block if index == 0 else unet.up_blocks[index - 1]


@contextlib.contextmanager
def capture_features(unet, layers: Sequence[int], stop_early: bool) -> Iterator[dict[int, torch.Tensor]]:
    """Hooks that store the output of each requested block in the yielded dict.

    With ``stop_early`` the forward raises (and the caller swallows) after the deepest layer.
    """
    captured: dict[int, torch.Tensor] = {}
    deepest = max(layers)
    handles = []

    def make_hook(index: int):
        def hook(_module, _inputs, output):
            captured[index] = output[0] if isinstance(output, tuple) else output
            if stop_early and index == deepest:
                raise _StopForward

        return hook

    try:
        for index in sorted(set(layers)):
            handles.append(feature_block(unet, index).register_forward_hook(make_hook(index)))
        yield captured
    finally:
        for handle in handles:
            handle.remove()


def unet_feature_maps(
    model: DragModel,
    latent: torch.Tensor,
    timestep: int,
    embeds: torch.Tensor,
    layers: Sequence[int] = DRAGDIFFUSION_FEATURE_LAYERS,
    size: tuple[int, int] | None = None,
    return_noise: bool = False,
    mode: str = "bilinear",
) -> tuple[list[torch.Tensor], torch.Tensor | None]:
    """Decoder feature maps of ``latent`` at ``timestep``, one float32 ``(B, C_k, H, W)`` map per layer.

    Args: as :func:`unet_features`, plus ``mode``, the resampling (``"bilinear"`` or ``"nearest"``).
    """
    if not layers:
        raise DragKitInputError("`feature_layers` is empty; give at least one layer index (DragDiffusion: 3).")
    noise = None
    with model.active() as unet, capture_features(unet, layers, stop_early=not return_noise) as captured:
        try:
            noise = unet(latent.to(model.dtype), model.timestep(timestep), encoder_hidden_states=embeds).sample.float()
        except _StopForward:
            pass
    maps = [captured[index].float() for index in layers]
    if size is None:
        size = tuple(maps[0].shape[-2:])
    resize = {"mode": mode} if mode == "nearest" else {"mode": mode, "align_corners": False}
    maps = [m if tuple(m.shape[-2:]) == tuple(size) else F.interpolate(m, size=size, **resize) for m in maps]
    return maps, (noise if return_noise else None)


def unet_features(
    model: DragModel,
    latent: torch.Tensor,
    timestep: int,
    embeds: torch.Tensor,
    layers: Sequence[int] = DRAGDIFFUSION_FEATURE_LAYERS,
    size: tuple[int, int] | None = None,
    return_noise: bool = False,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Decoder features of ``latent`` at ``timestep``, concatenated over ``layers``.

    Args:
        model: the bundle (its adapter is active during the pass).
        latent: ``(B, C, h, w)`` float32 latent; gradients flow through when it requires them.
        timestep: DDPM timestep (0..999).
        embeds: ``(B, L, D)`` prompt embedding in the model's dtype.
        layers: feature indices in DragDiffusion's convention.
        size: ``(H, W)`` to resize every map to (bilinear); ``None`` keeps the first layer's size.
        return_noise: also run the rest of the UNet and return its epsilon prediction.

    Returns:
        ``(B, sum of channels, H, W)`` float32 features, and the ``(B, C, h, w)`` float32 epsilon
        prediction (``None`` unless asked for; without it the pass stops after the deepest layer).
    """
    maps, noise = unet_feature_maps(model, latent, timestep, embeds, layers, size, return_noise)
    return torch.cat(maps, dim=1), noise
