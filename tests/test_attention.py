"""Reference attention: layer order, equality of branches, restore on exit, LoRA compatibility."""

from __future__ import annotations

import pytest
import torch
from peft import LoraConfig

from dragkit.core.attention import (
    ReferenceAttention,
    ReferenceAttentionConfig,
    attention_edit,
    self_attention_layers,
)
from dragkit.core.errors import DragKitInputError
from dragkit.core.inversion import ddim_invert
from dragkit.core.sampling import reference_sample


def test_layers_in_forward_order(tiny_model):
    names = self_attention_layers(tiny_model.unet)
    # Tiny UNet: 2 down (1 each), 1 mid, 2 up blocks of 2 layers each.
    assert len(names) == 2 + 1 + 4
    assert names[0].startswith("down_blocks.0") and names[2].startswith("mid_block")
    assert names[-1].startswith("up_blocks.1.attentions.1")


def test_default_layers_are_the_last_six():
    assert ReferenceAttentionConfig().layer_indices(16) == list(range(10, 16))  # MasaCtrl start_layer=10
    assert ReferenceAttentionConfig().layer_indices(4) == [0, 1, 2, 3]
    assert ReferenceAttentionConfig(start_layer=14).layer_indices(16) == [14, 15]
    with pytest.raises(DragKitInputError, match="start_step"):
        ReferenceAttentionConfig(start_step=-1)


def _pair_noise(model, source, edited, layers, step=0, start_step=0):
    edit = ReferenceAttention(start_step)
    edit.step = step
    embeds = model.prompt_embeds(None, 2)
    with attention_edit(model.unet, edit, layers):
        return model.predict_noise(torch.cat([source, edited]), 500, embeds)


def test_equal_branches_give_equal_outputs(tiny_model, latent):
    noise = _pair_noise(tiny_model, latent, latent.clone(), range(7))
    torch.testing.assert_close(noise[1], noise[0])
    torch.testing.assert_close(noise[:1], tiny_model.predict_noise(latent, 500, tiny_model.prompt_embeds(None)))


def test_reference_changes_only_the_edited_branch(tiny_model, latent):
    edited = latent.flip(-1)
    plain = tiny_model.predict_noise(torch.cat([latent, edited]), 500, tiny_model.prompt_embeds(None, 2))
    shared = _pair_noise(tiny_model, latent, edited, range(7))
    torch.testing.assert_close(shared[0], plain[0])
    assert (shared[1] - plain[1]).abs().max() > 1e-3
    # Before start_step nothing is shared.
    torch.testing.assert_close(_pair_noise(tiny_model, latent, edited, range(7), step=2, start_step=3), plain)


def test_processors_are_restored_even_after_an_error(tiny_model):
    before = dict(tiny_model.unet.attn_processors)
    with pytest.raises(RuntimeError):
        with attention_edit(tiny_model.unet, ReferenceAttention(), range(7)):
            raise RuntimeError("boom")
    assert tiny_model.unet.attn_processors == before


def test_reference_attention_keeps_lora_active(tiny_model, latent):
    unet = tiny_model.unet
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]), "test")
    for name, param in unet.named_parameters():
        if "lora_B" in name:
            torch.nn.init.normal_(param, std=0.5)
    edited = latent.flip(-1)
    base = _pair_noise(tiny_model, latent, edited, range(7))
    lora = _pair_noise(tiny_model.with_adapter("test"), latent, edited, range(7))
    assert (lora - base).abs().max() > 1e-3
    # With the adapter the equal-branches property still holds.
    same = _pair_noise(tiny_model.with_adapter("test"), latent, latent.clone(), range(7))
    torch.testing.assert_close(same[1], same[0])


def test_sampling_with_equal_branches_matches_the_source(tiny_model, latent):
    inversion = ddim_invert(tiny_model, latent, num_steps=20, strength=0.5)
    edited, source = reference_sample(tiny_model, inversion.with_edit(inversion.source.clone()))
    torch.testing.assert_close(edited, source)
    plain, none = reference_sample(tiny_model, inversion, reference=ReferenceAttentionConfig(enabled=False))
    assert none is None
    torch.testing.assert_close(plain, source, atol=1e-4, rtol=1e-4)
