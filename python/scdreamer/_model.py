"""``Model`` and ``integrate``: scvi-tools-style access to the scdreamer engine."""

from __future__ import annotations

import json
import os
import sys
import time

import numpy as np
import pandas as pd

from . import _data
from . import _scdreamer as _rs

# Above this many cells x genes values, normalized="auto" skips the dense layer (800 MB), as
# the CLI's --normalized auto does.
_NORMALIZED_AUTO_MAX = 200_000_000

_HYPER_DEFAULTS = dict(
    preset="default",
    n_latent=None,
    n_hidden=None,
    gene_likelihood="zinb",
    max_epochs=None,
    batch_size=None,
    lr=None,
    lr_schedule=None,
    kl_weight=None,
    batch_adv_weight=None,
    disc_weight=None,
    adversary_input=None,
    encode_batch=None,
    batch_gene_offsets=None,
    label_balance=None,
    label_loss=None,
    seed=0,
)


class _Hyper:
    """The hyper-parameters as the Rust module reads them (attribute access)."""

    def __init__(self, **kw):
        self.__dict__.update(kw)


def _check_positive(name, value, kind=int):
    if value is None:
        return
    if kind is int and (isinstance(value, bool) or not isinstance(value, (int, np.integer))):
        raise TypeError(f"{name} must be an integer, not {value!r}")
    if not value > 0 or (kind is float and not np.isfinite(value)):
        raise ValueError(f"{name} must be positive (got {value!r})")


def _check_label_balance(value):
    """``label_balance``: a finite number >= 0 (the engine's own message names the CLI flag)."""
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"label_balance must be a number, not {value!r}")
    if not (value >= 0 and np.isfinite(value)):
        raise ValueError(f"label_balance must be a number >= 0 (got {value!r})")


def _hyper(kw) -> _Hyper:
    unknown = set(kw) - set(_HYPER_DEFAULTS)
    if unknown:
        raise TypeError(f"unknown keyword argument(s): {', '.join(sorted(unknown))}")
    h = dict(_HYPER_DEFAULTS, **kw)
    for name in ("n_latent", "max_epochs", "batch_size"):
        _check_positive(name, h[name])
    _check_positive("lr", h["lr"], float)
    _check_label_balance(h["label_balance"])
    if h["n_hidden"] is not None:
        widths = [h["n_hidden"]] if np.isscalar(h["n_hidden"]) else list(h["n_hidden"])
        for w in widths:
            _check_positive("n_hidden", w)
        h["n_hidden"] = [int(w) for w in widths]
    if h["batch_size"] is not None and h["batch_size"] < 2:
        raise ValueError(f"batch_size must be at least 2 (got {h['batch_size']})")
    if not isinstance(h["seed"], (int, np.integer)) or h["seed"] < 0:
        raise ValueError(f"seed must be a non-negative integer (got {h['seed']!r})")
    return _Hyper(**h)


def _progress(enabled: bool):
    """A tqdm bar on stderr fed by the engine's callback, and its closer."""
    if not enabled:
        return None, lambda: None
    from tqdm.auto import tqdm

    state = {}

    def callback(step, total, epoch, epochs):
        bar = state.get("bar")
        if bar is None:
            bar = state["bar"] = tqdm(total=total, unit="step", file=sys.stderr, desc="scdreamer")
        bar.set_description(f"epoch {epoch}/{epochs}", refresh=False)
        bar.update(step - bar.n)

    def close():
        if "bar" in state:
            state["bar"].close()

    return callback, close


def _uns_value(v):
    """JSON -> what anndata reads back from the CLI's file: nulls dropped, homogeneous lists
    as numpy arrays."""
    if isinstance(v, dict):
        return {k: _uns_value(x) for k, x in v.items() if x is not None}
    if isinstance(v, list):
        if v and all(isinstance(x, bool) for x in v):
            return np.asarray(v, dtype=bool)
        if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return np.asarray(v)
        if v and all(isinstance(x, str) for x in v):
            return np.asarray(v, dtype=object)
        return [_uns_value(x) for x in v]
    return v


