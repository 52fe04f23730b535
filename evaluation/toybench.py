"""The toy benchmark and demo: does a method really move the shape, and leave the rest alone?

Each case is a held-out synthetic scene (seeds never used in training) with one flat-coloured
shape and a known drag: the handle sits on the shape near its leading edge in the drag direction,
the target 8-20 % of the image size away, and the editable mask covers the shape's path. The
ground truth is the same scene rendered with the shape moved. Scores are measured on the shape
itself, found by its colour, never on the tracker's own "reached" flag.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import statistics
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

from ..core.fill import FillConfig, fill_masked
from ..core.inversion import ddim_invert
from ..core.methods.registry import METHODS as REGISTERED
from ..core.methods.registry import get_method
from ..core.keep import KeepConfig, latent_keep_weights, paste_outside
from ..core.metrics import centroid, colour_mask, iou, psnr
from ..core.model import DragModel, load_diffusers_folder, load_toy_model
from ..core.overlay import draw_drag_overlay, to_pil
from ..core.points import DragPoints
from ..core.region_warp import dilate, warp_region
from ..core.sampling import reference_sample
from . import scenes
from .speed import print_table, write_json

logger = logging.getLogger(__name__)

HELD_OUT_SEED = 1_000_000
COLOUR_TOLERANCE = 0.15


@dataclasses.dataclass
class Case:
    """One benchmark edit."""

    seed: int
    scene: "scenes.Scene"
    moved: "scenes.Scene"
    points: DragPoints
    editable: torch.Tensor  # (H, W) float, the shape's path
    offset: tuple[float, float]


def make_case(seed: int) -> Case:
    """A held-out scene and a drag of its shape; deterministic in ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    scene = scenes.make_scene(seed)
    height, width = scene.mask.shape
    size = min(height, width)
    for _ in range(50):
        angle = float(torch.rand((), generator=generator)) * 2 * math.pi
        distance = size * (0.08 + 0.12 * float(torch.rand((), generator=generator)))
        dx, dy = round(distance * math.cos(angle)), round(distance * math.sin(angle))
        moved = scene.moved(dx, dy)
        # The moved shape must stay whole inside the image.
        if (dx or dy) and abs(float(moved.mask.sum()) - float(scene.mask.sum())) < 0.5:
            break
    mask = scene.mask > 0.5
    cx, cy = centroid(mask)
    ux, uy = dx / math.hypot(dx, dy), dy / math.hypot(dx, dy)
    # Leading edge: walk from the centre along the drag direction while inside the shape.
    reach = 0.0
    while True:
        x, y = cx + (reach + 1) * ux, cy + (reach + 1) * uy
        if not (0 <= x < width and 0 <= y < height) or not mask[int(y), int(x)]:
            break
        reach += 1
    handle = (cx + ux * max(reach - 2, 0) + 0.5, cy + uy * max(reach - 2, 0) + 0.5)
    target = (handle[0] + dx, handle[1] + dy)
    path = (mask | (moved.mask > 0.5)).float()
    editable = F.max_pool2d(path[None, None], kernel_size=7, stride=1, padding=3)[0, 0]
    points = DragPoints.from_pairs((width, height), [(handle, target)])
    return Case(seed, scene, moved, points, editable, (float(dx), float(dy)))


# A success moves the shape at least this fraction of the drag, ends nearer its target than its
# start, overlaps the ground truth by this IoU and keeps this share of its area.
SUCCESS_FRACTION = 0.5
SUCCESS_IOU = 0.5
SUCCESS_AREA = (0.7, 1.4)
DISTRACTOR_MARGIN = 2  # pixels around the distractor that never count as the shape


def distractor_zone(scene: "scenes.Scene", margin: int = DISTRACTOR_MARGIN) -> torch.Tensor:
    """``(H, W)`` bool: the distractor's footprint grown by ``margin`` pixels (all False without one)."""
    height, width = scene.mask.shape
    if scene.distractor is None:
        return torch.zeros(height, width, dtype=torch.bool)
    cover = scenes.shape_coverage(scene.distractor, height, width)[None, None]
    return F.max_pool2d(cover, 2 * margin + 1, stride=1, padding=margin)[0, 0] > 0


def find_shape(case: Case, image: torch.Tensor) -> torch.Tensor:
    """``(H, W)`` bool: the pixels of ``image`` in the shape's colour, never those at the distractor
    (whose reconstruction may drift toward the shape's colour)."""
    return colour_mask(image, case.scene.colour, COLOUR_TOLERANCE) & ~distractor_zone(case.scene)


