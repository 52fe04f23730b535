"""Region warp (Inpaint4Drag's first half): handles land on their targets, nothing else changes."""

import math

import pytest
import torch

from dragkit.core.errors import DragKitInputError
from dragkit.core.points import DragPoints
from dragkit.core.region_warp import (
    RegionWarpConfig,
    bounding_box,
    fit_backward_map,
    moved_box,
    pixel_centres,
    similarity,
    spread_inward,
    warp_region,
)

H, W = 48, 64


def marker_image(handles) -> torch.Tensor:
    """Grey, with one bright pixel per handle, each in its own channel (at most 3)."""
    image = torch.full((3, H, W), 0.2)
    for channel, (x, y) in enumerate(handles):
        image[channel, int(y), int(x)] = 1.0
    return image


def marker_centre(image: torch.Tensor, channel: int, near, radius: int = 3):
    """The intensity-weighted centre of ``channel``'s excess over the grey, around ``near``."""
    x0, y0 = int(near[0]), int(near[1])
    patch = (image[channel] - 0.2).clamp(min=0)
    window = torch.zeros_like(patch)
    window[max(y0 - radius, 0):y0 + radius + 1, max(x0 - radius, 0):x0 + radius + 1] = 1
    weight = patch * window
    for other in range(3):  # only this marker: the other channels are grey here
        if other != channel:
            weight = weight * ((image[other] - 0.2).abs() < 1e-6)
    ys, xs = torch.meshgrid(torch.arange(H) + 0.5, torch.arange(W) + 0.5, indexing="ij")
    total = float(weight.sum())
    return float((weight * xs).sum()) / total, float((weight * ys).sum()) / total


BLOB = torch.zeros(H, W)
BLOB[8:40, 6:44] = 1

PAIR_SETS = {
    "one pair, whole pixels": [((12.5, 14.5), (20.5, 18.5))],
    "one pair, sub-pixel": [((12.5, 14.5), (19.8, 18.3))],
    "two pairs": [((12.5, 14.5), (20.5, 18.5)), ((30.5, 30.5), (36.5, 33.5))],
    "three pairs": [((12.5, 14.5), (20.5, 18.5)), ((30.5, 30.5), (37.2, 33.9)), ((38.5, 12.5), (43.5, 15.5))],
    "three collinear targets": [((12.5, 14.5), (20.5, 20.5)), ((24.5, 22.5), (30.5, 20.5)), ((36.5, 16.5), (40.5, 20.5))],
}


@pytest.mark.parametrize("name", PAIR_SETS)
def test_each_handle_pixel_lands_on_its_target(name):
    pairs = PAIR_SETS[name]
    points = DragPoints.from_pairs((W, H), pairs)
    result = warp_region(marker_image(points.handles), BLOB, points, RegionWarpConfig(seam=0))
    for channel, (handle, target) in enumerate(pairs):
        x, y = marker_centre(result.image, channel, target)
        assert math.dist((x, y), target) < 0.5, (name, channel, (x, y), target)
    # The map itself is exact at the targets.
    g = fit_backward_map(points)
    assert torch.allclose(g(torch.tensor(points.targets)).double(), torch.tensor(points.handles).double(), atol=1e-4)


def test_outside_the_region_and_the_fill_every_pixel_is_the_input():
    image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(0))
    for pairs in PAIR_SETS.values():
        points = DragPoints.from_pairs((W, H), pairs)
        result = warp_region(image, BLOB, points)
        touched = (BLOB > 0.5) | (result.region > 0.5) | (result.fill > 0.5)
        assert bool((result.image[:, ~touched] == image[:, ~touched]).all())
        assert bool(touched.any()) and not bool(touched.all())


def test_one_pair_is_a_shift_of_the_region():
    image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(1))
    points = DragPoints.from_pairs((W, H), [((10.5, 10.5), (17.5, 13.5))])  # by (7, 3)
    result = warp_region(image, BLOB, points, RegionWarpConfig(fill_grow=0, seam=0))
    shifted = torch.zeros(H, W)
    shifted[11:43, 13:51] = 1
    assert torch.equal(result.region, shifted)
    assert torch.equal(result.image[:, 11:43, 13:51], image[:, 8:40, 6:44])  # lossless
    assert torch.equal(result.uncovered, ((BLOB > 0.5) & (shifted < 0.5)).float())