def _report(line: str, enabled: bool):
    if enabled:
        print(line, file=sys.stderr)


class Model:
    """scDREAMER (adversarial VAE) on an AnnData of raw counts.

    The constructor registers the batches (and labels), checks every count and selects the
    genes, as ``scdreamer integrate`` does; ``train`` trains; the ``get_*`` methods return the
    results for the training data or, given ``adata``, for new cells of known batches.

    Parameters
    ----------
    adata
        Cells x genes raw counts in ``X`` (or ``layers[layer]``): scipy CSR/CSC or dense numpy,
        any float or integer dtype. Not modified. A view (``adata[mask]``) works.
    batch_key
        obs column of batches (donor, lab, protocol...).
    labels_key
        obs column of cell-type labels: trains scDREAMER-Sup and predicts a label per cell.
    layer
        Read counts from ``adata.layers[layer]`` instead of ``X``.
    unlabeled_category
        Label value of unlabelled cells (missing values are unlabelled too).
    n_top_genes, hvg_flavor, genes, all_genes
        Genes: ``n_top_genes`` highly variable genes (``hvg_flavor`` "seurat_v3" on counts,
        the default, or "seurat"), a list of var names ``genes``, or ``all_genes=True``.
    preset
        "default" (the method with measured fixes) or "authors" (the authors' code).
    n_latent, n_hidden, gene_likelihood, max_epochs, batch_size, lr, lr_schedule
        Latent dimension, hidden widths (int or list), "zinb" or "nb", epochs, minibatch size,
        learning rate, "cosine" or "constant" (CLI: --latent, --hidden, --likelihood,
        --epochs, --batch-size, --lr, --lr-schedule). None keeps the preset's value.
    kl_weight, batch_adv_weight, disc_weight, adversary_input, encode_batch, batch_gene_offsets
        Advanced, as the CLI flags of the same names.
    label_balance
        scDREAMER-Sup: weight a labelled cell of type c by (labelled / (types x cells of c))^P
        in the label loss (CLI: --label-balance), P a number >= 0; None keeps the default 1
        (every labelled type weighs the same); 0 weighs every labelled cell the same.
    label_loss
        scDREAMER-Sup's label loss: "gce" (the default preset's generalized cross-entropy,
        robust to wrong labels) or "ce" (cross-entropy, the authors' code); CLI --label-loss.
    transform_batch
        Batch whose decoder gives the normalized expression, or "all" (average).
    seed, n_threads, device
        Same seed, threads and device give the same result (bit for bit, as the CLI).
        ``n_threads`` None uses every core; ``device`` "auto", "cpu" or "cuda".
    allow_non_integer, allow_single_batch
        Accept non-integer counts / a single batch (refused by default).
    """

    def __init__(
        self,
        adata,
        batch_key: str = "batch",
        labels_key: str | None = None,
        layer: str | None = None,
        *,
        unlabeled_category: str = "Unknown",
        n_top_genes: int = 2000,
        hvg_flavor: str | None = None,
        genes=None,
        all_genes: bool = False,
        transform_batch: str = "all",
        n_threads: int | None = None,
        device: str = "auto",
        allow_non_integer: bool = False,
        allow_single_batch: bool = False,
        **hyper,
    ):
        h = _hyper(hyper)
        if h.label_balance is not None and labels_key is None:
            raise ValueError("label_balance needs labels_key (it weighs scDREAMER-Sup's label loss)")
        if h.label_loss is not None and labels_key is None:
            raise ValueError("label_loss needs labels_key (it is scDREAMER-Sup's label loss)")
        _check_positive("n_top_genes", n_top_genes)
        _check_positive("n_threads", n_threads)
        if genes is not None and all_genes:
            raise ValueError("give genes or all_genes=True, not both")
        _data.require_obs_key(adata, batch_key, "batch", "batch_key")
        keys = [batch_key]
        if labels_key is not None:
            _data.require_obs_key(adata, labels_key, "labels", "labels_key")
            if labels_key != batch_key:
                keys.append(labels_key)
        data = _data.read(adata, layer, keys, allow_non_integer)
        gene_args = _Hyper(
            all_genes=bool(all_genes),
            genes=None if genes is None else [str(g) for g in genes],
            hvg_flavor=hvg_flavor,
            n_top_genes=int(n_top_genes),
        )
        self._trainer = _rs.prepare(
            data, batch_key, bool(allow_single_batch), labels_key, str(unlabeled_category),
            str(transform_batch), gene_args, h,
        )
        self._gene_index = np.asarray(self._trainer.genes, dtype=np.int64)
        self.adata = adata
        self.batch_key = batch_key
        self.labels_key = labels_key
        self.layer = layer
        self.transform_batch = transform_batch
        self.n_threads = n_threads
        self.device = device
        self.allow_non_integer = allow_non_integer
        self._rs = None
        self._notes = list(self._trainer.notes)
        self._device_line = None

    # ----------------------------------------------------------------------------- training
    def train(self, max_epochs: int | None = None, batch_size: int | None = None,
              lr: float | None = None, progress: bool = True):
        """Trains the model (the GIL is released; Ctrl-C raises KeyboardInterrupt).

        ``max_epochs``, ``batch_size`` and ``lr`` override the constructor's values;
        ``progress=False`` silences the progress bar and messages on stderr. Returns self.
        """
        if self._rs is not None:
            raise RuntimeError("this model is already trained; make a new Model to retrain")
        _check_positive("max_epochs", max_epochs)
        _check_positive("batch_size", batch_size)
        _check_positive("lr", lr, float)
        if max_epochs is not None or batch_size is not None or lr is not None:
            self._trainer.set_training(max_epochs, batch_size, lr)
        for note in self._notes:
            _report(note, progress)
        callback, close = _progress(progress)
        try:
            self._rs, self._device_line = self._trainer.train(self.device, self.n_threads, callback)
        finally:
            close()
        _report(self._device_line, progress)
        return self

    def _model(self):
        if self._rs is None:
            raise RuntimeError("the model is not trained yet: call train() first")
        return self._rs

    def _data_for(self, adata):
        """None for the training data; else ``adata`` read against the model's batch key."""
        if adata is None or adata is self.adata and self._trained_here:
            return None
        cfg = self._config()
        keys = [cfg["batch_key"]]
        _data.require_obs_key(adata, cfg["batch_key"], "batch", "batch_key")
        return _data.read(adata, self.layer, keys, self.allow_non_integer)

    @property
    def _trained_here(self) -> bool:
        return getattr(self, "_bound", True)

    def _config(self) -> dict:
        return json.loads(self._model().config_json())

    # ---------------------------------------------------------------------------- results
    def get_latent_representation(self, adata=None) -> np.ndarray:
        """The embedding (cells x n_latent, float32), for the training data or ``adata``.
        The default preset's is the posterior mean of z (``obsm["X_scdreamer"]``)."""
        return self._model().latent(self._data_for(adata))

    def get_normalized_expression(self, adata=None, transform_batch=None) -> pd.DataFrame:
        """Batch-corrected expression of the model's genes, per 10,000 counts: the decoder's
        scale for the posterior mean, decoded as batch ``transform_batch`` or averaged over
        every batch (None or "all"). A DataFrame (cells x genes)."""
        target = self.adata if adata is None else adata
        values = self._model().normalized(self._data_for(adata), transform_batch)
        return pd.DataFrame(values, index=target.obs_names, columns=self._config()["genes"])

    def predict(self, adata=None, soft: bool = False):
        """scDREAMER-Sup: the predicted cell type of every cell (a numpy array of labels), or
        with ``soft=True`` the probability of every type (a DataFrame). Needs ``labels_key``."""
        model = self._model()
        cfg = self._config()
        if not cfg.get("labels_key"):
            raise ValueError("this model was trained without labels_key: nothing to predict")
        target = self.adata if adata is None else adata
        data = self._data_for(adata)
        if soft:
            probs = model.label_probs(data)
            return pd.DataFrame(probs, index=target.obs_names, columns=cfg["label_categories"])
        codes, _ = model.predict(data)
        return np.asarray(cfg["label_categories"], dtype=object)[codes]

    @property
    def history(self) -> pd.DataFrame:
        """The per-epoch training log (the CLI's ``.log.csv``): losses, accuracies, seconds."""
        records = json.loads(self._model().history_json())
        frame = pd.DataFrame.from_records(records)
        return frame.set_index("epoch") if "epoch" in frame else frame

    # ----------------------------------------------------------------------- save and load
    def save(self, dir_path, overwrite: bool = False):
        """Writes ``weights.safetensors`` and ``config.json`` into ``dir_path``: the directory
        ``scdreamer integrate --save-model`` writes, which ``scdreamer embed`` reads."""
        dir_path = os.fspath(dir_path)
        if os.path.exists(os.path.join(dir_path, "config.json")) and not overwrite:
            raise ValueError(f"{dir_path} already holds a model: pass overwrite=True to replace it")
        self._model().save(dir_path)

    @classmethod
    def load(cls, dir_path, adata=None, *, layer=None, device="auto", n_threads=None,
             allow_non_integer=False):
        """Loads a model saved by ``save`` or by ``scdreamer integrate --save-model``. With
        ``adata`` (cells of the model's batches, genes matched by name) the ``get_*`` methods
        work on it by default."""
        _check_positive("n_threads", n_threads)
        rs, line = _rs.Model.load(os.fspath(dir_path), device, n_threads)
        self = cls.__new__(cls)
        cfg = json.loads(rs.config_json())
        self._rs, self._device_line, self._trainer = rs, line, None
        self.adata, self.layer, self.device, self.n_threads = adata, layer, device, n_threads
        self.batch_key, self.labels_key = cfg["batch_key"], cfg.get("labels_key")
        self.transform_batch, self.allow_non_integer = "all", allow_non_integer
        self._notes, self._bound = [], False
        if adata is not None:
            _data.require_obs_key(adata, cfg["batch_key"], "batch", "batch_key")
            rs.bind(_data.read(adata, layer, [cfg["batch_key"]], allow_non_integer))
            self._bound = True
        return self

    def map_query(self, adata, *, batch_key=None, layer=None, epochs=0, seed=0, lr=1e-3,
                  fill_missing_genes=False, batch_init="mean", allow_non_integer=None):
        """Maps the query ``adata`` onto this model, as ``scdreamer map`` does (scArches-style, like
        scvi-tools' ``load_query_data``): batches of ``obs[batch_key]`` (default: the model's
        batch key) that the model does not know get new parameters, starting from the mean of
        the reference batches (``batch_init="closest"``: a copy of the reference batch that
        explains them best) and trained for ``epochs`` on the query with every reference weight
        frozen (0: not trained). Genes are matched by name; missing ones are an error unless
        ``fill_missing_genes``. Returns the extended model, bound to ``adata``: its
        ``get_latent_representation()`` is the query in the reference's latent space,
        ``predict(soft=True)`` the transferred label probabilities (a Sup model), ``save`` the
        extended model that ``scdreamer embed`` accepts for every batch. ``self`` is unchanged."""
        model = self._model()
        cfg = self._config()
        key = batch_key if batch_key is not None else cfg["batch_key"]
        if isinstance(epochs, bool) or not isinstance(epochs, (int, np.integer)) or epochs < 0:
            raise ValueError(f"epochs must be a non-negative integer (got {epochs!r})")
        if not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ValueError(f"seed must be a non-negative integer (got {seed!r})")
        _check_positive("lr", lr, float)
        layer = self.layer if layer is None else layer
        non_integer = self.allow_non_integer if allow_non_integer is None else allow_non_integer
        _data.require_obs_key(adata, key, "batch", "batch_key")
        data = _data.read(adata, layer, [key], non_integer)
        rs = model.map_query(data, key, int(epochs), int(seed), float(lr), bool(fill_missing_genes),
                             str(batch_init))
        query = Model.__new__(Model)
        query._rs, query._device_line, query._trainer = rs, self._device_line, None
        query.adata, query.layer, query.device, query.n_threads = adata, layer, self.device, self.n_threads
        query.batch_key, query.labels_key = cfg["batch_key"], cfg.get("labels_key")
        query.transform_batch, query.allow_non_integer = "all", non_integer
        query._notes, query._bound = [], True
        return query

    def __repr__(self) -> str:
        state = "trained" if self._rs is not None else "not trained"
        return f"scdreamer.Model(batch_key={self.batch_key!r}, labels_key={self.labels_key!r}, {state})"


