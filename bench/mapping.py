#!/usr/bin/env python
"""Query mapping: `scdreamer map` against scANVI + `load_query_data` (scArches surgery).

For each dataset one batch is held out as the query and the other batches, fully labelled,
form the reference. Each method trains on the reference, then maps the query:
- scdreamer: `integrate --labels-key` (scDREAMER-Sup defaults) + `map` (one run per
  `--map-epochs` value; 0 = the new batch's rows start from the reference mean and stay);
- scANVI: the scvi-tools scArches recipe: SCVI (scArches settings: encode_covariates,
  layer norm, no batch norm, dropout 0.2, n_latent 10) -> SCANVI.from_scvi_model (20 epochs) ->
  SCANVI.load_query_data(query) -> train(max_epochs=100, weight_decay=0) -> predict(soft=True)
  (`--scvi-max-epochs` caps the scVI reference's epochs when time is short; it is recorded).
Scores on the query: macro-F1 of the predicted type (types of the reference only), kNN mixing of
query and reference cells of the same type (mean over query cells of the fraction of their 15
same-type nearest neighbours that are reference cells, divided by the reference's share of that
type: 1 = as mixed as chance), and the map wall time (query only; scANVI: load_query_data +
train + predict). With `--novel`, one cell type (the query's least frequent type with at least
20 query cells, or `--novel-type`) is removed from the reference: AUROC of (1 - confidence) for
novel vs known query cells, and macro-F1 on the known ones.

Usage (repo root; scANVI needs the peers venv, see ../shared/bench/README.md):
    cargo build --release
    ../peers-venv/bin/python bench/mapping.py --out /tmp/bench-map [--datasets kang_pbmc] [--novel]
"""
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset_parser, input_files  # noqa: E402
K = 15
THRESHOLDS = (0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)


def split(adata, query_batch, novel_type):
    batch = adata.obs["batch"].astype(str).to_numpy()
    ct = adata.obs["cell_type"].astype(str).to_numpy()
    q = batch == query_batch
    r = ~q
    if novel_type is not None:
        r &= ct != novel_type
    return adata[r].copy(), adata[q].copy()


def choose_query_batch(adata):
    """The batch whose removal leaves the most reference batches: the last category by name."""
    return sorted(adata.obs["batch"].astype(str).unique())[-1]


def choose_novel_type(query, min_cells=20):
    counts = query.obs["cell_type"].astype(str).value_counts()
    counts = counts[counts >= min_cells]
    return counts.sort_values(kind="stable").index[0]


def mixing(z_ref, z_q, t_ref, t_q):
    """Mean over query cells of (share of reference cells among the 15 same-type NN) / (the
    reference's share of that type's other cells)."""
    from sklearn.neighbors import NearestNeighbors
    scores = []
    for t in np.unique(t_q):
        zr, zq = z_ref[t_ref == t], z_q[t_q == t]
        if len(zr) == 0 or len(zq) == 0:
            continue
        z = np.vstack([zr, zq])
        is_ref = np.r_[np.ones(len(zr), bool), np.zeros(len(zq), bool)]
        k = min(K, len(z) - 1)
        nn = NearestNeighbors(n_neighbors=k + 1).fit(z)
        idx = nn.kneighbors(zq, return_distance=False)[:, 1:]
        expected = len(zr) / (len(z) - 1)
        scores.extend(is_ref[idx].mean(1) / expected)
    return float(np.mean(scores)) if scores else float("nan")


def score(truth, pred, conf, known_types, novel_type, z_ref, z_q, t_ref):
    from sklearn.metrics import f1_score, roc_auc_score
    known = np.isin(truth, list(known_types))
    out = {
        "macro_f1": float(f1_score(truth[known], pred[known], average="macro",
                                   labels=sorted(set(truth[known])))),
        "mixing": mixing(z_ref, z_q[known], t_ref, truth[known]),
    }
    if novel_type is not None:
        is_novel = truth == novel_type
        out["novel_auroc"] = float(roc_auc_score(is_novel, 1.0 - conf))
        out["novel_cells"] = int(is_novel.sum())
        # Share of novel / known cells below each confidence threshold (labelled Unknown).
        out["unknown_rates"] = {f"{t:.2f}": [float(np.mean(conf[is_novel] < t)), float(np.mean(conf[~is_novel] < t))]
                                for t in THRESHOLDS}
    return out


def run(cmd):
    t0 = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{r.stderr}")
    return time.perf_counter() - t0, r.stderr


