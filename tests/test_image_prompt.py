"""Image prompt (IP-Adapter): file layout, the decoupled cross-attention, per-branch scale, no mutation."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import inverted_tiny_model, make_tiny_model
from safetensors.torch import save_file

from dragkit.core.errors import DragKitInputError, DragKitModelError
from dragkit.core.guidance import drag_geometry
from dragkit.core.image_prompt import (
    ImagePrompt, ImagePromptAdapter, cross_attention_processors, image_prompt, load_image_prompt_adapter,
)
from dragkit.core.methods.diffeditor import diffeditor_config, regional_sde_sample

EMBED_DIM, TOKENS = 16, 4


def adapter_state(unet, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random IP-Adapter for ``unet`` in the SD1.5 file layout (flat .safetensors keys)."""
    generator = torch.Generator().manual_seed(seed)
    cross = unet.config.cross_attention_dim
    state = {"image_proj.proj.weight": torch.randn(TOKENS * cross, EMBED_DIM, generator=generator) * 0.2,
             "image_proj.proj.bias": torch.zeros(TOKENS * cross),
             "image_proj.norm.weight": torch.ones(cross), "image_proj.norm.bias": torch.zeros(cross)}
    modules = dict(unet.named_modules())
    for name, index in cross_attention_processors(unet).items():
        inner = modules[name.removesuffix(".processor")].to_k.out_features
        for kind in ("to_k_ip", "to_v_ip"):
            state[f"ip_adapter.{index}.{kind}.weight"] = torch.randn(inner, cross, generator=generator) * 0.5
    return state


@pytest.fixture(scope="module")
def adapter_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("ipadapter") / "ip-adapter_tiny.safetensors"
    save_file(adapter_state(make_tiny_model().unet), str(path))
    return path


def test_keys_number_the_cross_attention_processors_as_ip_adapter_files_do():
    unet = make_tiny_model().unet
    indices = cross_attention_processors(unet)
    names = list(unet.attn_processors)
    assert indices and all(names[index] == name for name, index in indices.items())  # odd positions: attn2
    assert all(index % 2 == 1 for index in indices.values())


def test_image_attention_changes_only_the_scaled_batch_element_and_is_removed_after(adapter_file):
    model = make_tiny_model()
    adapter = load_image_prompt_adapter(adapter_file, model.unet)
    prompt = ImagePrompt(adapter, torch.randn(1, EMBED_DIM, generator=torch.Generator().manual_seed(1)))
    latent = torch.randn(2, 4, 16, 16, generator=torch.Generator().manual_seed(2))
    embeds = model.prompt_embeds(None, 2)
    plain = model.predict_noise(latent, 500, embeds)
    processors = model.unet.attn_processors
    with image_prompt(model.unet, prompt) as switch:
        assert torch.equal(model.predict_noise(latent, 500, embeds), plain)  # switched off: identical
        switch.scales = torch.tensor([0.0, 1.0])
        prompted = model.predict_noise(latent, 500, embeds)
    torch.testing.assert_close(prompted[0], plain[0], atol=1e-5, rtol=0)  # scale 0: untouched
    assert (prompted[1] - plain[1]).abs().mean() > 1e-3  # scale 1: the image attention is added
    assert model.unet.attn_processors == processors
    assert torch.equal(model.predict_noise(latent, 500, embeds), plain)


def test_sampler_uses_the_prompt_only_in_its_steps(adapter_file):
    model, inversion = inverted_tiny_model(num_steps=20, strength=1.0)
    config = diffeditor_config()
    config.guidance.feature_layers = (1, 2)
    config = dataclasses.replace(config, guidance=dataclasses.replace(config.guidance, energy_scale=0),
                                 time_travel_steps=(), sde_eta=0.0)
    mask = torch.zeros(128, 128)
    mask[30:100, 20:110] = 1
    geometry = drag_geometry(torch.tensor([[40.0, 64.0]]), torch.tensor([[72.0, 64.0]]), mask, (16, 16), (128, 128),
                             config.guidance)
    adapter = load_image_prompt_adapter(adapter_file, model.unet)
    embeds = torch.randn(1, EMBED_DIM, generator=torch.Generator().manual_seed(3))
    plain = regional_sde_sample(model, inversion, geometry, config)
    outside = regional_sde_sample(model, inversion, geometry, config, image=ImagePrompt(adapter, embeds, 1.0, (30, 40)))
    prompted = regional_sde_sample(model, inversion, geometry, config, image=ImagePrompt(adapter, embeds, 1.0, (5, 9)))
    assert torch.equal(outside, plain)  # no step in the window: no change
    assert (prompted - plain).abs().mean() > 1e-4


