#!/usr/bin/env python
"""Rare types: does Sup lose them in its classifier or in its embedding? (issue 22)

For each `SUP_OUTPUT.h5ad:SIM.h5ad` pair (SUP_OUTPUT: `bench/label_noise.py --wrong-frac 0`'s
`sd_<tag>_noisy_s0.h5ad` for SIM, seed 0), fits classifiers on the labelled cells' `X_scdreamer`
(the cells `bench/label_noise.py` shows) and prints the hidden cells' macro-F1 and the F1 of the
types under 2% of the cells, beside Sup's own `scdreamer_label`. BENCHMARKS.md, "Rare types:
three more levers, none landed".

Usage: ../peers-venv/bin/python bench/rare_embedding_classifiers.py sd_default_noisy_s0.h5ad:sim7.h5ad [...]
"""
import sys
from pathlib import Path

import anndata as ad
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.neighbors import KNeighborsClassifier

sys.path.insert(0, str(Path(__file__).resolve().parent))
from label_noise import noisy_labels  # noqa: E402


def main():
    for arg in sys.argv[1:]:
        out_path, sim = arg.split(":")
        out = ad.read_h5ad(out_path)
        truth = ad.read_h5ad(sim).obs["cell_type"].astype(str).to_numpy()
        _, hidden, _ = noisy_labels(truth, 0, 0.3, 0.0)
        z, shown = out.obsm["X_scdreamer"], ~hidden
        types = sorted(set(truth))
        rare = [t for t in types if np.mean(truth == t) < 0.02]
        preds = {"sup": out.obs["scdreamer_label"].astype(str).to_numpy()[hidden]}
        for k in (5, 15):
            preds[f"knn{k}"] = KNeighborsClassifier(k).fit(z[shown], truth[shown]).predict(z[hidden])
        for name, cw in (("logreg", None), ("logreg_balanced", "balanced")):
            m = LogisticRegression(max_iter=2000, class_weight=cw).fit(z[shown], truth[shown])
            preds[name] = m.predict(z[hidden])
        for name, p in preds.items():
            f = f1_score(truth[hidden], p, average=None, labels=types)
            print(f"{Path(sim).stem} {name:>16}: macro-F1 {np.mean(f):.3f}, rare "
                  + " / ".join(f"{f[types.index(t)]:.2f}" for t in rare))


if __name__ == "__main__":
    main()
