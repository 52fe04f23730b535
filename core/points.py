"""DRAG_POINTS: handle -> target pairs in image pixels, with their image size.

Convention: ``(x, y)`` in image pixels, x to the right, y down, origin at the top-left corner of
the image; floats are allowed. Image pixel ``(i, j)`` covers ``[j, j+1) x [i, i+1)``, so a click
on it lands at its centre ``(j + 0.5, i + 0.5)``.

The move to ``(row, col)`` on a feature grid happens in one place, :func:`image_to_grid` and its
inverse :func:`grid_to_image`, used by motion supervision, energy guidance and feature regions
alike. A grid of ``(rows, cols)`` splits the image into equal cells; grid index ``k`` is the centre
of cell ``k``, which covers image rows ``[k h / rows, (k + 1) h / rows)``. Hence
``row = y rows / h - 0.5``, and the cell holding a point is ``floor(y rows / h)``
(:func:`grid_cells`).

JSON form (what the Point Picker widget and API workflows send)::

    {"image_size": [w, h], "pairs": [{"handle": [x, y], "target": [x, y]}, ...]}

DragBench / Drag100 form: a flat list alternating handle, target, handle, target, ...
(``[[x, y], [x, y], ...]``), with the image size known separately.
"""

from __future__ import annotations

import dataclasses
import json
import math
from typing import Any, Sequence

import torch

from .errors import DragKitInputError
from .limits import MAX_PAIRS, check_image_side, check_limit

Point = tuple[float, float]


