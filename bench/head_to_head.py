#!/usr/bin/env python
"""Head-to-head on one file, both tools at their defaults (atlas-scale issue): wall time and peak
memory of `scdreamer integrate` against scVI's default `train()`, and the quality of both
embeddings, in one run.

For the file (or a simulation made with `scdreamer simulate`):
- `scdreamer integrate` with default settings under /usr/bin/time -v (wall time of the whole
  command, peak RSS = VmHWM);
- ../shared/bench/peers.py --methods scVI (scvi-tools defaults, n_latent 10; its `train()`
  seconds from run.json) under /usr/bin/time -v, scoring scVI and scdreamer in one scib-metrics
  Benchmarker table;
- the project's own metrics on both embeddings: 15-NN label purity and mean 15-NN batch entropy /
  ln(#batches) (the same definitions as `src/metrics`).

Usage (repo root, peers venv):
    ../peers-venv/bin/python bench/head_to_head.py --simulate 100000 --batches 4 --out /tmp/h2h-100k
    ../peers-venv/bin/python bench/head_to_head.py --simulate 15000 --batches 150 --out /tmp/h2h-150b
    ../peers-venv/bin/python bench/head_to_head.py --input ../shared/data/kang_pbmc.h5ad --out /tmp/h2h-kang
"""
import argparse
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def timed(cmd, log):
    """Run cmd under /usr/bin/time -v (output to `log`); return (wall seconds, peak RSS GB)."""
    with open(log, "w") as fh:
        r = subprocess.run(["/usr/bin/time", "-v"] + cmd, stdout=fh, stderr=subprocess.STDOUT, text=True)
    text = open(log).read()
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{text[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", text).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    return secs, rss_kb / 1e6


def knn_scores(emb, labels, batches, k=15):
    """15-NN label purity and mean batch entropy / ln(#batches), self excluded."""
    from sklearn.neighbors import NearestNeighbors
    idx = NearestNeighbors(n_neighbors=k + 1).fit(emb).kneighbors(emb, return_distance=False)[:, 1:]
    purity = float((labels[idx] == labels[:, None]).mean())
    nb = int(batches.max()) + 1
    counts = np.zeros((len(emb), nb))
    for j in range(k):
        np.add.at(counts, (np.arange(len(emb)), batches[idx[:, j]]), 1.0)
    p = counts / k
    with np.errstate(divide="ignore", invalid="ignore"):
        ent = -np.where(p > 0, p * np.log(p), 0.0).sum(1)
    return purity, float(ent.mean() / np.log(nb))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", help="h5ad with raw counts, obs batch and cell_type")
    p.add_argument("--simulate", type=int, help="simulate this many cells instead (2,000 genes)")
    p.add_argument("--batches", type=int, default=4)
    p.add_argument("--types", type=int, default=8)
    p.add_argument("--out", required=True)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    if a.simulate:
        inp = out / f"sim_{a.simulate}_{a.batches}b.h5ad"
        if not inp.exists():
            subprocess.run([a.binary, "simulate", "--cells", str(a.simulate), "--batches", str(a.batches),
                            "--types", str(a.types), "--seed", "0", "--output", str(inp)], check=True)
    elif a.input:
        inp = Path(a.input)
    else:
        sys.exit("give --input or --simulate")

    res = out / "scdreamer.h5ad"
    sd_wall, sd_rss = timed([a.binary, "integrate", "--input", str(inp), "--output", str(res), "--threads",
                             str(a.threads), "--normalized", "no", "--quiet"], out / "scdreamer.time.log")
    cmd = [sys.executable, str(SHARED / "bench" / "peers.py"), "--input", str(inp), "--out", str(out),
           "--methods", "scVI", "--threads", str(a.threads), "--embedding", f"scdreamer={res}:X_scdreamer"]
    pv_wall, pv_rss = timed(cmd, out / "peers.time.log")
    run = json.load(open(out / "run.json"))

    import anndata as ad
    obs = ad.read_h5ad(res, backed="r").obs
    labels = obs["cell_type"].astype("category").cat.codes.to_numpy()
    batches = obs["batch"].astype("category").cat.codes.to_numpy()
    own = {name: knn_scores(np.load(out / f"emb_{name}.npy"), labels, batches) for name in ("scdreamer", "scVI")}
    sd_epochs = sum(1 for _ in open(out / "scdreamer.log.csv")) - 1
    summary = {"input": str(inp), "cells": int(run["n_cells"]), "batches": int(run["n_batches"]),
               "scdreamer_wall_s": sd_wall, "scdreamer_peak_gb": sd_rss, "scdreamer_epochs": sd_epochs,
               "scvi_train_s": run["scVI_train_s"], "scvi_epochs": run.get("scVI_epochs"),
               "peers_peak_gb": pv_rss, "ratio_wall_over_scvi_train": sd_wall / run["scVI_train_s"],
               "own_metrics": {k: {"purity": v[0], "batch_entropy": v[1]} for k, v in own.items()}}
    if (out / "results.csv").exists():
        import pandas as pd
        r = pd.read_csv(out / "results.csv", index_col=0)
        r = r[r.index != "Metric Type"][["Batch correction", "Bio conservation", "Total"]].astype(float)
        summary["scib"] = r.round(4).to_dict(orient="index")
    json.dump(summary, open(out / "head_to_head.json", "w"), indent=1)

    print(f"\n{inp.name}: {summary['cells']:,} cells, {summary['batches']} batches (2 threads)\n")
    print("| tool | time (s) | epochs | peak GB | 15-NN purity | batch entropy | scib batch | scib bio | scib Total |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, secs, ep, rss in (("scdreamer (whole command)", sd_wall, sd_epochs, sd_rss),
                                ("scVI (train() only)", run["scVI_train_s"], run.get("scVI_epochs"), pv_rss)):
        key = "scdreamer" if name.startswith("scdreamer") else "scVI"
        sc = summary.get("scib", {}).get(key, {})
        cells = [f"{secs:.1f}", str(ep), f"{rss:.2f}", f"{own[key][0]:.4f}", f"{own[key][1]:.4f}"]
        cells += [f"{sc[c]:.3f}" if c in sc else "-" for c in ("Batch correction", "Bio conservation", "Total")]
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(f"\nratio scdreamer wall / scVI train = {summary['ratio_wall_over_scvi_train']:.3f} "
          f"(peers.py peak includes PCA and scoring)")


if __name__ == "__main__":
    main()
