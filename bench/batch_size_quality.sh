#!/usr/bin/env bash
# scib Total of the default preset at a given minibatch size, its epochs left to the default rule
# (`default_epochs`: the steps the 128-cell default takes, at most 1,200 above 128 cells, so on
# the small files the minibatch size is the only change). This is how "quality at the GPU default batch size" in BENCHMARKS.md (issue 18) is
# measured on the CPU (same math as the GPU).
#   bash bench/batch_size_quality.sh OUT_DIR BATCH [SEED] [FILE_STEM ...]
set -euo pipefail
cd "$(dirname "$0")/.."
out=$1; batch=$2; seed=${3:-0}; shift $(( $# < 3 ? $# : 3 ))
stems=("$@")
[ ${#stems[@]} -gt 0 ] || stems=(cellbench_3cl cellbench_5cl cellbench_3cl_10xsub cellbench_5cl_10xsub kang_pbmc)
mkdir -p "$out"
for s in "${stems[@]}"; do
    f=../shared/data/$s.h5ad
    n=$(.venv/bin/python -c "import h5py,sys; f=h5py.File(sys.argv[1]); print(len(f['obs'][f['obs'].attrs['_index']]))" "$f")
    steps=$(( (n + batch - 1) / batch ))
    start=$(date +%s.%N)
    target/release/scdreamer integrate --quiet --input "$f" --output "$out/${s}_b${batch}_s$seed.h5ad" \
        --batch-size "$batch" --seed "$seed" --threads 2 --evaluate \
        --label-key cell_type --metrics-output "$out/${s}_b${batch}_s$seed.csv"
    secs=$(python3 -c "import time; print(round(time.time() - $start, 1))")
    epochs=$(($(wc -l < "$out/${s}_b${batch}_s$seed.log.csv") - 1))
    echo "$s cells=$n batch=$batch epochs=$epochs steps=$((steps * epochs)) seconds=$secs load=$(cut -d' ' -f1 /proc/loadavg)"
    tail -n +2 "$out/${s}_b${batch}_s$seed.csv"
done
