"""Point Picker: widget state parsing and validation, mask strokes, preview; the Feature Region node."""

from __future__ import annotations

import json

import pytest
import torch

from dragkit.core.editor_state import EMPTY_STATE, EditorState
from dragkit.core.errors import DragKitInputError
from dragkit.core.masks import rasterize_strokes
from dragkit.core.overlay import PAIR_COLOURS, draw_drag_overlay
from dragkit.core.points import DragPoints
from dragkit.nodes.picker_nodes import DragKitFeatureRegion, DragKitPointPicker


def _state(pairs=((10, 20), (30, 20)), strokes=(), size=(64, 48)):
    return json.dumps({
        "version": 1, "image_size": list(size) if size else None,
        "pairs": [{"handle": list(pairs[0]), "target": list(pairs[1])}] if pairs else [],
        "mask": {"strokes": list(strokes)},
    })


def test_strokes_paint_and_erase_in_order():
    strokes = [
        {"mode": "paint", "radius": 4, "points": [[10, 10], [30, 10]]},
        {"mode": "erase", "radius": 2, "points": [[20, 10]]},
    ]
    mask = rasterize_strokes(strokes, (40, 20))
    assert mask.shape == (20, 40)
    assert mask[10, 10] == 1 and mask[10, 29] == 1 and mask[6, 20] == 1  # along the line, within r
    assert mask[10, 20] == 0 and mask[10, 19] == 0  # erased dot
    assert mask[0, 0] == 0 and mask[19, 39] == 0
    # A pixel is in when its centre is within r of the line: pixel (10, 33) has its centre at
    # (33.5, 10.5), 3.54 from the end point (30, 10); pixel (10, 34) is 4.53 away.
    assert mask[10, 33] == 1 and mask[10, 34] == 0


@pytest.mark.parametrize("stroke", [{"mode": "blur", "radius": 2, "points": [[1, 1]]},
                                    {"mode": "paint", "radius": 0, "points": [[1, 1]]},
                                    {"mode": "paint", "radius": 2, "points": []}])
def test_bad_strokes(stroke):
    with pytest.raises(DragKitInputError, match="stroke 1"):
        rasterize_strokes([stroke], (8, 8))


def test_state_round_trip_and_errors():
    state = EditorState.from_json(_state(strokes=[{"mode": "paint", "radius": 3, "points": [[5, 5]]}]))
    assert EditorState.from_json(json.dumps(state.to_dict())) == state
    assert state.points((64, 48)) == DragPoints.from_pairs((64, 48), [((10, 20), (30, 20))])
    assert EditorState.from_json(EMPTY_STATE).pairs == ()
    with pytest.raises(DragKitInputError, match="not valid JSON"):
        EditorState.from_json("{oops")
    with pytest.raises(DragKitInputError, match="version 7"):
        EditorState.from_json('{"version": 7}')
    with pytest.raises(DragKitInputError, match="pair 1 must be"):
        EditorState.from_json('{"version": 1, "pairs": [{"handle": [1, 2]}]}')


def test_state_mask_scales_with_the_image():
    state = EditorState.from_json(_state(strokes=[{"mode": "paint", "radius": 2, "points": [[10, 10]]}], size=(32, 32)))
    mask = state.mask((64, 64))
    assert mask[20, 20] == 1 and mask[10, 10] == 0


def test_overlay_draws_arrows_and_tints_the_mask():
    image = torch.zeros(3, 64, 64)
    mask = torch.zeros(64, 64)
    mask[40:60, 0:20] = 1
    points = DragPoints.from_pairs((64, 64), [((10, 32), (50, 32))])
    out = draw_drag_overlay(image, points, mask)
    assert out.shape == (3, 64, 64)
    colour = torch.tensor(PAIR_COLOURS[0]) / 255
    assert ((out[:, 32, 25] - colour).abs() < 0.02).all()  # the arrow's shaft
    assert out[:, 50, 10].min() > 0.25 and out[:, 5, 60].max() == 0  # tint inside the mask only


def test_picker_node_outputs():
    image = torch.rand(1, 48, 64, 3)
    before = image.clone()
    strokes = [{"mode": "paint", "radius": 5, "points": [[20, 20], [40, 20]]}]
    result = DragKitPointPicker().pick(image, _state(strokes=strokes))
    points, mask, preview = result["result"]
    assert points == DragPoints.from_pairs((64, 48), [((10, 20), (30, 20))])
    assert mask.shape == (1, 48, 64) and mask[0, 20, 30] == 1 and mask[0, 0, 0] == 0
    assert preview.shape == (1, 48, 64, 3)
    assert torch.equal(image, before)  # the input IMAGE is never modified (ComfyUI caches it)


