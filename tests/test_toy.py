"""The toy benchmark's cases and scores, and the embedded toy model (skipped until it is present)."""

from __future__ import annotations

import dataclasses
import json
import math
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from dragkit.core.metrics import psnr
from dragkit.core.model import TOY_MODEL_PATH, load_toy_model
from dragkit.evaluation import scenes
from dragkit.evaluation.toybench import (DEMO_SEED, HELD_OUT_SEED, METHODS, STATISTICS, bootstrap_intervals, compare_rows, load_bench_model,
                              make_case, score, summarise)

HAS_TOY = (TOY_MODEL_PATH / "unet").is_dir()


@pytest.mark.parametrize("seed", [HELD_OUT_SEED + k for k in range(6)])
def test_cases_follow_the_protocol(seed):
    case = make_case(seed)
    assert make_case(seed).offset == case.offset  # deterministic
    (hx, hy), (tx, ty) = case.points.handles[0], case.points.targets[0]
    distance = math.hypot(tx - hx, ty - hy)
    assert 0.08 * 64 - 1 <= distance <= 0.20 * 64 + 1
    assert case.scene.mask[int(hy), int(hx)] > 0.5  # the handle is on the shape ...
    cx, cy = [float(v) for v in torch.nonzero(case.scene.mask > 0.5).float().mean(0).flip(0)]
    assert math.hypot(hx - cx, hy - cy) > 2  # ... but not at its centre
    assert ((tx - hx) * (hx - cx) + (ty - hy) * (hy - cy)) > 0  # on the leading side
    assert (case.editable[(case.scene.mask > 0.5) | (case.moved.mask > 0.5)] == 1).all()


def test_scores_see_a_correct_move_and_a_missing_one():
    case = make_case(HELD_OUT_SEED)
    perfect = score(case, case.moved.image)
    assert perfect["success"] == 1 and perfect["iou"] == pytest.approx(1.0, abs=0.02)
    assert perfect["fraction"] == pytest.approx(1.0, abs=0.05) and perfect["bg_psnr_db"] == math.inf
    unmoved = score(case, case.scene.image)
    assert unmoved["success"] == 0 and unmoved["fraction"] == pytest.approx(0.0, abs=1e-6)
    erased = score(case, case.scene.background)
    assert erased["success"] == 0 and erased["area_kept"] < 0.1


def test_a_shape_that_does_not_move_is_never_a_success():
    # A short drag of a large shape: the unmoved shape still overlaps the moved one by IoU >= 0.5,
    # which the old rule (IoU and area only) counted as a success.
    case = make_case(HELD_OUT_SEED + 13)
    unmoved = score(case, case.scene.image)
    assert unmoved["iou"] >= 0.5 and 0.7 <= unmoved["area_kept"] <= 1.4
    assert unmoved["success"] == 0
    # Half the way is not enough either: the shape must end nearer its target than its start.
    dx, dy = case.offset
    halfway = score(case, case.scene.moved(dx * 0.4, dy * 0.4).image)
    assert 0.3 < halfway["fraction"] < 0.5 and halfway["success"] == 0


def test_the_shape_finder_ignores_the_distractor_even_in_the_shapes_colour():
    # Seed 1000003 has a distractor; give it the shape's colour, as a drifting reconstruction does.
    case = make_case(HELD_OUT_SEED + 3)
    assert case.scene.distractor is not None
    recoloured = dataclasses.replace(case.scene.distractor, colour=case.scene.colour)
    dx, dy = case.offset
    moved = scenes.compose(case.scene.background, dataclasses.replace(
        case.scene.shape, centre=(case.scene.shape.centre[0] + dx, case.scene.shape.centre[1] + dy)), recoloured)
    scores = score(case, moved.image)
    assert scores["fraction"] == pytest.approx(1.0, abs=0.05) and scores["success"] == 1
    assert scores["area_kept"] == pytest.approx(1.0, abs=0.05)
    # The distractor's own PSNR sees the recolouring; the untouched scene's is perfect.
    assert scores["distractor_psnr_db"] < 20 and score(case, case.moved.image)["distractor_psnr_db"] == math.inf


def _rows(bg_psnr: list[float], success: list[float]) -> list[dict[str, float]]:
    return [{"fraction": 1.0, "iou": 0.9, "area_kept": 1.0, "success": hit, "bg_psnr_db": db, "distractor_psnr_db": db}
            for db, hit in zip(bg_psnr, success)]


def test_bootstrap_interval_brackets_the_statistic_and_narrows_with_more_cases():
    spread = [30.0 + 0.1 * k for k in range(21)]  # median 31.0
    few, many = _rows(spread[::4], [1.0] * 6), _rows(spread * 4, [1.0] * 84)
    low, high = bootstrap_intervals(few)["bg_psnr_db"]
    assert low <= summarise(few)["bg_psnr_db"] <= high and high - low > 0.5
    many_low, many_high = bootstrap_intervals(many)["bg_psnr_db"]
    assert many_high - many_low < high - low
    assert bootstrap_intervals(few) == bootstrap_intervals(few)  # seeded
    assert bootstrap_intervals(few)["success_rate"] == (1.0, 1.0)  # no spread, no interval


