"""Memory options (issue 18, item 4): gradient checkpointing in the drag and the LoRA, LoRA
micro-batches, and the low-VRAM bundle; each keeps the result within float rounding."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import inverted_tiny_model, make_tiny_model, smooth_latent

from dragkit.core.drag import DragConfig
from dragkit.core.lora import LoraTrainingConfig, train_lora
from dragkit.core.methods import gooddrag
from dragkit.core.methods.dragdiffusion import drag_latent
from dragkit.core.points import DragPoints

POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64))])
MASK = torch.zeros(128, 128)
MASK[24:104, 24:104] = 1


@pytest.fixture(scope="module")
def setup():
    return inverted_tiny_model(num_steps=20, strength=0.7)


def _resnet_calls(model):
    """A list that grows by one at every call of the first up block's first resnet."""
    calls = []
    handle = model.unet.up_blocks[0].resnets[0].register_forward_pre_hook(lambda *a: calls.append(1))
    return calls, handle


def _drag(model, inversion, **changes):
    config = DragConfig(feature_layers=(1,), max_steps=6, **changes)
    calls, handle = _resnet_calls(model)
    try:
        return drag_latent(model, inversion, POINTS, MASK, config), len(calls)
    finally:
        handle.remove()


def test_checkpointed_drag_recomputes_and_gives_the_same_latent(setup):
    model, inversion = setup
    plain, plain_calls = _drag(model, inversion)
    checkpointed, checkpointed_calls = _drag(model, inversion, gradient_checkpointing=True)
    low_vram, low_vram_calls = _drag(model.with_low_vram(), inversion)
    # the references, one forward per step and the final tracking; checkpointing runs each step's block
    # again in the backward pass
    assert plain_calls == 8 and checkpointed_calls == low_vram_calls == 8 + 6
    for other in (checkpointed, low_vram):
        torch.testing.assert_close(other.latent, plain.latent, rtol=0, atol=1e-6)
        assert other.points.handles == plain.points.handles
    assert not model.unet.is_gradient_checkpointing  # switched back off


def test_checkpointed_gooddrag_gives_the_same_edit(setup):
    model, inversion = setup
    drag = dataclasses.replace(gooddrag.GOODDRAG_DRAG, feature_layers=(1,))
    config = gooddrag.AlDDConfig(drag=drag, drag_steps=2, rounds=2, steps_per_round=2)
    plain = gooddrag.edit(model, inversion, POINTS, MASK, config)
    checkpointed = gooddrag.edit(model.with_low_vram(), inversion, POINTS, MASK, config)
    torch.testing.assert_close(checkpointed.latent, plain.latent, rtol=0, atol=1e-5)
    assert checkpointed.points.handles == plain.points.handles


def _lora_weights(bundle) -> dict[str, torch.Tensor]:
    return dict(bundle.adapter_weights.state)


@pytest.mark.parametrize("how", ["micro_batch_size=1", "micro_batch_size=3", "low_vram"])
def test_lora_in_micro_batches_learns_the_same_weights(how):
    latent = smooth_latent()
    config = LoraTrainingConfig(steps=4, batch_size=4, seed=3)
    reference = _lora_weights(train_lora(make_tiny_model(), latent, config=config))
    model = make_tiny_model()
    if how == "low_vram":
        model = model.with_low_vram()
    else:
        config = dataclasses.replace(config, micro_batch_size=int(how.split("=")[1]))
    trained = train_lora(model, latent, config=config)
    assert trained.adapter == train_lora(make_tiny_model(), latent, config=LoraTrainingConfig(
        steps=4, batch_size=4, seed=3)).adapter  # a memory setting: the same LoRA, the same name
    weights = _lora_weights(trained)
    assert weights.keys() == reference.keys()
    for name in reference:
        # Adam divides by the gradient's size, so summation-order differences of 1e-7 show as ~1e-6
        torch.testing.assert_close(weights[name], reference[name], rtol=1e-4, atol=1e-5)
    assert not model.unet.is_gradient_checkpointing


def test_the_drag_computes_no_lora_gradients():
    model = make_tiny_model()
    lora = train_lora(model, smooth_latent(), config=LoraTrainingConfig(steps=1, seed=9))
    inversion = inverted_tiny_model(num_steps=20, strength=0.7)[1]
    drag_latent(lora, inversion, POINTS, MASK, DragConfig(feature_layers=(1,), max_steps=2))
    weights = [p for n, p in model.unet.named_parameters() if "lora_" in n]
    assert weights and all(p.grad is None and not p.requires_grad for p in weights)


def test_micro_batch_size_is_checked():
    with pytest.raises(ValueError, match="micro_batch_size"):
        LoraTrainingConfig(micro_batch_size=0)


def test_low_vram_keeps_the_vae_off_the_gpu_between_uses(monkeypatch):
    from dragkit.core.model import load_toy_model

    model = load_toy_model()
    image = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    latent = model.encode(image)
    expected = model.decode(latent)
    moves = []
    original = type(model.vae).to

    def to(module, *args, **kwargs):
        moves.append(str(args[0]) if args else str(kwargs.get("device")))
        return original(module, *args, **kwargs)

    monkeypatch.setattr(type(model.vae), "to", to)
    low = model.with_low_vram()
    assert moves == ["cpu"]  # parked at once
    torch.testing.assert_close(low.encode(image), latent, rtol=0, atol=0)
    torch.testing.assert_close(low.decode(latent), expected, rtol=0, atol=0)
    assert moves == ["cpu", str(low.device), "cpu", str(low.device), "cpu"]  # in for each use, out after
    moves.clear()
    model.decode(latent)
    assert moves == [str(model.device)]  # without low_vram it stays where it is
