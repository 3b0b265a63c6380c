#!/usr/bin/env python
"""The --screen-labels rule with and without the enrichment exception, offline (issue 22).

For each `EMBEDDING.h5ad:SIM.h5ad:WRONG_FRAC` triple (EMBEDDING: `scdreamer integrate` of SIM
without labels, seed 0, the embedding --screen-labels votes in), draws the labels as
`bench/label_noise.py` does (seed 0, 30% hidden, WRONG_FRAC of the shown ones wrong), takes each
labelled cell's 15 nearest labelled cells and prints, for enrichment factors E (0: the majority
vote alone), how many labels the rule hides, their precision / recall against the planted
wrong labels, and how many correct labels of types under 2% of the cells it hides.
BENCHMARKS.md, "`--screen-labels` spares enriched labels".

Usage: ../peers-venv/bin/python bench/screen_rule.py unsup_sim7.h5ad:sim7.h5ad:0 [...]
"""
import sys
from pathlib import Path

import anndata as ad
import numpy as np
from sklearn.neighbors import NearestNeighbors

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_noise import UNKNOWN, noisy_labels  # noqa: E402


def main():
    for arg in sys.argv[1:]:
        emb, sim, wrong_frac = arg.split(":")
        z = ad.read_h5ad(emb).obsm["X_scdreamer"]
        truth = ad.read_h5ad(sim).obs["cell_type"].astype(str).to_numpy()
        given, _, wrong = noisy_labels(truth, 0, 0.3, float(wrong_frac))
        lab = np.flatnonzero(given != UNKNOWN)
        cats = sorted(set(given[lab]))
        code = np.array([cats.index(x) for x in given[lab]])
        share = np.bincount(code, minlength=len(cats)) / len(code)
        nb = NearestNeighbors(n_neighbors=16).fit(z[lab]).kneighbors(z[lab])[1][:, 1:]
        votes = np.stack([np.bincount(code[r], minlength=len(cats)) for r in nb]) / 15
        best = votes.argmax(1)
        own = votes[np.arange(len(code)), code]
        outvoted = (votes[np.arange(len(code)), best] > 0.5) & (best != code)
        rare = np.isin(truth[lab], [t for t in set(truth) if np.mean(truth == t) < 0.02])
        w = wrong[lab]
        cols = [Path(emb).stem]
        for e in (0, 2, 3, 5, 8):
            h = outvoted & ~(own >= e * share[code]) if e else outvoted
            prec = w[h].mean() if h.any() else float("nan")
            rec = h[w].mean() if w.any() else float("nan")
            cols.append(f"E{e}: hidden {h.sum()} prec {prec:.3f} rec {rec:.3f} "
                        f"rare correct hidden {(h & rare & ~w).sum()}/{(rare & ~w).sum()}")
        print(" | ".join(cols))


if __name__ == "__main__":
    main()
