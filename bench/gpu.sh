#!/usr/bin/env bash
# One prepared run of everything only a GPU can show (issue 15). docs/gpu.md says when and how to call it.
#
#   bench/gpu.sh --pack                   here: fill .whl/ with what the GPU machine lacks (bench/gpu/pack.py)
#   bench/gpu.sh --dry-run [--out DIR]    here, on CPU: pack, then every step with its CUDA work swapped for a CPU
#                                         check, in the GPU machine's Python as bench/gpu/image.py simulates it
#                                         (--no-pack: use .whl/ as it is, even empty: its checks are then skipped)
#   bench/gpu.sh [--out DIR]              there: install .whl/, then the steps in order, each one time-boxed
#
#   --budget-s S   the whole run (default 420); each step's box is cut to what is left of it
#   --only a,b     run only these steps (of: install gsplat_build pytest_gpu render avatar train text_to_video)
#
# Writes DIR/gpu-<device>.json (a section per step, rewritten after every step, so a later failure keeps the
# earlier results), DIR/gpu-<device>.log (every step's output) and DIR/avatar-<device>.png. DIR: --out, else $OUT
# (set on the GPU machine: what is there comes back), else bench/results (runs/gpu-dry-run for --dry-run).
# Exits 0 when every step ended ok (or checked, in a dry run).
set -u -o pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

MODE=gpu
OUT_DIR=""
BUDGET_S=420
ONLY=""
PACK=1
while (($#)); do
    case $1 in
        --pack) MODE=pack ;;
        --dry-run) MODE=dry-run ;;
        --no-pack) PACK=0 ;;
        --out) OUT_DIR=$2; shift ;;
        --budget-s) BUDGET_S=$2; shift ;;
        --only) ONLY=$2; shift ;;
        -h | --help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "bench/gpu.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

HERE_PY=$([[ -x .venv/bin/python ]] && echo .venv/bin/python || echo python3)
# Where the test suite keeps its caches (tests/conftest.py pins these): the pytest step then finds the gsplat
# build of the gsplat_build step instead of building it again, and nothing lands in ~/.cache.
export XDG_CACHE_HOME=$ROOT/.cache/tests
export TORCH_EXTENSIONS_DIR=$XDG_CACHE_HOME/torch_extensions
export TRITON_CACHE_DIR=$XDG_CACHE_HOME/triton
export PIP_CACHE_DIR=${PIP_CACHE_DIR:-$XDG_CACHE_HOME/pip}
export PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONUNBUFFERED=1
export MAX_JOBS=${MAX_JOBS:-$(nproc)}

if [[ $MODE == pack ]]; then
    exec "$HERE_PY" bench/gpu/pack.py
fi

WORK=$ROOT/.cache/gpu
seconds_since() { # NANOSECONDS → seconds since then, e.g. 12.345
    local ms=$((($(date +%s%N) - $1) / 1000000))
    printf '%d.%03d' $((ms / 1000)) $((ms % 1000))
}

PACK_S=""
BOX_SCALE=1  # each step's box is sized for the GPU; a dry run's CPU checks on a busy 2-core machine get 3 times it
if [[ $MODE == dry-run ]]; then
    BOX_SCALE=3
    if ((PACK)); then
        started=$(date +%s%N)
        "$HERE_PY" bench/gpu/pack.py || exit 1
        PACK_S=$(seconds_since "$started")
    fi
    PY=("$HERE_PY" bench/gpu/image.py)
    CHECK=(--check)
    DEVICE=dry-run
    WORK=$ROOT/.cache/gpu-dry-run
    OUT_DIR=${OUT_DIR:-runs/gpu-dry-run}
    export CUDA_VISIBLE_DEVICES=""
else
    PY=(python3)
    CHECK=()
    DEVICE=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 | tr 'A-Z ' 'a-z-')
    DEVICE=${DEVICE:-no-gpu}
    # Every step must build CUDA extensions with the same flags, or the next process rebuilds them: unset, torch
    # would add PTX to the GPU's own architecture, and the pytest step would build gsplat all over again.
    CAPABILITY=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1)
    export TORCH_CUDA_ARCH_LIST=${TORCH_CUDA_ARCH_LIST:-$CAPABILITY}
    OUT_DIR=${OUT_DIR:-${OUT:-bench/results}}
    export PYTHONPATH=$WORK/site:$ROOT/bench/gpu/standins:$ROOT${PYTHONPATH:+:$PYTHONPATH}