@dataclasses.dataclass(frozen=True)
class DragPoints:
    """Handle -> target pairs on an image of ``image_size = (width, height)`` pixels."""

    image_size: tuple[int, int]
    handles: tuple[Point, ...]
    targets: tuple[Point, ...]

    def __post_init__(self):
        width, height = self.image_size
        if not (isinstance(width, int) and isinstance(height, int)) or width < 1 or height < 1:
            raise DragKitInputError(f"`image_size` must be two positive integers [w, h], got {list(self.image_size)}.")
        if not self.handles:
            raise DragKitInputError(
                "No drag pairs: click a handle point, then its target, in the Point Picker (or give at least one pair)."
            )
        check_limit(len(self.handles), MAX_PAIRS, "DRAGKIT_MAX_PAIRS", "the number of drag pairs",
                    "drag fewer points at once")
        check_image_side(width, height, "image_size")
        if len(self.handles) != len(self.targets):
            raise DragKitInputError(f"{len(self.handles)} handles but {len(self.targets)} targets; every handle needs a target.")
        for index, (handle, target) in enumerate(zip(self.handles, self.targets), start=1):
            for role, (x, y) in (("handle", handle), ("target", target)):
                if not (math.isfinite(x) and math.isfinite(y)):
                    raise DragKitInputError(f"pair {index}: {role} ({x}, {y}) is not a finite point.")
                if not (0 <= x <= width and 0 <= y <= height):
                    raise DragKitInputError(
                        f"pair {index}: {role} ({x:g}, {y:g}) is outside the {width}x{height} image; move it "
                        "inside or reconnect the image the points were drawn on."
                    )

    def __len__(self) -> int:
        return len(self.handles)

    # ----------------------------------------------------------------------------- constructors
    @classmethod
    def from_pairs(cls, image_size: Sequence[int], pairs: Sequence[tuple[Point, Point]]) -> "DragPoints":
        handles = tuple(_point(h, f"pair {i} handle") for i, (h, _) in enumerate(pairs, start=1))
        targets = tuple(_point(t, f"pair {i} target") for i, (_, t) in enumerate(pairs, start=1))
        return cls(_size(image_size), handles, targets)

    @classmethod
    def from_flat(cls, points: Sequence[Sequence[float]], image_size: Sequence[int]) -> "DragPoints":
        """DragBench / Drag100 form: ``[handle, target, handle, target, ...]``."""
        if len(points) % 2:
            raise DragKitInputError(
                f"the flat point list has {len(points)} points; it must alternate handle, target (an even count)."
            )
        return cls.from_pairs(image_size, list(zip(points[0::2], points[1::2])))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DragPoints":
        """``{"image_size", "pairs"}``, or ``{"image_size", "points"}`` with a DragBench flat list."""
        if isinstance(data, dict) and "image_size" in data and "pairs" not in data and "points" in data:
            return cls.from_flat(data["points"], data["image_size"])
        if not isinstance(data, dict) or "image_size" not in data or "pairs" not in data:
            raise DragKitInputError(
                'points JSON must be {"image_size": [w, h], "pairs": [{"handle": [x, y], "target": [x, y]}, ...]}.'
            )
        if not isinstance(data["pairs"], list):
            raise DragKitInputError(f'`pairs` must be a list of {{"handle": [x, y], "target": [x, y]}}, got '
                                    f'{data["pairs"]!r}; give at least one pair.')
        pairs = []
        for index, pair in enumerate(data["pairs"], start=1):
            if not isinstance(pair, dict) or "handle" not in pair or "target" not in pair:
                raise DragKitInputError(f'pair {index} must be {{"handle": [x, y], "target": [x, y]}}, got {pair!r}.')
            pairs.append((pair["handle"], pair["target"]))
        return cls.from_pairs(data["image_size"], pairs)

    @classmethod
    def from_json(cls, text: str) -> "DragPoints":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as error:
            raise DragKitInputError(f"points are not valid JSON ({error.msg} at position {error.pos}).") from None
        return cls.from_dict(data)

    # -------------------------------------------------------------------------------- outputs
    def to_dict(self) -> dict[str, Any]:
        return {
            "image_size": list(self.image_size),
            "pairs": [{"handle": list(h), "target": list(t)} for h, t in zip(self.handles, self.targets)],
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    def to_flat(self) -> list[list[float]]:
        return [list(p) for pair in zip(self.handles, self.targets) for p in pair]

    def with_handles(self, handles: Sequence[Point]) -> "DragPoints":
        """The same targets with new handle positions (e.g. where tracking left them)."""
        return dataclasses.replace(self, handles=tuple(_point(h, "handle") for h in handles))

    # ------------------------------------------------------------------------------ geometry
    def fit(self, image_size: Sequence[int], rescale: bool = False) -> "DragPoints":
        """These points on an image of ``image_size``: unchanged if the sizes agree, scaled if asked."""
        width, height = _size(image_size)
        if (width, height) == self.image_size:
            return self
        if not rescale:
            raise DragKitInputError(
                f"the points were drawn on a {self.image_size[0]}x{self.image_size[1]} image but the image is "
                f"{width}x{height}; redraw them, or turn on rescaling to scale them to the new size."
            )
        sx, sy = width / self.image_size[0], height / self.image_size[1]
        scale = lambda pts: tuple((x * sx, y * sy) for x, y in pts)  # noqa: E731
        return DragPoints((width, height), scale(self.handles), scale(self.targets))

    def to_grid(self, grid_size: Sequence[int], cells: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """Handles and targets as ``(N, 2)`` float tensors of ``(row, col)`` on a ``(rows, cols)`` grid:
        the cells holding them (:func:`grid_cells`), or with ``cells=False`` the sub-cell coordinates
        (:func:`image_to_grid`)."""
        convert = grid_cells if cells else image_to_grid
        return tuple(convert(torch.tensor(points, dtype=torch.float32), self.image_size, grid_size)
                     for points in (self.handles, self.targets))

    def from_grid(self, handles: torch.Tensor, grid_size: Sequence[int]) -> "DragPoints":
        """These pairs with the handles moved to ``(N, 2)`` ``(row, col)`` grid coordinates (inside the image)."""
        width, height = self.image_size
        xy = grid_to_image(handles.detach().float().cpu(), self.image_size, grid_size)
        xy = xy.clamp(min=torch.zeros(2), max=torch.tensor([float(width), float(height)]))
        return self.with_handles([tuple(point) for point in xy.tolist()])


def image_to_grid(xy: torch.Tensor, image_size: Sequence[int], grid_size: Sequence[int]) -> torch.Tensor:
    """Image pixels to grid coordinates (the module docstring states the convention).

    Args:
        xy: ``(N, 2)`` ``(x, y)`` in pixels of an image of ``image_size = (w, h)``.
        grid_size: ``(rows, cols)``.

    Returns:
        ``(N, 2)`` float ``(row, col)``; integer values are cell centres.
    """
    (width, height), (rows, cols) = image_size, grid_size
    scale = torch.tensor([rows / height, cols / width], dtype=xy.dtype, device=xy.device)
    return xy.flip(-1) * scale - 0.5


def grid_to_image(rc: torch.Tensor, image_size: Sequence[int], grid_size: Sequence[int]) -> torch.Tensor:
    """Inverse of :func:`image_to_grid`: ``(N, 2)`` ``(row, col)`` to ``(N, 2)`` ``(x, y)`` image pixels."""
    (width, height), (rows, cols) = image_size, grid_size
    scale = torch.tensor([width / cols, height / rows], dtype=rc.dtype, device=rc.device)
    return (rc.flip(-1) + 0.5) * scale


def grid_cells(xy: torch.Tensor, image_size: Sequence[int], grid_size: Sequence[int]) -> torch.Tensor:
    """``(N, 2)`` float ``(row, col)`` of the grid cell holding each ``(x, y)`` image point; points on
    or past the image border get the border cell."""
    rows, cols = grid_size
    cells = torch.floor(image_to_grid(xy, image_size, grid_size) + 0.5)
    return cells.clamp(min=torch.zeros(2, device=xy.device), max=torch.tensor([rows - 1.0, cols - 1.0], device=xy.device))


def _size(image_size: Sequence[int]) -> tuple[int, int]:
    try:
        width, height = image_size
    except (TypeError, ValueError):
        raise DragKitInputError(f"`image_size` must be [w, h], got {image_size!r}.") from None
    if isinstance(width, float) and width.is_integer():
        width = int(width)
    if isinstance(height, float) and height.is_integer():
        height = int(height)
    return width, height


def _point(value: Any, name: str) -> Point:
    try:
        x, y = value
        return float(x), float(y)
    except (TypeError, ValueError):
        raise DragKitInputError(f"{name} must be [x, y], got {value!r}.") from None
