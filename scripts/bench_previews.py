"""What live previews cost: run a shipped toy workflow in plain Python with ComfyUI's preview path stubbed.

ComfyUI's progress bar takes ``("JPEG", image, max_size)`` and its server JPEG-encodes the picture
for the browser. Here a stand-in bar does that encoding too (quality 95, ComfyUI's), so a run with
previews pays everything a run inside ComfyUI pays, minus the websocket.

    python scripts/bench_previews.py toy_gooddrag --previews throttled   # DragKit's default
    python scripts/bench_previews.py toy_gooddrag --previews off
    python scripts/bench_previews.py toy_gooddrag --previews every-step  # worst case: no throttle

Time the processes from outside (several runs, A/B interleaved) to compare; the script also prints
how many previews went out, the median in-process cost of one, and the share of the run they took.
``--projection`` instead times SD1.5's latent->RGB projection of a 512x512 image's latent.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the plain-Python workflow runner (dragkit: pip install -e .)

import torch  # noqa: E402

from dragkit.core.overlay import to_pil  # noqa: E402
from dragkit.core.preview import latent_to_rgb  # noqa: E402
from dragkit.nodes import comfy  # noqa: E402
from workflow_runner import run_prompt, to_api_prompt  # noqa: E402

PREVIEW_MODES = ("off", "throttled", "every-step")
JPEG_QUALITY = 95  # ComfyUI's server encodes previews at this quality


class EncodingBar:
    """ComfyUI's ``comfy.utils.ProgressBar`` plus its server's JPEG encoding of each preview."""

    costs: list[float] = []

    def __init__(self, total):
        self.total = total

    def update_absolute(self, value, total=None, preview=None):
        if preview is None:
            return
        start = time.perf_counter()
        kind, image, max_size = preview
        image = image.copy()
        image.thumbnail((max_size, max_size))
        image.save(io.BytesIO(), format=kind, quality=JPEG_QUALITY)
        EncodingBar.costs.append(time.perf_counter() - start)


def time_projection(repeats: int = 200) -> None:
    """Median cost of one SD1.5 preview: a (1, 4, 64, 64) latent to a JPEG, as ComfyUI would send it."""
    latent = torch.randn(1, 4, 64, 64, generator=torch.Generator().manual_seed(0))
    costs = []
    for _ in range(repeats):
        start = time.perf_counter()
        image = to_pil(latent_to_rgb(latent))
        image.save(io.BytesIO(), format="JPEG", quality=JPEG_QUALITY)
        costs.append(time.perf_counter() - start)
    print(json.dumps({"projection_64x64_median_ms": round(1000 * statistics.median(costs), 3)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("workflow", help="a file name in workflows/ without .json, e.g. toy_gooddrag")
    parser.add_argument("--previews", choices=PREVIEW_MODES, default="throttled")
    parser.add_argument("--projection", action="store_true", help="time the SD1.5 projection instead")
    args = parser.parse_args()
    if args.projection:
        return time_projection()

    torch.manual_seed(0)
    if args.previews != "off":
        comfy.comfy_utils = types.SimpleNamespace(ProgressBar=EncodingBar)
    if args.previews == "every-step":
        comfy.PREVIEW_INTERVAL_S, comfy.PREVIEW_BUDGET = 0.0, float("inf")
    made: list[float] = []
    original = comfy.progress

    def timed_progress(total, label, preview=None, **kwargs):
        def timed(latent):
            start = time.perf_counter()
            image = preview(latent)
            made.append(time.perf_counter() - start)
            return image
        return original(total, label, timed if preview is not None else None, **kwargs)

    comfy.progress = timed_progress
    workflow = json.loads((ROOT / "workflows" / f"{args.workflow}.json").read_text())
    start = time.perf_counter()
    run_prompt(to_api_prompt(workflow))
    seconds = time.perf_counter() - start
    report = {"workflow": args.workflow, "previews": args.previews, "seconds": round(seconds, 2),
              "previews_sent": len(EncodingBar.costs)}
    if made:
        # The share of the run spent making and encoding previews: what they slow the steps by.
        report["preview_share_pct"] = round(100 * (sum(made) + sum(EncodingBar.costs)) / seconds, 2)
        report["median_picture_ms"] = round(1000 * statistics.median(made), 2)
    if EncodingBar.costs:
        report["median_jpeg_ms"] = round(1000 * statistics.median(EncodingBar.costs), 2)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
