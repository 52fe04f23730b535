"""Stable Diffusion 1.5 architecture, as the original (LDM) config describes it.

diffusers' single-file converters read an LDM-style config to build the diffusers configs; shipping
the numbers here lets DragKit load a ``.safetensors`` checkpoint fully offline, without looking a
config up on a model hub. Only the fields the converters read are given.
"""

from __future__ import annotations

SD15_LATENT_SCALE = 0.18215
SD15_VAE_SCALE = 8  # image pixels per latent pixel: the SD VAE halves the size three times

SD15_LDM_CONFIG = {
    "model": {
        "params": {
            "linear_start": 0.00085,
            "linear_end": 0.012,
            "timesteps": 1000,
            "scale_factor": SD15_LATENT_SCALE,
            "unet_config": {
                "params": {
                    "image_size": 32,
                    "in_channels": 4,
                    "out_channels": 4,
                    "model_channels": 320,
                    "attention_resolutions": [4, 2, 1],
                    "num_res_blocks": 2,
                    "channel_mult": [1, 2, 4, 4],
                    "num_heads": 8,
                    "use_spatial_transformer": True,
                    "transformer_depth": 1,
                    "context_dim": 768,
                    "legacy": False,
                }
            },
            "first_stage_config": {
                "params": {
                    "embed_dim": 4,
                    "ddconfig": {
                        "double_z": True,
                        "z_channels": 4,
                        "resolution": 256,
                        "in_channels": 3,
                        "out_ch": 3,
                        "ch": 128,
                        "ch_mult": [1, 2, 4, 4],
                        "num_res_blocks": 2,
                        "attn_resolutions": [],
                        "dropout": 0.0,
                    },
                }
            },
        }
    }
}

# Prefixes of the parts of an LDM single-file checkpoint.
LDM_UNET_PREFIX = "model.diffusion_model."
LDM_VAE_PREFIX = "first_stage_model."
