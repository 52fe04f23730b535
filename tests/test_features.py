"""Feature taps: index convention, shapes, early stop, gradients."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.errors import DragKitInputError
from dragkit.core.features import unet_features


def _embeds(model):
    return model.prompt_embeds(None, 1)


def test_index_convention_and_shapes(tiny_model, latent):
    # Tiny UNet on a 16x16 latent: mid block 64ch at 8x8, up_blocks[0] 64ch upsampled to 16x16,
    # up_blocks[1] 32ch at 16x16.
    expected = {0: (64, 8, 8), 1: (64, 16, 16), 2: (32, 16, 16)}
    for index, shape in expected.items():
        features, noise = unet_features(tiny_model, latent, 500, _embeds(tiny_model), [index])
        assert features.shape == (1, *shape)
        assert noise is None


def test_resize_and_concatenate(tiny_model, latent):
    features, _ = unet_features(tiny_model, latent, 500, _embeds(tiny_model), [1, 2], size=(32, 32))
    assert features.shape == (1, 64 + 32, 32, 32)
    assert features.dtype == torch.float32


def test_early_stop_gives_the_same_features_as_a_full_pass(tiny_model, latent):
    early, _ = unet_features(tiny_model, latent, 500, _embeds(tiny_model), [1])
    full, noise = unet_features(tiny_model, latent, 500, _embeds(tiny_model), [1], return_noise=True)
    torch.testing.assert_close(early, full)
    torch.testing.assert_close(noise, tiny_model.predict_noise(latent, 500, _embeds(tiny_model)))


def test_early_stop_skips_the_last_up_block(tiny_model, latent):
    calls = []
    handle = tiny_model.unet.up_blocks[1].register_forward_hook(lambda *a: calls.append(1))
    try:
        unet_features(tiny_model, latent, 500, _embeds(tiny_model), [1])
    finally:
        handle.remove()
    assert calls == []
    assert not tiny_model.unet.up_blocks[0]._forward_hooks  # our hooks are gone


def test_gradients_flow_to_the_latent(tiny_model, latent):
    z = latent.clone().requires_grad_(True)
    features, _ = unet_features(tiny_model, z, 500, _embeds(tiny_model), [2])
    features.abs().sum().backward()
    assert z.grad is not None and z.grad.abs().sum() > 0


def test_bad_layer_index(tiny_model, latent):
    with pytest.raises(DragKitInputError, match="layers 0 .* to 2"):
        unet_features(tiny_model, latent, 500, _embeds(tiny_model), [5])
    with pytest.raises(DragKitInputError, match="empty"):
        unet_features(tiny_model, latent, 500, _embeds(tiny_model), [])
