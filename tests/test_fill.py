"""Fill Sampler: the fill mask is regenerated, everything outside it follows the source, seeds repeat."""

from __future__ import annotations

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.errors import DragKitInputError
from dragkit.core.fill import FillConfig, fill_masked
from dragkit.core.keep import latent_keep_weights
from dragkit.core.sampling import reference_sample
from dragkit.core.attention import ReferenceAttentionConfig


def _fill_mask():
    mask = torch.zeros(128, 128)
    mask[40:72, 48:88] = 1
    return mask


def test_outside_the_mask_the_latent_is_the_plain_reconstruction_and_inside_it_changes():
    model, inversion = inverted_tiny_model(num_steps=10, strength=0.6)
    mask = _fill_mask()
    filled, weights = fill_masked(model, inversion, mask, FillConfig(seed=3))
    plain, _ = reference_sample(model, inversion, reference=ReferenceAttentionConfig(enabled=False))
    outside = weights[0, 0] == 0
    assert torch.equal(filled[..., outside], inversion.latents[0][..., outside])
    inside = weights[0, 0] == 1
    assert (filled[..., inside] - plain[..., inside]).abs().mean() > 0.05
    # The mask reaches the latent grown by nothing and feathered by one cell: 8 px cells on this model.
    assert int(inside.sum()) == 4 * 5 and weights.shape[-2:] == inversion.source.shape[-2:]


def test_the_same_seed_gives_the_same_fill_and_another_seed_another():
    model, inversion = inverted_tiny_model(num_steps=10, strength=0.6)
    mask = _fill_mask()
    a, _ = fill_masked(model, inversion, mask, FillConfig(seed=1))
    torch.randn(100)  # global RNG use in between changes nothing
    b, _ = fill_masked(model, inversion, mask, FillConfig(seed=1))
    c, _ = fill_masked(model, inversion, mask, FillConfig(seed=2))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_an_empty_fill_mask_is_a_clear_error():
    model, inversion = inverted_tiny_model(num_steps=10, strength=0.6)
    with pytest.raises(DragKitInputError, match="fill mask is empty"):
        fill_masked(model, inversion, torch.zeros(128, 128))
