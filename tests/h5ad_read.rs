//! Every shared dataset reads with the shape, nnz, totals and batch x cell type table that
//! anndata reports (reference numbers taken with anndata 0.12 / pandas.crosstab).

mod common;

use std::path::Path;

use common::{DEMO, read, shared_data};
use scdreamer::data::AnnData;

struct Expected {
    file: &'static str,
    shape: (usize, usize),
    nnz: usize,
    total: f64,
    first_cell: &'static str,
    first_gene: &'static str,
    /// pandas.crosstab(batch, cell_type), in parts (batches)
    table: &'static [Crosstab],
}

/// Cells per (batch, cell type): the cell types, then per batch its cells of each type.
struct Crosstab {
    types: &'static [&'static str],
    rows: &'static [(&'static str, &'static [usize])],
}

const CL3_TYPES: &[&str] = &["H1975", "H2228", "HCC827"];
const CL5_TYPES: &[&str] = &["A549", "H1975", "H2228", "H838", "HCC827"];
#[rustfmt::skip]
const CL3: Crosstab = Crosstab { types: CL3_TYPES, rows: &[("CEL-seq2", &[103, 67, 70]), ("Drop-seq", &[79, 65, 66])] };
#[rustfmt::skip]
const CL3_10X: Crosstab = Crosstab { types: CL3_TYPES, rows: &[("10x", &[310, 312, 273])] };
#[rustfmt::skip]
const CL5_PLATES: Crosstab = Crosstab { types: CL5_TYPES, rows: &[
    ("CEL-seq2_p1", &[45, 30, 28, 32, 21]), ("CEL-seq2_p2", &[40, 31, 23, 50, 19]), ("CEL-seq2_p3", &[101, 28, 34, 64, 25]),
] };
#[rustfmt::skip]
const CL5_10X: Crosstab = Crosstab { types: CL5_TYPES, rows: &[("10x", &[31, 151, 181, 347, 197])] };
#[rustfmt::skip]
const KANG: Crosstab = Crosstab { types: &["B cells", "CD14+ Monocytes", "CD4 T cells", "NK cells"], rows: &[
    ("donor_1015", &[453, 779, 848, 177]), ("donor_1016", &[126, 369, 422, 128]), ("donor_1244", &[116, 415, 1068, 105]),
    ("donor_1256", &[216, 390, 1001, 261]), ("donor_1488", &[218, 294, 1182, 116]),
] };

#[rustfmt::skip]
const FILES: [Expected; 5] = [
    Expected { file: "cellbench_3cl_10xsub.h5ad", shape: (1345, 824), nnz: 461_281, total: 2.16827e6,
        first_cell: "10x_CELL_000001", first_gene: "ENSG00000129991", table: &[CL3_10X, CL3] },
    Expected { file: "cellbench_5cl_10xsub.h5ad", shape: (1478, 967), nnz: 1_356_334, total: 3.5355324e7,
        first_cell: "10x_Lib90_00002", first_gene: "ENSG00000113810", table: &[CL5_10X, CL5_PLATES] },
    Expected { file: "cellbench_3cl.h5ad", shape: (450, 15073), nnz: 2_864_360, total: 1.4666419e7,
        first_cell: "CEL-seq2_A1", first_gene: "ENSG00000236086", table: &[CL3] },
    Expected { file: "cellbench_5cl.h5ad", shape: (571, 12653), nnz: 3_062_685, total: 1.3874007e7,
        first_cell: "CEL-seq2_p1_p1_A1", first_gene: "ENSG00000154529", table: &[CL5_PLATES] },
    Expected { file: "kang_pbmc.h5ad", shape: (8684, 2511), nnz: 3_683_938, total: 1.117182e7,
        first_cell: "AAACATACATTTCC-1", first_gene: "ENSG00000188976", table: &[KANG] },
];

