"""Synthetic scenes: determinism, the shape and its colour, and the ground-truth move."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.metrics import centroid, colour_mask
from dragkit.evaluation.scenes import SHAPES, make_scene, scene_batch


def test_a_seed_is_a_scene():
    a, b = make_scene(5), make_scene(5)
    assert torch.equal(a.image, b.image) and a.shape == b.shape
    assert not torch.equal(make_scene(6).image, a.image)
    assert a.image.shape == (3, 64, 64) and 0 <= a.image.min() and a.image.max() <= 1


def test_all_kinds_appear_and_the_shape_has_its_colour():
    kinds = {make_scene(seed).shape.kind for seed in range(30)}
    assert kinds == set(SHAPES)
    for seed in range(10):
        scene = make_scene(seed)
        inside = scene.mask > 0.99
        colour = torch.tensor(scene.colour).view(3, 1)
        assert torch.allclose(scene.image[:, inside], colour.expand(3, int(inside.sum())), atol=1e-6)
        found = colour_mask(scene.image, scene.colour, 0.15)
        assert (found & inside).sum() == inside.sum()
        assert float(scene.mask.sum()) > 60  # big enough to find and to drag


@pytest.mark.parametrize("offset", [(10, 0), (-7, 9), (0, -12)])
def test_moved_scene_is_the_ground_truth_edit(offset):
    scene = make_scene(11)
    moved = scene.moved(*offset)
    before, after = centroid(scene.mask > 0.5), centroid(moved.mask > 0.5)
    assert after[0] - before[0] == pytest.approx(offset[0], abs=0.3)
    assert after[1] - before[1] == pytest.approx(offset[1], abs=0.3)
    assert float(moved.mask.sum()) == pytest.approx(float(scene.mask.sum()), rel=0.02)  # still inside
    untouched = (scene.mask == 0) & (moved.mask == 0)
    assert torch.equal(moved.image[:, untouched], scene.image[:, untouched])
    assert torch.equal(moved.background, scene.background)


def test_shape_stays_inside_for_moves_of_a_fifth_of_the_image():
    for seed in range(12):
        scene = make_scene(seed)
        for dx, dy in ((12, 0), (-12, 0), (0, 12), (0, -12)):
            assert float(scene.moved(dx, dy).mask.sum()) == pytest.approx(float(scene.mask.sum()), rel=0.02)


def test_batch():
    batch = scene_batch(range(3))
    assert batch.shape == (3, 3, 64, 64) and torch.equal(batch[1], make_scene(1).image)