def score(case: Case, edited: torch.Tensor) -> dict[str, float]:
    """Shape and background scores of an edited ``(3, H, W)`` image against the case.

    ``success`` needs the move itself: the shape's centroid goes at least :data:`SUCCESS_FRACTION` of
    the drag and the shape overlaps the moved ground truth more than where it started, so an unmoved
    shape is never a success, however large it is. ``distractor_psnr_db`` is measured on the
    distractor (when the case has one outside the editable mask), NaN otherwise.
    """
    original = find_shape(case, case.scene.image)
    found = find_shape(case, edited)
    before, after = centroid(original), centroid(found)
    dx, dy = case.offset
    if before is None or after is None:
        fraction = 0.0
    else:
        fraction = ((after[0] - before[0]) * dx + (after[1] - before[1]) * dy) / (dx * dx + dy * dy)
    area = int(found.sum()) / max(int(original.sum()), 1)
    overlap = iou(found, case.moved.mask > 0.5)
    stayed = iou(found, case.scene.mask > 0.5)
    low, high = SUCCESS_AREA
    success = fraction >= SUCCESS_FRACTION and overlap > stayed and overlap >= SUCCESS_IOU and low <= area <= high
    zone = distractor_zone(case.scene, margin=0) & (case.editable < 0.5)
    return {
        "fraction": fraction,
        "iou": overlap,
        "area_kept": area,
        "success": float(success),
        "bg_psnr_db": psnr(edited, case.scene.image, case.editable < 0.5),
        "distractor_psnr_db": psnr(edited, case.scene.image, zone) if bool(zone.any()) else float("nan"),
    }


# ------------------------------------------------------------------------------------- methods
# A method turns a case into an edited (3, H, W) picture; with a KeepConfig it keeps the source
# outside the editable mask while sampling and pastes the source pixels back after decoding.
Method = Callable[[DragModel, Case, "KeepConfig | None"], torch.Tensor]


def _latent(model: DragModel, image: torch.Tensor) -> torch.Tensor:
    return model.encode(image[None])


def _kept(model: DragModel, image: torch.Tensor, case: Case, keep: KeepConfig | None) -> torch.Tensor:
    """``image`` with the source pasted back outside the editable mask when ``keep`` is on."""
    if keep is None:
        return image
    return paste_outside(image, case.scene.image.to(image), case.editable, model.vae_scale, keep)


def _decoded(model: DragModel, latent: torch.Tensor, case: Case, keep: KeepConfig | None) -> torch.Tensor:
    return _kept(model, model.decode(latent)[0], case, keep)


def baseline(model: DragModel, case: Case, keep: KeepConfig | None = None) -> torch.Tensor:
    inversion = ddim_invert(model, _latent(model, case.scene.image))
    edited, _ = reference_sample(model, inversion, keep=latent_keep_weights(model, inversion, case.editable, keep))
    return _decoded(model, edited, case, keep)


def oracle(model: DragModel, case: Case, keep: KeepConfig | None = None) -> torch.Tensor:
    return _decoded(model, _latent(model, case.moved.image), case, keep)


def _registered(name: str) -> Method:
    """A registered method (:mod:`dragkit.core.methods.registry`) on a case: invert at the method's
    strength, edit with its preset and the model's recommendations, decode."""
    method = get_method(name)

    def run(model: DragModel, case: Case, keep: KeepConfig | None = None) -> torch.Tensor:
        inversion = ddim_invert(model, _latent(model, case.scene.image), strength=method.strength)
        result = method.edit(model, inversion, case.points, case.editable, keep=keep)
        return _decoded(model, result.latent, case, keep)

    return run


# Inpaint4Drag on the toy model: the region is the shape as a user paints it (its pixels and one
# around them), the fill starts from the inversion at this strength. Chosen on tuning scenes
# 1000100-1000107 (median IoU 0.88 at 0.5, 0.81 at 0.7, 0.54 at 1.0, where the fresh noise eats
# into the seam around the moved shape).
WARP_FILL_STRENGTH = 0.5
WARP_REGION_MARGIN = 1  # pixels


def warp_inpaint(model: DragModel, case: Case, keep: KeepConfig | None = None) -> torch.Tensor:
    region = dilate(case.scene.mask > 0.5, WARP_REGION_MARGIN).float()
    warped = warp_region(case.scene.image, region, case.points)
    inversion = ddim_invert(model, _latent(model, warped.image), strength=WARP_FILL_STRENGTH)
    config = FillConfig()
    latent, _ = fill_masked(model, inversion, warped.fill, config)
    filled = paste_outside(model.decode(latent)[0], warped.image, warped.fill, model.vae_scale, config.keep)
    return _kept(model, filled, case, keep)


# Two references that are not edits (the unedited reconstruction, and the ground truth through the
# VAE), then every registered method, and the region warp with a fill (Inpaint4Drag).
METHODS: dict[str, Method] = {"baseline": baseline, "oracle": oracle, **{name: _registered(name) for name in REGISTERED},
                              "warp-inpaint": warp_inpaint}
