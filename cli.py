"""The ``dragkit`` command line: ``dragkit demo`` and ``dragkit bench``."""

from __future__ import annotations

import argparse
import logging
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="dragkit", description="DragKit command line.")
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="drag a shape in a synthetic scene with the embedded toy model")
    demo.add_argument("--out", default="dragkit-demo", help="folder for before.png, after.png, overlay.png")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    if args.command == "demo":
        print("dragkit demo: the embedded toy model is not in this version yet.", file=sys.stderr)
        return 1
    return 0
