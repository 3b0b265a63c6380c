#!/usr/bin/env python
"""Integration benchmark: scdreamer (seeds 0, 1, 2) against Harmony, scVI, Scanorama, CONCORD and
unintegrated PCA on every dataset of ../shared/data, all scored in one scib-metrics Benchmarker
table per dataset (../shared/bench/peers.py does the peers and the scoring).

Usage (from the repo root, with the peers venv of ../shared/bench/README.md):
    cargo build --release
    ../peers-venv/bin/python bench/integration.py --out /tmp/bench-int [--datasets kang_pbmc,...]
        [--seeds 0,1,2] [--methods Unintegrated,Harmony,scVI,Scanorama,CONCORD]
        [--extra-args "--epochs 50"] [--sup]
CONCORD needs `pip install concord-sc==1.0.13` in the peers venv (../shared/bench/README.md).

With --sup (issue 7) the same run also hides 30% of the labels (seed 0, the cells peers.py hides
for scANVI), trains scDREAMER-Sup on the rest, adds scANVI to the peers and the Sup embedding to
the table, and prints macro-F1 / accuracy on the hidden cells for both (sup.json).

Writes <out>/<dataset>/results.csv (the Benchmarker table), run.json (peer timings), scdreamer
timings, and prints one markdown table (Total, batch, bio per method), the mean scdreamer Total
over the seeds against the best peer's, and the time ratios scdreamer wall time / scVI training
time and / CONCORD fit time (issue 24's bars: mean Total >= the best peer; time <= CONCORD's).
"""
import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, markdown  # noqa: E402


def run_sup(a, f, d):
    """scDREAMER-Sup on `f` with hide_frac of the labels hidden; the same cells as peers.py
    hides for scANVI (numpy default_rng(0).choice). Writes sup.json; returns the output path."""
    import anndata as ad
    import numpy as np
    from sklearn.metrics import accuracy_score, f1_score
    adata = ad.read_h5ad(f)
    truth = adata.obs["cell_type"].astype(str).values
    rng = np.random.default_rng(0)
    hidden = np.zeros(adata.n_obs, dtype=bool)
    hidden[rng.choice(adata.n_obs, round(a.hidden_frac * adata.n_obs), replace=False)] = True
    adata.obs["cell_type_hidden"] = np.where(hidden, "Unknown", truth)
    inp, res = d / "input_hidden.h5ad", d / "scdreamer_sup.h5ad"
    adata.write_h5ad(inp)
    t0 = time.time()
    subprocess.run([a.binary, "integrate", "--input", str(inp), "--output", str(res), "--labels-key",
                    "cell_type_hidden", "--seed", "0", "--threads", str(a.threads), "--quiet"]
                   + shlex.split(a.extra_args), check=True)
    secs = time.time() - t0
    pred = ad.read_h5ad(res).obs["scdreamer_label"].astype(str).values
    sd = {"hidden_cells": int(hidden.sum()), "seconds": secs,
          "hidden_accuracy": float(accuracy_score(truth[hidden], pred[hidden])),
          "hidden_macro_f1": float(f1_score(truth[hidden], pred[hidden], average="macro"))}
    json.dump(sd, open(d / "sup.json", "w"), indent=1)
    return res


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--datasets", default=None, help="comma list of file stems (default: all in ../shared/data)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="Unintegrated,Harmony,scVI,Scanorama,CONCORD")
    p.add_argument("--extra-args", default="", help="extra flags for scdreamer integrate")
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--sup", action="store_true", help="also run scDREAMER-Sup against scANVI")
    p.add_argument("--hidden-frac", type=float, default=0.3)
    a = p.parse_args()
    if a.sup and "scANVI" not in a.methods:
        a.methods += ",scANVI"

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted((SHARED / "data").glob("*.h5ad"))
    if a.datasets:
        keep = set(a.datasets.split(","))
        files = [f for f in files if f.stem in keep]
    seeds = [int(s) for s in a.seeds.split(",")]
    summary = []
    for f in files:
        d = out / f.stem
        d.mkdir(exist_ok=True)
        emb_args, times = [], {}
        for s in seeds:
            o = d / f"scdreamer_s{s}.h5ad"
            cmd = [a.binary, "integrate", "--input", str(f), "--output", str(o), "--seed", str(s),
                   "--threads", str(a.threads), "--quiet"] + shlex.split(a.extra_args)
            t0 = time.time()
            subprocess.run(cmd, check=True)
            times[s] = time.time() - t0
            emb_args += ["--embedding", f"scdreamer_s{s}={o}:X_scdreamer"]
        json.dump({"scdreamer_seconds": times, "args": a.extra_args}, open(d / "scdreamer.json", "w"), indent=1)
        if a.sup:
            emb_args += ["--embedding", f"scDREAMER-Sup={run_sup(a, f, d)}:X_scdreamer"]
        cmd = [sys.executable, str(SHARED / "bench" / "peers.py"), "--input", str(f), "--out", str(d),
               "--methods", a.methods, "--threads", str(a.threads)] + emb_args
        subprocess.run(cmd, check=True)
        summary.append((f.stem, d, times))

    import pandas as pd
    for name, d, times in summary:
        res = pd.read_csv(d / "results.csv", index_col=0)
        run = json.load(open(d / "run.json"))
        print(f"\n### {name}\n")
        cols = [c for c in ["Batch correction", "Bio conservation", "Total"] if c in res.columns]
        tab = res[cols].copy()
        tab = tab[tab.index != "Metric Type"].astype(float).round(3)
        print(tab.pipe(markdown))
        scvi_t = run.get("scVI_train_s")
        concord_t = run.get("wall_s", {}).get("CONCORD")
        mean_t = sum(times.values()) / len(times)
        ratio = f"; scdreamer / scVI training time = {mean_t / scvi_t:.3f}" if scvi_t else ""
        if concord_t:
            ratio += f"; scdreamer / CONCORD fit time = {mean_t / concord_t:.3f}"
        print(f"\nscdreamer wall seconds per seed: {', '.join(f'{v:.1f}' for v in times.values())}; "
              f"scVI training seconds: {scvi_t}{ratio}; peer wall seconds: {json.dumps(run.get('wall_s', {}))}")
        ours = [f"scdreamer_s{s}" for s in times if f"scdreamer_s{s}" in tab.index]
        peers = [m for m in ("Harmony", "scVI", "Scanorama", "CONCORD") if m in tab.index]
        if ours and peers:
            mean_total = float(res.loc[ours, "Total"].astype(float).mean())
            best = max(peers, key=lambda m: float(res.loc[m, "Total"]))
            best_total = float(res.loc[best, "Total"])
            verdict = "at or above" if mean_total >= best_total else "BELOW"
            print(f"mean scdreamer Total over {len(ours)} seeds {mean_total:.3f}, {verdict} the best peer "
                  f"({best} {best_total:.3f})")
        if (d / "sup.json").exists() and "scANVI_hidden_macro_f1" in run:
            sd = json.load(open(d / "sup.json"))
            print(f"hidden labels ({sd['hidden_cells']} cells): scDREAMER-Sup macro-F1 "
                  f"{sd['hidden_macro_f1']:.4f} (accuracy {sd['hidden_accuracy']:.4f}, {sd['seconds']:.1f} s); "
                  f"scANVI macro-F1 {run['scANVI_hidden_macro_f1']:.4f} (accuracy "
                  f"{run['scANVI_hidden_accuracy']:.4f}, {run.get('scANVI_train_s', float('nan')):.1f} s training)")


if __name__ == "__main__":
    main()
