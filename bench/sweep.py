#!/usr/bin/env python
"""One row of a settings sweep: `scdreamer integrate FLAGS` on one shared dataset for several
seeds, scored by scib-metrics (../shared/bench/peers.py --methods none, raw scores, so rows of
different runs are comparable) and by the project's own 15-NN metrics (label purity, batch
entropy / ln(#batches): the definitions of src/metrics and of the CI tests).

This is how the "Choosing the default epochs" rows of BENCHMARKS.md were made.

Usage (repo root, peers venv):
    cargo build --release
    ../peers-venv/bin/python bench/sweep.py --name e50 --dataset cellbench_5cl_10xsub \
        --flags "--epochs 50" --out /tmp/sweep [--seeds 0,1,2]
"""
import argparse
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np

from head_to_head import knn_scores

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--name", required=True, help="row name (output folder)")
    p.add_argument("--dataset", required=True, help="file stem in ../shared/data")
    p.add_argument("--flags", default="", help="extra flags for scdreamer integrate")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    a = p.parse_args()

    data = SHARED / "data" / f"{a.dataset}.h5ad"
    if not data.exists():
        sys.exit(f"no such dataset: {data}")
    d = Path(a.out) / a.dataset / a.name
    d.mkdir(parents=True, exist_ok=True)
    emb_args, outputs = [], {}
    for s in a.seeds.split(","):
        o = d / f"s{s}.h5ad"
        subprocess.run([a.binary, "integrate", "--quiet", "--input", str(data), "--output", str(o), "--seed", s,
                        "--threads", str(a.threads)] + shlex.split(a.flags), check=True)
        emb_args += ["--embedding", f"s{s}={o}:X_scdreamer"]
        outputs[f"s{s}"] = o
    with open(d / "score.log", "w") as log:
        subprocess.run([sys.executable, str(SHARED / "bench" / "peers.py"), "--input", str(data), "--out", str(d),
                        "--methods", "none", "--threads", str(a.threads)] + emb_args,
                       check=True, stdout=log, stderr=subprocess.STDOUT)

    import anndata as ad
    import pandas as pd
    r = pd.read_csv(d / "results.csv", index_col=0)
    r = r[r.index != "Metric Type"][["Batch correction", "Bio conservation", "Total"]].astype(float)
    for name, o in outputs.items():
        z = ad.read_h5ad(o)
        labels = z.obs["cell_type"].astype("category").cat.codes.to_numpy()
        batches = z.obs["batch"].astype("category").cat.codes.to_numpy()
        r.loc[name, "15-NN purity"], r.loc[name, "15-NN batch entropy"] = knn_scores(
            np.asarray(z.obsm["X_scdreamer"]), labels, batches)
    print(f"== {a.name} {a.dataset} [{a.flags}]")
    print(r.round(3).to_string())
    print(f"mean Total {r.Total.mean():.3f} min {r.Total.min():.3f}")


if __name__ == "__main__":
    main()
