"""Check that h5ad files written by scdreamer read cleanly in anndata and scanpy.

Usage: check_h5ad.py FILE.h5ad [FILE.h5ad ...]

Each file must load with `anndata.read_h5ad` and `scanpy.read_h5ad` with every warning
turned into an error, and hold what tests/h5ad_python.rs writes: X as CSR float32 raw
counts matching obs/var, categorical obs columns, obsm, layers and a nested uns dict.
Prints one JSON line per file with what it saw (the Rust test compares it).
"""

import json
import sys
import warnings


def check(path):
    import anndata as ad
    import numpy as np
    import pandas as pd
    import scanpy as sc
    import scipy.sparse as sp

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        a = ad.read_h5ad(path)
        b = sc.read_h5ad(path)
    assert a.shape == b.shape
    assert sp.issparse(a.X) and a.X.format == "csr", type(a.X)
    assert a.X.dtype == np.float32, a.X.dtype
    a.X.check_format(full_check=True)
    assert a.obs_names.is_unique and a.obs.index.dtype == object
    cats = {}
    for col in a.obs.columns:
        s = a.obs[col]
        if isinstance(s.dtype, pd.CategoricalDtype):
            cats[col] = [str(c) for c in s.cat.categories]
    # scanpy operations that touch X, obs and obsm must work on the result.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scanpy's own FutureWarnings are not ours
        sc.pp.calculate_qc_metrics(b, inplace=True)
        if "X_scdreamer" in b.obsm:
            sc.pp.neighbors(b, use_rep="X_scdreamer", n_neighbors=5)
    def plain(x):
        if isinstance(x, dict):
            return {k: plain(v) for k, v in x.items()}
        if isinstance(x, np.ndarray):
            return x.tolist()
        if isinstance(x, np.generic):
            return x.item()
        return x
    return {
        "path": path,
        "shape": list(a.shape),
        "nnz": int(a.X.nnz),
        "x_sum": float(a.X.sum(dtype=np.float64)),
        "obs_names_head": list(a.obs_names[:3]),
        "var_names_head": list(a.var_names[:3]),
        "obs_columns": list(a.obs.columns),
        "obs_dtypes": {c: str(a.obs[c].dtype) for c in a.obs.columns},
        "categories": cats,
        "obsm": {k: list(v.shape) for k, v in a.obsm.items()},
        "obsm_first_row": {k: [float(x) for x in np.asarray(v)[0]] for k, v in a.obsm.items()},
        "layers": {k: list(v.shape) for k, v in a.layers.items()},
        "uns": plain(dict(a.uns)),
    }


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    for path in sys.argv[1:]:
        print(json.dumps(check(path)))


if __name__ == "__main__":
    main()
