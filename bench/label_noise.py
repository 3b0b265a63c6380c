#!/usr/bin/env python
"""Wrong labels (issue 22): scDREAMER-Sup (and, with --methods scANVI, scANVI) trained on noisy labels.

Protocol per file and seed S: 30% of the cells' labels hidden (`Unknown`), then 20% of the shown
labels reassigned to a uniformly random other type (numpy default_rng(S), the same cells for
every method). Each method trains on those labels; reported:
- hidden_f1: macro-F1 of the prediction on the hidden cells against the truth;
- recovery: among the labelled cells whose given label is wrong, the fraction whose prediction
  is the true type;
- flag_precision / flag_recall (scdreamer): of `obs['scdreamer_label_disagrees']` against the
  planted wrong labels;
- clean_hidden_f1: the same method on the same hidden cells with no wrong label (`--clean`).
`--sd-args "..."` passes extra flags to `scdreamer integrate` (candidates); `--tag` names them.

Usage (repo root; scANVI needs the peers venv):
    cargo build --release
    /work/peers-venv/bin/python bench/label_noise.py --out /tmp/noise --datasets cellbench_5cl_10xsub \
        --seeds 0,1,2 --clean [--methods scdreamer,scANVI] [--input sim.h5ad]
"""
import json
import shlex
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import dataset_parser, input_files  # noqa: E402
UNKNOWN = "Unknown"


def noisy_labels(truth, seed, hidden_frac, wrong_frac):
    """(given labels with UNKNOWN for hidden cells, hidden mask, wrong mask)."""
    rng = np.random.default_rng(seed)
    n = len(truth)
    types = np.unique(truth)
    hidden = np.zeros(n, bool)
    hidden[rng.choice(n, round(hidden_frac * n), replace=False)] = True
    shown = np.flatnonzero(~hidden)
    wrong = np.zeros(n, bool)
    wrong[rng.choice(shown, round(wrong_frac * len(shown)), replace=False)] = True
    given = truth.astype(object).copy()
    for i in np.flatnonzero(wrong):
        others = types[types != truth[i]]
        given[i] = others[rng.integers(len(others))]
    given[hidden] = UNKNOWN
    return given.astype(str), hidden, wrong


def scores(truth, pred, hidden, wrong, rare_below=0.02):
    """Also the F1 of each hidden-cell type under `rare_below` of all cells (`rare_f1`; the
    simulation with --type-proportions ...,0.01,0.01 draws them at 0.9-1.1%)."""
    from sklearn.metrics import f1_score
    types = sorted(set(truth[hidden]))
    per_type = f1_score(truth[hidden], pred[hidden], average=None, labels=types)
    rare = {t: float(f) for t, f in zip(types, per_type) if np.mean(truth == t) < rare_below}
    out = {"hidden_f1": float(np.mean(per_type)),
           "recovery": float(np.mean(pred[wrong] == truth[wrong])) if wrong.any() else float("nan")}
    if rare:
        out["rare_f1"] = rare
    return out


def run_scdreamer(a, adata, given, d, tag, seed):
    import anndata as ad
    inp, out = d / f"input_{tag}.h5ad", d / f"sd_{tag}.h5ad"
    x = adata.copy()
    x.obs["given"] = given
    x.write_h5ad(inp)
    t0 = time.perf_counter()
    r = subprocess.run([a.binary, "integrate", "--input", str(inp), "--output", str(out), "--labels-key", "given",
                        "--unlabeled-category", UNKNOWN, "--seed", str(seed), "--quiet", "--normalized", "no",
                        *shlex.split(a.sd_args)], capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit(r.stderr)
    secs = time.perf_counter() - t0
    obs = ad.read_h5ad(out).obs
    res = {"seconds": secs}
    if "scdreamer_label_disagrees" in obs:
        res["disagrees"] = obs["scdreamer_label_disagrees"].to_numpy().astype(bool)
    return obs["scdreamer_label"].astype(str).to_numpy(), res


def run_scanvi(a, adata, given, seed):
    import scvi
    import torch
    torch.set_num_threads(a.threads)
    scvi.settings.seed = seed
    x = adata.copy()
    x.obs["given"] = given
    t0 = time.perf_counter()
    scvi.model.SCVI.setup_anndata(x, batch_key="batch", labels_key="given")
    vae = scvi.model.SCVI(x)
    vae.train(max_epochs=a.scvi_max_epochs, enable_progress_bar=False)
    lvae = scvi.model.SCANVI.from_scvi_model(vae, unlabeled_category=UNKNOWN, labels_key="given")
    lvae.train(max_epochs=20, n_samples_per_label=100, enable_progress_bar=False)
    pred = np.asarray(lvae.predict()).astype(str)
    return pred, {"seconds": time.perf_counter() - t0, "scvi_epochs": len(vae.history["elbo_train"])}


def main():
    p = dataset_parser(__doc__, "cellbench_3cl_10xsub,cellbench_5cl_10xsub,cellbench_5cl",
                       "one .h5ad (e.g. from scdreamer simulate) instead", "scdreamer")
    p.add_argument("--seeds", default="0")
    p.add_argument("--hidden-frac", type=float, default=0.3)
    p.add_argument("--wrong-frac", type=float, default=0.2)
    p.add_argument("--clean", action="store_true", help="also train on the clean shown labels")
    p.add_argument("--sd-args", default="")
    p.add_argument("--tag", default="default")
    p.add_argument("--threads", type=int, default=2, help="torch threads")
    p.add_argument("--scvi-max-epochs", type=int, default=None)
    a = p.parse_args()
    import anndata as ad

    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    files = input_files(a)
    rows = []
    for f in files:
        adata = ad.read_h5ad(f)
        truth = adata.obs["cell_type"].astype(str).to_numpy()
        d = out / f.stem
        d.mkdir(exist_ok=True)
        for seed in (int(s) for s in a.seeds.split(",")):
            given, hidden, wrong = noisy_labels(truth, seed, a.hidden_frac, a.wrong_frac)
            clean = np.where(hidden, UNKNOWN, truth)
            for m in a.methods.split(","):
                row = {"file": f.stem, "seed": seed, "method": m if m != "scdreamer" else f"scdreamer[{a.tag}]"}
                for kind, labels in [("noisy", given)] + ([("clean", clean)] if a.clean else []):
                    if m == "scdreamer":
                        pred, info = run_scdreamer(a, adata, labels, d, f"{a.tag}_{kind}_s{seed}", seed)
                    else:
                        pred, info = run_scanvi(a, adata, labels, seed)
                    s = scores(truth, pred, hidden, wrong if kind == "noisy" else np.zeros_like(wrong))
                    flags = info.pop("disagrees", None)
                    if kind == "noisy":
                        row.update(s)
                        row.update({f"{k}": v for k, v in info.items()})
                        if flags is not None:
                            row["flag_precision"] = float(np.mean(wrong[flags])) if flags.any() else float("nan")
                            row["flag_recall"] = float(np.mean(flags[wrong]))
                            row["flagged"] = int(flags.sum())
                    else:
                        row["clean_hidden_f1"] = s["hidden_f1"]
                        if "rare_f1" in s:
                            row["clean_rare_f1"] = s["rare_f1"]
                        row["clean_seconds"] = info["seconds"]
                print(json.dumps(row), flush=True)
                rows.append(row)
                with open(out / "results.jsonl", "a") as fh:
                    fh.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
