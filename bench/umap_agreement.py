#!/usr/bin/env python
"""scdreamer's native UMAP against umap-learn on the same embeddings: 15-NN preservation (share
of each cell's 15 nearest neighbours in the embedding that are among its 15 nearest in the 2-D
layout, exact neighbours, mean over cells) and wall time.

Both use n_neighbors 15, min_dist 0.1, seed 0 and their default epochs (umap-learn: 500 below
10,000 cells, 200 above). umap-learn is timed twice in one process: the first fit includes
numba's compilation, the second is warm. scdreamer's time is the UMAP step it reports
(`evaluate --no-metrics --figures`, kNN graph + layout).

Usage (repo root, peers venv with umap-learn):
    ../peers-venv/bin/python bench/umap_agreement.py --out /tmp/umap-agree \
        ../shared/data/kang_pbmc.h5ad=/tmp/agree/kang_pbmc_scdreamer.npy ...
(each argument FILE.h5ad=EMBEDDING.npy, rows in the file's cell order)
"""
import argparse
import re
import subprocess
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "target" / "release" / "scdreamer"


def knn(x, k):
    from sklearn.neighbors import NearestNeighbors
    return NearestNeighbors(n_neighbors=k + 1).fit(x).kneighbors(x, return_distance=False)[:, 1:]


def preservation(x, y, k=15):
    a, b = knn(x, k), knn(y, k)
    return float(np.mean([len(set(r) & set(s)) / k for r, s in zip(a, b)]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("pairs", nargs="+", help="FILE.h5ad=EMBEDDING.npy")
    p.add_argument("--out", type=Path, required=True)
    args = p.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    import umap
    rows = []
    for pair in args.pairs:
        h5ad, npy = pair.split("=", 1)
        x = np.load(npy).astype(np.float32)
        name = Path(npy).stem
        figs = args.out / name
        r = subprocess.run([str(BIN), "evaluate", "--input", h5ad, "--embedding", f"{name}={npy}", "--no-metrics",
                            "--figures", str(figs)], check=True, capture_output=True, text=True)
        ours_s = float(re.search(r"UMAP of .* took ([0-9.]+) s", r.stderr).group(1))
        ours = np.load(figs / f"{name}_umap.npy")
        times = []
        for _ in range(2):
            t0 = time.perf_counter()
            theirs = umap.UMAP(n_neighbors=15, min_dist=0.1, random_state=0).fit_transform(x)
            times.append(time.perf_counter() - t0)
        rows.append((name, x.shape[0], preservation(x, ours), preservation(x, theirs), ours_s, times[0], times[1]))
        print(f"{name}: cells {x.shape[0]}, 15-NN preservation scdreamer {rows[-1][2]:.4f} umap-learn {rows[-1][3]:.4f}, "
              f"time scdreamer {ours_s:.2f} s, umap-learn {times[0]:.2f} s (first) / {times[1]:.2f} s (warm)", flush=True)
    print("\n| embedding | cells | 15-NN preservation scdreamer | umap-learn | difference | scdreamer s | umap-learn s (first / warm) |")
    print("|---|--:|--:|--:|--:|--:|--:|")
    for name, n, a, b, t, t0, t1 in rows:
        print(f"| {name} | {n:,} | {a:.4f} | {b:.4f} | {a - b:+.4f} | {t:.2f} | {t0:.2f} / {t1:.2f} |")


if __name__ == "__main__":
    main()
