#!/usr/bin/env python
"""Novelty scores beside the label probability (issue 22), scored offline on finished splits.

For each folder written by `bench/mapping.py --methods scdreamer --novel` (it holds
`sd_ref.h5ad`, the reference's embedding, and `sd_query_e0.h5ad`, the mapped query), prints the
AUROC of novel vs known query cells for: 1 - the label probability (`scdreamer_label_confidence`,
what `map` writes), the mean distance to the 15 nearest reference cells (`knn15`), the smallest
Mahalanobis distance to a reference type (per-type mean and full covariance + 1e-3 I, `maha`),
the sum of the ranks of the first and the last (`rankavg`), and 1 - probability x the
chi-square(latent dim) tail of `maha` (`conf_x_chi2`). BENCHMARKS.md, "Novelty scores beside
the label probability".

Usage: ../peers-venv/bin/python bench/novelty_scores.py /tmp/map/<dataset>_novel/<dataset>_novel [...]
"""
import os
import sys

import anndata as ad
import numpy as np
from scipy.stats import chi2, rankdata
from sklearn.metrics import roc_auc_score
from sklearn.neighbors import NearestNeighbors


def scores(folder):
    q = ad.read_h5ad(os.path.join(folder, "sd_query_e0.h5ad"))
    r = ad.read_h5ad(os.path.join(folder, "sd_ref.h5ad"))
    t_ref = r.obs["cell_type"].astype(str).to_numpy()
    types = sorted(set(t_ref))
    novel = ~q.obs["cell_type"].astype(str).isin(types).to_numpy()
    conf = q.obs["scdreamer_label_confidence"].to_numpy()
    z_ref, z_q = r.obsm["X_scdreamer"], q.obsm["X_scdreamer"]
    knn = NearestNeighbors(n_neighbors=15).fit(z_ref).kneighbors(z_q)[0].mean(1)
    maha = np.full(len(z_q), np.inf)
    for t in types:
        zt = z_ref[t_ref == t]
        mu = zt.mean(0)
        prec = np.linalg.inv(np.cov(zt.T) + 1e-3 * np.eye(zt.shape[1]))
        maha = np.minimum(maha, np.einsum("ij,jk,ik->i", z_q - mu, prec, z_q - mu))
    out = {
        "probability": 1 - conf,
        "knn15": knn,
        "maha": maha,
        "rankavg": rankdata(1 - conf) + rankdata(maha),
        "conf_x_chi2": 1 - conf * chi2.sf(maha, z_q.shape[1]),
    }
    return novel, {k: roc_auc_score(novel, v) for k, v in out.items()}


def main():
    for folder in sys.argv[1:]:
        novel, auroc = scores(folder)
        name = os.path.basename(os.path.normpath(folder))
        print(f"{name}: novel {novel.sum()} / known {(~novel).sum()}  "
              + "  ".join(f"{k} {v:.4f}" for k, v in auroc.items()))


if __name__ == "__main__":
    main()
