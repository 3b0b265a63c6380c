#!/usr/bin/env python
"""scDREAMER-Sup against scANVI: hide 30% of the labels (seed 0, at random, the same cells as
../shared/bench/peers.py hides for scANVI), train both on the rest, and report macro-F1 and
accuracy on the hidden cells plus one scib-metrics table (scVI, scANVI, scDREAMER-Sup).

Usage (repo root, peers venv):
    cargo build --release
    ../peers-venv/bin/python bench/sup.py --out /tmp/bench-sup [--datasets cellbench_5cl_10xsub,...]
"""
import argparse
import json
import subprocess
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, SHARED, markdown  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--datasets", default=None)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    p.add_argument("--hidden-frac", type=float, default=0.3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", default="scVI,scANVI")
    a = p.parse_args()
    import anndata as ad
    from sklearn.metrics import accuracy_score, f1_score

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = sorted((SHARED / "data").glob("*.h5ad"))
    if a.datasets:
        files = [f for f in files if f.stem in set(a.datasets.split(","))]
    for f in files:
        adata = ad.read_h5ad(f)
        truth = adata.obs["cell_type"].astype(str).values
        if len(set(truth)) < 3:
            continue
        d = out / f.stem
        d.mkdir(exist_ok=True)
        rng = np.random.default_rng(a.seed)  # same draw as peers.py run_scanvi
        hidden = np.zeros(adata.n_obs, dtype=bool)
        hidden[rng.choice(adata.n_obs, round(a.hidden_frac * adata.n_obs), replace=False)] = True
        adata.obs["cell_type_hidden"] = np.where(hidden, "Unknown", truth)
        inp = d / "input_hidden.h5ad"
        adata.write_h5ad(inp)
        res = d / "scdreamer_sup.h5ad"
        subprocess.run([a.binary, "integrate", "--input", str(inp), "--output", str(res), "--labels-key",
                        "cell_type_hidden", "--seed", str(a.seed), "--quiet"], check=True)
        pred = ad.read_h5ad(res).obs["scdreamer_label"].astype(str).values
        sd = {"hidden_cells": int(hidden.sum()),
              "hidden_accuracy": float(accuracy_score(truth[hidden], pred[hidden])),
              "hidden_macro_f1": float(f1_score(truth[hidden], pred[hidden], average="macro"))}
        subprocess.run([sys.executable, str(SHARED / "bench" / "peers.py"), "--input", str(f), "--out", str(d),
                        "--methods", a.methods, "--seed", str(a.seed),
                        "--embedding", f"scDREAMER-Sup={res}:X_scdreamer"], check=True)
        run = json.load(open(d / "run.json"))
        import pandas as pd
        tab = pd.read_csv(d / "results.csv", index_col=0)
        tab = tab[tab.index != "Metric Type"][["Batch correction", "Bio conservation", "Total"]].astype(float)
        print(f"\n### {f.stem}\n")
        print(tab.round(3).pipe(markdown))
        print(f"\nhidden cells {sd['hidden_cells']}: scDREAMER-Sup macro-F1 {sd['hidden_macro_f1']:.4f} "
              f"(accuracy {sd['hidden_accuracy']:.4f}); scANVI macro-F1 {run.get('scANVI_hidden_macro_f1')} "
              f"(accuracy {run.get('scANVI_hidden_accuracy')})")
        json.dump({"scdreamer_sup": sd, "scanvi": {k: v for k, v in run.items() if k.startswith("scANVI")}},
                  open(d / "sup.json", "w"), indent=1)


if __name__ == "__main__":
    main()
