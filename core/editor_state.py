"""The Point Picker widget's state: what the browser editor stores in its STRING widget.

Format (version 1), coordinates in image pixels like DRAG_POINTS::

    {"version": 1, "image_size": [w, h],
     "pairs": [{"handle": [x, y], "target": [x, y]}, ...],
     "mask": {"strokes": [{"mode": "paint" | "erase", "radius": r, "points": [[x, y], ...]}, ...]}}
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import torch

from .errors import DragKitInputError
from .limits import MAX_PAIRS, MAX_STROKE_POINTS, MAX_STROKES, check_image_side, check_limit
from .masks import rasterize_strokes
from .points import DragPoints

STATE_VERSION = 1
EMPTY_STATE = json.dumps({"version": STATE_VERSION, "image_size": None, "pairs": [], "mask": {"strokes": []}})


@dataclasses.dataclass(frozen=True)
class EditorState:
    """Parsed widget state.

    Attributes:
        image_size: ``(w, h)`` the points were drawn on, or ``None`` if the editor never saw the image.
        pairs: ``[((hx, hy), (tx, ty)), ...]`` (may be empty while the user is still clicking).
        strokes: mask strokes in paint order.
    """

    image_size: tuple[int, int] | None
    pairs: tuple
    strokes: tuple

    @classmethod
    def from_json(cls, text: str) -> "EditorState":
        try:
            data = json.loads(text) if text.strip() else json.loads(EMPTY_STATE)
        except json.JSONDecodeError as error:
            raise DragKitInputError(
                f"the Point Picker's state is not valid JSON ({error.msg} at position {error.pos}); undo the last "
                "edit or clear the points."
            ) from None
        if not isinstance(data, dict):
            raise DragKitInputError("the Point Picker's state must be a JSON object.")
        version = data.get("version", STATE_VERSION)
        if version != STATE_VERSION:
            raise DragKitInputError(f"the Point Picker's state has version {version}; this DragKit reads {STATE_VERSION}.")
        raw_pairs = data.get("pairs") or []
        if not isinstance(raw_pairs, list):
            raise DragKitInputError(f"the Point Picker's `pairs` must be a list, got {raw_pairs!r}; clear the points.")
        check_limit(len(raw_pairs), MAX_PAIRS, "DRAGKIT_MAX_PAIRS", "the number of drag pairs", "remove some pairs")
        pairs = []
        for index, pair in enumerate(raw_pairs, start=1):
            if not isinstance(pair, dict) or "handle" not in pair or "target" not in pair:
                raise DragKitInputError(f'pair {index} must be {{"handle": [x, y], "target": [x, y]}}, got {pair!r}.')
            pairs.append((_xy(pair["handle"], f"pair {index} handle"), _xy(pair["target"], f"pair {index} target")))
        mask = data.get("mask") or {}
        if not isinstance(mask, dict):
            raise DragKitInputError(f'the Point Picker\'s `mask` must be {{"strokes": [...]}}, got {mask!r}; clear the mask.')
        return cls(_image_size(data.get("image_size")), tuple(pairs), tuple(_strokes(mask.get("strokes") or [])))

    def points(self, image_size: tuple[int, int], rescale: bool = False) -> DragPoints | None:
        """The pairs as DRAG_POINTS on an image of ``image_size`` (checked; scaled only if asked), or
        ``None`` when there are none yet (a mask alone is a valid picker result: move and resize need no pairs)."""
        if not self.pairs:
            return None
        return DragPoints.from_pairs(self.image_size or image_size, self.pairs).fit(image_size, rescale)

    def mask(self, image_size: tuple[int, int], base: torch.Tensor | None = None) -> torch.Tensor:
        """``(H, W)`` mask: ``base`` (or empty) with the strokes painted on, scaled to ``image_size``."""
        strokes = list(self.strokes)
        if self.image_size and tuple(self.image_size) != tuple(image_size) and strokes:
            sx, sy = image_size[0] / self.image_size[0], image_size[1] / self.image_size[1]
            strokes = [dict(s, radius=s["radius"] * (sx + sy) / 2, points=[[x * sx, y * sy] for x, y in s["points"]])
                       for s in strokes]
        return rasterize_strokes(strokes, image_size, base)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "image_size": list(self.image_size) if self.image_size else None,
            "pairs": [{"handle": list(h), "target": list(t)} for h, t in self.pairs],
            "mask": {"strokes": list(self.strokes)},
        }


# ------------------------------------------------------------------------------------ checks
STROKE_FORMAT = '{"mode": "paint" | "erase", "radius": r > 0, "points": [[x, y], ...]}'


# Largest |coordinate| a state may hold, in image pixels: far outside any image, yet small enough that
# float32 arithmetic on it stays exact to a pixel and nothing overflows.
MAX_COORDINATE = 1e6


def _number(value: Any) -> bool:
    """A real number within +-MAX_COORDINATE (JSON's huge integers and NaN are not)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and -MAX_COORDINATE <= value <= MAX_COORDINATE


def _xy(value: Any, name: str) -> tuple[float, float]:
    """A finite ``[x, y]`` pair of numbers within :data:`MAX_COORDINATE`."""
    if not isinstance(value, (list, tuple)) or len(value) != 2 or not all(_number(v) for v in value):
        raise DragKitInputError(f"{name} must be [x, y], two numbers within +-{MAX_COORDINATE:g}, got "
                                f"{str(value)[:80]}; clear and redo it.")
    return float(value[0]), float(value[1])


def _image_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if (not isinstance(value, (list, tuple)) or len(value) != 2
            or not all(_number(v) and v >= 1 and float(v).is_integer() for v in value)):
        raise DragKitInputError(f"the Point Picker's `image_size` must be [w, h], two whole numbers >= 1, got {value!r}; "
                                "run the graph once so the editor sees the image, or clear the state.")
    width, height = int(value[0]), int(value[1])
    check_image_side(width, height, "image_size")
    return width, height


def _strokes(raw: Any) -> list[dict]:
    """Checked brush strokes (within the limits), with float coordinates."""
    if not isinstance(raw, list):
        raise DragKitInputError("the Point Picker's mask strokes must be a list; clear the mask.")
    check_limit(len(raw), MAX_STROKES, "DRAGKIT_MAX_STROKES", "the number of brush strokes",
                "clear the mask and paint it with fewer strokes")
    total = sum(len(s.get("points") or []) for s in raw if isinstance(s, dict) and isinstance(s.get("points"), list))
    check_limit(total, MAX_STROKE_POINTS, "DRAGKIT_MAX_STROKE_POINTS", "the number of brush points",
                "clear the mask and paint it with fewer strokes")
    strokes = []
    for index, stroke in enumerate(raw, start=1):
        if not isinstance(stroke, dict):
            raise DragKitInputError(f"mask stroke {index} must be {STROKE_FORMAT}, got {stroke!r}.")
        mode, radius, points = stroke.get("mode"), stroke.get("radius"), stroke.get("points")
        if (mode not in ("paint", "erase") or not _number(radius) or radius <= 0
                or not isinstance(points, list) or not points):
            raise DragKitInputError(f"mask stroke {index} must be {STROKE_FORMAT}.")
        strokes.append({"mode": mode, "radius": float(radius),
                        "points": [list(_xy(p, f"mask stroke {index} point {i}")) for i, p in enumerate(points, 1)]})
    return strokes
