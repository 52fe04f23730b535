"""``dragkit bench speed``: every stage of every variant timed, on the CPU at the smallest settings."""

from __future__ import annotations

import json

import pytest

from dragkit.core.errors import DragKitInputError
from dragkit.evaluation import cli
from dragkit.evaluation.speed import QUICK_SETTINGS, speed, speed_table

STAGES = ["warm_up", "lora", "inversion", "drag", "sampling", "decode", "dragdiffusion_edit", "redrag",
          "gooddrag_edit", "diffeditor_edit"]


def test_speed_reports_every_stage_of_every_variant():
    report = speed("tiny", "cpu", ["low_vram", "before"], QUICK_SETTINGS)
    assert list(report["variants"]) == ["low_vram", "before"]
    assert report["settings"]["lora_steps"] == QUICK_SETTINGS.lora_steps
    assert {"date", "torch", "diffusers", "device"} <= set(report["environment"])
    for values in report["variants"].values():
        stages = values["stages"]
        assert list(stages) == STAGES
        assert all(row["seconds"] > 0 for row in stages.values())
        assert stages["lora"]["steps"] == QUICK_SETTINGS.lora_steps
        assert stages["drag"]["steps"] == QUICK_SETTINGS.drag_steps  # the full schedule: no early stop
        assert stages["inversion"]["steps"] == 7  # 10 steps inverted to 0.7
        assert stages["drag"]["seconds_per_step"] == pytest.approx(stages["drag"]["seconds"] / 2)
    assert report["variants"]["low_vram"]["options"]["low_vram"] is True
    assert report["peak_rss_mb"] > 0  # the CPU has no per-stage peak
    table = speed_table(report).splitlines()
    assert table[0] == "| stage | low_vram | before |" and len(table) == 2 + len(STAGES)
    json.dumps(report)


def test_speed_names_a_wrong_variant():
    with pytest.raises(DragKitInputError, match="variant"):
        speed("tiny", "cpu", ["fastest"], QUICK_SETTINGS)


def test_cli_writes_the_json(tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert cli.main(["bench", "speed", "--arch", "tiny", "--device", "cpu", "--quick", "--json", str(out)]) == 0
    report = json.loads(out.read_text())
    assert list(report["variants"]) == ["default"]
    assert "| drag |" in capsys.readouterr().out


def test_the_gpu_script_asks_for_known_variants():
    import re
    import subprocess
    from pathlib import Path

    from dragkit.evaluation.speed import VARIANTS

    script = Path(__file__).resolve().parent.parent / "scripts" / "gpu_speed.sh"
    subprocess.run(["bash", "-n", str(script)], check=True)
    asked = {name for group in re.findall(r"--variants (\S+)", script.read_text()) for name in group.split(",")}
    assert asked and asked <= set(VARIANTS)


def test_the_sync_audit_loops_run_and_the_audit_asks_for_a_gpu(capsys):
    from dragkit.evaluation.speed import audit_loops, random_model

    import torch

    loops = audit_loops(*random_model("tiny", torch.device("cpu")))
    assert set(loops) == {"lora", "inversion", "drag", "inversion_and_sampling", "gooddrag_rounds",
                          "inversion_and_diffeditor"}
    for run in loops.values():
        run(2)
    assert cli.main(["bench", "syncs", "--arch", "tiny", "--device", "cpu"]) == 2
    assert "needs a CUDA device" in capsys.readouterr().err
