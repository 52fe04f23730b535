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
        pairs = []
        for index, pair in enumerate(data.get("pairs") or [], start=1):
            if not isinstance(pair, dict) or "handle" not in pair or "target" not in pair:
                raise DragKitInputError(f'pair {index} must be {{"handle": [x, y], "target": [x, y]}}, got {pair!r}.')
            pairs.append((tuple(pair["handle"]), tuple(pair["target"])))
        strokes = (data.get("mask") or {}).get("strokes") or []
        if not isinstance(strokes, list):
            raise DragKitInputError("the Point Picker's mask strokes must be a list.")
        size = data.get("image_size")
        return cls(tuple(size) if size else None, tuple(pairs), tuple(strokes))

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
