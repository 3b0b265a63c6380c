"""The package and the CLI share one Rust code path: same input, seed, threads and backend
give bit-identical results, and each reads the other's saved models."""

import anndata as ad
import numpy as np
import pandas as pd
import pytest
import scdreamer
from conftest import DEMO, QUICK, run_cli

# uns entries that describe the run itself rather than its result.
RUN_FACTS = {"input", "training_log", "train_seconds", "total_seconds"}


def cli_integrate(cli, tmp_path, src, *extra):
    out = tmp_path / "cli.h5ad"
    run_cli(cli, "integrate", "--input", src, "--output", out, "--epochs", 2, "--threads", 2,
            "--device", "cpu", "--quiet", *extra)
    return ad.read_h5ad(out)


def assert_uns_equal(a, b, path="uns"):
    assert set(a) == set(b), (path, sorted(set(a) ^ set(b)))
    for k in a:
        if path == "uns" and k in RUN_FACTS:
            continue
        if isinstance(a[k], dict):
            assert_uns_equal(a[k], b[k], f"{path}/{k}")
        else:
            assert np.array_equal(np.asarray(a[k]), np.asarray(b[k])), (path, k, a[k], b[k])


def test_embedding_layer_and_uns_are_identical_to_the_cli(cli, tmp_path, demo):
    ref = cli_integrate(cli, tmp_path, DEMO, "--seed", 3)
    scdreamer.integrate(demo, seed=3, **QUICK)
    assert demo.obsm["X_scdreamer"].dtype == np.float32
    assert np.array_equal(demo.obsm["X_scdreamer"], ref.obsm["X_scdreamer"])
    used = demo.var["scdreamer_gene"].to_numpy()
    assert list(demo.var_names[used]) == list(ref.var_names)
    assert np.array_equal(demo.layers["scdreamer_normalized"][:, used],
                          ref.layers["scdreamer_normalized"])
    assert_uns_equal(demo.uns["scdreamer"], ref.uns["scdreamer"])
    # A different seed gives a different embedding: the equality above is not vacuous.
    other = ad.read_h5ad(DEMO)
    scdreamer.integrate(other, seed=4, **QUICK)
    assert not np.array_equal(other.obsm["X_scdreamer"], ref.obsm["X_scdreamer"])


def test_sup_labels_are_identical_to_the_cli(cli, tmp_path, demo):
    rng = np.random.default_rng(0)
    labels = demo.obs["cell_type"].astype(str).to_numpy()
    labels[rng.random(demo.n_obs) < 0.3] = "Unknown"
    demo.obs["partial"] = pd.Categorical(labels)
    src = tmp_path / "partial.h5ad"
    demo.write_h5ad(src)
    ref = cli_integrate(cli, tmp_path, src, "--labels-key", "partial", "--n-top-genes", 300)
    scdreamer.integrate(demo, labels_key="partial", n_top_genes=300, **QUICK)
    assert np.array_equal(demo.obsm["X_scdreamer"], ref.obsm["X_scdreamer"])
    assert list(demo.obs["scdreamer_label"]) == list(ref.obs["scdreamer_label"])
    assert np.array_equal(demo.obs["scdreamer_label_confidence"].to_numpy(),
                          ref.obs["scdreamer_label_confidence"].to_numpy())
    assert_uns_equal(demo.uns["scdreamer"], ref.uns["scdreamer"])


def test_cli_model_loads_in_python(cli, tmp_path, demo):
    model_dir = tmp_path / "cli_model"
    ref = cli_integrate(cli, tmp_path, DEMO, "--save-model", model_dir)
    model = scdreamer.Model.load(model_dir, demo, device="cpu", n_threads=2)
    assert np.array_equal(model.get_latent_representation(), ref.obsm["X_scdreamer"])
    # New cells of known batches (a view): each cell embeds as in the full data, up to the
    # rounding of products over fewer rows.
    mask = (demo.obs["batch"] == "10x").to_numpy()
    latent = model.get_latent_representation(demo[mask])
    np.testing.assert_allclose(latent, ref.obsm["X_scdreamer"][mask], rtol=1e-5, atol=1e-5)


def test_python_model_loads_in_the_cli(cli, tmp_path, demo):
    model = scdreamer.Model(demo, n_threads=2, device="cpu").train(max_epochs=2, progress=False)
    model.save(tmp_path / "py_model")
    with pytest.raises(ValueError, match="already holds a model"):
        model.save(tmp_path / "py_model")
    out = tmp_path / "embedded.h5ad"
    run_cli(cli, "embed", "--model", tmp_path / "py_model", "--input", DEMO, "--output", out,
            "--quiet")
    assert np.array_equal(ad.read_h5ad(out).obsm["X_scdreamer"],
                          model.get_latent_representation())
