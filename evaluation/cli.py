"""The ``dragkit`` command line: ``dragkit demo`` and ``dragkit bench``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from ..core.errors import DragKitError


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(argv)
    except DragKitError as error:  # a wrong input or choice: say so, no traceback
        print(f"dragkit: {error}", file=sys.stderr)
        return 2


def _main(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="dragkit", description="DragKit command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="drag a shape in a synthetic scene with the embedded toy model")
    demo.add_argument("--out", default="dragkit-demo", help="folder for before.png, after.png, overlay.png")
    demo.add_argument("--seed", type=int, default=None, help="scene seed (held out from training; default: the "
                      "benchmark's median case for the demo method, see README)")
    demo.add_argument("--model", default=None, help="a toy-model folder written by scripts/train_toy_model.py "
                      "(default: the embedded one)")
    bench = sub.add_parser("bench", help="benchmarks: `toy` (does the shape move?), `speed` (seconds, memory), "
                           "`session` (20 LoRAs in a row: does a UNet call slow down or memory grow?), `warp` "
                           "(milliseconds of a region warp at 512 and 1024 px) or `syncs` (GPU only: host waits per "
                           "step of each loop)")
    bench.add_argument("suite", choices=("toy", "speed", "session", "warp", "syncs"))
    bench.add_argument("--methods", default=None, help="toy: comma-separated methods (default: all)")
    bench.add_argument("--cases", type=int, default=48, help="toy: number of held-out scenes (48)")
    bench.add_argument("--model", default=None, help="toy: a model folder written by scripts/train_toy_model.py "
                       "(default: the embedded one), e.g. to check a retrain")
    bench.add_argument("--arch", choices=("tiny", "sd15"), default=None, help="speed: architecture (default: sd15 "
                       "on a GPU, tiny on the CPU)")
    bench.add_argument("--device", default=None, help="speed: torch device (default: cuda if available)")
    bench.add_argument("--variants", default="default", help="speed: comma-separated ways to run the same stages: "
                       "before (the drag as before issue 18), default, low_vram, compiled, cuda_graphs "
                       "(default: default)")
    bench.add_argument("--quick", action="store_true", help="speed: every stage at its smallest (a check that it "
                       "runs, not a timing)")
    bench.add_argument("--keep", action="store_true", help="toy: every method keeps the source outside the "
                       "editable mask (sampling and a paste after decoding)")
    bench.add_argument("--json", default=None, help="also write the results as JSON to this file")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    if args.command == "demo":
        from .toybench import run_demo

        return run_demo(args.out, args.seed, args.model)
    if args.suite == "speed":
        import torch

        from . import speed as speed_bench

        arch = args.arch or ("sd15" if torch.cuda.is_available() else "tiny")
        settings = speed_bench.QUICK_SETTINGS if args.quick else speed_bench.SpeedSettings()
        report = speed_bench.speed(arch, args.device, args.variants.split(","), settings,
                                   on_variant=lambda partial: speed_bench.write_json(args.json, partial))
        print(json.dumps({key: report[key] for key in ("arch", "image_size", "dtype", "environment")}))
        print(speed_bench.speed_table(report))
        if "peak_rss_mb" in report:
            print(f"peak resident memory of the run: {report['peak_rss_mb']:.0f} MB")
        speed_bench.write_json(args.json, report)
        return 0
    if args.suite == "syncs":
        from . import speed as speed_bench

        report = speed_bench.sync_audit(args.arch or "sd15", args.device)
        for name, row in report["loops"].items():
            print(f"{name:>16}: {row['waits_per_step']:.2f} waits per step (waits at {report['lengths']}: {row['waits']})")
        speed_bench.write_json(args.json, report)
        return 0
    if args.suite == "warp":
        from . import speed as speed_bench

        rows = speed_bench.warp_speed()
        speed_bench.print_table({f"{r['image']}, {r['pairs']}": r for r in rows}, ["median_ms", "q1_ms", "q3_ms"])
        speed_bench.write_json(args.json, {"warp": rows})
        return 0
    if args.suite == "session":
        from . import speed as speed_bench

        rows = speed_bench.session(device=args.device)
        speed_bench.print_table({f"image {r['image']}": r for r in rows},
                                ["base_call_ms", "lora_call_ms", "base_inversion_10_steps_ms",
                                 "adapters_loaded", "adapter_weights_mib", "rss_mib"])
        speed_bench.write_json(args.json, {"session": rows})
        return 0
    from .toybench import run_bench

    methods = args.methods.split(",") if args.methods else None
    return run_bench(methods, args.cases, args.json, args.model, keep=args.keep)


if __name__ == "__main__":
    sys.exit(main())
