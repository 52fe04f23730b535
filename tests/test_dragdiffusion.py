"""DragDiffusion latent optimisation on the tiny UNet, and the Drag Optimizer node."""

from __future__ import annotations

import dataclasses

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.errors import DragKitInputError
from dragkit.core.hints import ModelHints
from dragkit.core.methods.dragdiffusion import DRAGDIFFUSION, DRAGDIFFUSION_IPMS, DragConfig, drag_latent, for_model
from dragkit.core.points import DragPoints
from dragkit.nodes.drag_nodes import DragKitDragOptimizer, DragKitPoints

# The tiny UNet has no VAE: pretend 8 image pixels per latent pixel, so a 16x16 latent is 128x128.
POINTS = DragPoints.from_pairs((128, 128), [((40, 64), (72, 64))])


@pytest.fixture(scope="module")
def setup():
    return inverted_tiny_model(num_steps=50, strength=0.7)


@pytest.mark.parametrize("preset", [DRAGDIFFUSION, DRAGDIFFUSION_IPMS], ids=["dragdiffusion", "ipms"])
def test_handles_advance_and_the_loss_falls(setup, preset):
    model, inversion = setup
    losses = []
    config = dataclasses.replace(preset, feature_layers=(1,), max_steps=30)
    result = drag_latent(model, inversion, POINTS, config=config, callback=lambda s, n, i: losses.append(i["loss"]))
    # 32 image pixels = 16 half-resolution pixels to go.
    assert result.distances[0] == pytest.approx(16.0)
    assert result.distances[-1] < 6.0
    assert result.points.handles[0][0] > 56  # moved right by more than half the way
    assert min(losses[-3:]) < losses[0]
    assert not torch.equal(result.latent, inversion.source)
    assert result.points.targets == POINTS.targets


def test_early_stop_when_handles_arrive(setup):
    model, inversion = setup
    near = DragPoints.from_pairs((128, 128), [((64, 64), (66, 64))])  # 1 half-res pixel: already there
    result = drag_latent(model, inversion, near, config=DragConfig(feature_layers=(1,)))
    assert result.steps == 0 and torch.equal(result.latent, inversion.source)


def test_zero_steps_leaves_the_latent(setup):
    model, inversion = setup
    result = drag_latent(model, inversion, POINTS, config=DragConfig(feature_layers=(1,), max_steps=0))
    assert torch.equal(result.latent, inversion.source) and result.steps == 0


def test_mask_term_keeps_the_outside_closer_to_the_source(setup):
    model, inversion = setup
    mask = torch.zeros(128, 128)
    mask[40:90, 24:104] = 1  # the drag path
    outside = torch.nn.functional.interpolate(mask[None, None], size=(16, 16), mode="nearest")[0, 0] < 0.5

    def outside_change(lam):
        config = DragConfig(feature_layers=(1,), max_steps=15, lam=lam)
        result = drag_latent(model, inversion, POINTS, mask, config)
        return (result.latent - inversion.source).abs()[0, :, outside].mean()

    assert outside_change(1.0) < 0.7 * outside_change(0.0)


def test_empty_mask_drops_the_background_term(setup):
    model, inversion = setup
    config = DragConfig(feature_layers=(1,), max_steps=5)
    free = drag_latent(model, inversion, POINTS, None, config).latent
    empty = drag_latent(model, inversion, POINTS, torch.zeros(128, 128), config).latent
    torch.testing.assert_close(empty, free)


def test_bad_inputs(setup):
    model, inversion = setup
    with pytest.raises(DragKitInputError, match="drawn on a 64x64 image but the image is 128x128"):
        drag_latent(model, inversion, DragPoints.from_pairs((64, 64), [((1, 1), (9, 9))]))
    with pytest.raises(DragKitInputError, match="mask"):
        drag_latent(model, inversion, POINTS, torch.ones(64, 64))
    with pytest.raises(DragKitInputError, match="learning_rate"):
        DragConfig(learning_rate=0)


def test_points_node_parses_both_forms():
    (points,) = DragKitPoints().parse('{"image_size": [128, 128], "pairs": [{"handle": [40, 64], "target": [72, 64]}]}')
    assert points == POINTS
    (flat,) = DragKitPoints().parse('{"image_size": [128, 128], "points": [[40, 64], [72, 64]]}')
    assert flat == POINTS
    with pytest.raises(DragKitInputError, match="outside"):
        DragKitPoints().parse('{"image_size": [128, 128], "pairs": [{"handle": [400, 64], "target": [72, 64]}]}')


def test_optimizer_node_outputs_a_new_inversion_and_final_points(setup):
    model, inversion = setup
    source_before = inversion.source.clone()
    edited, final = DragKitDragOptimizer().drag(
        model, inversion, POINTS, "GoodDrag IPMS", max_steps=10, learning_rate=0.01, lam=0.1,
        patch_radius=-1, track_radius=-1, feature_layer=1, rescale_points=False,
        mask=torch.ones(1, 128, 128),
    )
    assert edited is not inversion and inversion.edited is None
    assert torch.equal(inversion.source, source_before)
    assert edited.latents is inversion.latents and not torch.equal(edited.start, inversion.source)
    assert final.handles[0][0] > POINTS.handles[0][0]
    half = DragPoints.from_pairs((64, 64), [((20, 32), (36, 32))])
    _, rescaled = DragKitDragOptimizer().drag(model, inversion, half, "DragDiffusion", 0, 0.01, 0.1, -1, -1, 1, True)
    assert rescaled.image_size == (128, 128)


def test_model_recommendations_override_only_what_the_model_names(tiny_model):
    tiny_model.hints = ModelHints(feature_layers=(2,), supervision_scale=1.0, guidance_layers=(1,))
    config = for_model(DRAGDIFFUSION_IPMS, tiny_model)
    assert config.feature_layers == (2,) and config.supervision_scale == 1.0
    assert config.lam == DRAGDIFFUSION_IPMS.lam and config.ipms and config.patch_radius == 4
    tiny_model.hints = ModelHints()
    assert for_model(DRAGDIFFUSION, tiny_model) == DRAGDIFFUSION
