#!/usr/bin/env bash
# The GPU measurement behind the README's GPU table, as one command: `dragkit bench speed` on SD1.5's
# UNet and VAE at 512x512 with random weights (timing does not depend on them), every stage, for the
# variants before (the drag as it ran before the sync and precision work), default and low_vram in
# one process, then the compiled blocks in a second. Each part has a time limit (SYNCS_LIMIT 90 s,
# SPEED_LIMIT 300 s, COMPILED_LIMIT 150 s: at most 9 minutes, inside one device command's 10); the
# first 5 minutes give the audit and the default variant.
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

BENCH=("$PYTHON" -m dragkit.evaluation.cli bench speed --arch "$ARCH" --device "$DEVICE" $QUICK)
status=0
# Each part has a time limit (seconds; the JSON is written after every variant, so a part stopped at
# its limit keeps what it finished), in order of what matters most.
if [ "$DEVICE" = cuda ]; then
    timeout "${SYNCS_LIMIT:-90}" "$PYTHON" -m dragkit.evaluation.cli bench syncs --arch "$ARCH" --device cuda \
        --json "$OUT/syncs.json" 2>&1 | tee "$OUT/log" || status=1
fi
timeout "${SPEED_LIMIT:-300}" "${BENCH[@]}" --variants default,before,low_vram --json "$OUT/speed_${ARCH}.json" 2>&1 \
    | tee -a "$OUT/log" || status=1
# Compiling changes the shared UNet for the rest of a process: its own process, after the others.
timeout "${COMPILED_LIMIT:-150}" "${BENCH[@]}" --variants compiled --json "$OUT/speed_${ARCH}_compiled.json" 2>&1 \
    | tee -a "$OUT/log" || status=1
exit $status
