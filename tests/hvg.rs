//! Highly variable genes on the real datasets in /work/shared/data against
//! scanpy 1.11.5's lists (tests/fixtures/hvg/<dataset>.<flavor>.txt, written by
//! scripts/make_hvg_fixtures.py). Requires >= 95% overlap.

mod common;

use std::collections::HashSet;

use common::{read, shared_data};
use scdreamer::data::anndata::{AnnData, Column};
use scdreamer::data::hvg::{self, BatchedCounts, HvgResult};

const MIN_OVERLAP: f64 = 0.95;
const DATASETS: [&str; 5] = [
    "cellbench_3cl",
    "cellbench_3cl_10xsub",
    "cellbench_5cl",
    "cellbench_5cl_10xsub",
    "kang_pbmc",
];

/// Batch code per cell from obs['batch'] (categorical codes, or sorted labels).
fn batch_codes(a: &AnnData) -> (Vec<u32>, usize) {
    match a.obs.get("batch").expect("obs['batch']") {
        Column::Categorical {
            codes, categories, ..
        } => {
            assert!(codes.iter().all(|&c| c >= 0), "missing batch labels");
            (codes.iter().map(|&c| c as u32).collect(), categories.len())
        }
        col => {
            let labels: Vec<String> = (0..col.len()).map(|i| col.label(i).unwrap()).collect();
            let mut uniq = labels.clone();
            uniq.sort();
            uniq.dedup();
            let codes = labels
                .iter()
                .map(|l| uniq.binary_search(l).unwrap() as u32)
                .collect();
            (codes, uniq.len())
        }
    }
}

/// scanpy's list for (dataset, flavor) and the n_top it used.
fn scanpy_list(dataset: &str, flavor: &str) -> (usize, Vec<String>) {
    let path = format!(
        "{}/tests/fixtures/hvg/{dataset}.{flavor}.txt",
        env!("CARGO_MANIFEST_DIR")
    );
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut lines = text.lines();
    let n_top = lines
        .next()
        .and_then(|l| l.strip_prefix("# n_top="))
        .unwrap_or_else(|| panic!("{path}: first line must be '# n_top=N'"))
        .parse()
        .unwrap();
    (n_top, lines.map(str::to_string).collect())
}

type Flavor = fn(BatchedCounts<'_>, usize) -> anyhow::Result<HvgResult>;

fn check_flavor(flavor: &str, run: Flavor) {
    let Some(dir) = shared_data() else { return };
    let mut failures = vec![];
    for dataset in DATASETS {
        let path = dir.join(format!("{dataset}.h5ad"));
        let a = read(&path);
        let (codes, n_batches) = batch_codes(&a);
        let (n_top, want) = scanpy_list(dataset, flavor);
        let t = std::time::Instant::now();
        let got = run(BatchedCounts::new(&a.x, Some(&codes), n_batches), n_top).unwrap();
        let secs = t.elapsed().as_secs_f64();
        assert_eq!(
            got.selected.len(),
            n_top.min(a.n_vars()),
            "{dataset}: selection size"
        );
        assert!(
            got.selected.windows(2).all(|w| w[0] < w[1]),
            "{dataset}: not ascending"
        );
        let ours: HashSet<&str> = got
            .selected
            .iter()
            .map(|&j| a.var.index[j].as_str())
            .collect();
        let common = want.iter().filter(|g| ours.contains(g.as_str())).count();
        let overlap = common as f64 / want.len() as f64;
        println!(
            "{flavor:>9} {dataset:<22} n_top={n_top:<5} overlap {common}/{} = {:.2}% ({secs:.2}s)",
            want.len(),
            100.0 * overlap
        );
        if overlap < MIN_OVERLAP {
            failures.push(format!("{dataset}: {:.2}%", 100.0 * overlap));
        }
    }
    assert!(
        failures.is_empty(),
        "{flavor}: overlap below 95%: {failures:?}"
    );
}

#[test]
fn seurat_v3_matches_scanpy_on_shared_datasets() {
    check_flavor("seurat_v3", hvg::seurat_v3);
}

#[test]
fn seurat_matches_scanpy_on_shared_datasets() {
    check_flavor("seurat", hvg::seurat);
}
