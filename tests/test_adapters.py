"""The bounded LoRA cache and adapter switching: work and memory do not grow with the images edited."""

from __future__ import annotations

import pytest
import torch
from conftest import make_tiny_model, smooth_latent

from dragkit.core import adapters
from dragkit.core.lora import LoraTrainingConfig, train_lora

ONE_STEP = LoraTrainingConfig(steps=1, rank=2)


def _noise(model, latent):
    with torch.no_grad():
        return model.predict_noise(latent, 500, model.prompt_embeds(None, 1))


def _train(model, seed):
    """A LoRA on image ``seed`` whose B is not zero (one step moved it), so it changes the output."""
    return train_lora(model, smooth_latent(seed), None, LoraTrainingConfig(steps=2, rank=2, learning_rate=1e-2))


@pytest.fixture
def limit():
    before = adapters.max_loaded_adapters()
    yield adapters.set_max_loaded_adapters
    adapters.set_max_loaded_adapters(before)


def test_the_cache_keeps_at_most_its_bound_and_evicts_the_least_recently_used(limit):
    limit(3)
    model = make_tiny_model()
    latent = smooth_latent()
    bundles = [_train(model, seed) for seed in range(6)]
    loaded = adapters.loaded_adapters(model.unet)
    assert len(loaded) == 3
    assert loaded == [b.adapter for b in bundles[3:]]  # the three newest, oldest first
    # Using an older bundle's adapter again makes it the most recently used.
    _noise(bundles[4], latent)
    assert adapters.loaded_adapters(model.unet)[-1] == bundles[4].adapter


def test_an_evicted_adapter_comes_back_with_the_same_weights(limit):
    limit(2)
    model = make_tiny_model()
    latent = smooth_latent()
    first = _train(model, 0)
    expected = _noise(first, latent)
    base = _noise(model, latent)
    assert not torch.allclose(expected, base)  # the LoRA does change the output
    for seed in (1, 2, 3):
        _train(model, seed)
    assert first.adapter not in adapters.loaded_adapters(model.unet)
    torch.testing.assert_close(_noise(first, latent), expected, rtol=0, atol=0)
    assert len(adapters.loaded_adapters(model.unet)) == 2
    torch.testing.assert_close(_noise(model, latent), base, rtol=0, atol=0)


def test_switching_happens_once_per_change_not_per_call(limit):
    limit(20)
    model = make_tiny_model()
    latent = smooth_latent()
    bundles = [_train(model, seed) for seed in range(2)]
    layers = sum(1 for m in model.unet.modules() if isinstance(m, adapters.BaseTunerLayer))
    start = adapters.modules_touched(model.unet)
    for _ in range(10):
        _noise(bundles[0], latent)
    assert adapters.modules_touched(model.unet) - start == layers  # one switch for ten calls
    for _ in range(10):
        _noise(bundles[1], latent)
        _noise(bundles[1], latent)
    assert adapters.modules_touched(model.unet) - start == 2 * layers


def test_per_call_work_does_not_grow_with_the_adapters_loaded(limit):
    """A stage's calls cost the same switching with 1 or 20 adapters behind it (counted, not timed)."""
    limit(20)
    latent = smooth_latent()
    touched = []
    for count in (1, 20):
        model = make_tiny_model()
        bundles = [train_lora(model, smooth_latent(seed), None, ONE_STEP) for seed in range(count)]
        assert len(adapters.loaded_adapters(model.unet)) == count
        _noise(bundles[-1], latent)
        start = adapters.modules_touched(model.unet)
        for _ in range(5):
            _noise(bundles[-1], latent)
            _noise(model, latent)
        touched.append(adapters.modules_touched(model.unet) - start)
    assert touched[0] == touched[1]


def test_adapter_weights_never_require_grad_outside_training(limit):
    model = make_tiny_model()
    trained = _train(model, 0)
    latent = smooth_latent().requires_grad_(True)
    with torch.enable_grad():
        trained.predict_noise(latent, 500, trained.prompt_embeds(None, 1)).square().mean().backward()
    lora = [p for n, p in model.unet.named_parameters() if "lora_" in n]
    assert lora and not any(p.requires_grad or p.grad is not None for p in lora)
    assert latent.grad is not None


def test_the_limit_is_checked():
    with pytest.raises(ValueError, match="whole number >= 1"):
        adapters.set_max_loaded_adapters(0)


def test_a_reused_adapter_name_never_runs_another_loras_weights(limit):
    limit(1)
    model = make_tiny_model()
    latent = smooth_latent()
    config = LoraTrainingConfig(steps=2, rank=2, learning_rate=1e-2)
    first = train_lora(model, smooth_latent(0), None, config, adapter_name="foo")
    expected = _noise(first, latent)
    _train(model, 1)  # evicts "foo"
    other = train_lora(model, smooth_latent(2), None, config, adapter_name="foo")  # another LoRA, same name
    assert not torch.allclose(_noise(other, latent), expected)
    torch.testing.assert_close(_noise(first, latent), expected, rtol=0, atol=0)
    torch.testing.assert_close(_noise(other, latent), _noise(other, latent), rtol=0, atol=0)


def test_a_restored_adapter_is_found_again_and_can_be_saved(limit, tmp_path):
    from dragkit.core.lora_files import save_lora

    limit(1)
    model = make_tiny_model()
    first = _train(model, 0)
    _train(model, 1)
    _noise(first, smooth_latent())  # puts it back
    again = _train(model, 0)  # the same inputs: found, not trained and not refused
    assert again.adapter == first.adapter
    _train(model, 2)  # evicts it again
    path = save_lora(first, tmp_path / "first")
    assert path.is_file() and path.name == "first.safetensors"
