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
    /// (batch, cell type, cells), in parts
    table: &'static [&'static [(&'static str, &'static str, usize)]],
}

const CL3: &[(&str, &str, usize)] = &[
    ("CEL-seq2", "H1975", 103),
    ("CEL-seq2", "H2228", 67),
    ("CEL-seq2", "HCC827", 70),
    ("Drop-seq", "H1975", 79),
    ("Drop-seq", "H2228", 65),
    ("Drop-seq", "HCC827", 66),
];
const CL3_10X: &[(&str, &str, usize)] = &[
    ("10x", "H1975", 310),
    ("10x", "H2228", 312),
    ("10x", "HCC827", 273),
];
const CL5_PLATES: &[(&str, &str, usize)] = &[
    ("CEL-seq2_p1", "A549", 45),
    ("CEL-seq2_p1", "H1975", 30),
    ("CEL-seq2_p1", "H2228", 28),
    ("CEL-seq2_p1", "H838", 32),
    ("CEL-seq2_p1", "HCC827", 21),
    ("CEL-seq2_p2", "A549", 40),
    ("CEL-seq2_p2", "H1975", 31),
    ("CEL-seq2_p2", "H2228", 23),
    ("CEL-seq2_p2", "H838", 50),
    ("CEL-seq2_p2", "HCC827", 19),
    ("CEL-seq2_p3", "A549", 101),
    ("CEL-seq2_p3", "H1975", 28),
    ("CEL-seq2_p3", "H2228", 34),
    ("CEL-seq2_p3", "H838", 64),
    ("CEL-seq2_p3", "HCC827", 25),
];
const CL5_10X: &[(&str, &str, usize)] = &[
    ("10x", "A549", 31),
    ("10x", "H1975", 151),
    ("10x", "H2228", 181),
    ("10x", "H838", 347),
    ("10x", "HCC827", 197),
];
const KANG: &[(&str, &str, usize)] = &[
    ("donor_1015", "B cells", 453),
    ("donor_1015", "CD14+ Monocytes", 779),
    ("donor_1015", "CD4 T cells", 848),
    ("donor_1015", "NK cells", 177),
    ("donor_1016", "B cells", 126),
    ("donor_1016", "CD14+ Monocytes", 369),
    ("donor_1016", "CD4 T cells", 422),
    ("donor_1016", "NK cells", 128),
    ("donor_1244", "B cells", 116),
    ("donor_1244", "CD14+ Monocytes", 415),
    ("donor_1244", "CD4 T cells", 1068),
    ("donor_1244", "NK cells", 105),
    ("donor_1256", "B cells", 216),
    ("donor_1256", "CD14+ Monocytes", 390),
    ("donor_1256", "CD4 T cells", 1001),
    ("donor_1256", "NK cells", 261),
    ("donor_1488", "B cells", 218),
    ("donor_1488", "CD14+ Monocytes", 294),
    ("donor_1488", "CD4 T cells", 1182),
    ("donor_1488", "NK cells", 116),
];

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
    let expected: std::collections::BTreeMap<(String, String), usize> = (e.table.iter())
        .flat_map(|part| part.iter())
        .map(|&(b, c, n)| ((b.to_string(), c.to_string()), n))
        .collect();
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
