"""scdreamer: scDREAMER single-cell data integration on AnnData.

The same Rust engine as the ``scdreamer`` command-line tool, called in memory::

    import scanpy as sc
    import scdreamer

    adata = sc.read_h5ad("counts.h5ad")
    scdreamer.integrate(adata, batch_key="batch")
    sc.pp.neighbors(adata, use_rep="X_scdreamer")
    sc.tl.umap(adata)

``integrate`` trains with the CLI's defaults and writes ``obsm["X_scdreamer"]``,
``layers["scdreamer_normalized"]``, scDREAMER-Sup's ``obs["scdreamer_label"]`` /
``obs["scdreamer_label_confidence"]`` and ``uns["scdreamer"]`` in place. ``Model`` gives the
scvi-tools-style object (``train``, ``get_latent_representation``, ``save``/``load``...).
"""

from ._model import Model, integrate
from ._scdreamer import __version__

__all__ = ["Model", "integrate", "__version__"]
