#!/usr/bin/env python
"""Train scVI as shared/bench/peers.py does and save its latent, for evaluate_agreement.py.

For every file: counts -> layers['counts'], normalize_total(1e4) + log1p, seurat_v3 HVGs
(2,000, per batch) when there are more than 2,000 genes, then scvi-tools' SCVI (n_latent 10,
ZINB, its default epochs unless --max-epochs, seed 0) on the HVG counts. Writes
<out>/<stem>_scVI.npy (cells x 10, float32, rows in the input's cell order) and
<out>/<stem>_scVI.json (epochs, training seconds, versions). Score them with

    evaluate_agreement.py --extra 'scVI=<out>/{stem}_scVI.npy' ...

Usage (repo root, peers venv):
    ../peers-venv/bin/python bench/evaluate_scvi.py --out /tmp/scvi ../shared/data/*.h5ad
"""
import argparse
import json
import sys
import time
from importlib.metadata import version
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import hvg_counts  # noqa: E402 (scVI trains on its layers["counts"])


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", type=Path)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--max-epochs", action="append", default=[], metavar="[STEM=]N",
                   help="cap scVI's epochs, for all files (N) or one (STEM=N); default: scvi-tools' "
                        "heuristic min(400, 8e6 / cells)")
    p.add_argument("--batch-key", default="batch")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--force", action="store_true", help="retrain even when <stem>_scVI.npy exists")
    args = p.parse_args()
    caps = {}
    for spec in args.max_epochs:
        stem, sep, n = spec.rpartition("=")
        caps[stem if sep else None] = int(n)
    import anndata as ad
    import scvi
    import torch
    torch.set_num_threads(args.threads)
    scvi.settings.num_threads = args.threads
    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.files:
        target = args.out / f"{path.stem}_scVI.npy"
        if target.exists() and not args.force:
            print(f"{path.stem}: {target} exists, kept (--force retrains)")
            continue
        scvi.settings.seed = args.seed
        adata = ad.read_h5ad(path)
        adata.obs[args.batch_key] = adata.obs[args.batch_key].astype("category")
        names = adata.obs_names.copy()
        adata = hvg_counts(adata, args.batch_key)
        assert adata.obs_names.equals(names), "preprocessing must keep the cell order"
        scvi.model.SCVI.setup_anndata(adata, layer="counts", batch_key=args.batch_key)
        model = scvi.model.SCVI(adata, n_latent=10, gene_likelihood="zinb")
        cap = caps.get(path.stem, caps.get(None))
        t0 = time.perf_counter()
        model.train(max_epochs=cap, enable_progress_bar=False)
        seconds = time.perf_counter() - t0
        latent = model.get_latent_representation().astype(np.float32)
        if not np.isfinite(latent).all():
            raise SystemExit(f"{path}: scVI latent has NaN/inf")
        tmp = target.with_suffix(".tmp.npy")
        np.save(tmp, latent)
        tmp.rename(target)
        info = {"input": str(path), "cells": adata.n_obs, "genes": adata.n_vars,
                "epochs": len(model.history["elbo_train"]), "max_epochs_cap": cap,
                "train_s": round(seconds, 1), "threads": args.threads, "seed": args.seed,
                "versions": {p: version(p) for p in ("scvi-tools", "torch", "scanpy", "anndata")}}
        (args.out / f"{path.stem}_scVI.json").write_text(json.dumps(info, indent=1) + "\n")
        print(f"{path.stem}: {info['epochs']} epochs in {seconds:.0f} s -> {target}", flush=True)


if __name__ == "__main__":
    sys.exit(main())
