"""Write the reference fixtures for tests/hvg.rs and the unit tests in src/data/hvg*.

Run from the repository root with the peers venv (scanpy 1.11.5, scikit-misc):

    /work/peers-venv/bin/python scripts/make_hvg_fixtures.py

Outputs (all under tests/fixtures/hvg/):
- loess_<case>.tsv: x, y and skmisc loess(span=0.3, degree=2) fitted values (the
  default surface="interpolate"), for unit tests of our LOESS.
- synthetic_counts.tsv: a 50 x 30 random count matrix, one cell per line,
  first field the batch code.
- synthetic.seurat_v3.tsv / synthetic.seurat.tsv: scanpy's per-gene statistics
  and selection on that matrix; synthetic.seurat_v3_paper.txt: the selected
  gene indices of flavor="seurat_v3_paper".
- <dataset>.<flavor>.txt for every /work/shared/data/*.h5ad: scanpy's HVG list,
  first line "# n_top=N", then one gene name per line in var order.
"""

from __future__ import annotations

import glob
import os
import warnings

import anndata as ad
import numpy as np
import scanpy as sc
from scipy import sparse
from skmisc.loess import loess

OUT = os.path.join("tests", "fixtures", "hvg")
DATA = "/work/shared/data"
SYN_TOP = 10


def n_top_for(n_genes: int) -> int:
    """2000 as scDREAMER uses, but a quarter-ish of the genes on small panels
    so that the selection still discriminates."""
    return 2000 if n_genes >= 8000 else 500


def write_loess_cases(rng: np.random.Generator) -> None:
    cases = {}
    x = np.sort(rng.normal(size=300))
    cases["smooth300"] = (x, np.sin(2 * x) + rng.normal(scale=0.3, size=x.size))
    # ties in x, like log10 means of genes with identical counts
    x = np.round(rng.gamma(2.0, 1.0, size=1000), 1)
    cases["ties1000"] = (x, 0.5 * x + 0.1 * x**2 + rng.normal(scale=0.2, size=x.size))
    x = rng.uniform(-2, 3, size=40)
    cases["tiny40"] = (x, x**3 - x + rng.normal(scale=0.5, size=x.size))
    for name, (x, y) in cases.items():
        m = loess(x, y, span=0.3, degree=2)
        m.fit()
        with open(os.path.join(OUT, f"loess_{name}.tsv"), "w") as f:
            f.write("# x\ty\tfitted (skmisc loess span=0.3 degree=2)\n")
            for a, b, c in zip(x, y, m.outputs.fitted_values, strict=True):
                f.write(f"{float(a)!r}\t{float(b)!r}\t{float(c)!r}\n")


def write_synthetic(rng: np.random.Generator) -> None:
    n_cells, n_genes = 50, 30
    batch = np.repeat([0, 1], 25)
    gene_mean = rng.gamma(1.0, 3.0, size=n_genes)
    cell_size = rng.gamma(5.0, 0.2, size=n_cells)
    batch_shift = np.where(batch[:, None] == 1, rng.gamma(2.0, 0.5, size=n_genes), 1.0)
    lam = cell_size[:, None] * gene_mean[None, :] * batch_shift
    counts = rng.negative_binomial(2, 2 / (2 + lam)).astype(np.float32)
    counts[:, 7] = 0  # a gene never expressed
    counts[:25, 11] = 0  # a gene unexpressed in batch 0
    with open(os.path.join(OUT, "synthetic_counts.tsv"), "w") as f:
        f.write("# batch\tcounts of 30 genes (50 cells)\n")
        for b, row in zip(batch, counts, strict=True):
            f.write("\t".join([str(b), *(str(int(v)) for v in row)]) + "\n")

    def make() -> ad.AnnData:
        a = ad.AnnData(sparse.csr_matrix(counts))
        a.var_names = [f"g{i:02d}" for i in range(n_genes)]
        a.obs["batch"] = [f"b{b}" for b in batch]
        a.obs["batch"] = a.obs["batch"].astype("category")
        return a

    a = make()
    df = sc.pp.highly_variable_genes(
        a, flavor="seurat_v3", n_top_genes=SYN_TOP, batch_key="batch", inplace=False
    )
    with open(os.path.join(OUT, "synthetic.seurat_v3.tsv"), "w") as f:
        f.write(f"# n_top={SYN_TOP}\tgene\tvariances_norm\trank\tnbatches\thighly_variable\n")
        for i in range(n_genes):
            r = df.iloc[i]
            f.write(
                f"{i}\t{float(r['variances_norm'])!r}\t{float(r['highly_variable_rank'])!r}\t"
                f"{int(r['highly_variable_nbatches'])}\t{int(r['highly_variable'])}\n"
            )

    a = make()
    df = sc.pp.highly_variable_genes(
        a, flavor="seurat_v3_paper", n_top_genes=SYN_TOP, batch_key="batch", inplace=False
    )
    with open(os.path.join(OUT, "synthetic.seurat_v3_paper.txt"), "w") as f:
        f.write(f"# n_top={SYN_TOP}\tselected gene indices\n")
        for i in np.flatnonzero(df["highly_variable"].to_numpy()):
            f.write(f"{i}\n")

    a = make()
    sc.pp.normalize_total(a, target_sum=1e4)
    sc.pp.log1p(a)
    df = sc.pp.highly_variable_genes(
        a, flavor="seurat", n_top_genes=SYN_TOP, batch_key="batch", inplace=False
    )
    with open(os.path.join(OUT, "synthetic.seurat.tsv"), "w") as f:
        f.write(f"# n_top={SYN_TOP}\tgene\tdispersions_norm\tnbatches\thighly_variable\n")
        for i in range(n_genes):
            r = df.loc[f"g{i:02d}"]
            f.write(
                f"{i}\t{float(r['dispersions_norm'])!r}\t{int(r['highly_variable_nbatches'])}\t"
                f"{int(r['highly_variable'])}\n"
            )


def write_dataset(path: str) -> None:
    name = os.path.basename(path).removesuffix(".h5ad")
    a = ad.read_h5ad(path)
    n_top = n_top_for(a.n_vars)
    v3 = sc.pp.highly_variable_genes(
        a.copy(), flavor="seurat_v3", n_top_genes=n_top, batch_key="batch", inplace=False
    )
    b = a.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    s = sc.pp.highly_variable_genes(
        b, flavor="seurat", n_top_genes=n_top, batch_key="batch", inplace=False
    )
    s = s.loc[a.var_names]
    for flavor, df in (("seurat_v3", v3), ("seurat", s)):
        genes = a.var_names[df["highly_variable"].to_numpy()]
        with open(os.path.join(OUT, f"{name}.{flavor}.txt"), "w") as f:
            f.write(f"# n_top={n_top}\n")
            for g in genes:
                f.write(f"{g}\n")
        print(f"{name}.{flavor}: {len(genes)} genes (n_top={n_top})")


def main() -> None:
    warnings.simplefilter("ignore")
    os.makedirs(OUT, exist_ok=True)
    rng = np.random.default_rng(20240611)
    write_loess_cases(rng)
    write_synthetic(rng)
    for path in sorted(glob.glob(os.path.join(DATA, "*.h5ad"))):
        write_dataset(path)


if __name__ == "__main__":
    main()
