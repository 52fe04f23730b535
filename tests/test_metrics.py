"""DAI and image metrics on synthetic images with known shifts."""

from __future__ import annotations

import pytest
import torch

from dragkit.core.metrics import centroid, colour_mask, dai, iou, psnr
from dragkit.core.points import DragPoints


def _image(seed=0, size=64):
    coarse = torch.rand(3, 8, 8, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(coarse[None], size=(size, size), mode="bilinear")[0]


def test_dai_is_zero_for_a_perfect_shift():
    original = _image()
    edited = torch.roll(original, shifts=(0, 10), dims=(1, 2))  # content moved 10 px right
    points = DragPoints.from_pairs((64, 64), [((20, 30), (30, 30)), ((25, 40), (35, 40))])
    assert all(value == pytest.approx(0.0, abs=1e-10) for value in dai(original, edited, points).values())


def test_dai_grows_when_content_stays_behind():
    original = _image()
    points = DragPoints.from_pairs((64, 64), [((20, 30), (30, 30))])
    unchanged = dai(original, original, points, gammas=(1, 5))
    moved = dai(original, torch.roll(original, shifts=(0, 10), dims=(1, 2)), points, gammas=(1, 5))
    assert unchanged[1] > 1e-4 and moved[1] < unchanged[1] / 100


def test_dai_known_value_and_reference_normalisation():
    original = torch.zeros(3, 32, 32)
    edited = torch.full((3, 32, 32), 0.5)
    points = DragPoints.from_pairs((32, 32), [((10, 10), (20, 20)), ((12, 12), (22, 22))])
    # Every pixel differs by 0.5 in 3 channels: 3 * 0.25 per pixel after dividing by the pixel count.
    assert dai(original, edited, points, gammas=(1,))[1] == pytest.approx(0.75)
    assert dai(original, edited, points, gammas=(1,), reference_normalisation=True)[1] == pytest.approx(0.375)


def test_dai_near_the_border_uses_the_common_window():
    original = _image()
    points = DragPoints.from_pairs((64, 64), [((1, 1), (62, 62))])
    # Only offsets -1..1 fit around both (1, 1) and (62, 62): a 3x3 window, whatever gamma asks.
    expected = float(((original[:, 0:3, 0:3] - original[:, 61:64, 61:64]) ** 2).sum()) / 9
    assert expected > 0
    assert dai(original, original, points, gammas=(20,))[20] == pytest.approx(expected)


def test_psnr_and_shape_measures():
    a = torch.zeros(3, 8, 8)
    b = a.clone()
    b[:, 0, 0] = 1.0
    assert psnr(a, a) == float("inf")
    assert psnr(a, b) == pytest.approx(10 * torch.log10(torch.tensor(64.0)).item())
    region = torch.ones(8, 8, dtype=torch.bool)
    region[0, 0] = False
    assert psnr(a, b, region) == float("inf")
    image = torch.zeros(3, 8, 8)
    image[:, 2:4, 4:8] = torch.tensor([1.0, 0.0, 0.0]).view(3, 1, 1)
    mask = colour_mask(image, (1.0, 0.0, 0.0))
    assert int(mask.sum()) == 8 and centroid(mask) == (5.5, 2.5)
    assert iou(mask, mask) == 1.0 and iou(mask, ~mask) == 0.0
    assert centroid(torch.zeros(4, 4, dtype=torch.bool)) is None


def test_dai_node():
    import json

    from dragkit.core.errors import DragKitInputError
    from dragkit.nodes.metric_nodes import DragKitDAI

    original = _image().permute(1, 2, 0)[None]
    edited = torch.roll(original, shifts=10, dims=2)
    points = DragPoints.from_pairs((64, 64), [((20, 30), (30, 30))])
    result = DragKitDAI().measure(original, edited, points, "1, 5", False)
    report, first = result["result"]
    assert json.loads(report) == {"dai_gamma_1": 0.0, "dai_gamma_5": 0.0} and first == pytest.approx(0.0, abs=1e-9)
    with pytest.raises(DragKitInputError, match="differ in size"):
        DragKitDAI().measure(original, edited[:, :32], points, "1", False)
    with pytest.raises(DragKitInputError, match="gammas"):
        DragKitDAI().measure(original, edited, points, "x", False)
