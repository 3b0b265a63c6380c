#!/usr/bin/env python
"""How much of a scib "Bio conservation" difference is KMeans luck?

scib-metrics scores KMeans NMI/ARI with ONE k-means++ initialisation (n_init=1, fixed seed), so
a single unlucky start can cost an embedding 0.15-0.3 NMI. For every embedding that
bench/integration.py (through ../shared/bench/peers.py) saved as emb_<name>.npy in a dataset
folder, this reruns sklearn's KMeans (k = number of cell types, n_init=1) from 20 seeds and
prints mean / min / max NMI and ARI and the fraction of starts with NMI >= 0.99.

Usage: ../peers-venv/bin/python bench/kmeans_spread.py /tmp/bench-int/cellbench_5cl_10xsub [...]
"""
import sys
from pathlib import Path

import anndata as ad
import numpy as np
from sklearn.cluster import KMeans
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def main():
    for folder in map(Path, sys.argv[1:]):
        labels = ad.read_h5ad(SHARED / "data" / f"{folder.name}.h5ad", backed="r").obs["cell_type"]
        labels = labels.astype("category").cat.codes.to_numpy()
        k = int(labels.max()) + 1
        print(f"\n### {folder.name} (k = {k}, 20 k-means++ starts)\n")
        print("| embedding | NMI mean | NMI min-max | ARI mean | starts with NMI >= 0.99 |")
        print("|---|--:|--:|--:|--:|")
        for emb in sorted(folder.glob("emb_*.npy")):
            z = np.load(emb)
            if z.shape[0] != labels.shape[0]:
                continue
            nmi, ari = [], []
            for seed in range(20):
                pred = KMeans(k, n_init=1, random_state=seed).fit_predict(z)
                nmi.append(normalized_mutual_info_score(labels, pred))
                ari.append(adjusted_rand_score(labels, pred))
            nmi, ari = np.array(nmi), np.array(ari)
            print(f"| {emb.stem[4:]} | {nmi.mean():.3f} | {nmi.min():.3f}-{nmi.max():.3f} | {ari.mean():.3f} | "
                  f"{(nmi >= 0.99).mean():.2f} |")


if __name__ == "__main__":
    main()
