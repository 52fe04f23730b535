"""Check that a retrained toy model matches the committed one on the toy benchmark, within noise.

    python scripts/train_toy_model.py --threads 2 --vae-steps 2200 --unet-steps 2000 --out .toy_train/retrained
    python scripts/check_toy_retrain.py .toy_train/retrained --cases 64

Both models are scored on the same held-out cases with ``baseline`` (inversion + reconstruction)
and ``oracle`` (the ground-truth edit through the autoencoder). A retrained statistic is "within
noise" when it lies inside the 95 % bootstrap interval of the committed model's statistic over the
cases (see ``dragkit.evaluation.toybench.compare_rows``). Exits 0 when every statistic is, 1 otherwise.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from dragkit.evaluation.speed import write_json
from dragkit.core.model import TOY_MODEL_PATH
from dragkit.evaluation.toybench import compare_rows, held_out_cases, load_bench_model, score_cases

ACCEPTANCE_METHODS = ("baseline", "oracle")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", type=Path, help="the retrained model folder (train_toy_model.py --out)")
    parser.add_argument("--reference", type=Path, default=TOY_MODEL_PATH, help="the model to compare with "
                        "(default: the committed toy model)")
    parser.add_argument("--cases", type=int, default=64, help="held-out scenes scored on both models")
    parser.add_argument("--methods", default=",".join(ACCEPTANCE_METHODS), help="comma-separated methods")
    parser.add_argument("--json", default=None, help="also write the comparison, per-case scores included")
    args = parser.parse_args()
    if args.cases < 2:
        parser.error(f"--cases must be at least 2 for a bootstrap interval, got {args.cases}")
    torch.manual_seed(0)
    cases = held_out_cases(args.cases)
    models = {"reference": load_bench_model(str(args.reference)), "candidate": load_bench_model(str(args.model))}
    report = {"reference": str(args.reference), "candidate": str(args.model), "cases": args.cases, "methods": {}}
    all_within = True
    print(f"{'method':<10}{'statistic':>18}{'committed':>11}{'retrained':>11}{'difference':>12}"
          f"{'committed 95% interval':>26}{'paired difference 95%':>26}  verdict")
    for method in args.methods.split(","):
        rows = {role: score_cases(model, method, cases)[0] for role, model in models.items()}
        comparison = compare_rows(rows["reference"], rows["candidate"])
        report["methods"][method] = {"comparison": comparison, "per_case": rows}
        for key, entry in comparison.items():
            all_within &= entry["within_noise"]
            low, high = entry["reference_interval"]
            paired_low, paired_high = entry["paired_difference_interval"]
            print(f"{method:<10}{key:>18}{entry['reference']:>11.3f}{entry['candidate']:>11.3f}"
                  f"{entry['difference']:>+12.3f}{f'[{low:.3f}, {high:.3f}]':>26}"
                  f"{f'[{paired_low:+.3f}, {paired_high:+.3f}]':>26}  "
                  f"{'within noise' if entry['within_noise'] else 'OUTSIDE'}")
    write_json(args.json, report)
    print("all statistics within noise" if all_within else "some statistics are outside the committed model's noise")
    return 0 if all_within else 1


if __name__ == "__main__":
    raise SystemExit(main())