def test_compare_rows_tells_a_reproduced_model_from_a_worse_one():
    reference = _rows([30.0 + 0.1 * k for k in range(20)], [1.0] * 18 + [0.0] * 2)
    same = compare_rows(reference, reference)
    assert set(same) == set(STATISTICS) and all(entry["within_noise"] for entry in same.values())
    assert same["bg_psnr_db"]["difference"] == 0 and same["bg_psnr_db"]["paired_difference_interval"] == (0, 0)
    # A small shift of every case stays inside the case-to-case spread; the paired interval still sees it.
    nudged = compare_rows(reference, _rows([30.05 + 0.1 * k for k in range(20)], [1.0] * 18 + [0.0] * 2))
    assert nudged["bg_psnr_db"]["within_noise"]
    assert nudged["bg_psnr_db"]["paired_difference_interval"][0] == pytest.approx(0.05)
    # 2 dB worse everywhere and half the successes: outside the noise.
    worse = compare_rows(reference, _rows([28.0 + 0.1 * k for k in range(20)], [1.0, 0.0] * 10))
    assert not worse["bg_psnr_db"]["within_noise"] and worse["bg_psnr_db"]["difference"] == pytest.approx(-2.0)
    assert not worse["success_rate"]["within_noise"]
    with pytest.raises(ValueError, match="same cases"):
        bootstrap_intervals(reference, reference[:5])


def test_bench_model_folder_must_hold_a_unet_and_a_vae(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(SystemExit, match="--model: .* has no vae folder; give the --out folder"):
        load_bench_model(str(tmp_path))


@pytest.mark.skipif(not HAS_TOY, reason="assets/toy_model is not trained yet")
def test_toy_model_reconstructs_and_the_oracle_succeeds():
    model = load_toy_model()
    assert model.vae_scale == 4 and model.latent_channels == 4
    # Reconstruction PSNR over held-out scenes, as the model card reports it (>= 30 dB).
    images = torch.stack([make_case(HELD_OUT_SEED + k).scene.image for k in range(16)])
    with torch.no_grad():
        reconstructions = model.decode(model.encode(images))
    assert sum(psnr(r, i) for r, i in zip(reconstructions, images)) / len(images) >= 30
    case = make_case(HELD_OUT_SEED + 1)
    assert score(case, METHODS["oracle"](model, case))["success"] == 1
    baseline = METHODS["baseline"](model, case)
    assert score(case, baseline)["bg_psnr_db"] >= 30


@pytest.mark.skipif(not HAS_TOY, reason="assets/toy_model is not trained yet")
def test_retrain_check_passes_a_model_against_itself(tmp_path, monkeypatch, capsys):
    script = Path(__file__).resolve().parent.parent / "scripts" / "check_toy_retrain.py"
    report_path = tmp_path / "check.json"
    monkeypatch.setattr(sys, "argv", [str(script), str(TOY_MODEL_PATH), "--cases", "4", "--methods", "oracle",
                                      "--json", str(report_path)])
    with pytest.raises(SystemExit) as exit_info:
        runpy.run_path(str(script), run_name="__main__")
    assert exit_info.value.code == 0
    assert "all statistics within noise" in capsys.readouterr().out
    report = json.loads(report_path.read_text())
    oracle = report["methods"]["oracle"]
    assert len(oracle["per_case"]["candidate"]) == 4
    assert all(entry["difference"] == 0 for entry in oracle["comparison"].values())


@pytest.mark.skipif(not HAS_TOY, reason="the embedded toy model is not present")
def test_demo_writes_the_three_images_and_moves_the_default_shape(tmp_path, capsys):
    from PIL import Image

    from dragkit.evaluation.cli import main

    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out)]) == 0
    for name in ("before", "after", "overlay"):
        with Image.open(out / f"{name}.png") as picture:
            assert picture.size == (256, 256)  # 64x64 scenes shown 4x larger
    printed = capsys.readouterr().out
    assert "drag (" in printed and "(x, y in image pixels)" in printed
    scores = {key.strip(): float(value) for key, value in
              (line.split(":") for line in printed.splitlines() if line.startswith(" ") and ":" in line)}
    assert set(scores) == {"fraction", "iou", "area_kept", "success", "bg_psnr_db", "distractor_psnr_db"}
    # The default scene is GoodDrag's median case (README): the shape moves about three quarters of the drag.
    assert f"scene seed {DEMO_SEED}" in printed and 0.6 < scores["fraction"] < 0.9
    with Image.open(out / "before.png") as before_png, Image.open(out / "after.png") as after_png:
        before, after = (np.asarray(png, dtype=np.float32) for png in (before_png, after_png))
    assert np.abs(before - after).mean() > 1.0  # the edit changed the picture (0..255 scale)


def test_the_median_case_is_the_lower_middle_by_fraction():
    from dragkit.evaluation.toybench import median_case

    cases = [make_case(HELD_OUT_SEED + k) for k in range(4)]
    rows = [{"fraction": f} for f in (0.9, 0.1, 0.5, 0.3)]
    assert median_case(cases, rows) == HELD_OUT_SEED + 3  # 0.1, 0.3 | 0.5, 0.9: the lower middle
    assert median_case(cases[:3], rows[:3]) == HELD_OUT_SEED + 2