def test_bad_files_and_embeddings_are_clear_errors(tmp_path, adapter_file):
    unet = make_tiny_model().unet
    with pytest.raises(DragKitModelError, match="models/ipadapter"):
        load_image_prompt_adapter(tmp_path / "missing.safetensors", unet)
    state = adapter_state(unet)
    state.pop(next(k for k in state if k.startswith("ip_adapter.")))
    save_file(state, str(tmp_path / "partial.safetensors"))
    with pytest.raises(DragKitModelError, match="does not fit this UNet"):
        load_image_prompt_adapter(tmp_path / "partial.safetensors", unet)
    adapter = load_image_prompt_adapter(adapter_file, unet)
    with pytest.raises(DragKitInputError, match="CLIP Vision"):
        adapter.tokens(torch.randn(1, EMBED_DIM + 1))
    with pytest.raises(DragKitInputError, match="NaN"):
        adapter.tokens(torch.full((1, EMBED_DIM), float("nan")))


def test_matches_diffusers_ip_adapter_attention():
    """The wrapped processors give what diffusers' own IP-Adapter loading gives, at scale 1."""
    model = make_tiny_model()
    state = adapter_state(model.unet)
    image_embeds = torch.randn(1, EMBED_DIM, generator=torch.Generator().manual_seed(4))
    latent = torch.randn(1, 4, 16, 16, generator=torch.Generator().manual_seed(5))
    embeds = model.prompt_embeds(None, 1)
    adapter = ImagePromptAdapter(state, model.unet)
    with image_prompt(model.unet, ImagePrompt(adapter, image_embeds, 1.0, (0, 0))) as switch:
        switch.scales = torch.ones(1)
        ours = model.predict_noise(latent, 400, embeds)

    reference = make_tiny_model().unet
    nested = {group: {k[len(group) + 1:]: v for k, v in state.items() if k.startswith(group + ".")}
              for group in ("image_proj", "ip_adapter")}
    reference._load_ip_adapter_weights([nested])  # diffusers' own conversion and IP-Adapter processors
    with torch.no_grad():
        theirs = reference(latent, 400, encoder_hidden_states=embeds,
                           added_cond_kwargs={"image_embeds": [image_embeds[:, None]]}).sample
    torch.testing.assert_close(ours, theirs, atol=2e-5, rtol=1e-4)


def test_regional_sde_node_image_prompt(adapter_file, monkeypatch):
    from types import SimpleNamespace

    from dragkit.core.points import DragPoints
    from dragkit.nodes import comfy
    from dragkit.nodes.guidance_nodes import DragKitRegionalSDESampler

    model, inversion = inverted_tiny_model(num_steps=20, strength=1.0)
    monkeypatch.setattr(comfy, "model_path", lambda kind, name: str(adapter_file) if name == adapter_file.name else None)
    node = DragKitRegionalSDESampler()
    common = dict(method="DiffEditor", mode="drag", dx=0.0, dy=0.0, scale=1.0, sde_eta=0.0, time_travel=False,
                  memory_bank=True, energy_scale=0.0, w_edit=4.0, w_content=6.0, w_inpaint=0.2, feature_layers="1,2",
                  seed=0, points=DragPoints.from_pairs((128, 128), [((40, 64), (72, 64))]))
    clip_vision = SimpleNamespace(image_embeds=torch.randn(1, EMBED_DIM, generator=torch.Generator().manual_seed(6)))
    plain, _ = node.sample(model, inversion, **common)
    unused, _ = node.sample(model, inversion, image_prompt=clip_vision, ipadapter="none", **common)
    prompted, _ = node.sample(model, inversion, image_prompt=clip_vision, ipadapter=adapter_file.name,
                              image_prompt_scale=1.0, **common)
    assert torch.equal(unused["samples"], plain["samples"])  # no adapter file chosen: no image prompt
    assert (prompted["samples"] - plain["samples"]).abs().mean() > 1e-4
    with pytest.raises(DragKitModelError, match="not in"):
        node.sample(model, inversion, image_prompt=clip_vision, ipadapter="gone.safetensors", **common)
    with pytest.raises(DragKitInputError, match="CLIP Vision Encode"):
        node.sample(model, inversion, image_prompt=SimpleNamespace(), ipadapter=adapter_file.name, **common)
