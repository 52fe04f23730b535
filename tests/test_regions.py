"""Feature-correspondence regions, on planted synthetic features and on the tiny UNet."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.errors import DragKitInputError
from dragkit.core.points import DragPoints
from dragkit.core.regions import (
    RegionConfig, component_at, feature_region, handle_similarity, region_from_features, similarity_maps,
)


def _planted(size=16, channels=8):
    """Noise features with two separate square objects sharing one feature vector."""
    generator = torch.Generator().manual_seed(0)
    features = torch.randn(1, channels, size, size, generator=generator)
    vector = torch.randn(channels, generator=generator) * 4
    features[0, :, 3:8, 3:8] = vector[:, None, None]
    features[0, :, 11:14, 11:14] = vector[:, None, None]  # same part, elsewhere
    return features


def _one_hot(rows=16, cols=16):
    """``(1, rows * cols, rows, cols)``: every cell its own orthogonal feature."""
    return torch.eye(rows * cols).reshape(rows * cols, rows, cols)[None]


def test_a_click_reads_the_feature_of_the_cell_under_it():
    # 64x64 image over 16x16 cells of 4 px: the click at the centre of cell (5, 9) reads exactly that
    # cell's feature (similarity 1 there, 0 elsewhere on the grid) ...
    features = _one_hot()
    centre = DragPoints.from_pairs((64, 64), [((9 * 4 + 2, 5 * 4 + 2), (0, 0))])
    handles, _ = centre.to_grid((16, 16), cells=False)
    assert handles.tolist() == [[5.0, 9.0]]
    grid = similarity_maps(features, handles)[0]
    assert grid[5, 9] == pytest.approx(1.0) and grid.sum() == pytest.approx(1.0)
    # ... and its image-resolution map is symmetric about the click: it peaks on the 2x2 pixels
    # around the cell's centre (rows and columns 21-22, 37-38), not half a cell off.
    image = handle_similarity(features, centre)[0]
    peak = image.max()
    assert {tuple(p) for p in torch.nonzero(image == peak).tolist()} == {(21, 37), (21, 38), (22, 37), (22, 38)}
    torch.testing.assert_close(image[16:28, 32:44], image[16:28, 32:44].flip(0).flip(1))


def test_a_click_between_cells_blends_them():
    # A click on the border of cells 5 and 6 (x = 24) reads both equally.
    features = _one_hot()
    border = DragPoints.from_pairs((64, 64), [((24.0, 22.0), (0, 0))])
    handles, _ = border.to_grid((16, 16), cells=False)
    grid = similarity_maps(features, handles)[0]
    assert grid[5, 5] == pytest.approx(grid[5, 6]) and grid[5, 5] == pytest.approx(2 ** -0.5)
    assert grid[5, 4] == 0 and grid[5, 7] == 0


def test_region_is_the_connected_object_only():
    features = _planted()
    # Image 64x64 over a 16x16 feature map: object 1 covers image pixels 12..31.
    points = DragPoints.from_pairs((64, 64), [((22, 22), (40, 22))])
    region = region_from_features(features, points, threshold=0.9)
    assert region[16:28, 16:28].all()
    assert region[0:6, :].sum() == 0 and region[50:, 50:].sum() == 0  # background, far copy
    grown = region_from_features(features, points, threshold=0.9, grow=2)
    assert grown.sum() > region.sum() and (grown >= region).all()


def test_two_handles_unite():
    features = _planted()
    points = DragPoints.from_pairs((64, 64), [((22, 22), (40, 22)), ((50, 50), (40, 40))])
    region = region_from_features(features, points, threshold=0.9)
    assert region[22, 22] == 1 and region[50, 50] == 1


def test_component_of_an_unset_pixel_is_empty():
    binary = torch.zeros(8, 8, dtype=torch.bool)
    binary[0:2, 0:2] = True
    assert component_at(binary, 5, 5).sum() == 0
    assert component_at(binary, 1, 1).sum() == 4


def test_feature_region_on_the_tiny_unet(tiny_model, latent):
    tiny_model.hints = tiny_model.hints.replace(vae_scale=8)
    points = DragPoints.from_pairs((128, 128), [((64, 64), (80, 64))])
    region = feature_region(tiny_model, latent, points, config=RegionConfig(feature_layers=(2,), threshold=0.8))
    assert region.shape == (128, 128) and region[64, 64] == 1
    assert region.sum() > 1 and region.mean() < 1  # more than the clicked pixel (which is always in), not all
    again = feature_region(tiny_model, latent, points, config=RegionConfig(feature_layers=(2,), threshold=0.8))
    assert torch.equal(region, again)  # seeded


def test_region_errors(tiny_model, latent):
    with pytest.raises(DragKitInputError, match="threshold"):
        RegionConfig(threshold=1.5)
    with pytest.raises(DragKitInputError, match="drawn on"):
        tiny_model.hints = tiny_model.hints.replace(vae_scale=8)
        feature_region(tiny_model, latent, DragPoints.from_pairs((64, 64), [((1, 1), (2, 2))]))
