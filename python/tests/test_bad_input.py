"""Every bad input of the CLI's list raises a Python exception naming the problem, and the
caller's AnnData is left exactly as it was."""

import copy

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scdreamer
from conftest import QUICK


def small(x=None, batches=("a", "b")):
    rng = np.random.default_rng(0)
    x = rng.poisson(2.0, size=(40, 30)).astype(np.float32) if x is None else x
    obs = pd.DataFrame(
        {"batch": pd.Categorical([batches[i % len(batches)] for i in range(x.shape[0])])},
        index=[f"cell{i}" for i in range(x.shape[0])],
    )
    var = pd.DataFrame(index=[f"gene{j}" for j in range(x.shape[1])])
    return ad.AnnData(sp.csr_matrix(x) if not sp.issparse(x) else x, obs=obs, var=var)


def snapshot(a):
    x = a.X.toarray() if sp.issparse(a.X) else np.array(a.X)
    return (x, a.obs.copy(), a.var.copy(), dict(a.obsm), dict(a.layers), copy.deepcopy(dict(a.uns)))


def assert_unchanged(a, snap):
    x, obs, var, obsm, layers, uns = snap
    now = a.X.toarray() if sp.issparse(a.X) else np.array(a.X)
    assert np.array_equal(now, x, equal_nan=True)
    pd.testing.assert_frame_equal(a.obs, obs)
    pd.testing.assert_frame_equal(a.var, var)
    assert set(a.obsm) == set(obsm) and set(a.layers) == set(layers) and set(a.uns) == set(uns)


def with_value(v, fmt="csr", dtype=np.float32):
    a = small()
    x = a.X.toarray().astype(dtype)
    x[7, 5] = v
    a.X = {"csr": sp.csr_matrix, "csc": sp.csc_matrix, "dense": np.asarray}[fmt](x)
    return a


CASES = [
    # (make adata, kwargs, exception, words the message must hold)
    (lambda: with_value(-1.0), {}, ValueError, ["negative value -1", "cell7", "gene5"]),
    (lambda: with_value(np.nan, "csc"), {}, ValueError, ["non-finite value NaN", "cell7", "gene5"]),
    (lambda: with_value(np.inf, "dense"), {}, ValueError, ["non-finite value inf", "cell7"]),
    (lambda: with_value(2.5, "dense", np.float64), {}, ValueError,
     ["non-integer value 2.5", "cell7", "gene5", "allow_non_integer=True"]),
    (lambda: small(np.zeros((40, 30), np.float32)), {}, ValueError, ["no non-zero counts"]),
    (small, {"batch_key": "donor"}, KeyError, ["'donor' not found", "batch"]),
    (small, {"labels_key": "cell_type"}, KeyError, ["'cell_type' not found"]),
    (small, {"layer": "counts"}, KeyError, ["layer 'counts' not found"]),
    (lambda: small(batches=("a",)), {}, ValueError, ["single batch ('a')", "allow_single_batch=True"]),
    (small, {"transform_batch": "zzz"}, ValueError, ["transform_batch 'zzz'", "batches: a, b"]),
    (small, {"genes": ["gene1", "nope"]}, ValueError, ["'nope'"]),
    (small, {"n_hidden": 0}, ValueError, ["n_hidden"]),
    (small, {"lr": -1.0}, ValueError, ["lr"]),
    (small, {"preset": "fast"}, ValueError, ["preset", "'fast'"]),
    (small, {"device": "tpu"}, ValueError, ["device", "'tpu'"]),
]


@pytest.mark.parametrize("make,kwargs,exc,words", CASES)
def test_bad_input_raises_and_leaves_adata_alone(make, kwargs, exc, words):
    a = make()
    snap = snapshot(a)
    with pytest.raises(exc) as info:
        scdreamer.integrate(a, **{**QUICK, **kwargs})
    message = str(info.value)
    for w in words:
        assert w in message, (w, message)
    assert_unchanged(a, snap)


def test_missing_batch_value_names_the_cell():
    a = small()
    a.obs["batch"] = a.obs["batch"].astype(object)
    a.obs.iloc[3, 0] = None
    snap = snapshot(a)
    with pytest.raises(ValueError, match="cell3"):
        scdreamer.integrate(a, **QUICK)
    assert_unchanged(a, snap)


def test_labels_column_without_labels_is_refused():
    a = small()
    a.obs["cell_type"] = "Unknown"
    with pytest.raises(ValueError, match="cell_type"):
        scdreamer.integrate(a, labels_key="cell_type", **QUICK)
    assert "X_scdreamer" not in a.obsm


def test_allow_flags_accept_what_they_name():
    a = with_value(2.5, "dense", np.float64)
    scdreamer.integrate(a, allow_non_integer=True, **QUICK)
    assert a.obsm["X_scdreamer"].shape == (40, 10)
    b = small(batches=("a",))
    scdreamer.integrate(b, allow_single_batch=True, **QUICK)
    assert np.isfinite(b.obsm["X_scdreamer"]).all()
