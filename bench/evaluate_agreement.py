#!/usr/bin/env python
"""`scdreamer evaluate` against scib-metrics' Benchmarker on the same embeddings.

For every file: the peers.py preprocessing (normalize_total + log1p, seurat_v3 HVGs when there
are more than 2,000 genes, scale, 50-PC PCA = "Unintegrated"), Harmony on that PCA, scdreamer's
embedding (`<dir>/<file>_scdreamer.h5ad`, made with `scdreamer integrate` if missing), plus any
--extra NAME=TEMPLATE.npy (`{stem}` in it is replaced by the file's stem, e.g. scVI latents saved
by bench/evaluate_scvi.py: `--extra 'scVI=/tmp/scvi/{stem}_scVI.npy'`). All of them are scored by
scib-metrics (Benchmarker prepare + benchmark, default metrics, raw scores) and by
`scdreamer evaluate` in the same run; the per-metric differences are printed, the largest per
metric summarised, and both tables written to <out>/<file>.json.

Usage (repo root, peers venv with scib-metrics 0.5.10, scanpy, harmonypy):
    ../peers-venv/bin/python bench/evaluate_scvi.py --out /tmp/scvi ../shared/data/*.h5ad
    ../peers-venv/bin/python bench/evaluate_agreement.py --out /tmp/agree \
        --scdreamer-dir /tmp/agree/emb --extra 'scVI=/tmp/scvi/{stem}_scVI.npy' ../shared/data/*.h5ad
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import ROOT, hvg_counts  # noqa: E402

BIN = ROOT / "target" / "release" / "scdreamer"
METRICS = ["Isolated labels", "KMeans NMI", "KMeans ARI", "Silhouette label", "cLISI", "BRAS", "iLISI",
           "KBET", "Graph connectivity", "PCR comparison", "Batch correction", "Bio conservation", "Total"]


def preprocess(adata, batch_key):
    import scanpy as sc
    adata = hvg_counts(adata, batch_key)
    scaled = sc.pp.scale(adata.X, max_value=10, copy=True)
    adata.obsm["X_pca"] = sc.pp.pca(scaled, n_comps=50, random_state=0).astype(np.float32)
    return adata


def harmony(adata, batch_key):
    import harmonypy
    ho = harmonypy.run_harmony(adata.obsm["X_pca"], adata.obs, [batch_key], random_state=0, verbose=False)
    z = np.asarray(ho.Z_corr)
    return (z if z.shape[0] == adata.n_obs else z.T).astype(np.float32)


def extra_embedding(spec, path, n_obs):
    """NAME=TEMPLATE.npy with {stem} -> (name, cells x d float32 array in the input's cell order)."""
    name, sep, template = spec.partition("=")
    if not sep or not name or not template:
        raise SystemExit(f"--extra expects NAME=TEMPLATE.npy, got {spec!r}")
    file = Path(template.replace("{stem}", path.stem))
    if not file.is_file():
        raise SystemExit(f"--extra {name}: no file {file} (bench/evaluate_scvi.py writes scVI's)")
    emb = np.load(file).astype(np.float32)
    if emb.ndim != 2 or emb.shape[0] != n_obs or not np.isfinite(emb).all():
        raise SystemExit(f"--extra {name}: {file} has shape {emb.shape} (want ({n_obs}, d)) or NaN/inf")
    return name, emb


def scdreamer_embedding(path, out_dir, obs_names):
    import anndata as ad
    out = out_dir / f"{path.stem}_scdreamer.h5ad"
    if not out.exists():
        subprocess.run([str(BIN), "integrate", "--input", str(path), "--output", str(out), "--quiet"], check=True)
    other = ad.read_h5ad(out, backed="r")
    return np.asarray(other.obsm["X_scdreamer"])[other.obs_names.get_indexer(obs_names)].astype(np.float32)


def scib_table(adata, names, batch_key, label_key, threads):
    from scib_metrics.benchmark import Benchmarker
    t0 = time.perf_counter()
    bm = Benchmarker(adata, batch_key=batch_key, label_key=label_key, embedding_obsm_keys=names,
                     pre_integrated_embedding_obsm_key="X_pca", n_jobs=threads, progress_bar=False)
    bm.prepare()
    bm.benchmark()
    seconds = time.perf_counter() - t0
    res = bm.get_results(min_max_scale=False).drop(index="Metric Type").astype(float)
    return {n: {m: float(res.loc[n, m]) for m in METRICS} for n in names}, seconds


def rust_table(path, emb_files, batch_key, label_key, csv):
    cmd = [str(BIN), "evaluate", "--input", str(path), "--batch-key", batch_key, "--label-key", label_key,
           "--output", str(csv), "--quiet"]
    for name, f in emb_files.items():
        cmd += ["--embedding", f"{name}={f}"]
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t0
    lines = csv.read_text().strip().splitlines()
    head = lines[0].split(",")
    table = {}
    for line in lines[1:]:
        cells = line.split(",")
        table[cells[0]] = {h: float(v) for h, v in zip(head[1:], cells[1:])}
    return table, seconds


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--scdreamer-dir", type=Path, help="where <file>_scdreamer.h5ad live / are written (default --out)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=TEMPLATE.npy",
                   help="another embedding per file, {stem} = the file's stem (repeatable)")
    p.add_argument("--batch-key", default="batch")
    p.add_argument("--label-key", default="cell_type")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    import anndata as ad
    args.out.mkdir(parents=True, exist_ok=True)
    emb_dir = args.scdreamer_dir or args.out
    emb_dir.mkdir(parents=True, exist_ok=True)
    worst = {m: (0.0, "") for m in METRICS}
    for path in args.files:
        adata = ad.read_h5ad(path)
        for key in (args.batch_key, args.label_key):
            adata.obs[key] = adata.obs[key].astype("category")
        obs_names = adata.obs_names.copy()
        adata = preprocess(adata, args.batch_key)
        embs = {"Unintegrated": adata.obsm["X_pca"], "Harmony": harmony(adata, args.batch_key),
                "scdreamer": scdreamer_embedding(path, emb_dir, obs_names)}
        embs.update(extra_embedding(spec, path, adata.n_obs) for spec in args.extra)
        files = {}
        for name, e in embs.items():
            adata.obsm[name] = e
            files[name] = args.out / f"{path.stem}_{name}.npy"
            np.save(files[name], e)
        ours, t_ours = rust_table(path, files, args.batch_key, args.label_key, args.out / f"{path.stem}_evaluate.csv")
        theirs, t_theirs = scib_table(adata, list(embs), args.batch_key, args.label_key, args.threads)
        load = os.getloadavg()[0]
        print(f"\n{path.name}: scdreamer evaluate {t_ours:.1f} s, scib-metrics Benchmarker (prepare + benchmark) "
              f"{t_theirs:.1f} s, {t_theirs / t_ours:.1f}x (1-min load average after both: {load:.1f})")
        short = [m.replace("Batch correction", "Batch").replace("Bio conservation", "Bio") for m in METRICS]
        print("difference (evaluate - scib) / scib value")
        print(f"{'embedding':14}" + "".join(f"{s[:10]:>11}" for s in short))
        for name in embs:
            row = ""
            for m in METRICS:
                diff = ours[name][m] - theirs[name][m]
                if abs(diff) > abs(worst[m][0]):
                    worst[m] = (diff, f"{path.stem}/{name}")
                row += f"{diff:>+11.4f}"
            print(f"{name:14}{row}")
            print(f"{'':14}" + "".join(f"{theirs[name][m]:>11.4f}" for m in METRICS))
        (args.out / f"{path.stem}.json").write_text(json.dumps(
            {"file": str(path), "evaluate_s": t_ours, "scib_s": t_theirs, "load_after": load, "evaluate": ours, "scib": theirs}, indent=1))
    print("\nlargest |difference| per metric over all files and embeddings:")
    for m in METRICS:
        print(f"  {m:20} {worst[m][0]:+.4f}  ({worst[m][1]})")


if __name__ == "__main__":
    sys.exit(main())
