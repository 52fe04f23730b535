#!/usr/bin/env bash
# The GPU measurement behind the README's GPU table, as one command: `dragkit bench speed` on SD1.5's
# UNet and VAE at 512x512 with random weights (timing does not depend on them), every stage, for the
# variants before (the drag as it ran before the sync and precision work), default and low_vram in
# one process, then the compiled blocks in a second. Aimed at under 5 minutes on an H100/H200-class
# card so it can be run twice in a 15-minute lease.
#
# First `dragkit bench syncs` counts the host waits per step of each loop (CUDA's sync debug mode);
# a failure there shows in seconds, before the timings.
#
# Writes $OUT/syncs.json, $OUT/speed_sd15.json, $OUT/speed_sd15_compiled.json, $OUT/env.txt and $OUT/log.
#
# A machine with torch and peft but without diffusers or kornia gets them as wheels carried in .whl
# (ignored by git), made where pip can reach an index:
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux_2_17_x86_64 -d .whl diffusers==0.42.1 kornia==0.9.0 kornia_rs==0.2.0 importlib_metadata
#
# On the CPU, the same script at the smallest settings (what tests/test_speed_bench.py checks):
#   ARCH=tiny DEVICE=cpu QUICK=1 OUT=/tmp/speed bash scripts/gpu_speed.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/dragkit-speed}
ARCH=${ARCH:-sd15}
DEVICE=${DEVICE:-cuda}
QUICK=${QUICK:+--quick}
PYTHON=${PYTHON:-python3}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1

if [ -d .whl ] && ls .whl/*.whl >/dev/null 2>&1; then
    "$PYTHON" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        || exit 1
    export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The repository is the `dragkit` package (pyproject: package-dir dragkit = "."): import it under that name.
if ! "$PYTHON" -c "import dragkit" 2>/dev/null; then
    mkdir -p /tmp/dragkit-root && ln -sfn "$PWD" /tmp/dragkit-root/dragkit
    export PYTHONPATH=/tmp/dragkit-root${PYTHONPATH:+:$PYTHONPATH}
fi

{
    date -u +%FT%TZ
    "$PYTHON" -c "import torch, diffusers, peft; print('torch', torch.__version__, 'diffusers', diffusers.__version__, 'peft', peft.__version__)"
    command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader
} >"$OUT/env.txt" 2>&1
cat "$OUT/env.txt"

bench() {
    "$PYTHON" -m dragkit.evaluation.cli bench speed --arch "$ARCH" --device "$DEVICE" $QUICK "$@"
}
status=0
if [ "$DEVICE" = cuda ]; then
    "$PYTHON" -m dragkit.evaluation.cli bench syncs --arch "$ARCH" --device cuda --json "$OUT/syncs.json" 2>&1 \
        | tee "$OUT/log" || status=1
fi
bench --variants before,default,low_vram --json "$OUT/speed_${ARCH}.json" 2>&1 | tee -a "$OUT/log" || status=1
# Compiling changes the shared UNet for the rest of a process: its own process, after the others.
bench --variants compiled --json "$OUT/speed_${ARCH}_compiled.json" 2>&1 | tee -a "$OUT/log" || status=1
exit $status
