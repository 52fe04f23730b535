"""The precision policy of DragKit's optimisation loops (the drag and the LoRA training).

- Weights stay as loaded: float16 on a GPU (:func:`.model.default_dtype`), bfloat16 where they are
  bf16, float32 on the CPU.
- Latents, the optimised latent, the LoRA weights and every loss stay float32.
- With mixed precision on, the UNet runs under ``torch.autocast`` in the *compute dtype*: half
  precision matrix products and convolutions, float32 norms and softmax (autocast's own op lists).
  The official DragDiffusion and GoodDrag code do the same (fp16 autocast and a GradScaler).
- float16 flushes magnitudes below 2^-24 (about 6e-8) to zero, and the drag's gradients reach the
  latent through every layer of the UNet, so the loss is scaled up before the backward pass and the
  gradient scaled back before the optimiser step (``torch.amp.GradScaler``, dynamic: a step whose
  gradient overflowed is skipped and the scale halved). bfloat16 has float32's exponent range and
  needs no scaling.
- On CUDA the optimisers are the fused ones: they take the scaler's overflow check on the device,
  where the unfused path reads it on the host after every step.

``tests/test_precision.py`` holds the half-precision gradient of the drag to the float32 one: cosine
similarity above :data:`HALF_GRADIENT_MIN_COSINE`.
"""

from __future__ import annotations

import contextlib

import torch

# How closely the drag's latent gradient under the half-precision policy follows float32's (cosine
# similarity; measured on the tiny test UNet, CPU: 0.9991 in float16, 0.9977 in bfloat16).
HALF_GRADIENT_MIN_COSINE = 0.99


def compute_dtype(weights: torch.dtype, device: torch.device, mixed_precision: bool = True) -> torch.dtype | None:
    """The dtype the UNet computes in under the policy, or ``None`` for no autocast.

    bf16 weights compute in bf16, fp16 weights in fp16, and float32 weights on a GPU in fp16 (as the
    official code); float32 weights on the CPU, or ``mixed_precision`` off, run as they are.
    """
    if not mixed_precision:
        return None
    if weights == torch.bfloat16:
        return torch.bfloat16
    if weights == torch.float16 or device.type == "cuda":
        return torch.float16
    return None


def autocast(device: torch.device, dtype: torch.dtype | None) -> contextlib.AbstractContextManager:
    """``torch.autocast`` in ``dtype`` on ``device``; a no-op for ``None``."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=dtype)


def grad_scaler(device: torch.device, dtype: torch.dtype | None) -> torch.amp.GradScaler:
    """A dynamic loss scaler, enabled only for float16 compute (a pass-through otherwise)."""
    return torch.amp.GradScaler(device.type, enabled=dtype == torch.float16)


def optimizer_options(device: torch.device) -> dict:
    """Keyword arguments for ``torch.optim.Adam``/``AdamW``: fused kernels on CUDA (one launch per
    step, and the scaler's overflow check stays on the device); the default implementation elsewhere."""
    return {"fused": True} if device.type == "cuda" else {}