/// Reads `file` of the shared data and checks it against its row of [`FILES`]; None (skip)
/// when the shared data is absent.
fn check(file: &str) -> Option<AnnData> {
    let e = FILES
        .iter()
        .find(|e| e.file == file)
        .expect("a row of FILES");
    let path = shared_data()?.join(e.file);
    let a = scdreamer::data::h5ad::read_h5ad(&path, &Default::default())
        .unwrap_or_else(|err| panic!("{}: {err:#}", e.file));
    assert_eq!((a.n_obs(), a.n_vars()), e.shape, "{} shape", e.file);
    assert_eq!(a.obs.len(), e.shape.0);
    assert_eq!(a.var.len(), e.shape.1);
    assert_eq!(a.x.nnz(), e.nnz, "{} nnz", e.file);
    let total: f64 = a.x.data.iter().map(|&v| v as f64).sum();
    assert!(
        (total - e.total).abs() / e.total < 1e-6,
        "{} total {total} vs {}",
        e.file,
        e.total
    );
    assert_eq!(a.obs.index[0], e.first_cell);
    assert_eq!(a.var.index[0], e.first_gene);
    assert_eq!(a.x_dtype, "float32");
    // rows sorted and in range
    for r in 0..a.n_obs() {
        let (idx, _) = a.x.row(r);
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        assert!(idx.iter().all(|&j| (j as usize) < a.n_vars()));
    }
    let batch = a.obs.require("batch", "obs").unwrap();
    let ct = a.obs.require("cell_type", "obs").unwrap();
    let mut table = std::collections::BTreeMap::<(String, String), usize>::new();
    for i in 0..a.n_obs() {
        let key = (batch.label(i).unwrap(), ct.label(i).unwrap());
        *table.entry(key).or_default() += 1;
    }
    let mut expected = std::collections::BTreeMap::<(String, String), usize>::new();
    for part in e.table {
        for &(b, counts) in part.rows {
            assert_eq!(counts.len(), part.types.len());
            for (c, &n) in part.types.iter().zip(counts) {
                expected.insert((b.to_string(), c.to_string()), n);
            }
        }
    }
    assert_eq!(table, expected, "{} batch x cell type", e.file);
    Some(a)
}

#[test]
fn cellbench_3cl_10xsub() {
    let Some(a) = check("cellbench_3cl_10xsub.h5ad") else {
        return;
    };
    // README batch totals: 10x 895, CEL-seq2 240, Drop-seq 210
    let b = a.obs.get("batch").unwrap();
    let count = |name: &str| {
        (0..a.n_obs())
            .filter(|&i| b.label(i).as_deref() == Some(name))
            .count()
    };
    assert_eq!(
        (count("10x"), count("CEL-seq2"), count("Drop-seq")),
        (895, 240, 210)
    );
}

#[test]
fn cellbench_5cl_10xsub() {
    check("cellbench_5cl_10xsub.h5ad");
}

#[test]
fn cellbench_3cl() {
    check("cellbench_3cl.h5ad");
}

#[test]
fn cellbench_5cl() {
    check("cellbench_5cl.h5ad");
}

#[test]
fn kang_pbmc() {
    let Some(a) = check("kang_pbmc.h5ad") else {
        return;
    };
    assert_eq!(a.obs.index_name, "cell");
    assert_eq!(a.var.keys(), vec!["gene_symbol", "gene_ids"]);
}

#[test]
fn bundled_demo_reads() {
    let a = read(Path::new(DEMO));
    assert_eq!((a.n_obs(), a.n_vars()), (1345, 824));
    assert_eq!(
        a.obs.keys(),
        vec![
            "batch",
            "cell_type",
            "demuxlet_cls",
            "total_count_per_cell",
            "number_of_genes"
        ]
    );
    // total_count_per_cell is stored by the dataset's authors: it must equal our row sums.
    let Some(scdreamer::data::Column::I64(tc)) = a.obs.get("total_count_per_cell") else {
        panic!("total_count_per_cell should be int64")
    };
    let sums = a.x.row_sums();
    // The stored totals were computed on the full gene set, so they are >= our sums
    // (and strictly larger for some cells, since genes were dropped).
    assert!(tc.iter().zip(&sums).all(|(&t, &s)| t as f64 >= s));
    assert!(tc.iter().zip(&sums).any(|(&t, &s)| t as f64 > s));
}
