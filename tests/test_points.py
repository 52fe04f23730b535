"""DRAG_POINTS: parsing, round trips, grid conversion and every validation error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from dragkit.core.errors import DragKitInputError
from dragkit.core.points import DragPoints, grid_cells, grid_to_image, image_to_grid

DRAGBENCH = Path(__file__).resolve().parents[2] / "shared" / "benchmarks" / "DragBench"


def _points():
    return DragPoints.from_pairs((512, 384), [((100, 200), (150, 210)), ((10.5, 20.25), (30, 40))])


def test_json_round_trip():
    points = _points()
    again = DragPoints.from_json(points.to_json())
    assert again == points
    assert json.loads(points.to_json())["pairs"][1] == {"handle": [10.5, 20.25], "target": [30.0, 40.0]}


def test_flat_form_round_trip():
    points = _points()
    assert DragPoints.from_flat(points.to_flat(), (512, 384)) == points
    data = {"image_size": [512, 384], "points": points.to_flat()}
    assert DragPoints.from_dict(data) == points


@pytest.mark.skipif(not DRAGBENCH.is_dir(), reason="../shared/benchmarks not beside the checkout")
def test_every_dragbench_instruction_parses():
    from PIL import Image

    files = sorted(DRAGBENCH.glob("*/*/drag_instruction.json"))
    assert len(files) == 205
    pairs = 0
    for path in files[:40]:
        size = Image.open(path.parent / "original_image.png").size
        points = DragPoints.from_flat(json.loads(path.read_text())["points"], size)
        pairs += len(points)
    assert pairs >= 40


@pytest.mark.parametrize(
    "text, message",
    [
        ('{"image_size": [64, 64], "pairs": []}', "No drag pairs"),
        ('{"image_size": [64, 64], "pairs": [{"handle": [70, 10], "target": [5, 5]}]}', r"pair 1: handle \(70, 10\) is outside the 64x64"),
        ('{"image_size": [64, 64], "pairs": [{"handle": [1, 1], "target": [5, -1]}]}', "target"),
        ('{"image_size": [64, 64], "pairs": [{"handle": [1, 1]}]}', "pair 1 must be"),
        ('{"image_size": [64, 64], "pairs": [{"handle": [1], "target": [1, 2]}]}', r"must be \[x, y\]"),
        ('{"image_size": [0, 64], "pairs": [{"handle": [1, 1], "target": [2, 2]}]}', "positive"),
        ('{"pairs": []}', "must be"),
        ('{"image_size": [64, 64], "points": [[1, 1], [2, 2], [3, 3]]}', "even count"),
        ("not json", "not valid JSON"),
        ('{"image_size": [64, 64], "pairs": [{"handle": [NaN, 1], "target": [2, 2]}]}', "finite"),
    ],
)
def test_validation_errors(text, message):
    with pytest.raises(DragKitInputError, match=message):
        DragPoints.from_json(text)


def test_size_mismatch_is_an_error_unless_rescaling_is_asked():
    points = _points()
    assert points.fit((512, 384)) is points
    with pytest.raises(DragKitInputError, match="drawn on a 512x384 image but the image is 256x192"):
        points.fit((256, 192))
    half = points.fit((256, 192), rescale=True)
    assert half.handles[0] == (50.0, 100.0) and half.targets[1] == (15.0, 20.0)


def test_grid_conversion_is_row_col_with_cell_centres():
    # A 64x32 image on a (16, 32) grid: cells are 2 px wide and 2 px tall.
    points = DragPoints.from_pairs((64, 32), [((16.5, 8.5), (47.9, 24.0))])
    handles, targets = points.to_grid((16, 32), cells=False)
    torch.testing.assert_close(handles, torch.tensor([[8.5 / 2 - 0.5, 16.5 / 2 - 0.5]]))  # (row, col)
    cells, target_cells = points.to_grid((16, 32))
    assert cells.tolist() == [[4.0, 8.0]]  # pixel (8, 16) lies in cell (4, 8)
    assert target_cells.tolist() == [[12.0, 23.0]]  # x 47.9 is still in column 23 (pixels 46-48)
    # Inverse: a cell index is the cell's centre; round trips are exact.
    back = points.from_grid(handles, (16, 32))
    assert back.handles == ((16.5, 8.5),) and back.targets == points.targets
    assert points.from_grid(cells, (16, 32)).handles == ((17.0, 9.0),)


def test_grid_cells_hold_their_points_and_stay_inside():
    size, grid = (100, 60), (15, 25)  # 4 px per cell both ways
    xy = torch.tensor([[0.0, 0.0], [3.99, 3.99], [4.0, 4.0], [99.9, 59.9], [100.0, 60.0], [-3.0, 70.0]])
    assert grid_cells(xy, size, grid).tolist() == [[0, 0], [0, 0], [1, 1], [14, 24], [14, 24], [14, 0]]
    rc = torch.tensor([[0.0, 0.0], [14.0, 24.0], [3.25, 7.5]])
    torch.testing.assert_close(image_to_grid(grid_to_image(rc, size, grid), size, grid), rc)
    # Every pixel centre maps into the cell that covers it.
    ys, xs = torch.meshgrid(torch.arange(60.0), torch.arange(100.0), indexing="ij")
    centres = torch.stack([xs.flatten() + 0.5, ys.flatten() + 0.5], dim=-1)
    cells = grid_cells(centres, size, grid)
    assert torch.equal(cells[:, 0], (ys.flatten() // 4)) and torch.equal(cells[:, 1], (xs.flatten() // 4))


def test_with_handles_keeps_targets():
    moved = _points().with_handles([(1, 2), (3, 4)])
    assert moved.handles == ((1.0, 2.0), (3.0, 4.0)) and moved.targets == _points().targets
