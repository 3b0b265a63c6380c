"""Export kang_pbmc's 2,000 HVGs (spec preprocessing steps 2-3) as a raw-count CSR binary
for the CSR x dense benchmark (benches/cpu_ops.rs).

Format (little endian): u64 n_rows, u64 n_cols, u64 nnz, u64 indptr[n_rows+1],
u32 indices[nnz], f32 data[nnz].
Usage: /work/peers-venv/bin/python scripts/export_kang_hvg_csr.py [in.h5ad] [out.bin]
"""
import sys

import numpy as np
import scanpy as sc
import scipy.sparse as sp

src = sys.argv[1] if len(sys.argv) > 1 else "/work/shared/data/kang_pbmc.h5ad"
dst = sys.argv[2] if len(sys.argv) > 2 else "/tmp/kang_hvg2000.csr"
ad = sc.read_h5ad(src)
raw = sp.csr_matrix(ad.X, dtype=np.float32)
norm = ad.copy()
sc.pp.normalize_total(norm, target_sum=1e4)
sc.pp.log1p(norm)
sc.pp.highly_variable_genes(norm, flavor="seurat", n_top_genes=2000, batch_key="batch")
keep = np.flatnonzero(norm.var["highly_variable"].values)
x = raw[:, keep].tocsr()
x.sort_indices()
with open(dst, "wb") as f:
    np.array([x.shape[0], x.shape[1], x.nnz], dtype="<u8").tofile(f)
    x.indptr.astype("<u8").tofile(f)
    x.indices.astype("<u4").tofile(f)
    x.data.astype("<f4").tofile(f)
print(f"{dst}: {x.shape[0]} cells x {x.shape[1]} genes, nnz {x.nnz}, density {x.nnz / (x.shape[0] * x.shape[1]):.4f}")