def test_picker_starts_from_an_input_mask_and_ignores_the_placeholder():
    image = torch.rand(1, 48, 64, 3)
    base = torch.zeros(1, 48, 64)
    base[0, 40:, 50:] = 1
    _, mask, _ = DragKitPointPicker().pick(image, _state(), mask=base)["result"]
    assert mask[0, 45, 60] == 1
    _, mask, _ = DragKitPointPicker().pick(image, _state(), mask=torch.zeros(1, 64, 64))["result"]
    assert mask.sum() == 0
    with pytest.raises(DragKitInputError, match="mask"):
        DragKitPointPicker().pick(image, _state(), mask=torch.ones(1, 64, 64))


def test_a_mask_without_pairs_is_a_valid_picker_result():
    """move and resize need only the object's mask; nodes that need pairs say what to do."""
    from dragkit.nodes.drag_nodes import checked_points

    image = torch.rand(1, 48, 64, 3)
    stroke = {"mode": "paint", "radius": 5, "points": [[20, 20], [30, 20]]}
    points, mask, preview = DragKitPointPicker().pick(image, _state(pairs=None, strokes=[stroke]))["result"]
    assert points is None
    assert mask.shape == (1, 48, 64) and mask[0, 20, 25] == 1 and mask.sum() > 50
    # The preview shows the mask (tinted) and no arrows.
    inside, outside = preview[0, 20, 25], preview[0, 40, 60]
    torch.testing.assert_close(inside, image[0, 20, 25] * 0.7 + 0.3, atol=2 / 255, rtol=0)
    torch.testing.assert_close(outside, image[0, 40, 60], atol=1 / 255, rtol=0)
    with pytest.raises(DragKitInputError, match="no drag pairs: click a handle"):
        checked_points(points, None, None, False)


def test_picker_errors():
    image = torch.rand(1, 48, 64, 3)
    with pytest.raises(DragKitInputError, match="drawn on a 32x32 image but the image is 64x48"):
        DragKitPointPicker().pick(image, _state(size=(32, 32)))
    with pytest.raises(DragKitInputError, match="outside"):
        DragKitPointPicker().pick(image, _state(pairs=((10, 20), (90, 20))))


def test_feature_region_node(tiny_model, latent):
    tiny_model.hints = tiny_model.hints.replace(vae_scale=8)
    points = DragPoints.from_pairs((128, 128), [((64, 64), (80, 64))])
    (mask,) = DragKitFeatureRegion().region(tiny_model, {"samples": latent / tiny_model.latent_scale}, points,
                                            261, 0.8, 1, 2, 1, 0)
    assert mask.shape == (1, 128, 128) and mask[0, 64, 64] == 1


def _brute_force_strokes(strokes, image_size):
    """Every pixel against every segment of every stroke: the definition the fast painter must match."""
    width, height = image_size
    ys = torch.arange(height, dtype=torch.float32)[:, None] + 0.5
    xs = torch.arange(width, dtype=torch.float32)[None, :] + 0.5
    mask = torch.zeros(height, width)
    for stroke in strokes:
        path = torch.tensor(stroke["points"], dtype=torch.float32).reshape(-1, 2)
        inside = torch.zeros(height, width, dtype=torch.bool)
        for (x0, y0), (x1, y1) in zip(path.tolist(), torch.cat([path[1:], path[-1:]]).tolist()):
            dx, dy = x1 - x0, y1 - y0
            u = (((xs - x0) * dx + (ys - y0) * dy) / (dx * dx + dy * dy)).clamp(0, 1) if dx or dy else torch.zeros(1, 1)
            inside |= (xs - (x0 + u * dx)) ** 2 + (ys - (y0 + u * dy)) ** 2 <= stroke["radius"] ** 2
        mask[inside] = 1.0 if stroke["mode"] == "paint" else 0.0
    return mask


def test_windowed_stroke_painting_equals_the_pixelwise_definition():
    generator = torch.Generator().manual_seed(0)
    strokes = []
    for index in range(40):  # radii from sub-pixel to large, points partly outside the image, erasing too
        count = int(torch.randint(1, 9, (1,), generator=generator))
        points = torch.rand(count, 2, generator=generator) * torch.tensor([100.0, 80.0]) - 10
        strokes.append({"mode": "erase" if index % 3 == 2 else "paint",
                        "radius": float(torch.rand(1, generator=generator) * 14 + 0.3), "points": points.tolist()})
    painted = rasterize_strokes(strokes, (80, 60))
    assert 0 < painted.sum() < painted.numel()
    assert torch.equal(painted, _brute_force_strokes(strokes, (80, 60)))