def test_fill_is_the_uncovered_area_grown_plus_a_seam():
    points = DragPoints.from_pairs((W, H), [((10.5, 10.5), (17.5, 13.5))])
    exact = warp_region(torch.rand(3, H, W), BLOB, points, RegionWarpConfig(fill_grow=0, seam=0))
    assert torch.equal(exact.fill, exact.uncovered)
    grown = warp_region(torch.rand(3, H, W), BLOB, points, RegionWarpConfig(fill_grow=2, seam=0))
    assert bool((grown.fill >= exact.fill).all()) and grown.fill.sum() > exact.fill.sum()
    # 2 px around the uncovered area, nothing further.
    assert grown.fill[:, 4:].sum() > 0 and grown.fill[5:, :].sum() > 0
    far = torch.ones(H, W, dtype=torch.bool)
    uncovered = exact.uncovered > 0.5
    near = torch.nn.functional.max_pool2d(uncovered.float()[None, None], 5, 1, 2)[0, 0] > 0
    far &= ~near
    assert not bool((grown.fill[far] > 0).any())
    seamed = warp_region(torch.rand(3, H, W), BLOB, points, RegionWarpConfig(fill_grow=0, seam=2))
    band = (seamed.fill > 0.5) & (exact.fill < 0.5)
    # The band straddles the moved region's outline: pixels just inside and just outside it.
    assert bool((band & (seamed.region > 0.5)).any()) and bool((band & (seamed.region < 0.5)).any())
    assert float(seamed.region[20:30, 25:40].mean()) == 1 and not bool(band[20:30, 25:40].any())


def test_two_pairs_give_exactly_their_similarity():
    pairs = PAIR_SETS["two pairs"]
    points = DragPoints.from_pairs((W, H), pairs)
    g = fit_backward_map(points)
    c, d = similarity(torch.tensor(points.targets), torch.tensor(points.handles))
    probe = torch.tensor([[3.0, 4.0], [50.0, 40.0], [20.0, 33.0]], dtype=torch.float64)
    expected = [c * complex(x, y) + d for x, y in probe.tolist()]
    got = g(probe)
    for (x, y), z in zip(got.tolist(), expected):
        assert abs(x - z.real) < 1e-6 and abs(y - z.imag) < 1e-6


def test_moved_box_holds_every_moved_pixel():
    """The box the warp computes in holds the whole moved region, for splines that stretch and bend."""
    generator = torch.Generator().manual_seed(3)
    for trial in range(20):
        n = 1 + trial % 4
        handles = (torch.rand(n, 2, generator=generator) * torch.tensor([30.0, 20.0]) + torch.tensor([10.0, 12.0]))
        targets = handles + (torch.rand(n, 2, generator=generator) - 0.5) * 24
        targets = targets.clamp(min=0.5).clamp(max=torch.tensor([W - 0.5, H - 0.5]))
        points = DragPoints.from_pairs((W, H), list(zip(handles.tolist(), targets.tolist())))
        g = fit_backward_map(points)
        box = bounding_box(BLOB > 0.5)
        top, bottom, left, right = moved_box(g, box, H, W)
        where = g(pixel_centres(H, W)).reshape(H, W, 2)
        inside = ((where[..., 0] >= box[2]) & (where[..., 0] <= box[3]) & (where[..., 1] >= box[0])
                  & (where[..., 1] <= box[1]))
        outside_box = torch.ones(H, W, dtype=torch.bool)
        outside_box[top:bottom, left:right] = False
        assert not bool((inside & outside_box).any()), (trial, (top, bottom, left, right))


def test_uncovered_pixels_take_the_background_not_the_old_content():
    image = torch.zeros(3, H, W)
    image[:] = torch.tensor([0.1, 0.5, 0.9])[:, None, None]  # flat background
    image[:, 8:40, 6:44] = torch.tensor([1.0, 0.4, 0.0])[:, None, None]  # the region's own colour
    points = DragPoints.from_pairs((W, H), [((10.5, 10.5), (17.5, 13.5))])
    smooth = warp_region(image, BLOB, points)
    hole = smooth.uncovered > 0.5
    assert torch.allclose(smooth.image[:, hole], torch.tensor([0.1, 0.5, 0.9])[:, None], atol=1e-6)
    kept = warp_region(image, BLOB, points, RegionWarpConfig(uncovered="source"))
    assert torch.allclose(kept.image[:, hole], torch.tensor([1.0, 0.4, 0.0])[:, None])


def test_spread_inward_keeps_known_pixels_and_stays_in_range():
    image = torch.rand(3, 20, 24, generator=torch.Generator().manual_seed(4))
    known = torch.ones(20, 24, dtype=torch.bool)
    known[5:15, 6:18] = False
    filled = spread_inward(image, known)
    assert torch.equal(filled[:, known], image[:, known])
    low, high = image[:, known].amin(1), image[:, known].amax(1)
    assert bool(((filled[:, ~known] >= low[:, None] - 1e-6) & (filled[:, ~known] <= high[:, None] + 1e-6)).all())


