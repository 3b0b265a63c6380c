#!/usr/bin/env bash
# The one GPU script. Two halves, because the GPU machine has no Rust toolchain and no network:
#
#   scripts/gpu_check.sh prepare   (here, with cargo): builds the CUDA test binaries with
#       `cargo test --release --no-run`, copies them (debug info stripped) and the embedded PTX
#       into gpu-bin/ (git-ignored; carry it to the GPU machine, e.g. run(carry=["gpu-bin"])).
#   scripts/gpu_check.sh run       (on the GPU machine): prints the GPU, the CUDA libraries it
#       can load, a ptxas register/spill report per kernel (when ptxas exists), then runs every
#       carried test binary with SCDREAMER_REQUIRE_GPU=1 (a test that cannot open the GPU fails
#       instead of skipping), then `bench` (below). Exit status is non-zero when any test fails.
#   scripts/gpu_check.sh rehearse  (here, no GPU): prepare, then `run` on the emulated CUDA
#       device (SCDREAMER_EMULATE_CUDA=1, emu/README.md) with a 2,000-cell bench, so every step
#       of the script has run before a GPU is lent. Not a GPU measurement.
#   scripts/gpu_check.sh bench     (on the GPU machine): times full training with the carried
#       scdreamer binary on simulated 100k and 1M cells x 2000 genes (`scdreamer simulate`, then
#       `integrate --device cuda --epochs N`), and scVI on the same files when `import scvi` works
#       (the GPU machine has no network: nothing is installed), and prints one table.
#       BENCH_CELLS (default "100000 1000000"), BENCH_EPOCHS_100000 (default 5),
#       BENCH_EPOCHS_1000000 (default 1), BENCH_DIR (default /tmp/scdreamer-bench); after each
#       run it prints bench/gpu_model.py's predicted epoch time beside the measured one.
#       SKIP_BENCH=1 makes `run` stop after the tests.
#
# Environment: SCDREAMER_NVRTC_DIR (prepare: where libnvrtc.so.* is, so kernels are compiled and
# embedded); CUDA_HOME (run: where to look for ptxas and libraries); GPU_BIN (default gpu-bin).
set -euo pipefail
cd "$(dirname "$0")/.."
GPU_BIN=${GPU_BIN:-gpu-bin}
TESTS=(cuda_ops cuda_nvrtc cuda_device backend_parity)

