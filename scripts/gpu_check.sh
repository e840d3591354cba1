#!/usr/bin/env bash
# The GPU check in one call (docs/gpu.md): propy's TVR-shaped benchmark on the GPU and, when the
# reference code is at ref/ProPy, the reference on the same synthetic files; tables in $OUT/gpu_bench.md.
#
#   bash scripts/gpu_check.sh            on a GPU machine (all steps inside GPU_CHECK_BUDGET seconds, default 500)
#   bash scripts/gpu_check.sh --tiny     the same path on the CPU with the tiny profile (about a minute)
#   bash scripts/gpu_check.sh --wheels   on a machine with network: download into .whl/ the wheels that the
#                                        device machine's python3 (3.12, torch preinstalled, no network) lacks
#
# Python: $PROPY_PYTHON if set; else .venv if it has what propy needs; else python3 if it has; else
# python3 plus the wheels in .whl/ (installed into a folder under /tmp); else a new .venv from
# requirements.lock (needs network).
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
case "${1:-}" in
  --tiny) MODE=tiny ;;
  --wheels) MODE=wheels ;;
  "") ;;
  *) echo "usage: bash scripts/gpu_check.sh [--tiny|--wheels]" >&2; exit 2 ;;
esac

WHEELS="open-clip-torch ftfy wcwidth av"  # what propy imports beyond the device image's packages
if [ "$MODE" = wheels ]; then
  for name in $WHEELS; do
    version=$(grep -i "^$name==" requirements.lock | cut -d= -f3)
    [ -n "$version" ] || { echo "error: $name is not pinned in requirements.lock" >&2; exit 2; }
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
      --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
      -d .whl "$name==$version" || exit 1
  done
  ls -l .whl
  exit 0
fi

OUT=${OUT:-logs/gpu_check}
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
say() { echo "$*" | tee -a "$LOG"; }
BUDGET=${GPU_CHECK_BUDGET:-500}
left() { local n=$((BUDGET - SECONDS)); echo $((n > 1 ? n : 1)); }  # timeout 0 would mean none

NEED="import torch, torchvision, open_clip, av, numpy, yaml, tqdm"
if [ -n "${PROPY_PYTHON:-}" ]; then
  PY=$PROPY_PYTHON
elif [ -x .venv/bin/python ] && .venv/bin/python -c "$NEED" 2>/dev/null; then
  PY=.venv/bin/python
elif python3 -c "$NEED" 2>/dev/null; then
  PY=python3
elif compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/propy-site \
    .whl/*.whl >>"$LOG" 2>&1 || { say "error: installing .whl/ failed (see $LOG)"; exit 1; }
  export PYTHONPATH=/tmp/propy-site
  PY=python3
else
  say "no python with propy's packages: installing .venv from requirements.lock (needs network)"
  python3 -m venv .venv && .venv/bin/python -m pip install -q -r requirements.lock >>"$LOG" 2>&1 \
    || { say "error: pip install -r requirements.lock failed (see $LOG)"; exit 1; }
  PY=.venv/bin/python
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
# one start-up (importing open_clip takes seconds): the check and the versions it reports
version=$($PY -c "$NEED; import sys; print(sys.version.split()[0], 'torch', torch.__version__)") \
  || { say "error: $PY still lacks one of: $NEED"; exit 1; }
say "python: $version"

WORK=${GPU_CHECK_WORK:-/tmp/propy_gpu_check}
status=0
if [ "$MODE" = tiny ]; then
  timeout "$(left)" $PY -m propy bench --profile tiny --device cpu --workers 1 --work "$WORK/tiny" \
    --out "$OUT/gpu_bench.json" --md "$OUT/gpu_bench.md" 2>&1 | tee -a "$LOG" || status=1
else
  { nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; nproc; } >"$OUT/env.txt" 2>&1
  cat "$OUT/env.txt" | tee -a "$LOG"
  # A quick pass of the whole CUDA path first, so a failure costs seconds, not the budget.
  timeout 150 $PY -m propy bench --profile tiny --device cuda --workers 2 --work "$WORK/tiny" \
    --out "$OUT/tiny_cuda.json" 2>&1 | tee -a "$LOG" || { say "error: the tiny CUDA pass failed"; exit 1; }
  timeout "$(left)" $PY -m propy bench --profile tvr --device cuda --work "$WORK/tvr" \
    --out "$OUT/gpu_bench.json" --md "$OUT/gpu_bench.md" 2>&1 | tee -a "$LOG" || status=1
  if [ -f ref/ProPy/main_prvr.py ] && [ "$status" = 0 ] && [ "$(left)" -gt 60 ]; then
    workers=$($PY -c "import json; print(json.load(open('$OUT/gpu_bench.json'))['machine']['workers'])")
    say "reference on the same files, $(left) s left"
    timeout "$(left)" $PY scripts/reference_timing.py --ref ref/ProPy --data "$WORK/tvr/synthetic" \
      --out "$WORK/reference" --batch 24 --workers "$workers" --epochs 2 --propy "$OUT/gpu_bench.json" \
      >"$WORK/reference.log" 2>&1 || status=1
    tail -n 40 "$WORK/reference.log" >"$OUT/reference.log"
    cp "$WORK/reference/timing.json" "$OUT/reference_timing.json" 2>/dev/null
    { echo; echo "### reference (BUAAPY/ProPy, unchanged, scripts/reference_timing.py)"; echo;
      grep -E "^(reference|propy / reference)" "$WORK/reference.log"; } >>"$OUT/gpu_bench.md"
  else
    say "reference step skipped (needs ref/ProPy/main_prvr.py, a good propy run and a minute left)"
  fi
fi
[ -f "$OUT/gpu_bench.md" ] && cat "$OUT/gpu_bench.md"
say "gpu_check: $MODE finished with status $status after $SECONDS s"
exit $status
