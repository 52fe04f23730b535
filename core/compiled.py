"""Optional compiled UNet blocks (``torch.compile``); off unless asked for.

The blocks are compiled one by one (every ``ResnetBlock2D`` and every transformer feed-forward),
not the whole UNet: DragKit reads features with hooks on the decoder blocks, stops the forward pass
early, swaps attention processors (reference attention, the memory bank) and switches LoRA adapters
on the attention projections, and a whole-UNet graph would break or recompile at each of these. The
compiled blocks see none of them. Shapes are fixed within a stage (batch 1 drag, batch 2 sampling,
batch 4 LoRA), so ``mode="reduce-overhead"`` may add CUDA graphs.

Compiling costs time at the first call of each shape; ``dragkit bench speed --variants compiled``
reports it apart from the stages. Nothing compiles by default: no GPU measurement has shown a gain yet.
"""

from __future__ import annotations

import torch
from diffusers.models.attention import FeedForward
from diffusers.models.resnet import ResnetBlock2D

COMPILED_BLOCKS = (ResnetBlock2D, FeedForward)
# The blocks of one kind share one ``forward``, and Dynamo compiles it once per input shape, grad mode
# and batch: SD1.5's resnets alone come in a few dozen. Its default limit (8) would send the rest back
# to eager code without a word.
COMPILE_CACHE_LIMIT = 256


def compile_unet_blocks(unet: torch.nn.Module, mode: str | None = None, backend: str = "inductor") -> int:
    """Compile the UNet's resnet and feed-forward blocks in place; returns how many. Process-wide, it
    raises Dynamo's per-function recompile limit to :data:`COMPILE_CACHE_LIMIT` and turns off donated
    buffers.

    Args:
        unet: a diffusers ``UNet2DConditionModel`` (shared: every bundle over it runs compiled after).
        mode: ``torch.compile`` mode (``None``, ``"reduce-overhead"`` for CUDA graphs, ``"max-autotune"``).
        backend: ``torch.compile`` backend (``"eager"`` only traces: the tests use it).
    """
    blocks = [module for module in unet.modules() if isinstance(module, COMPILED_BLOCKS)]
    dynamo = torch._dynamo.config
    for name in ("cache_size_limit", "recompile_limit"):  # the name changed across torch versions
        if hasattr(dynamo, name):
            setattr(dynamo, name, max(getattr(dynamo, name), COMPILE_CACHE_LIMIT))
    # DiffEditor's guidance takes two gradients from one graph (retain_graph), which compiled backward
    # passes refuse while they reuse ("donate") their saved buffers.
    if hasattr(torch._functorch.config, "donated_buffer"):
        torch._functorch.config.donated_buffer = False
    for block in blocks:
        block.compile(mode=mode, backend=backend, dynamic=False)
    return len(blocks)
