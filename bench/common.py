"""What the bench scripts share: the repository and shared-data paths, the command line every
per-dataset script starts from, the scanpy preprocessing of peers.py and a markdown table."""
import argparse
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"


def dataset_parser(doc, datasets, input_help, methods):
    """--out, --datasets (comma-separated names under ../shared/data), --input (one file
    instead), --binary and --methods; the caller adds its own flags."""
    p = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", required=True)
    p.add_argument("--datasets", default=datasets)
    p.add_argument("--input", default=None, help=input_help)
    p.add_argument("--binary", default=str(ROOT / "target" / "release" / "scdreamer"))
    p.add_argument("--methods", default=methods)
    return p


def input_files(a):
    """The files of --input or --datasets."""
    return [Path(a.input)] if a.input else [SHARED / "data" / f"{n}.h5ad" for n in a.datasets.split(",")]


def hvg_counts(adata, batch_key):
    """peers.py's preprocessing up to the HVG subset: counts kept in layers['counts'], X
    normalised to 1e4 and log1p, 2,000 seurat_v3 genes (per batch) where there are more."""
    import scanpy as sc
    adata.layers["counts"] = adata.X.copy()
    sc.pp.normalize_total(adata, target_sum=1e4)
    sc.pp.log1p(adata)
    if adata.n_vars > 2000:
        sc.pp.highly_variable_genes(adata, flavor="seurat_v3", layer="counts", n_top_genes=2000,
                                    batch_key=batch_key)
        adata = adata[:, adata.var["highly_variable"]].copy()
    return adata


def markdown(df):
    """A markdown table without the optional tabulate dependency."""
    cols = [str(c) for c in df.columns]
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "--:|" * len(cols)]
    for name, row in df.iterrows():
        lines.append(f"| {name} | " + " | ".join(f"{v:.3f}" for v in row.values) + " |")
    return "\n".join(lines)