def integrate(
    adata,
    batch_key: str = "batch",
    labels_key: str | None = None,
    layer: str | None = None,
    *,
    normalized="auto",
    progress: bool = True,
    **kwargs,
) -> Model:
    """Trains scDREAMER with the CLI's defaults and writes the results into ``adata``.

    Writes ``obsm["X_scdreamer"]`` (the embedding: use it like ``X_scVI``,
    ``sc.pp.neighbors(adata, use_rep="X_scdreamer")``), ``layers["scdreamer_normalized"]``
    (dense batch-corrected expression per 10,000 counts; genes the model did not use are NaN;
    ``normalized``: "auto" = only up to 2e8 values, True, False), with ``labels_key``
    ``obs["scdreamer_label"]`` and ``obs["scdreamer_label_confidence"]``, ``var["scdreamer_gene"]``
    (the genes used) and ``uns["scdreamer"]`` (as the CLI writes them). Nothing is written
    when an error is raised (or training is interrupted). Every keyword argument of ``Model``
    is accepted. Returns the trained ``Model``.
    """
    if normalized not in ("auto", True, False):
        raise ValueError(f"normalized must be 'auto', True or False (got {normalized!r})")
    t0 = time.perf_counter()
    model = Model(adata, batch_key, labels_key, layer, **kwargs)
    model.train(progress=progress)
    rs = model._rs
    latent = rs.latent(None)
    n_obs, n_vars = adata.n_obs, adata.n_vars
    write_norm = normalized is True or (
        normalized == "auto" and n_obs * n_vars <= _NORMALIZED_AUTO_MAX
    )
    if normalized == "auto" and not write_norm:
        _report(
            f"not writing layers['scdreamer_normalized']: {n_obs} cells x {n_vars} genes would "
            f"take {n_obs * n_vars * 4 / 1e9:.1f} GB dense (use normalized=True)",
            progress,
        )
    layer_values = None
    if write_norm:
        values = rs.normalized(None, model.transform_batch)
        genes = model._gene_index
        if len(genes) == n_vars and np.array_equal(genes, np.arange(n_vars)):
            layer_values = values
        else:
            layer_values = np.full((n_obs, n_vars), np.nan, dtype=np.float32)
            layer_values[:, genes] = values
            del values
    predicted = rs.predict(None)
    used = np.zeros(n_vars, dtype=bool)
    used[model._gene_index] = True
    uns = _uns_value(json.loads(rs.uns_json("AnnData (in memory)", time.perf_counter() - t0)))
    # Everything is computed: write it all (a view becomes an actual AnnData here, as anndata
    # does on any write to a view).
    adata.obsm["X_scdreamer"] = latent
    if layer_values is not None:
        adata.layers["scdreamer_normalized"] = layer_values
    if predicted is not None:
        codes, confidence = predicted
        cats = model._config()["label_categories"]
        adata.obs["scdreamer_label"] = pd.Categorical.from_codes(codes.astype(np.int64), cats)
        adata.obs["scdreamer_label_confidence"] = confidence
    adata.var["scdreamer_gene"] = used
    adata.uns["scdreamer"] = uns
    model.adata = adata
    return model