def test_the_same_input_gives_the_same_pixels():
    image = torch.rand(3, H, W, generator=torch.Generator().manual_seed(5))
    points = DragPoints.from_pairs((W, H), PAIR_SETS["three pairs"])
    a, b = warp_region(image, BLOB, points), warp_region(image.clone(), BLOB.clone(), points)
    assert torch.equal(a.image, b.image) and torch.equal(a.fill, b.fill)


def test_bad_inputs_are_named_before_any_work():
    points = DragPoints.from_pairs((W, H), [((12.5, 14.5), (20.5, 18.5))])
    with pytest.raises(DragKitInputError, match="`region` is empty"):
        warp_region(torch.rand(3, H, W), torch.zeros(H, W), points)
    with pytest.raises(DragKitInputError, match="32x48"):
        warp_region(torch.rand(3, 48, 32), torch.ones(48, 32), points)
    with pytest.raises(DragKitInputError, match="`region` is 10x10"):
        warp_region(torch.rand(3, H, W), torch.ones(10, 10), points)
    clash = DragPoints.from_pairs((W, H), [((12.5, 14.5), (20.5, 18.5)), ((30.5, 30.5), (20.5, 18.5))])
    with pytest.raises(DragKitInputError, match="pairs 1 and 2 drag two different handles to one target"):
        fit_backward_map(clash)
    twice = DragPoints.from_pairs((W, H), [((12.5, 14.5), (20.5, 18.5))] * 2)
    assert fit_backward_map(twice)(torch.tensor([[20.5, 18.5]])).tolist() == [[12.5, 14.5]]
    with pytest.raises(DragKitInputError, match="fill_grow"):
        RegionWarpConfig(fill_grow=-1)
    with pytest.raises(DragKitInputError, match="uncovered"):
        RegionWarpConfig(uncovered="blur")


def test_the_warp_does_not_depend_on_the_pairs_order_and_changes_smoothly():
    pairs = [((100.0, 520.0), (100.0, 500.0)), ((500.0, 470.0), (500.0, 500.0)), ((900.0, 520.0), (900.0, 500.0))]
    probe = torch.tensor([[500.0, 300.0], [10.0, 10.0], [700.0, 800.0]], dtype=torch.float64)
    forward = fit_backward_map(DragPoints.from_pairs((1000, 1000), pairs))(probe)
    backward = fit_backward_map(DragPoints.from_pairs((1000, 1000), pairs[::-1]))(probe)
    assert torch.allclose(forward, backward, atol=1e-6)
    # Four pairs dragged part of the way: the map at a corner moves little between 92 % and 93 %
    # (kornia's own fit, centred on the handles, is singular in between and sends it thousands of px away).
    targets = [(615, 440), (354, 369), (489, 611), (397, 580)]
    handles = [(776, 511), (509, 431), (656, 667), (558, 632)]
    corner = torch.tensor([[0.0, 0.0]], dtype=torch.float64)
    at = []
    for share in (0.92, 0.925, 0.93):
        pairs = [((t[0] + share * (h[0] - t[0]), t[1] + share * (h[1] - t[1])), t) for h, t in zip(handles, targets)]
        at.append(fit_backward_map(DragPoints.from_pairs((1000, 1000), pairs))(corner)[0])
    assert float((at[0] - at[1]).norm()) < 5 and float((at[1] - at[2]).norm()) < 5


def test_a_region_at_the_border_gives_the_same_moved_region_as_the_whole_picture_would():
    """The warp computes only in a box; a brute-force pass over every pixel must agree, also for a
    region touching the edge under a rotation."""
    region = torch.zeros(200, 200)
    region[80:120, 0:30] = 1
    points = DragPoints.from_pairs((200, 200), [((10.0, 100.0), (60.0, 50.0)), ((30.0, 100.0), (60.0, 70.0))])
    result = warp_region(torch.rand(3, 200, 200), region, points)
    where = fit_backward_map(points)(pixel_centres(200, 200)).reshape(200, 200, 2)
    from dragkit.core.region_warp import sample
    inside = (where[..., 0] >= 0) & (where[..., 0] <= 200) & (where[..., 1] >= 0) & (where[..., 1] <= 200)
    expected = (sample(region[None], where)[0] > 0.5) & inside
    assert torch.equal(result.region > 0.5, expected)
