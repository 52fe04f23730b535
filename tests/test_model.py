"""Model bundle: single-file loading, dtype policy, adapters, and clear errors."""

from __future__ import annotations

import pytest
import torch
from conftest import TINY_LDM_CONFIG, TINY_UNET_CONFIG, make_tiny_model, tiny_embeds, tiny_unet
from ldm_keys import diffusers_to_ldm
from safetensors.torch import save_file

from dragkit.core import model as core_model
from dragkit.core.errors import DragKitInputError, DragKitModelError


def _noise(model, latent, embeds):
    return model.predict_noise(latent, 500, model.prompt_embeds(embeds, latent.shape[0]))


def test_single_file_round_trip(tmp_path, latent):
    reference = make_tiny_model()
    ldm = diffusers_to_ldm(reference.unet.state_dict(), layers_per_block=1, up_has_attention=[True, True])
    path = tmp_path / "tiny.safetensors"
    save_file({k: v.contiguous() for k, v in ldm.items()}, str(path))

    loaded = core_model.from_ldm_state_dict(
        {k.removeprefix("model.diffusion_model."): v for k, v in ldm.items()}, ldm_config=TINY_LDM_CONFIG
    )
    assert tuple(loaded.unet.config.block_out_channels) == TINY_UNET_CONFIG["block_out_channels"]
    torch.testing.assert_close(_noise(loaded, latent, tiny_embeds()), _noise(reference, latent, tiny_embeds()))

    from_file = core_model.load_single_file(path, ldm_config=TINY_LDM_CONFIG)
    assert from_file.vae is None and from_file.name == "tiny"
    torch.testing.assert_close(_noise(from_file, latent, tiny_embeds()), _noise(reference, latent, tiny_embeds()))


def test_missing_model_file_names_the_folder(tmp_path):
    with pytest.raises(DragKitModelError, match="models/checkpoints"):
        core_model.load_model(tmp_path / "nope.safetensors")


def test_file_without_unet_is_refused(tmp_path):
    path = tmp_path / "lora.safetensors"
    save_file({"lora_unet_down.weight": torch.zeros(2)}, str(path))
    with pytest.raises(DragKitModelError, match="no UNet weights"):
        core_model.load_single_file(path)


def test_sdxl_checkpoint_is_refused():
    checkpoint = {"model.diffusion_model.x": torch.zeros(1), "conditioner.embedders.0.x": torch.zeros(1)}
    with pytest.raises(DragKitModelError, match="SDXL"):
        core_model.unet_from_ldm_state_dict(checkpoint)


def test_sd2_width_is_refused():
    key = "model.diffusion_model.input_blocks.1.1.transformer_blocks.0.attn2.to_k.weight"
    with pytest.raises(DragKitModelError, match="1024"):
        core_model.unet_from_ldm_state_dict({key: torch.zeros(320, 1024)})


def test_latent_with_wrong_channels(tiny_model):
    with pytest.raises(DragKitInputError, match="3 channels"):
        tiny_model.check_latent(torch.zeros(1, 3, 8, 8))


def test_latent_with_nan(tiny_model):
    bad = torch.zeros(1, 4, 8, 8)
    bad[0, 0, 0, 0] = float("nan")
    with pytest.raises(DragKitInputError, match="NaN"):
        tiny_model.check_latent(bad)


def test_conditioning_width_and_batch(tiny_model):
    with pytest.raises(DragKitInputError, match="width 768"):
        tiny_model.prompt_embeds(torch.zeros(1, 77, 768))
    with pytest.raises(DragKitInputError, match="batch 3"):
        tiny_model.prompt_embeds(torch.zeros(3, 4, 16), batch=2)
    assert tiny_model.prompt_embeds(None, batch=2).shape == (2, 4, 16)


def test_model_without_prompt_needs_conditioning():
    model = core_model.DragModel(unet=tiny_unet())
    with pytest.raises(DragKitInputError, match="CLIP Text Encode"):
        model.prompt_embeds(None)


def test_dtype_policy():
    assert core_model.default_dtype("cpu") == torch.float32
    assert core_model.default_dtype("cuda") == torch.float16


def test_noise_prediction_is_float32_even_for_half_weights(latent):
    model = make_tiny_model().to("cpu", torch.bfloat16)
    assert model.dtype == torch.bfloat16
    assert _noise(model, latent, None).dtype == torch.float32


def test_unknown_adapter_is_refused(tiny_model, latent):
    with pytest.raises(DragKitInputError, match="not loaded"):
        _noise(tiny_model.with_adapter("missing"), latent, None)


def test_vae_encode_rejects_odd_sizes():
    from diffusers import AutoencoderKL

    torch.manual_seed(0)
    vae = AutoencoderKL(block_out_channels=(8, 8), down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, latent_channels=4, norm_num_groups=4)
    model = core_model.DragModel(unet=tiny_unet(), vae=vae)
    with pytest.raises(DragKitInputError, match="multiples of 2"):
        model.encode(torch.rand(1, 3, 15, 16))
    image = torch.rand(1, 3, 16, 16)
    assert model.encode(image).shape == (1, 4, 8, 8)
    assert model.decode(model.encode(image)).shape == (1, 3, 16, 16)


def test_model_hints_are_typed_and_unknown_keys_refused(tmp_path):
    from dragkit.core.errors import DragKitModelError
    from dragkit.core.hints import ModelHints

    hints = ModelHints.from_dict({"feature_layers": [2], "lam": 0.1, "training": {"steps": 5}, "sde_steps": [3, 6],
                                  "time_travel_steps": [8, 10], "energy_scale_factor": 2, "guidance_steps": 12},
                                 "x/dragkit.json")
    assert hints.feature_layers == (2,) and hints.lam == 0.1 and hints.guidance_layers is None
    assert hints.sde_steps == (3, 6) and hints.time_travel_steps == (8, 10) and hints.energy_scale_factor == 2.0
    assert hints.guidance_steps == 12
    with pytest.raises(DragKitModelError, match=r"'x/dragkit.json' has unknown key\(s\) 'feature_layer'"):
        ModelHints.from_dict({"feature_layer": [2]}, "x/dragkit.json")
    for bad in ({"feature_layers": []}, {"feature_layers": [-1]}, {"lam": "0.1"}, {"vae_scale": 0},
                {"preview": "taesd"}, {"supervision_scale": 0}, {"energy_scale_factor": 0}, {"guidance_steps": -1},
                {"guidance_steps": 2.5}, {"sde_steps": [9, 3]}, {"sde_steps": [3]}, {"time_travel_steps": "22"}):
        with pytest.raises(DragKitModelError, match=r"'x/dragkit.json': hint `"):
            ModelHints.from_dict(bad, "x/dragkit.json")


def test_the_toy_model_reads_its_hints():
    from dragkit.core.model import load_toy_model

    model = load_toy_model()
    assert model.hints.feature_layers == (2,) and model.hints.guidance_layers == (1, 2)
    assert model.hints.vae_scale == 4 and model.vae_scale == 4 and model.hints.preview == "vae"
