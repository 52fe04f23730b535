"""The Point Picker's preview warp (web/dragkit/warp.js) and the core warp, held to each other.

This module writes the cases the JavaScript test (tests/web/warp.test.mjs) checks the browser's warp
against, and fails when the core warp no longer gives what the committed fixture says: a change to
either side shows. Re-write the fixture only with a deliberate change to the warp:

    python tests/test_region_warp_js.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from dragkit.core.points import DragPoints
from dragkit.core.region_warp import RegionWarpConfig, fit_backward_map, warp_region

FIXTURE = Path(__file__).parent / "web" / "fixtures" / "region_warp.json"
WIDTH, HEIGHT = 48, 40
CASES = {
    "shift": [((14.5, 12.5), (22.5, 17.5))],
    "sub-pixel shift": [((14.2, 12.7), (21.9, 18.1))],
    "two pairs": [((12.5, 12.5), (18.5, 15.5)), ((30.5, 24.5), (35.0, 30.0))],
    "three pairs": [((12.5, 12.5), (18.5, 15.5)), ((30.5, 24.5), (35.0, 30.0)), ((32.5, 10.5), (36.5, 12.5))],
    "collinear targets": [((12.5, 12.5), (16.5, 20.5)), ((22.5, 16.5), (26.5, 20.5)), ((33.5, 26.5), (36.5, 20.5))],
}
PROBES = [(0.0, 0.0), (10.25, 7.75), (24.0, 20.0), (47.0, 39.0)]


def scene() -> tuple[torch.Tensor, torch.Tensor]:
    """An 8-bit picture ``(3, H, W)`` and a region blob ``(H, W)``, deterministic."""
    generator = torch.Generator().manual_seed(11)
    image = torch.randint(0, 256, (3, HEIGHT, WIDTH), generator=generator).float() / 255
    ys, xs = torch.meshgrid(torch.arange(HEIGHT) + 0.5, torch.arange(WIDTH) + 0.5, indexing="ij")
    region = (((xs - 22) / 14) ** 2 + ((ys - 18) / 10) ** 2 <= 1).float()
    return image, region


def fixture() -> dict:
    image, region = scene()
    cases = []
    for name, pairs in CASES.items():
        points = DragPoints.from_pairs((WIDTH, HEIGHT), pairs)
        result = warp_region(image, region, points, RegionWarpConfig(seam=0, uncovered="source"))
        mapped = fit_backward_map(points)(torch.tensor(PROBES, dtype=torch.float64))
        moved = result.region > 0.5
        cases.append({
            "name": name,
            "pairs": [{"handle": list(h), "target": list(t)} for h, t in pairs],
            "probes": [list(p) for p in PROBES],
            "mapped": [[round(v, 6) for v in p] for p in mapped.tolist()],
            "moved": ["".join("1" if v else "0" for v in row) for row in moved.tolist()],
            "moved_rgb": [round(v * 255, 3) for v in result.image[:, moved].T.reshape(-1).tolist()],
        })
    pixels = (image * 255).round().to(torch.uint8).permute(1, 2, 0).reshape(-1, 3)
    return {
        "size": [WIDTH, HEIGHT],
        "rgb": pixels.reshape(-1).tolist(),
        "region": ["".join("1" if v > 0.5 else "0" for v in row) for row in region.tolist()],
        "cases": cases,
    }


def test_the_committed_fixture_is_what_the_core_warp_gives():
    assert FIXTURE.exists(), "run `python tests/test_region_warp_js.py` to write the fixture"
    committed = json.loads(FIXTURE.read_text())
    current = fixture()
    assert committed["rgb"] == current["rgb"] and committed["region"] == current["region"]
    for old, new in zip(committed["cases"], current["cases"], strict=True):
        assert old["name"] == new["name"] and old["moved"] == new["moved"], old["name"]
        assert max(abs(a - b) for a, b in zip(sum(old["mapped"], []), sum(new["mapped"], []), strict=True)) < 1e-4
        assert max(abs(a - b) for a, b in zip(old["moved_rgb"], new["moved_rgb"], strict=True)) < 1e-2, old["name"]


if __name__ == "__main__":
    FIXTURE.write_text(json.dumps(fixture()) + "\n")
    print("wrote", FIXTURE)
