"""The Python API as scverse users call it: input formats, views, Model methods, progress,
the GIL and Ctrl-C."""

import os
import signal
import threading
import time

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import scdreamer
from conftest import DEMO, QUICK


def test_readme_example_writes_every_key(demo, tmp_path):
    import scanpy as sc

    model = scdreamer.integrate(demo, **QUICK)
    assert demo.obsm["X_scdreamer"].shape == (demo.n_obs, 10)
    assert demo.layers["scdreamer_normalized"].shape == demo.shape
    assert demo.uns["scdreamer"]["batch_key"] == "batch"
    assert list(demo.uns["scdreamer"]["batch_categories"]) == ["10x", "CEL-seq2", "Drop-seq"]
    assert isinstance(model.history, pd.DataFrame) and len(model.history) == 2
    assert {"loss_ae", "elbo", "batch_classifier_accuracy"} <= set(model.history.columns)
    sc.pp.neighbors(demo, use_rep="X_scdreamer")
    sc.tl.umap(demo)
    assert demo.obsm["X_umap"].shape == (demo.n_obs, 2)
    # The result survives a round trip through .h5ad (uns holds only writable values).
    demo.write_h5ad(tmp_path / "roundtrip.h5ad")
    assert "X_scdreamer" in ad.read_h5ad(tmp_path / "roundtrip.h5ad").obsm


@pytest.mark.parametrize("convert", [
    lambda x: x.astype(np.float64),
    lambda x: x.astype(np.int32),
    lambda x: sp.csc_matrix(x),
    lambda x: x.toarray(),
    lambda x: np.asfortranarray(x.toarray().astype(np.uint16)),
])
def test_every_matrix_format_gives_the_same_embedding(demo, convert):
    ref = ad.read_h5ad(DEMO)
    scdreamer.integrate(ref, normalized=False, **QUICK)
    demo.X = convert(demo.X)
    scdreamer.integrate(demo, normalized=False, **QUICK)
    assert np.array_equal(demo.obsm["X_scdreamer"], ref.obsm["X_scdreamer"])


def test_layer_and_view(demo):
    demo.layers["counts"] = demo.X.copy()
    demo.X = sp.csr_matrix(np.log1p(demo.X.toarray()))  # normalised X: must not be read
    mask = (demo.obs["batch"] != "Drop-seq").to_numpy()
    view = demo[mask]
    assert view.is_view
    scdreamer.integrate(view, layer="counts", all_genes=True, **QUICK)
    assert view.obsm["X_scdreamer"].shape == (mask.sum(), 10)
    assert view.layers["scdreamer_normalized"].shape == (mask.sum(), demo.n_vars)
    assert "X_scdreamer" not in demo.obsm  # the parent is untouched


def test_model_methods(demo):
    labels = demo.obs["cell_type"].astype(str).to_numpy()
    labels[::3] = "Unknown"
    demo.obs["partial"] = pd.Categorical(labels)
    model = scdreamer.Model(demo, labels_key="partial", n_top_genes=300, n_threads=2,
                            device="cpu", n_latent=8)
    with pytest.raises(RuntimeError, match="train"):
        model.get_latent_representation()
    model.train(max_epochs=3, progress=False)
    assert len(model.history) == 3
    z = model.get_latent_representation()
    assert z.shape == (demo.n_obs, 8) and z.dtype == np.float32
    norm = model.get_normalized_expression(transform_batch="10x")
    assert norm.shape == (demo.n_obs, 300) and np.isfinite(norm.to_numpy()).all()
    np.testing.assert_allclose(norm.sum(axis=1), 1e4, rtol=1e-3)
    assert not np.allclose(norm.to_numpy(), model.get_normalized_expression().to_numpy())
    pred = model.predict()
    assert set(pred) <= {"H1975", "H2228", "HCC827"}
    known = labels != "Unknown"
    assert (pred[known] == labels[known]).mean() > 0.9
    soft = model.predict(soft=True)
    assert list(soft.columns) == ["H1975", "H2228", "HCC827"]
    np.testing.assert_allclose(soft.sum(axis=1), 1.0, rtol=1e-4)
    assert np.array_equal(soft.to_numpy().argmax(axis=1),
                          pd.Categorical(pred, categories=soft.columns).codes)


def _sup_embedding(demo, **kw):
    """X_scdreamer of a quick scDREAMER-Sup run on the demo with extra keyword arguments."""
    a = demo.copy()
    scdreamer.integrate(a, labels_key="cell_type", n_top_genes=300, normalized=False, **QUICK, **kw)
    return a.obsm["X_scdreamer"]


