"""Denoising an edited latent back to an image latent, with the source image as reference.

DragDiffusion's final stage (``ui_utils.py:run_drag``): denoise the batch ``[source z_t, edited z_t]``
from the inverted step to 0 with DDIM and no classifier-free guidance, while the edited branch's
decoder self-attention reads the source branch's keys and values (MasaCtrl), so the edited image
keeps the source's identity and texture.
"""

from __future__ import annotations

import contextlib
from typing import Callable

import torch

from .keep import blend
from .attention import ReferenceAttention, ReferenceAttentionConfig, attention_edit, self_attention_layers
from .errors import check_stage_finite
from .inversion import Inversion
from .model import DragModel

ProgressCallback = Callable[[int, int, dict], None]


def reference_sample(
    model: DragModel,
    inversion: Inversion,
    prompt_embeds: torch.Tensor | None = None,
    reference: ReferenceAttentionConfig | None = None,
    callback: ProgressCallback | None = None,
    keep: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Denoise ``inversion.start`` from ``inversion.t`` to 0.

    Args:
        model: the bundle (its LoRA adapter, if any, is active).
        inversion: the trajectory; its ``edited`` latent (or the inverted source) is denoised.
        prompt_embeds: ``(1, L, D)``; ``None`` uses the inversion's embedding.
        reference: where/when the edited branch reads the source K/V; default: DragDiffusion's.
        callback: ``callback(step, total, info)`` after each DDIM step; it may raise to cancel.
            ``info["estimate"]`` is the edited branch's predicted x0, ``(1, C, h, w)`` float32.
        keep: ``(1, 1, h, w)`` weights (:func:`..keep.keep_weights`): after every step the edited
            branch is blended with the source trajectory where they are below 1; ``None`` = off.

    Returns:
        ``(edited, source)`` clean latents ``(B, C, h, w)`` float32; ``source`` is the source
        branch's reconstruction, or ``None`` when the reference branch is disabled.
    """
    reference = reference or ReferenceAttentionConfig()
    start = inversion.start.to(model.device, torch.float32)
    batch = start.shape[0]
    if prompt_embeds is None:
        prompt_embeds = inversion.prompt_embeds
    scheduler = model.scheduler(inversion.num_steps)
    timesteps = inversion.denoise_timesteps

    if reference.enabled:
        x = torch.cat([inversion.source.to(start), start])
        embeds = model.prompt_embeds(prompt_embeds, 2 * batch)
        edit = ReferenceAttention(reference.start_step)
        layers = reference.layer_indices(len(self_attention_layers(model.unet)))
        context = attention_edit(model.unet, edit, layers)
    else:
        x = start
        embeds = model.prompt_embeds(prompt_embeds, batch)
        edit, context = None, contextlib.nullcontext()

    with torch.no_grad(), context:
        for step, t in enumerate(timesteps):
            if edit is not None:
                edit.step = step
            noise = model.predict_noise(x, t, embeds)
            output = scheduler.step(noise, t, x)
            x = output.prev_sample.float()
            if keep is not None:
                x[len(x) - batch:] = blend(x[len(x) - batch:], inversion.source_after(t), keep.to(x.device))
            if callback is not None:
                # The edited branch's predicted x0 (its first image), for live previews.
                estimate = output.pred_original_sample[len(x) - batch:][:1].float()
                callback(step + 1, len(timesteps), {"timestep": t, "estimate": estimate})
    check_stage_finite(x, "DDIM sampling", "the edited latent it started from probably diverged (lower the drag's "
                       "learning_rate) or the UNet overflowed in fp16")
    if reference.enabled:
        return x[batch:], x[:batch]
    return x, None

