"""Tiny models for CPU tests, built from configs in the tests (seconds, no downloads)."""

from __future__ import annotations

import pytest
import torch
from diffusers import UNet2DConditionModel

from dragkit.core.model import DragModel

# A two-level SD-style UNet: cross-attention in every block, 32/64 channels, 16-wide text.
TINY_UNET_CONFIG = dict(
    sample_size=8,
    in_channels=4,
    out_channels=4,
    block_out_channels=(32, 64),
    layers_per_block=1,
    down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
    cross_attention_dim=16,
    attention_head_dim=2,
    norm_num_groups=32,  # LDM UNets always use 32 groups
)

# The same architecture described the LDM way, for single-file conversion.
TINY_LDM_CONFIG = {
    "model": {
        "params": {
            "unet_config": {
                "params": {
                    "in_channels": 4,
                    "out_channels": 4,
                    "model_channels": 32,
                    "attention_resolutions": [1, 2],
                    "num_res_blocks": 1,
                    "channel_mult": [1, 2],
                    "num_heads": 2,
                    "transformer_depth": 1,
                    "context_dim": 16,
                }
            },
            "first_stage_config": {"params": {"ddconfig": {"ch_mult": [1, 2, 4, 4]}}},
        }
    }
}


def tiny_unet(seed: int = 0) -> UNet2DConditionModel:
    torch.manual_seed(seed)
    return UNet2DConditionModel(**TINY_UNET_CONFIG).eval().requires_grad_(False)


def tiny_embeds(seed: int = 1) -> torch.Tensor:
    return torch.randn(1, 4, 16, generator=torch.Generator().manual_seed(seed))


def make_tiny_model(seed: int = 0) -> DragModel:
    return DragModel(unet=tiny_unet(seed), latent_scale=0.5, default_embeds=tiny_embeds(), name="tiny")


def smooth_latent(seed: int = 7, size: int = 16) -> torch.Tensor:
    """A smooth (1, 4, size, size) latent: low-frequency content like a real image's."""
    coarse = torch.randn(1, 4, 4, 4, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear")


def inverted_tiny_model(num_steps: int, strength: float):
    """The tiny model seen as a 128x128-pixel model (8 px per latent pixel), and an inversion."""
    from dragkit.core.inversion import ddim_invert

    model = make_tiny_model()
    model.hints = model.hints.replace(vae_scale=8)
    return model, ddim_invert(model, smooth_latent(), num_steps=num_steps, strength=strength)


@pytest.fixture
def tiny_model() -> DragModel:
    return make_tiny_model()


@pytest.fixture
def latent() -> torch.Tensor:
    return smooth_latent()
