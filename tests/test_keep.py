"""Keep: the source back outside the editable mask, while sampling and after decoding."""

from __future__ import annotations

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.errors import DragKitInputError
from dragkit.core.keep import KeepConfig, keep_weights, latent_keep_weights, paste_outside
from dragkit.core.methods import diffeditor, dragdiffusion, gooddrag
from dragkit.core.points import DragPoints
from dragkit.core.drag import DragConfig

POINTS = DragPoints.from_pairs((128, 128), [((40.0, 64.0), (72.0, 64.0))])


def _mask():
    mask = torch.zeros(128, 128)
    mask[40:88, 24:96] = 1
    return mask


def test_weights_are_one_on_the_mask_ramp_down_and_are_zero_beyond_grow_plus_feather():
    mask = torch.zeros(64, 64)
    mask[20:30, 20:30] = 1
    weights = keep_weights(mask, (64, 64), cell=4.0, config=KeepConfig(grow=1, feather=1))[0, 0]
    assert (weights[mask > 0.5] == 1).all()
    row = weights[25].tolist()
    # grown by 4 px (one cell), then a ramp over 4 more: 0.8, 0.6, 0.4, 0.2, then exactly 0
    assert row[16:20] == pytest.approx([1.0, 1.0, 1.0, 1.0]) and row[12:16] == pytest.approx([0.2, 0.4, 0.6, 0.8])
    assert row[:12] == [0.0] * 12 and row[38:] == [0.0] * 26
    assert keep_weights(mask, (64, 64), 4.0, KeepConfig(grow=0, feather=0))[0, 0].equal((mask > 0.5).float())
    with pytest.raises(DragKitInputError, match="grow"):
        KeepConfig(grow=-1)


def test_pasted_pixels_equal_the_source_exactly_where_the_weight_is_zero():
    generator = torch.Generator().manual_seed(0)
    image, source = torch.rand(3, 64, 64, generator=generator), torch.rand(3, 64, 64, generator=generator)
    mask = torch.zeros(64, 64)
    mask[10:20, 30:50] = 1
    pasted = paste_outside(image, source, mask, cell=4.0)
    outside = keep_weights(mask, (64, 64), 4.0)[0, 0] == 0
    assert torch.equal(pasted[:, outside], source[:, outside]) and outside.float().mean() > 0.5
    assert torch.equal(pasted[:, mask > 0.5], image[:, mask > 0.5])


def _outside_equals_clean_source(model, inversion, latent, mask):
    weights = latent_keep_weights(model, inversion, mask, KeepConfig())
    outside = (weights[0, 0] == 0).cpu()
    clean = inversion.latents[0].to(latent)
    assert outside.any() and torch.equal(latent[..., outside], clean[..., outside])
    return weights


@pytest.fixture(scope="module")
def tiny():
    model, inversion = inverted_tiny_model(num_steps=10, strength=0.7)
    model.hints = model.hints.replace(feature_layers=(1,), supervision_scale=1.0)
    return model, inversion


def test_dragdiffusion_keeps_the_source_latent_outside_the_grown_mask(tiny):
    model, inversion = tiny
    config = DragConfig(feature_layers=(1,), max_steps=3)
    kept = dragdiffusion.edit(model, inversion, POINTS, _mask(), config, keep=KeepConfig()).latent
    plain = dragdiffusion.edit(model, inversion, POINTS, _mask(), config).latent
    weights = _outside_equals_clean_source(model, inversion, kept, _mask())
    inside = (weights[0, 0] == 1).cpu()
    assert not torch.equal(plain[..., ~inside], kept[..., ~inside])  # off = the paper's sampling
    # With no mask there is nothing to keep: the same as off.
    assert torch.equal(dragdiffusion.edit(model, inversion, POINTS, None, config, keep=KeepConfig()).latent,
                       dragdiffusion.edit(model, inversion, POINTS, None, config).latent)


def test_gooddrag_keeps_the_source_latent_outside_the_grown_mask(tiny):
    model, inversion = tiny
    config = gooddrag.AlDDConfig(drag=DragConfig(feature_layers=(1,)), drag_steps=2, rounds=2, steps_per_round=1)
    result = gooddrag.edit(model, inversion, POINTS, _mask(), config, keep=KeepConfig())
    _outside_equals_clean_source(model, inversion, result.latent, _mask())


@pytest.mark.parametrize("mode", ["drag", "move"])
def test_diffeditor_keeps_the_source_latent_outside_what_may_change(mode):
    model, inversion = inverted_tiny_model(num_steps=10, strength=1.0)
    config = diffeditor.diffeditor_config(mode)
    config.guidance.feature_layers = (1, 2)
    config = diffeditor.dataclasses.replace(config, guidance_steps=2, sde_steps=(1, 2), time_travel_steps=())
    obj = torch.zeros(128, 128)
    obj[48:80, 24:56] = 1
    mask = _mask() if mode == "drag" else obj
    result = diffeditor.edit(model, inversion, POINTS, mask, config, mode=mode, offset=(32.0, 0.0), keep=KeepConfig())
    changing = mask if mode == "drag" else diffeditor.moved_object_region(obj, (32.0, 0.0), 1.0)
    if mode == "move":  # the destination may change too
        assert changing[48:80, 56:88].all()
    _outside_equals_clean_source(model, inversion, result.latent, changing)
