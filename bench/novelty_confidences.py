#!/usr/bin/env python
"""Other confidences from Sup's own classifier, scored offline on finished `--novel` splits.

For each folder of `bench/mapping.py --methods scdreamer --novel` (it holds `sd_ref.h5ad`,
`sd_query_e0.h5ad` and the extended model `sd_model_e0`), recomputes the label logits of the
query cells from the model's `sup.sup_label_w` / `sup.sup_label_b` and `X_scdreamer` (checked
against `scdreamer_label_confidence`), then prints the AUROC of novel vs known query cells for
1 - max probability (what `map` writes), the entropy, minus the top-two margin, the energy
(-logsumexp of the logits) and 1 - max probability at temperature 2. BENCHMARKS.md, "Novelty:
other confidences from the same classifier".

Usage: ../peers-venv/bin/python bench/novelty_confidences.py /tmp/map/<dataset>_novel/<dataset>_novel [...]
"""
import json
import os
import struct
import sys

import anndata as ad
import numpy as np
from scipy.special import logsumexp, softmax
from sklearn.metrics import roc_auc_score


def safetensors(path):
    """The f32 tensors of a .safetensors file (no safetensors package in the peers venv)."""
    b = open(path, "rb").read()
    n = struct.unpack("<Q", b[:8])[0]
    head = json.loads(b[8:8 + n])
    out = {}
    for k, v in head.items():
        if k != "__metadata__":
            s, e = v["data_offsets"]
            out[k] = np.frombuffer(b[8 + n + s:8 + n + e], np.float32).reshape(v["shape"])
    return out


def main():
    for folder in sys.argv[1:]:
        w = safetensors(os.path.join(folder, "sd_model_e0", "weights.safetensors"))
        q = ad.read_h5ad(os.path.join(folder, "sd_query_e0.h5ad"))
        r = ad.read_h5ad(os.path.join(folder, "sd_ref.h5ad"))
        novel = ~q.obs["cell_type"].astype(str).isin(set(r.obs["cell_type"].astype(str))).to_numpy()
        logits = q.obsm["X_scdreamer"] @ w["sup.sup_label_w"] + w["sup.sup_label_b"]
        p = softmax(logits, 1)
        gap = np.abs(p.max(1) - q.obs["scdreamer_label_confidence"].to_numpy()).max()
        top2 = np.sort(p, 1)[:, -2:]
        scores = {
            "max_prob": 1 - p.max(1),
            "entropy": -(p * np.log(p + 1e-30)).sum(1),
            "margin": top2[:, 0] - top2[:, 1],
            "energy": -logsumexp(logits, 1),
            "T2": 1 - softmax(logits / 2, 1).max(1),
        }
        name = os.path.basename(os.path.normpath(folder))
        print(f"{name} (|p - confidence| <= {gap:.1e}): "
              + "  ".join(f"{k} {roc_auc_score(novel, v):.4f}" for k, v in scores.items()))


if __name__ == "__main__":
    main()
