#!/usr/bin/env python
"""Integration benchmark: scdreamer (seeds 0, 1, 2) against scVI, Harmony and unintegrated PCA on
every dataset of ../shared/data, all scored in one scib-metrics Benchmarker table per dataset
(../shared/bench/peers.py does the peers and the scoring).

Usage (from the repo root, with the peers venv of ../shared/bench/README.md):
    cargo build --release
    ../peers-venv/bin/python bench/integration.py --out /tmp/bench-int [--datasets kang_pbmc,...]
        [--seeds 0,1,2] [--methods Unintegrated,Harmony,scVI] [--extra-args "--epochs 50"]

Writes <out>/<dataset>/results.csv (the Benchmarker table), run.json (peer timings), scdreamer
timings, and prints one markdown table (Total, batch, bio per method) plus the time ratio
scdreamer wall time / scVI training time.
"""
import argparse
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"



def markdown(df):
    """A markdown table without the optional tabulate dependency."""
    cols = [str(c) for c in df.columns]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "--:|" * len(cols)]
    for name, row in df.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row.values) + " |")
    return "\n".join(lines)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--datasets", default=None, help="comma list of file stems (default: all in ../shared/data)")
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--methods", default="Unintegrated,Harmony,scVI")
    p.add_argument("--extra-args", default="", help="extra flags for scdreamer integrate")
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()

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
        mean_t = sum(times.values()) / len(times)
        ratio = f"; scdreamer / scVI training time = {mean_t / scvi_t:.3f}" if scvi_t else ""
        print(f"\nscdreamer wall seconds per seed: {', '.join(f'{v:.1f}' for v in times.values())}; "
              f"scVI training seconds: {scvi_t}{ratio}; peer wall seconds: {json.dumps(run.get('wall_s', {}))}")


if __name__ == "__main__":
    main()