fi
export PATH=$WORK/tools/bin:$PATH
S=$WORK/sections
mkdir -p "$OUT_DIR" "$S"
RESULTS=$OUT_DIR/gpu-$DEVICE.json
LOG=$OUT_DIR/gpu-$DEVICE.log
: >"$LOG"
DEADLINE=$(($(date +%s) + BUDGET_S))
GPU_INFO=$(nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null | head -1)
"${PY[@]}" -m bench.gpu.steps header "$RESULTS" --mode "$MODE" --device "$DEVICE" --gpu "$GPU_INFO" \
    --pack-seconds "$PACK_S" || exit 1
FAILED=0

# run_step NAME BOX COMMAND...: run COMMAND (its argument @BOX@ replaced by the box) with the box cut to what is
# left of the budget, its output appended to the log; then fold its section and outcome into the results.
run_step() {
    local name=$1 box=$(($2 * BOX_SCALE))
    shift 2
    if [[ -n $ONLY && ,$ONLY, != *,$name,* ]]; then return 0; fi
    local left=$((DEADLINE - $(date +%s)))
    ((box > left)) && box=$left
    local command=("${@//@BOX@/$box}")
    local from started rc
    from=$(stat -c %s "$LOG")
    echo "== $name (box $box s): ${command[*]}" | tee -a "$LOG"
    rm -f "$S/$name.json"
    started=$(date +%s%N)
    if ((box < 5)); then
        rc=124
        echo "no time left of the $BUDGET_S s budget" >>"$LOG"
    else
        timeout -k 10 "$box" "${command[@]}" >>"$LOG" 2>&1
        rc=$?
    fi
    "${PY[@]}" -m bench.gpu.steps record "$RESULTS" "$name" --rc "$rc" --box "$box" --log "$LOG" --log-from "$from" \
        --section "$S/$name.json" --command "${command[*]}" --seconds "$(seconds_since "$started")" | tee -a "$LOG"
    ((rc)) && FAILED=1
    return "$rc"
}

STEP=("${PY[@]}" -m bench.gpu.steps)
run_step install 60 "${STEP[@]}" install "$S/install.json" --site "$WORK/site" --tools "$WORK/tools" "${CHECK[@]}"
if run_step gsplat_build 240 "${STEP[@]}" gsplat "$S/gsplat_build.json" "${CHECK[@]}"; then
    run_step pytest_gpu 120 "${STEP[@]}" pytest "$S/pytest_gpu.json" "${CHECK[@]}"
    run_step render 60 "${STEP[@]}" render "$S/render.json" "${CHECK[@]}"
    NO_GSPLAT=()
else
    for name in pytest_gpu render; do
        "${PY[@]}" -m bench.gpu.steps record "$RESULTS" "$name" --skip "gsplat did not build" | tee -a "$LOG"
    done
    NO_GSPLAT=(--no-gsplat)  # the avatar trains with the torch backend on CUDA instead
fi
run_step avatar 120 "${PY[@]}" -m bench.gpu.avatar "$S/avatar.json" --seconds @BOX@ \
    --image "$OUT_DIR/avatar-$DEVICE.png" "${NO_GSPLAT[@]}" "${CHECK[@]}"
TRAIN=(--precision bf16)
[[ $MODE == dry-run ]] && TRAIN+=(--smoke)
run_step train 150 "${PY[@]}" -m bench.gpu.train "$S/train.json" "${TRAIN[@]}"
run_step text_to_video 60 "${STEP[@]}" pipeline "$S/text_to_video.json" --seconds @BOX@ "${CHECK[@]}"

[[ -n $PACK_S ]] && echo "packing took $PACK_S s here (.whl/pack.json has every file's size and making time)"
echo "results in $RESULTS, log in $LOG"
exit "$FAILED"
