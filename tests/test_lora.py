"""LoRA training: it learns the image, leaves the input model alone, caches, saves and loads."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest
import torch
from conftest import make_tiny_model, smooth_latent

from dragkit.core.errors import DragKitInputError, DragKitModelError
from dragkit.core.lora import LoraTrainingConfig, train_lora
from dragkit.core.lora_files import load_lora, save_lora

CONFIG = LoraTrainingConfig(steps=15, rank=4, learning_rate=2e-3, batch_size=2)


def _denoising_loss(model, latent):
    """MSE of the noise prediction over fixed noise and timesteps (lower = knows this image)."""
    from diffusers import DDPMScheduler

    schedule = DDPMScheduler.from_config(model.scheduler_config)
    generator = torch.Generator().manual_seed(99)
    losses = []
    with torch.no_grad():
        for t in (50, 250, 500, 750):
            noise = torch.randn(latent.shape, generator=generator)
            noisy = schedule.add_noise(latent, noise, torch.tensor([t]))
            losses.append(torch.mean((model.predict_noise(noisy, t, model.prompt_embeds(None)) - noise) ** 2))
    return float(torch.stack(losses).mean())


@pytest.fixture(scope="module")
def trained():
    model = make_tiny_model()
    latent = smooth_latent()
    before = model.predict_noise(latent, 300, model.prompt_embeds(None))
    losses = []
    lora = train_lora(model, latent, config=CONFIG, callback=lambda s, n, i: losses.append(i["loss"]))
    return model, lora, latent, before, losses


def test_training_learns_the_image_and_leaves_the_input_model(trained):
    model, lora, latent, before, losses = trained
    assert len(losses) == CONFIG.steps
    assert _denoising_loss(lora, latent) < _denoising_loss(model, latent)
    after = model.predict_noise(latent, 300, model.prompt_embeds(None))
    assert torch.equal(after, before)  # the input bundle is bit-identical
    assert not torch.allclose(lora.predict_noise(latent, 300, model.prompt_embeds(None)), before)
    assert lora.unet is model.unet and model.adapter is None and lora.adapter.startswith("dragkit_")


def test_same_inputs_hit_the_cache(trained):
    model, lora, latent, _, _ = trained
    calls = []
    again = train_lora(model, latent, config=CONFIG, callback=lambda *a: calls.append(1))
    assert calls == [] and again.adapter == lora.adapter
    checkpointed = train_lora(model, latent, config=dataclasses.replace(CONFIG, gradient_checkpointing=True),
                              callback=lambda *a: calls.append(1))
    assert calls == [] and checkpointed.adapter == lora.adapter  # a memory setting is not a new LoRA
    other = train_lora(model, latent, config=LoraTrainingConfig(steps=1, rank=4))
    assert other.adapter != lora.adapter


def test_save_load_round_trip(trained, tmp_path):
    model, lora, latent, _, _ = trained
    path = save_lora(lora, tmp_path / "mine", {"steps": CONFIG.steps})
    assert path.name == "mine.safetensors"
    from safetensors import safe_open

    with safe_open(str(path), "pt") as handle:
        keys = list(handle.keys())
        assert handle.metadata()["steps"] == "15"
    assert all(k.startswith("lora_unet_") for k in keys)
    assert any(k.endswith(".lora_down.weight") for k in keys) and any(k.endswith(".alpha") for k in keys)
    fresh = make_tiny_model()
    loaded = load_lora(fresh, path)
    embeds = model.prompt_embeds(None)
    torch.testing.assert_close(loaded.predict_noise(latent, 300, embeds), lora.predict_noise(latent, 300, embeds))
    assert [p.name for p in tmp_path.iterdir()] == ["mine.safetensors"]  # no temp files left


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_saved_file_gets_the_permissions_of_a_plain_write(trained, tmp_path, umask):
    """Not the private 0600 of a temporary file: another user or a shared volume must read the LoRA."""
    _, lora, _, _, _ = trained
    old = os.umask(umask)
    try:
        path = save_lora(lora, tmp_path / f"shared_{umask:o}")
        plain = tmp_path / f"plain_{umask:o}"
        plain.write_bytes(b"")
    finally:
        os.umask(old)
    assert stat.S_IMODE(path.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode) == 0o666 & ~umask


def test_the_seed_alone_decides_the_lora():
    """The same seed gives the same weights whatever ran before (peft draws its initial weights from
    torch's global generator), and training leaves that generator where it was."""
    latent = smooth_latent()
    config = dataclasses.replace(CONFIG, steps=2)
    models = [make_tiny_model(), make_tiny_model()]  # (building a tiny model seeds the global generator)
    torch.manual_seed(1)
    first = train_lora(models[0], latent, config=config)
    torch.manual_seed(2)
    torch.rand(7)
    state = torch.random.get_rng_state()
    second = train_lora(models[1], latent, config=config)
    assert torch.equal(torch.random.get_rng_state(), state)
    def lora_weights(model):
        return {n.replace(model.adapter, "adapter"): p for n, p in model.unet.named_parameters() if model.adapter in n}

    weights = [lora_weights(first), lora_weights(second)]
    assert weights[0].keys() == weights[1].keys() and len(weights[0]) > 0
    for name in weights[0]:
        assert torch.equal(weights[0][name], weights[1][name]), name
    other = lora_weights(train_lora(make_tiny_model(), latent, config=dataclasses.replace(config, seed=1)))
    a_weight = next(n for n in weights[0] if "lora_A" in n)
    assert not torch.equal(other[a_weight], weights[0][a_weight])


def test_refuses_to_overwrite(trained, tmp_path):
    _, lora, _, _, _ = trained
    path = tmp_path / "taken.safetensors"
    path.write_bytes(b"precious")
    with pytest.raises(DragKitInputError, match="already exists"):
        save_lora(lora, path)
    assert path.read_bytes() == b"precious"
    save_lora(lora, path, overwrite=True)
    assert path.stat().st_size > 100


def test_unwritable_folder(trained, tmp_path):
    _, lora, _, _, _ = trained
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    with pytest.raises(DragKitInputError, match="cannot write"):
        save_lora(lora, blocker / "x.safetensors")
    assert blocker.read_text() == "not a folder"


def test_cancel_removes_the_half_trained_adapter():
    model = make_tiny_model()

    def cancel(step, total, info):
        if step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_lora(model, smooth_latent(), config=CONFIG, callback=cancel)
    assert not getattr(model.unet, "peft_config", None)


def test_validation_errors(tiny_model):
    for field in ("steps", "rank", "batch_size"):
        with pytest.raises(DragKitInputError, match=field):
            LoraTrainingConfig(**{field: 0})
    with pytest.raises(DragKitInputError, match="3 channels"):
        train_lora(tiny_model, torch.zeros(1, 3, 8, 8))
    with pytest.raises(DragKitInputError, match="no trained LoRA"):
        save_lora(tiny_model, "/nonexistent/x.safetensors")
    with pytest.raises(DragKitModelError, match="not found"):
        load_lora(tiny_model, "/nonexistent/x.safetensors")


def test_trainer_and_loader_nodes(tmp_path, monkeypatch):
    from dragkit.nodes import comfy, lora_nodes

    model = make_tiny_model()
    latent = {"samples": smooth_latent() / model.latent_scale}
    seen = []
    monkeypatch.setattr(comfy, "check_interrupt", lambda: seen.append(1))
    node = lora_nodes.DragKitLoraTrainer()
    (trained,) = node.train(model, latent, "GoodDrag", steps=3, rank=4, learning_rate=1e-3, batch_size=1, seed=0,
                            save_name="", overwrite=False)
    assert trained.adapter and model.adapter is None and len(seen) == 3
    embeds = model.prompt_embeds(None)
    assert not torch.equal(trained.predict_noise(smooth_latent(), 300, embeds), model.predict_noise(smooth_latent(), 300, embeds))
    with pytest.raises(DragKitInputError, match="models/loras"):
        node.train(model, latent, "GoodDrag", 3, 4, 1e-3, 1, 0, save_name="mine", overwrite=False)
    monkeypatch.setattr(comfy, "loras_folder", lambda: str(tmp_path))
    node.train(model, latent, "GoodDrag", 3, 4, 1e-3, 1, 0, save_name="mine", overwrite=False)
    assert (tmp_path / "mine.safetensors").is_file()
    (loaded,) = lora_nodes.DragKitLoraLoader().load(make_tiny_model(), "ignored", path=str(tmp_path / "mine.safetensors"))
    torch.testing.assert_close(loaded.predict_noise(smooth_latent(), 300, embeds),
                               trained.predict_noise(smooth_latent(), 300, embeds))


def test_a_new_trainer_node_trains_its_presets_steps(monkeypatch):
    """The steps widget starts at "the preset's": GoodDrag trains 70 steps, DragDiffusion 80, unless set."""
    from dragkit.nodes import lora_nodes

    seen = []
    monkeypatch.setattr(lora_nodes, "train_lora", lambda model, latent, embeds, config, callback: seen.append(config.steps))
    model = make_tiny_model()
    latent = {"samples": smooth_latent() / model.latent_scale}
    default = lora_nodes.DragKitLoraTrainer.INPUT_TYPES()["required"]["steps"][1]["default"]
    for preset, steps in (("GoodDrag", default), ("DragDiffusion", default), ("GoodDrag", 5)):
        lora_nodes.DragKitLoraTrainer().train(model, latent, preset, steps, 16, 5e-4, 4, 0, "", False)
    assert seen == [70, 80, 5]
