#!/usr/bin/env python
"""Scaling benchmark (atlas-scale issue): time per epoch, cells/s and peak memory of scdreamer and
scVI, in one run, on simulated data of growing size.

For each size N: `scdreamer simulate` writes N cells x 2,000 genes (10% dense, 4 batches, 8 types);
`scdreamer integrate --epochs E --normalized no` runs under /usr/bin/time -v (peak RSS = VmHWM);
its per-epoch seconds come from the training log. scVI's epoch time comes from
../shared/bench/scvi_throughput.py on the same file (batch 128 and scdreamer's batch size), also
under /usr/bin/time -v. Prints a markdown table with the ratios.

scdreamer runs at scVI's width (--hidden 128) unless --hidden says otherwise.

Usage:
    cargo build --release
    ../peers-venv/bin/python bench/scale.py --sizes 10000,100000 --out /tmp/scale [--skip-scvi] [--hidden default]
"""
import argparse
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def timed(cmd):
    """Run cmd under /usr/bin/time -v; return (wall seconds, peak RSS GB)."""
    r = subprocess.run(["/usr/bin/time", "-v"] + cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{r.stderr[-3000:]}")
    wall = re.search(r"Elapsed \(wall clock\) time.*: (.+)", r.stderr).group(1)
    parts = [float(p) for p in wall.split(":")]
    secs = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", r.stderr).group(1))
    return secs, rss_kb / 1e6


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="10000,100000")
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--batch-size", type=int, default=128, help="scdreamer batch size")
    p.add_argument("--hidden", default="128",
                   help="scdreamer hidden width: 128 (default here) is scVI's n_hidden, for a same-width "
                        "comparison; 'default' keeps scdreamer's own default (256)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", required=True)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    p.add_argument("--skip-scvi", action="store_true")
    a = p.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in [int(s) for s in a.sizes.split(",")]:
        sim = out / f"sim_{n}.h5ad"
        if not sim.exists():
            subprocess.run([a.binary, "simulate", "--cells", str(n), "--genes", "2000", "--batches", "4",
                            "--types", "8", "--seed", "0", "--output", str(sim)], check=True)
        res = out / f"sd_{n}.h5ad"
        wall, rss = timed([a.binary, "integrate", "--input", str(sim), "--output", str(res), "--epochs",
                           str(a.epochs), "--batch-size", str(a.batch_size), "--threads", str(a.threads),
                           "--normalized", "no", "--quiet"]
                          + ([] if a.hidden == "default" else ["--hidden", a.hidden]))
        log = list(csv.DictReader(open(out / f"sd_{n}.log.csv")))
        sd_epoch = min(float(r["seconds"]) for r in log)
        row = {"cells": n, "scdreamer_s_per_epoch": sd_epoch, "scdreamer_cells_per_s": n / sd_epoch,
               "scdreamer_wall_s": wall, "scdreamer_peak_gb": rss}
        if not a.skip_scvi:
            js = out / f"scvi_{n}.json"
            sizes = ",".join(dict.fromkeys(["128", str(a.batch_size)]))  # scVI's default, then ours
            wall_v, rss_v = timed([sys.executable, str(SHARED / "bench" / "scvi_throughput.py"), "--input",
                                   str(sim), "--batch-sizes", sizes, "--epochs", "1",
                                   "--threads", str(a.threads), "--out", str(js)])
            row["scvi"] = json.load(open(js))
            row["scvi_peak_gb"] = rss_v
        rows.append(row)
        print(json.dumps(row), flush=True)
    json.dump(rows, open(out / "scale.json", "w"), indent=1)
    print(f"\nscdreamer hidden width: {a.hidden}; scVI: n_hidden 128")
    print(f"\n| cells | scdreamer s/epoch (batch {a.batch_size}) | scdreamer cells/s | scdreamer peak GB "
          "| scVI batch | scVI s/epoch | scVI cells/s | scVI peak GB | cells/s ratio scdreamer / scVI |")
    print("|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for r in rows:
        head = (f"| {r['cells']:,} | {r['scdreamer_s_per_epoch']:.2f} | {r['scdreamer_cells_per_s']:,.0f} | "
                f"{r['scdreamer_peak_gb']:.2f} |")
        if "scvi" not in r:
            print(head + " - | - | - | - | - |")
            continue
        for run in r["scvi"]["runs"]:
            # both tools' cells/s count the cells one epoch visits (scVI trains on 90%).
            ep = min(run["epoch_s"])
            ratio = ep / r["scdreamer_s_per_epoch"] * r["cells"] / run["train_cells"]
            print(head + f" {run['batch_size']} | {ep:.2f} | {run['cells_per_s_epoch']:,} | "
                  f"{r['scvi_peak_gb']:.2f} | {ratio:.1f}x |")


if __name__ == "__main__":
    main()
