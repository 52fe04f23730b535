"""What a model recommends to DragKit's methods: typed, checked hints read from its ``dragkit.json``.

A model folder may carry a ``dragkit.json`` saying which UNet features suit its latent size, how
large its VAE's step is, how to preview it. Every field is optional (``None`` = the method's own
default) and checked when the folder is read; a key DragKit does not know is an error naming the
file, so a typo never silently falls back to a default. The toy model's training statistics live
under ``"training"`` in the same file: a record for its model card, never read as a hint.

Methods read hints only through their ``for_model`` functions
(:func:`dragkit.core.methods.dragdiffusion.for_model`, :func:`dragkit.core.methods.diffeditor.for_model`),
so a node, a benchmark and a script resolve a model's settings the same way.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from .errors import DragKitModelError

TRAINING_RECORD = "training"  # statistics of how the model was made: kept apart, never a hint
PREVIEW_METHODS = ("projection", "vae", "none")


@dataclasses.dataclass(frozen=True)
class ModelHints:
    """A model's recommendations; ``None`` everywhere means "use the method's default".

    Attributes:
        feature_layers: decoder features for DragDiffusion/GoodDrag supervision and tracking.
        guidance_layers: decoder features for DragonDiffusion/DiffEditor guidance.
        energy_scale_factor: multiplies DragonDiffusion/DiffEditor's energy scale in every mode
            (1 = SD1.5's, the papers'): how strongly this model's features answer to guidance.
        guidance_steps: DragonDiffusion/DiffEditor guide the denoising steps below this (SD1.5: 30).
        sde_steps: ``(first, last)`` denoising steps with DiffEditor's regional SDE (SD1.5: 11, 19).
        time_travel_steps: the steps DiffEditor repeats with time travel (SD1.5: 22, 24, 26, 28).
        region_layers: decoder features for Feature Region.
        lam: weight of the drag's background term.
        supervision_scale: supervision grid size as a share of the image size (SD1.5: 0.5).
        vae_scale: image pixels per latent pixel, for models without a VAE to tell (SD1.5: 8).
        latent_scale: factor from ComfyUI's unscaled LATENT to the UNet's latent space.
        preview: live-preview method, one of :data:`PREVIEW_METHODS`.
        image_size, latent_size: the square resolution the model was trained at (informational).
    """

    feature_layers: tuple[int, ...] | None = None
    guidance_layers: tuple[int, ...] | None = None
    energy_scale_factor: float | None = None
    guidance_steps: int | None = None
    sde_steps: tuple[int, int] | None = None
    time_travel_steps: tuple[int, ...] | None = None
    region_layers: tuple[int, ...] | None = None
    lam: float | None = None
    supervision_scale: float | None = None
    vae_scale: int | None = None
    latent_scale: float | None = None
    preview: str | None = None
    image_size: int | None = None
    latent_size: int | None = None

    def __post_init__(self):
        for name in ("feature_layers", "guidance_layers", "region_layers"):
            value = getattr(self, name)
            if value is None:
                continue
            layers = tuple(value) if isinstance(value, (list, tuple)) else None
            if not layers or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in layers):
                raise DragKitModelError(f"hint `{name}` must be a non-empty list of decoder indices >= 0, got {value!r}.")
            object.__setattr__(self, name, layers)
        for name, low in (("lam", 0.0), ("supervision_scale", None), ("latent_scale", None),
                          ("energy_scale_factor", None)):
            value = getattr(self, name)
            if value is None:
                continue
            if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value) \
                    or (value < low if low is not None else value <= 0):
                raise DragKitModelError(f"hint `{name}` must be a {'number >= 0' if low is not None else 'positive number'}"
                                        f", got {value!r}.")
            object.__setattr__(self, name, float(value))
        for name, length in (("sde_steps", 2), ("time_travel_steps", None)):
            value = getattr(self, name)
            if value is None:
                continue
            steps = tuple(value) if isinstance(value, (list, tuple)) else None
            if steps is None or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in steps) \
                    or (length is not None and (len(steps) != length or steps[0] > steps[1])):
                shape = "[first, last] denoising step indices (>= 0, first <= last)" if length \
                    else "a list of denoising step indices >= 0"
                raise DragKitModelError(f"hint `{name}` must be {shape}, got {value!r}.")
            object.__setattr__(self, name, steps)
        if self.guidance_steps is not None and (not isinstance(self.guidance_steps, int)
                                                or isinstance(self.guidance_steps, bool) or self.guidance_steps < 0):
            raise DragKitModelError(f"hint `guidance_steps` must be a whole number >= 0, got {self.guidance_steps!r}.")
        for name in ("vae_scale", "image_size", "latent_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise DragKitModelError(f"hint `{name}` must be a whole number >= 1, got {value!r}.")
        if self.preview is not None and self.preview not in PREVIEW_METHODS:
            raise DragKitModelError(f"hint `preview` must be one of {', '.join(PREVIEW_METHODS)}, got {self.preview!r}.")

    def replace(self, **changes: Any) -> "ModelHints":
        """These hints with some fields changed (checked again)."""
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_dict(cls, data: dict, source: str = "dragkit.json") -> "ModelHints":
        """Hints from a parsed ``dragkit.json``; unknown keys and bad values are errors naming ``source``."""
        known = {field.name for field in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known - {TRAINING_RECORD})
        if unknown:
            raise DragKitModelError(f"'{source}' has unknown key(s) {', '.join(map(repr, unknown))}; the keys DragKit "
                                    f"reads are {', '.join(sorted(known))} (and '{TRAINING_RECORD}', a record).")
        try:
            return cls(**{key: value for key, value in data.items() if key in known})
        except DragKitModelError as error:
            raise DragKitModelError(f"'{source}': {error}") from None