def run_scdreamer(a, d, ref_path, q_path, truth, novel_type, t_ref, known_types, epochs_list):
    import anndata as ad
    model = d / "sd_model"
    t_train, _ = run([a.binary, "integrate", "--input", ref_path, "--batch-key", "batch",
                      "--labels-key", "cell_type", "--seed", str(a.seed), "--quiet",
                      "--output", d / "sd_ref.h5ad", "--save-model", model])
    res = {}
    for ep in epochs_list:
        out, ext = d / f"sd_query_e{ep}.h5ad", d / f"sd_model_e{ep}"
        secs, _ = run([a.binary, "map", "--model", model, "--input", q_path, "--output", out,
                       "--epochs", str(ep), "--seed", str(a.seed), "--quiet", "--save-model", ext])
        # The reference embedded by the extended model (its batches are unchanged by surgery).
        run([a.binary, "embed", "--model", ext, "--input", ref_path, "--output", d / "sd_ref_emb.h5ad",
             "--quiet"])
        q = ad.read_h5ad(out)
        r = ad.read_h5ad(d / "sd_ref_emb.h5ad")
        pred = q.obs["scdreamer_label_best"].astype(str).to_numpy()
        conf = q.obs["scdreamer_label_confidence"].to_numpy()
        s = score(truth, pred, conf, known_types, novel_type, r.obsm["X_scdreamer"],
                  q.obsm["X_scdreamer"], t_ref)
        s.update(map_s=secs, reference_train_s=t_train)
        res[f"scdreamer_e{ep}"] = s
    return res


def run_scanvi(a, ref, query, truth, novel_type, t_ref, known_types):
    import scvi
    import torch
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    scvi.settings.seed = a.seed
    arches = dict(use_layer_norm="both", use_batch_norm="none", encode_covariates=True,
                  dropout_rate=0.2, n_layers=2, n_latent=10, gene_likelihood="zinb")
    ref = ref.copy()
    ref.obs["labels"] = ref.obs["cell_type"].astype(str)
    t0 = time.perf_counter()
    scvi.model.SCVI.setup_anndata(ref, batch_key="batch", labels_key="labels")
    vae = scvi.model.SCVI(ref, **arches)
    vae.train(max_epochs=a.scvi_max_epochs, enable_progress_bar=False)
    lvae = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category="Unknown", labels_key="labels")
    lvae.train(max_epochs=20, n_samples_per_label=100, enable_progress_bar=False)
    t_train = time.perf_counter() - t0
    q = query.copy()
    q.obs["labels"] = "Unknown"
    t0 = time.perf_counter()
    qm = scvi.model.SCANVI.load_query_data(q, lvae)
    qm.train(max_epochs=100, plan_kwargs=dict(weight_decay=0.0), check_val_every_n_epoch=10,
             enable_progress_bar=False)
    soft = qm.predict(soft=True)
    z_q = qm.get_latent_representation()
    secs = time.perf_counter() - t0
    pred = soft.columns.to_numpy()[soft.to_numpy().argmax(1)].astype(str)
    conf = soft.to_numpy().max(1)
    z_ref = qm.get_latent_representation(ref)
    s = score(truth, pred, conf, known_types, novel_type, z_ref, z_q, t_ref)
    s.update(map_s=secs, reference_train_s=t_train, scvi_reference_epochs=len(vae.history["elbo_train"]))
    return {"scANVI": s}


def main():
    p = dataset_parser(__doc__, "cellbench_3cl_10xsub,cellbench_5cl_10xsub,cellbench_5cl,kang_pbmc",
                       "one .h5ad instead of the shared datasets", "scdreamer,scANVI")
    p.add_argument("--map-epochs", default="0")
    p.add_argument("--novel", action="store_true")
    p.add_argument("--novel-type", default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=2, help="torch threads (scdreamer uses all cores)")
    p.add_argument("--scvi-max-epochs", type=int, default=None,
                   help="cap on the scVI reference's epochs (default: scvi-tools' own, min(400, 8e6/cells))")
    a = p.parse_args()
    import anndata as ad

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = input_files(a)
    methods = a.methods.split(",")
    results = {}
    for f in files:
        adata = ad.read_h5ad(f)
        qb = choose_query_batch(adata)
        novel = None
        if a.novel:
            novel = a.novel_type or choose_novel_type(adata[adata.obs["batch"].astype(str) == qb])
        ref, query = split(adata, qb, novel)
        d = out / (f.stem + ("_novel" if a.novel else ""))
        d.mkdir(exist_ok=True)
        ref_path, q_path = d / "reference.h5ad", d / "query.h5ad"
        ref.write_h5ad(ref_path)
        query.write_h5ad(q_path)
        truth = query.obs["cell_type"].astype(str).to_numpy()
        t_ref = ref.obs["cell_type"].astype(str).to_numpy()
        known = set(t_ref)
        res = {"query_batch": qb, "query_cells": int(query.n_obs), "reference_cells": int(ref.n_obs),
               "novel_type": novel}
        if "scdreamer" in methods:
            eps = [int(e) for e in a.map_epochs.split(",")]
            res.update(run_scdreamer(a, d, ref_path, q_path, truth, novel, t_ref, known, eps))
        if "scANVI" in methods:
            res.update(run_scanvi(a, ref, query, truth, novel, t_ref, known))
        results[d.name] = res
        print(json.dumps({d.name: res}, indent=1), flush=True)
        (out / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