prepare() {
    # NVRTC from the test venv (scripts/setup.sh --test), so the kernels are compiled to
    # CUBIN/PTX and embedded rather than carried as source.
    if [[ -z "${SCDREAMER_NVRTC_DIR:-}" && -f scripts/env.sh ]]; then
        # shellcheck disable=SC1091
        source scripts/env.sh
    fi
    rm -rf "$GPU_BIN" && mkdir -p "$GPU_BIN/ptx"
    local args=()
    for t in "${TESTS[@]}"; do args+=(--test "$t"); done
    # The JSON stream names each test executable; keep the ones we asked for.
    cargo test --release --no-run "${args[@]}" --message-format=json-render-diagnostics \
        | python3 -c '
import json, os, sys
for line in sys.stdin:
    try: m = json.loads(line)
    except ValueError: continue
    if m.get("reason") == "compiler-artifact" and m.get("executable") and "test" in m["target"]["kind"]:
        print(m["target"]["name"], m["executable"])
    # The build-script output of this checkout (the target dir may be shared with other checkouts).
    if m.get("reason") == "build-script-executed" and os.getcwd() + "#" in m.get("package_id", ""):
        print("OUT_DIR", m["out_dir"])
' | while read -r name exe; do
        if [[ "$name" == OUT_DIR ]]; then echo "$exe" > "$GPU_BIN/.out_dir"; continue; fi
        cp "$exe" "$GPU_BIN/$name"
        strip --strip-debug "$GPU_BIN/$name" 2>/dev/null || true
        echo "prepared $GPU_BIN/$name ($(du -h "$GPU_BIN/$name" | cut -f1))"
    done
    # The PTX build.rs embedded, for the ptxas report.
    local out=""
    [[ -f "$GPU_BIN/.out_dir" ]] && out=$(cat "$GPU_BIN/.out_dir")
    if [[ -n "$out" ]] && ls "$out"/*.ptx >/dev/null 2>&1; then
        cp "$out"/*.ptx "$GPU_BIN/ptx/"
        echo "copied $(ls "$GPU_BIN"/ptx | wc -l) PTX files from $out"
    else
        echo "no embedded PTX found (was NVRTC available to build.rs?)"
    fi
    # The binary itself, for the training benchmark.
    cargo build --release --bin scdreamer
    local target=${CARGO_TARGET_DIR:-target}
    cp "$target/release/scdreamer" "$GPU_BIN/scdreamer"
    strip --strip-debug "$GPU_BIN/scdreamer" 2>/dev/null || true
    echo "prepared $GPU_BIN/scdreamer ($(du -h "$GPU_BIN/scdreamer" | cut -f1))"
    du -sh "$GPU_BIN"
}

find_tool() {
    local tool=$1
    for d in "${CUDA_HOME:-}/bin" /usr/local/cuda/bin; do
        [[ -x "$d/$tool" ]] && { echo "$d/$tool"; return 0; }
    done
    command -v "$tool" 2>/dev/null || return 1
}

run() {
    echo "== GPU"
    nvidia-smi || echo "nvidia-smi failed"
    nvidia-smi --query-gpu=name,compute_cap,driver_version,memory.total --format=csv 2>/dev/null || true
    echo "== CUDA libraries the loader can see"
    for lib in libcuda.so libnvrtc.so libcublas.so libcublasLt.so; do
        printf '%-16s %s\n' "$lib" "$(ldconfig -p 2>/dev/null | grep -m1 "$lib" | awk '{print $NF}' || true)"
    done
    echo "LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}"

    echo "== ptxas register / spill report per kernel"
    local ptxas arch
    arch=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader 2>/dev/null | head -1 | tr -d '.' || true)
    arch=${arch:-90}
    if ptxas=$(find_tool ptxas); then
        for f in "$GPU_BIN"/ptx/*.ptx; do
            [[ -e "$f" ]] || { echo "no PTX carried"; break; }
            echo "-- $(basename "$f") (sm_$arch)"
            "$ptxas" -v -arch="sm_$arch" -o /dev/null "$f" 2>&1 \
                | grep -E "Compiling entry|Used|spill" || true
        done
    else
        echo "ptxas not found (set CUDA_HOME); skipped"
    fi

    echo "== tests"
    local failed=0
    for t in "${TESTS[@]}"; do
        local exe="$GPU_BIN/$t"
        [[ -x "$exe" ]] || { echo "missing $exe (run prepare first)"; failed=1; continue; }
        echo "-- $t"
        # Test binaries look for kernels/ and ../shared relative to the manifest dir baked in
        # at build time; run from the repo root so relative paths resolve.
        if ! SCDREAMER_REQUIRE_GPU=${GPU_CHECK_REQUIRE_GPU:-1} "$exe" --test-threads=1 --nocapture; then
            failed=1
        fi
    done
    if [[ "${SKIP_BENCH:-0}" != 1 ]]; then
        bench || failed=1
    fi
    return $failed
}

# Seconds since the epoch, with fractions.
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f", b - a }'; }

bench() {
    local exe="$GPU_BIN/scdreamer" dir=${BENCH_DIR:-/tmp/scdreamer-bench}
    [[ -x "$exe" ]] || { echo "missing $exe (run prepare first)"; return 1; }
    mkdir -p "$dir"
    local have_scvi=0
    if python3 -c 'import scvi' >/dev/null 2>&1; then have_scvi=1; fi
    local rows=() status=0
    for cells in ${BENCH_CELLS:-100000 1000000}; do
        local var="BENCH_EPOCHS_$cells" epochs
        epochs=${!var:-}
        [[ -n "$epochs" ]] || { [[ "$cells" -ge 1000000 ]] && epochs=1 || epochs=5; }
        local h5="$dir/sim_${cells}.h5ad" out="$dir/sim_${cells}_scdreamer.h5ad"
        echo "== bench: $cells cells x 2000 genes, $epochs epoch(s)"
        local t0 t1 sim_s train_s scvi_s="skipped (scvi not importable)"
        t0=$(now)
        "$exe" simulate --cells "$cells" --genes 2000 --seed 0 -o "$h5" 2>&1 | tail -2
        t1=$(now); sim_s=$(elapsed "$t0" "$t1")
        t0=$(now)
        if "$exe" integrate --input "$h5" --output "$out" --device cuda --epochs "$epochs" \
            --all-genes --normalized no --quiet 2>"$dir/integrate_${cells}.log"; then
            t1=$(now); train_s=$(elapsed "$t0" "$t1")
        else
            train_s="FAILED"; status=1
        fi
        tail -3 "$dir/integrate_${cells}.log"
        model_line "$cells" "$dir/integrate_${cells}.log" "${out%.h5ad}.log.csv"
        if [[ $have_scvi == 1 ]]; then
            scvi_s=$(python3 - "$h5" "$epochs" <<'PY' 2>>"$dir/scvi_${cells}.log" || echo FAILED
import sys, time
import anndata, scvi
a = anndata.read_h5ad(sys.argv[1])
scvi.model.SCVI.setup_anndata(a, batch_key="batch")
m = scvi.model.SCVI(a)
t0 = time.time()
m.train(max_epochs=int(sys.argv[2]), accelerator="gpu", devices=1, enable_progress_bar=False)
print(f"{time.time() - t0:.1f}")
PY
)
        fi
        rows+=("$(printf '%-9s %-7s %-12s %-22s %-10s' "$cells" "$epochs" "$sim_s" "$train_s" "$scvi_s")")
        rm -f "$out"
    done
    echo "== training time table (wall seconds; scdreamer = whole integrate run incl. read/write)"
    printf '%-9s %-7s %-12s %-22s %-10s\n' cells epochs simulate_s scdreamer_cuda_s scvi_train_s
    printf '%s\n' "${rows[@]}"
    return $status
}

# The performance model's prediction (bench/gpu_model.py, from the emulator's counters committed
# in bench/gpu_model/) beside the measured seconds of the last epoch in the training log.
model_line() {
    local cells=$1 log=$2 csv=$3 bs sec gpu=h100 stats
    bs=$(grep -o 'batch size [0-9]*' "$log" | head -1 | awk '{print $3}')
    stats="bench/gpu_model/stats_bs${bs}.json"
    [[ -n "$bs" && -f "$stats" && -f "$csv" ]] || { echo "model: no counters for batch size '${bs}'"; return 0; }
    sec=$(tail -1 "$csv" | awk -F, '{print $NF}')
    if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q H200; then gpu=h200; fi
    echo "== model vs measured ($cells cells, batch $bs, last epoch ${sec} s)"
    python3 bench/gpu_model.py "$stats" --batch "$bs" --cells "$cells" --measured-epoch-s "$sec" \
        --gpu "$gpu" --quiet || true
}

rehearse() {
    prepare
    echo "== rehearsal on the emulated CUDA device (not a GPU measurement)"
    SCDREAMER_EMULATE_CUDA=1 GPU_CHECK_REQUIRE_GPU=0 BENCH_CELLS=${BENCH_CELLS:-2000} \
        BENCH_DIR=${BENCH_DIR:-/tmp/scdreamer-rehearsal} run
}

case "${1:-}" in
    prepare) prepare ;;
    run) run ;;
    bench) bench ;;
    rehearse) rehearse ;;
    *) echo "usage: $0 prepare|run|bench|rehearse" >&2; exit 2 ;;
esac
