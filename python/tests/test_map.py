"""Model.map_query: the query (a platform the model never saw) gets the same embedding and
labels as `scdreamer map` gives from the same saved model, the reference model is unchanged, and
the extended model saves in the format `scdreamer embed` reads for the new batch."""

import anndata as ad
import numpy as np
import pytest
import scdreamer
from conftest import run_cli


def test_map_query_matches_the_cli_and_extends_the_model(demo, cli, tmp_path):
    query_mask = (demo.obs["batch"] == "Drop-seq").to_numpy()
    ref, query = demo[~query_mask].copy(), demo[query_mask].copy()
    model = scdreamer.Model(ref, labels_key="cell_type", n_threads=2, device="cpu")
    model.train(max_epochs=2, progress=False)
    before = model.get_latent_representation()
    model.save(tmp_path / "model")

    mapped = model.map_query(query)
    z = mapped.get_latent_representation()
    assert z.shape == (query.n_obs, 10) and np.isfinite(z).all()
    soft = mapped.predict(soft=True)
    assert list(soft.columns) == sorted(ref.obs["cell_type"].unique())
    assert np.allclose(soft.to_numpy().sum(1), 1, atol=1e-5)
    assert np.array_equal(model.get_latent_representation(), before), "the reference model moved"

    out = tmp_path / "q.h5ad"
    run_cli(cli, "map", "--model", tmp_path / "model", "--input", _write(query, tmp_path / "query.h5ad"),
            "--output", out, "--quiet")
    q = ad.read_h5ad(out)
    assert np.array_equal(q.obsm["X_scdreamer"], z)
    assert np.allclose(q.obs["scdreamer_label_confidence"].to_numpy(), soft.to_numpy().max(1))

    # The extended model knows the new batch: `embed` reproduces the mapped embedding.
    mapped.save(tmp_path / "extended")
    run_cli(cli, "embed", "--model", tmp_path / "extended", "--input", tmp_path / "query.h5ad",
            "--output", tmp_path / "e.h5ad", "--quiet")
    assert np.array_equal(ad.read_h5ad(tmp_path / "e.h5ad").obsm["X_scdreamer"], z)


def test_map_query_bad_arguments(demo):
    model = scdreamer.Model(demo, n_threads=2, device="cpu").train(max_epochs=2, progress=False)
    with pytest.raises(ValueError, match="batch_init"):
        model.map_query(demo.copy(), batch_init="nearest")
    with pytest.raises(ValueError, match="epochs"):
        model.map_query(demo.copy(), epochs=-1)
    with pytest.raises(Exception, match="donor"):
        model.map_query(demo.copy(), batch_key="donor")


def _write(adata, path):
    adata.write_h5ad(path)
    return path
