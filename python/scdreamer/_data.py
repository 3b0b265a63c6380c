"""AnnData -> the arrays the Rust module reads: X (or a layer) as a scipy CSR/CSC matrix's
components or a dense numpy array, read in place, and the obs columns the model needs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import scipy.sparse as sp

from . import _scdreamer as _rs


def _keys_text(keys) -> str:
    keys = list(keys)
    return ", ".join(map(str, keys)) if keys else "(none)"


def counts_of(adata, layer):
    """X or ``layers[layer]`` and its name for messages; no copy of the values."""
    if layer is None:
        x, what = adata.X, "adata.X"
    else:
        if layer not in adata.layers:
            raise KeyError(
                f"layer '{layer}' not found; available layers: {_keys_text(adata.layers.keys())}"
            )
        x, what = adata.layers[layer], f"adata.layers['{layer}']"
    if x is None:
        raise ValueError(f"{what} is empty: scdreamer needs raw counts")
    if getattr(adata, "isbacked", False) and layer is None:
        raise ValueError(
            "adata is backed (on disk): load it into memory (adata.to_memory()) or use "
            "`scdreamer integrate --backed` for files larger than memory"
        )
    return x, what


def _compressed(x):
    """indptr and indices of one integer type (scipy keeps them alike; int64 if not)."""
    indptr, indices = x.indptr, x.indices
    if indptr.dtype != indices.dtype or indptr.dtype not in (np.int32, np.int64):
        indptr, indices = indptr.astype(np.int64), indices.astype(np.int64)
    return np.ascontiguousarray(indptr), np.ascontiguousarray(indices)


def column_of(series: pd.Series):
    """One obs column as (kind, values, categories) for the Rust side, with the meaning a
    column has once anndata wrote it to an .h5ad (strings become categoricals)."""
    dtype = series.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        codes = series.cat.codes.to_numpy().astype(np.int32)
        return "categorical", codes, [str(c) for c in dtype.categories]
    if dtype == np.bool_:
        return "bool", series.to_numpy(dtype=np.bool_), None
    if isinstance(dtype, np.dtype) and dtype.kind in "iu":
        return "i64", series.to_numpy(dtype=np.int64), None
    if isinstance(dtype, np.dtype) and dtype.kind == "f":
        return "f64", series.to_numpy(dtype=np.float64), None
    cat = pd.Categorical(series.astype(object).where(series.notna(), None))
    return "categorical", cat.codes.astype(np.int32), [str(c) for c in cat.categories]


def read(adata, layer, keys, allow_non_integer: bool):
    """Checks and converts the counts and obs[keys] (each key must exist)."""
    x, what = counts_of(adata, layer)
    columns = []
    for key in keys:
        kind, values, categories = column_of(adata.obs[key])
        columns.append((key, kind, values, categories))
    obs_names = [str(n) for n in adata.obs_names]
    var_names = [str(n) for n in adata.var_names]
    if sp.issparse(x):
        if x.format not in ("csr", "csc"):
            x = x.tocsr()  # COO and others: one sparse copy
        indptr, indices = _compressed(x)
        data = np.ascontiguousarray(x.data)
        return _rs.read_data(
            x.format, tuple(x.shape), data, indices, indptr, obs_names, var_names, columns,
            what, allow_non_integer,
        )
    arr = np.asarray(x)
    if arr.ndim != 2:
        raise ValueError(f"{what} has {arr.ndim} dimensions, expected a cells x genes matrix")
    return _rs.read_data(
        "dense", tuple(arr.shape), arr, None, None, obs_names, var_names, columns, what,
        allow_non_integer,
    )


def require_obs_key(adata, key, role: str, kwarg: str):
    if key not in adata.obs.columns:
        raise KeyError(
            f"{role} obs key '{key}' not found; available obs keys: "
            f"{_keys_text(adata.obs.columns)} (choose one with {kwarg})"
        )