def test_label_balance_weighs_the_label_loss(demo):
    # The demo's types are unequal (492 / 444 / 409 cells): the default balance 1 weighs the
    # label loss per type, 0 per cell, so the two train differently; None is 1.
    default = _sup_embedding(demo)
    assert np.array_equal(default, _sup_embedding(demo, label_balance=1))
    assert not np.array_equal(default, _sup_embedding(demo, label_balance=0))
    for bad in (-1, -0.5, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="label_balance must be a number >= 0") as e:
            scdreamer.Model(demo, labels_key="cell_type", label_balance=bad)
        assert "--label-balance" not in str(e.value)
    with pytest.raises(TypeError, match="label_balance"):
        scdreamer.Model(demo, labels_key="cell_type", label_balance="1")
    # As the CLI refuses --label-balance without --labels-key: nothing would use it.
    with pytest.raises(ValueError, match="label_balance needs labels_key"):
        scdreamer.Model(demo, label_balance=1)


def test_label_loss_chooses_sups_label_loss(demo):
    # The default is the generalized cross-entropy ("gce"); "ce" trains differently; bad values
    # and label_loss without labels_key are refused before any training.
    default = _sup_embedding(demo)
    assert np.array_equal(default, _sup_embedding(demo, label_loss="gce"))
    assert not np.array_equal(default, _sup_embedding(demo, label_loss="ce"))
    with pytest.raises(ValueError, match="label_loss must be 'ce' or 'gce', not 'mae'"):
        scdreamer.Model(demo, labels_key="cell_type", label_loss="mae")
    with pytest.raises(ValueError, match="label_loss needs labels_key"):
        scdreamer.Model(demo, label_loss="ce")


def test_loaded_model_needs_data(tmp_path, demo):
    model = scdreamer.Model(demo, **{k: v for k, v in QUICK.items() if k not in ("max_epochs", "progress")})
    model.train(max_epochs=1, progress=False)
    model.save(tmp_path / "m")
    loaded = scdreamer.Model.load(tmp_path / "m", device="cpu", n_threads=2)
    with pytest.raises(ValueError, match="pass adata"):
        loaded.get_latent_representation()
    assert np.array_equal(loaded.get_latent_representation(demo), model.get_latent_representation())
    bad = demo.copy()
    bad.obs["batch"] = bad.obs["batch"].cat.rename_categories({"10x": "Smart-seq"})
    with pytest.raises(ValueError, match="Smart-seq"):
        loaded.get_latent_representation(bad)


def test_progress_goes_to_stderr_and_can_be_silenced(demo, capfd):
    scdreamer.integrate(demo, **{**QUICK, "progress": True})
    err = capfd.readouterr().err
    assert "epoch 2/2" in err and "device: cpu" in err
    scdreamer.integrate(demo, **QUICK)
    out = capfd.readouterr()
    assert out.err == "" and out.out == ""


def test_training_releases_the_gil(demo):
    ticks = []
    stop = threading.Event()

    def count():
        while not stop.is_set():
            ticks.append(1)
            time.sleep(0.001)

    t = threading.Thread(target=count)
    t.start()
    t0 = time.perf_counter()
    scdreamer.integrate(demo, normalized=False, **{**QUICK, "max_epochs": 4})
    elapsed = time.perf_counter() - t0
    stop.set()
    t.join()
    # A thread sleeping 1 ms per tick gets hundreds of ticks a second when the GIL is free;
    # with the GIL held through training it would get a handful.
    assert len(ticks) > 100 * elapsed, (len(ticks), elapsed)


def test_ctrl_c_stops_training_and_leaves_adata_untouched(demo):
    before = set(demo.obsm), set(demo.layers), set(demo.uns), set(demo.obs.columns)
    timer = threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    t0 = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        scdreamer.integrate(demo, **{**QUICK, "max_epochs": 1000})
    elapsed = time.perf_counter() - t0
    timer.cancel()
    assert elapsed < 20, f"1,000 epochs take minutes; training stopped after {elapsed:.1f} s"
    assert (set(demo.obsm), set(demo.layers), set(demo.uns), set(demo.obs.columns)) == before


def test_cuda_is_used_or_refused_with_the_reason(demo):
    try:
        scdreamer.integrate(demo, **{**QUICK, "device": "cuda"})
    except ValueError as e:
        assert str(e).startswith("device='cuda': no usable GPU"), str(e)
        assert "X_scdreamer" not in demo.obsm
    else:
        assert demo.uns["scdreamer"]["device"] == "cuda"
        assert np.isfinite(demo.obsm["X_scdreamer"]).all()


def test_an_interrupted_model_asks_for_a_new_one(demo):
    model = scdreamer.Model(demo, device="cpu", n_threads=2)
    timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        model.train(max_epochs=1000, progress=False)
    timer.cancel()
    with pytest.raises(ValueError, match="make a new Model"):
        model.train(max_epochs=1, progress=False)
