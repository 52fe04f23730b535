"""Region Warp and Fill Sampler nodes: ComfyUI types in and out, inputs never mutated."""

from __future__ import annotations

import pytest
import torch
from conftest import inverted_tiny_model

from dragkit.core.errors import DragKitInputError
from dragkit.core.points import DragPoints
from dragkit.nodes.warp_nodes import DragKitFillSampler, DragKitRegionWarp

H, W = 40, 48
POINTS = DragPoints.from_pairs((W, H), [((14.5, 14.5), (22.5, 20.5))])


def _inputs():
    image = torch.rand(2, H, W, 3, generator=torch.Generator().manual_seed(0))
    region = torch.zeros(1, H, W)
    region[0, 8:24, 8:24] = 1
    return image, region


def test_region_warp_moves_every_image_of_the_batch_and_leaves_its_inputs_alone():
    image, region = _inputs()
    image_before, region_before = image.clone(), region.clone()
    warped, fill, moved = DragKitRegionWarp().warp(image, POINTS, region, 2, 2, "smooth")
    assert warped.shape == image.shape and fill.shape == (1, H, W) and moved.shape == (1, H, W)
    assert torch.equal(image, image_before) and torch.equal(region, region_before)
    # The handle's pixel is at the target in both images (a shift by whole pixels copies exactly).
    for b in range(2):
        assert torch.equal(warped[b, 20, 22], image[b, 14, 14])
    touched = (region[0] > 0.5) | (moved[0] > 0.5) | (fill[0] > 0.5)
    assert torch.equal(warped[:, ~touched], image[:, ~touched])


def test_region_warp_names_points_drawn_on_another_image():
    image, region = _inputs()
    other = DragPoints.from_pairs((2 * W, 2 * H), [((29.0, 29.0), (45.0, 41.0))])
    with pytest.raises(DragKitInputError, match="turn on rescaling"):
        DragKitRegionWarp().warp(image, other, region, 2, 2, "smooth")
    warped, _, _ = DragKitRegionWarp().warp(image, other, region, 2, 2, "smooth", rescale_points=True)
    assert torch.allclose(warped[0, 20, 22], image[0, 14, 14], atol=1e-6)


def test_fill_sampler_outputs_a_latent_and_the_mask_to_paste_the_warp_back_with():
    model, inversion = inverted_tiny_model(num_steps=10, strength=0.6)
    fill = torch.zeros(1, 128, 128)
    fill[0, 40:72, 48:88] = 1
    fill_before = fill.clone()
    latent, keep = DragKitFillSampler().sample(model, inversion, fill, seed=5)
    assert torch.equal(fill, fill_before)
    assert latent["samples"].shape == inversion.source.shape
    assert keep.shape == (1, 128, 128)
    assert float(keep[0, 40:72, 48:88].max()) == 0.0 and float(keep[0, :20].min()) == 1.0
    again, _ = DragKitFillSampler().sample(model, inversion, fill, seed=5)
    assert torch.equal(latent["samples"], again["samples"])
