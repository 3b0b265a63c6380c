#!/usr/bin/env python
"""How much of a batch-mixing score is batch signal, and how much is the embedding's shape?

For each embedding of one file this prints, with the real batch labels and with the batch labels
shuffled among the cells of each cell type (a perfectly mixed labelling of the same points, same
batch x type counts):
- 15-NN batch entropy (bench/head_to_head.py's knn_scores) and its "ceiling" (mean over 5
  within-type shuffles): the most a perfectly mixed embedding of this shape can score;
- BRAS (scib-metrics' batch silhouette within cell types, cosine) and the same with shuffled
  labels: a BRAS below the shuffled one is batch signal, the shuffled value itself is geometry;
- PCR (share of the embedding's variance explained by batch, scib's definition) with real,
  within-type-shuffled and fully shuffled labels, and the share explained by cell type;
- the within-type batch R2 (share of the within-type variance explained by batch) and its
  fully-shuffled chance level.

Usage: ../peers-venv/bin/python bench/mixing_nulls.py --input sim.h5ad \\
           --embedding scVI=emb_scVI.npy --embedding s0=s0.h5ad[:X_scdreamer] ...
"""
import argparse
import sys
import warnings
from pathlib import Path

import anndata as ad
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from head_to_head import knn_scores  # noqa: E402

warnings.filterwarnings("ignore")


def load(spec):
    name, path = spec.split("=", 1)
    if path.endswith(".npy"):
        return name, np.load(path).astype(np.float32)
    path, _, key = path.partition(":")
    return name, np.asarray(ad.read_h5ad(path, backed="r").obsm[key or "X_scdreamer"], dtype=np.float32)


def shuffle_within(labels, batches, seed):
    rng = np.random.default_rng(seed)
    out = batches.copy()
    for t in np.unique(labels):
        i = np.where(labels == t)[0]
        out[i] = batches[rng.permutation(i)]
    return out


def pcr(emb, batches):
    e = emb - emb.mean(0)
    u, s, _ = np.linalg.svd(e, full_matrices=False)
    pcs, var = u * s, s**2 / (s**2).sum()
    onehot = np.eye(batches.max() + 1)[batches]
    onehot -= onehot.mean(0)
    r2 = []
    for k in range(pcs.shape[1]):
        y = pcs[:, k]
        coef = np.linalg.lstsq(onehot, y, rcond=None)[0]
        r2.append(1 - ((y - onehot @ coef) ** 2).sum() / (y**2).sum())
    return float((np.array(r2) * var).sum())


def share_explained(emb, groups, within=None):
    """Share of the variance (within `within` groups, if given) explained by `groups`."""
    num = den = 0.0
    blocks = [np.arange(len(emb))] if within is None else [np.where(within == t)[0] for t in np.unique(within)]
    for idx in blocks:
        e = emb[idx] - emb[idx].mean(0)
        g = groups[idx]
        den += (e**2).sum()
        for k in np.unique(g):
            m = g == k
            num += m.sum() * (e[m].mean(0) ** 2).sum()
    return num / den


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--input", required=True, help="the h5ad the embeddings were made from")
    p.add_argument("--embedding", action="append", required=True, help="name=file.npy or name=file.h5ad[:obsm key]")
    p.add_argument("--batch-key", default="batch")
    p.add_argument("--labels-key", default="cell_type")
    a = p.parse_args()
    from scib_metrics import bras

    obs = ad.read_h5ad(a.input, backed="r").obs
    batches = obs[a.batch_key].astype("category").cat.codes.to_numpy()
    labels = obs[a.labels_key].astype("category").cat.codes.to_numpy()
    mixed = [shuffle_within(labels, batches, s) for s in range(5)]
    anyhow = np.random.default_rng(0).permutation(batches)
    print("| embedding | 15-NN entropy | ceiling (shuffled in types) | BRAS | BRAS shuffled in types "
          "| PCR | PCR shuffled in types | PCR shuffled | type share of variance | batch R2 in types | chance |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
    for spec in a.embedding:
        name, emb = load(spec)
        _, ent = knn_scores(emb, labels, batches)
        ceiling = np.mean([knn_scores(emb, labels, m)[1] for m in mixed])
        row = [
            f"{ent:.4f}",
            f"{ceiling:.4f}",
            f"{float(bras(emb, labels, batches)):.4f}",
            f"{float(bras(emb, labels, mixed[0])):.4f}",
            f"{pcr(emb, batches):.4f}",
            f"{pcr(emb, mixed[0]):.4f}",
            f"{pcr(emb, anyhow):.4f}",
            f"{share_explained(emb, labels):.3f}",
            f"{share_explained(emb, batches, labels):.4f}",
            f"{share_explained(emb, anyhow, labels):.4f}",
        ]
        print(f"| {name} | " + " | ".join(row) + " |", flush=True)


if __name__ == "__main__":
    main()
