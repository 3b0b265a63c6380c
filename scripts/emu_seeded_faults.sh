#!/usr/bin/env bash
# Plants one fault at a time in the real sources (host code and kernels), rebuilds, and runs the
# CUDA parity tests of tests/cuda_ops.rs on the emulated CUDA device: each run must FAIL, and
# the unmodified tree must pass. Shows that the emulated suites can catch what they exist for.
# (tests/cuda_emulator.rs does the kernel faults in CI without a rebuild; this script covers the
# host-code faults too, at four rebuilds.) Run from a clean checkout:
#   bash scripts/emu_seeded_faults.sh
# Touched files are restored on exit.
set -uo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
FILES=(src/backend/cuda/ops/dense.rs kernels/common.cuh kernels/reduce.cu)
if ! git diff --quiet -- "${FILES[@]}"; then
    echo "emu_seeded_faults: ${FILES[*]} have local changes; commit or stash them first" >&2
    exit 2
fi
restore() { git checkout -q -- "${FILES[@]}"; }
trap restore EXIT

# name | file | python replacement (old -> new, first occurrence) | test filter
run_case() {
    local name=$1 file=$2 old=$3 new=$4 filter=$5
    if [[ -n "$file" ]]; then
        python3 - "$file" "$old" "$new" <<'PY' || { echo "$name: pattern not found"; return 1; }
import sys
path, old, new = sys.argv[1:4]
text = open(path).read()
if old not in text:
    sys.exit(1)
open(path, "w").write(text.replace(old, new, 1))
PY
    fi
    local log
    log=$(cargo test --release --test cuda_ops "$filter" 2>&1)
    local status=$?
    restore
    local verdict
    if [[ -z "$file" ]]; then
        [[ $status == 0 ]] && verdict="passes (as it must)" || verdict="FAILS (unexpected)"
    else
        [[ $status != 0 ]] && verdict="fails (caught)" || verdict="PASSES (not caught!)"
    fi
    printf '%-34s %-26s %s\n' "$name" "$filter" "$verdict"
    echo "$log" | grep -E "panicked|emulator: kernel|emulator: cuBLAS|\]: got" | head -2 | sed 's/^/    /'
}

printf '%-34s %-26s %s\n' fault "test filter" result
run_case "none (unmodified tree)" "" "" "" ""
run_case "swapped GEMM transpose (host)" src/backend/cuda/ops/dense.rs \
    "transa: op(trans_b)," "transa: op(!trans_b)," gemm_matches_cpu
run_case "wrong launch argument (host)" src/backend/cuda/ops/dense.rs \
    "[input, opt(bias), &r, &c," "[input, opt(bias), &c, &r," epilogue
run_case "missing __syncthreads (kernel)" kernels/common.cuh \
    $'    if (lane == 0) scratch[warp] = v;\n    __syncthreads();' \
    $'    if (lane == 0) scratch[warp] = v;' reductions_and_softmax
run_case "off-by-one bound (kernel)" kernels/reduce.cu \
    "j < n; j += gridDim.x * blockDim.x" "j <= n; j += gridDim.x * blockDim.x" zinb_and_nb_match_cpu