DEMO_METHOD = "gooddrag"  # it moves the shapes furthest on the toy benchmark (README)
# The demo's scene, by rule: the median case (by fraction of the drag) of DEMO_METHOD at its defaults
# over the 48 held-out cases with keep off, as `evaluate` reports it ("median_case"); measured
# 2026-12-03 with early stop off (the default since then).
DEMO_SEED = 1_000_019


def score_cases(model: DragModel, method: str, cases: list[Case], keep: KeepConfig | None = None
                ) -> tuple[list[dict[str, float]], float]:
    """Per-case scores of ``method`` (see :func:`score`) and the total seconds it took."""
    if method not in METHODS:
        raise SystemExit(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    rows, seconds = [], 0.0
    for case in cases:
        start = time.perf_counter()
        with torch.no_grad() if method in ("baseline", "oracle", "warp-inpaint") else torch.enable_grad():
            edited = METHODS[method](model, case, keep)
        seconds += time.perf_counter() - start
        rows.append(score(case, edited))
    return rows, seconds


def _median(values) -> float:
    """The median of the finite values (NaN when there are none)."""
    finite = [v for v in values if not math.isnan(v)]
    return statistics.median(finite) if finite else float("nan")


def summarise(rows: list[dict[str, float]]) -> dict[str, float]:
    """The benchmark's statistics over per-case scores: medians, and the success rate."""
    return {
        "cases": len(rows),
        "median_fraction": _median(r["fraction"] for r in rows),
        "median_iou": _median(r["iou"] for r in rows),
        "median_area_kept": _median(r["area_kept"] for r in rows),
        "success_rate": sum(r["success"] for r in rows) / len(rows),
        "bg_psnr_db": _median(r["bg_psnr_db"] for r in rows),
        "distractor_psnr_db": _median(r.get("distractor_psnr_db", float("nan")) for r in rows),
    }


def held_out_cases(count: int) -> list[Case]:
    """The first ``count`` benchmark cases (the same for every method and model)."""
    return [make_case(HELD_OUT_SEED + k) for k in range(count)]


def median_case(cases: list[Case], rows: list[dict[str, float]]) -> int:
    """The seed of the case whose fraction of the drag is the median one (the lower middle for an
    even count): the demo's typical scene."""
    order = sorted(range(len(rows)), key=lambda k: (rows[k]["fraction"], cases[k].seed))
    return cases[order[(len(order) - 1) // 2]].seed


def evaluate(model: DragModel, methods: list[str], cases: int, keep: KeepConfig | None = None) -> dict:
    """Per method over ``cases`` held-out scenes: the statistics, their 95 % bootstrap intervals, the
    median case, seconds per edit, and the per-case rows. ``keep``: every method keeps the source
    outside the editable mask (:mod:`dragkit.core.keep`)."""
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        raise SystemExit(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    all_cases = held_out_cases(cases)
    results = {}
    for name in methods:
        rows, seconds = score_cases(model, name, all_cases, keep)
        results[name] = dict(summarise(rows), intervals=bootstrap_intervals(rows), median_case=median_case(all_cases, rows),
                             sec_per_edit=seconds / cases, rows=[dict(r, seed=c.seed) for r, c in zip(rows, all_cases)])
    return {"cases": cases, "keep": dataclasses.asdict(keep) if keep else None, "methods": results}


STATISTICS = ("median_fraction", "median_iou", "median_area_kept", "success_rate", "bg_psnr_db", "distractor_psnr_db")
BOOTSTRAP_RESAMPLES = 2000


def bootstrap_intervals(
    rows: list[dict[str, float]], other: list[dict[str, float]] | None = None, level: float = 0.95,
    resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0,
) -> dict[str, tuple[float, float]]:
    """Percentile bootstrap intervals of each statistic of :func:`summarise`, resampling the cases.

    With ``other`` (the same cases scored on another model), the intervals are of the paired
    difference ``other - rows``: each resample draws the same cases for both.
    """
    if other is not None and len(other) != len(rows):
        raise ValueError(f"paired rows need the same cases: got {len(rows)} and {len(other)}")
    generator = torch.Generator().manual_seed(seed)
    draws = {key: [] for key in STATISTICS}
    for _ in range(resamples):
        picked = torch.randint(0, len(rows), (len(rows),), generator=generator).tolist()
        values = summarise([rows[i] for i in picked])
        if other is not None:
            others = summarise([other[i] for i in picked])
            values = {key: others[key] - values[key] for key in STATISTICS}
        for key in STATISTICS:
            draws[key].append(values[key])
    tail = (1 - level) / 2
    intervals = {}
    for key, values in draws.items():
        values = sorted(v for v in values if not math.isnan(v))  # NaN: a resample without distractors
        if not values:
            intervals[key] = (float("nan"), float("nan"))
            continue
        intervals[key] = (values[int(tail * (len(values) - 1))], values[int(round((1 - tail) * (len(values) - 1)))])
    return intervals


def compare_rows(reference: list[dict[str, float]], candidate: list[dict[str, float]]) -> dict[str, dict]:
    """Is each of ``candidate``'s statistics within the noise of ``reference``'s, on the same cases?

    Noise is the benchmark's own: the 95 % bootstrap interval of the reference statistic over the
    cases, i.e. the spread it would show on another draw of held-out scenes. A candidate statistic
    inside it is "within noise". The paired interval of the difference is reported alongside: it is
    narrower (the same scenes on both models), so it shows a systematic shift the verdict tolerates.
    """
    ours, theirs = summarise(reference), summarise(candidate)
    spread, paired = bootstrap_intervals(reference), bootstrap_intervals(reference, candidate)
    return {
        key: {
            "reference": ours[key],
            "candidate": theirs[key],
            "difference": theirs[key] - ours[key],
            "reference_interval": spread[key],
            "paired_difference_interval": paired[key],
            "within_noise": (math.isnan(ours[key]) and math.isnan(theirs[key]))
            or spread[key][0] <= theirs[key] <= spread[key][1],
        }
        for key in STATISTICS
    }


def load_bench_model(path: str | None) -> DragModel:
    """The embedded toy model, or a folder written by ``scripts/train_toy_model.py`` (a retrain)."""
    if path is None:
        return load_toy_model()
    missing = [part for part in ("unet", "vae") if not (Path(path) / part).is_dir()]
    if missing:
        raise SystemExit(f"--model: '{path}' has no {' or '.join(missing)} folder; give the --out folder of "
                         "scripts/train_toy_model.py (a diffusers folder with unet/ and vae/).")
    return load_diffusers_folder(path, name=Path(path).name)


DEFAULT_CASES = 48  # enough for the intervals to separate the methods (README)
TABLE_COLUMNS = ("median_fraction", "median_iou", "median_area_kept", "success_rate", "bg_psnr_db",
                 "distractor_psnr_db")


def with_intervals(summary: dict) -> dict[str, str]:
    """A method's statistics as table cells: ``value [low, high]`` with the 95 % interval."""
    cells = {}
    for key in TABLE_COLUMNS:
        low, high = summary["intervals"][key]
        cells[key] = f"{summary[key]:.2f} [{low:.2f}, {high:.2f}]"
    cells["sec_per_edit"] = f"{summary['sec_per_edit']:.1f}"
    return cells


def run_bench(methods: list[str] | None, cases: int, json_path: str | None, model_path: str | None = None,
              keep: bool = False) -> int:
    torch.manual_seed(0)
    model = load_bench_model(model_path)
    report = evaluate(model, methods or list(METHODS), cases, KeepConfig() if keep else None)
    print(f"{cases} held-out cases, keep {'on' if keep else 'off'}; 95 % bootstrap intervals over the cases "
          "in brackets")
    print_table({name: with_intervals(summary) for name, summary in report["methods"].items()},
                [*TABLE_COLUMNS, "sec_per_edit"])
    write_json(json_path, report)
    return 0


def run_demo(out: str, seed: int | None = None, model_path: str | None = None) -> int:
    """Drag the shape of one held-out scene with the demo method; write before/after/overlay PNGs."""
    torch.manual_seed(0)
    model = load_bench_model(model_path)
    seed = DEMO_SEED if seed is None else seed
    case = make_case(seed)
    start = time.perf_counter()
    edited = METHODS[DEMO_METHOD](model, case, None)
    seconds = time.perf_counter() - start
    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    upscale = 4  # the toy images are 64x64: show them larger
    for name, image in (("before", case.scene.image), ("after", edited),
                        ("overlay", draw_drag_overlay(case.scene.image, case.points, case.editable))):
        picture = to_pil(image)
        picture.resize((picture.width * upscale, picture.height * upscale), 0).save(folder / f"{name}.png")
    scores = score(case, edited)
    print(f"method: {DEMO_METHOD} on the model `{model.name}`, scene seed {seed}, {seconds:.1f} s")
    (handle_x, handle_y), (target_x, target_y) = case.points.handles[0], case.points.targets[0]
    print(f"drag ({handle_x:.1f}, {handle_y:.1f}) -> ({target_x:.1f}, {target_y:.1f}) (x, y in image pixels)")
    width = max(len(key) for key in scores) + 2
    for key, value in scores.items():
        print(f"{key:>{width}}: {value:.3f}")
    print(f"wrote {folder / 'before.png'}, {folder / 'after.png'}, {folder / 'overlay.png'}")
    return 0
