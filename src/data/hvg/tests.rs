//! Checks against scanpy on a 50 x 30 count matrix with two batches
//! (fixtures written by scripts/make_hvg_fixtures.py).

use super::*;
use crate::data::csr::Csr;

fn fixture(name: &str) -> String {
    let path = format!("{}/tests/fixtures/hvg/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The synthetic counts as CSR plus batch codes.
fn synthetic() -> (Csr, Vec<u32>) {
    let mut x = Csr {
        indptr: vec![0],
        ..Default::default()
    };
    let mut batch = vec![];
    for line in fixture("synthetic_counts.tsv")
        .lines()
        .filter(|l| !l.starts_with('#'))
    {
        let v: Vec<u32> = line.split('\t').map(|s| s.parse().unwrap()).collect();
        batch.push(v[0]);
        x.n_cols = v.len() - 1;
        for (j, &c) in v[1..].iter().enumerate() {
            if c != 0 {
                x.indices.push(j as u32);
                x.data.push(c as f32);
            }
        }
        x.indptr.push(x.data.len() as u64);
        x.n_rows += 1;
    }
    (x, batch)
}

/// Rows of numbers of an expected-value fixture, and its n_top.
fn expected(name: &str) -> (usize, Vec<Vec<f64>>) {
    let text = fixture(name);
    let header = text.lines().next().unwrap();
    let n_top = header
        .trim_start_matches("# n_top=")
        .split('\t')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let rows = text
        .lines()
        .skip(1)
        .map(|l| l.split('\t').map(|s| s.parse().unwrap()).collect())
        .collect();
    (n_top, rows)
}

fn close(a: f64, b: f64) -> bool {
    (a.is_nan() && b.is_nan()) || (a - b).abs() <= 1e-9 * (1.0 + b.abs())
}

fn selected_of(rows: &[Vec<f64>], col: usize) -> Vec<usize> {
    rows.iter()
        .enumerate()
        .filter(|(_, r)| r[col] == 1.0)
        .map(|(i, _)| i)
        .collect()
}

#[test]
fn seurat_v3_matches_scanpy_on_synthetic_counts() {
    let (x, batch) = synthetic();
    let (n_top, rows) = expected("synthetic.seurat_v3.tsv");
    let r = seurat_v3(BatchedCounts::new(&x, Some(&batch), 2), n_top).unwrap();
    let rank = r.median_rank.as_ref().unwrap();
    for (j, row) in rows.iter().enumerate() {
        assert!(
            close(r.score[j], row[1]),
            "gene {j}: variances_norm {} vs scanpy {}",
            r.score[j],
            row[1]
        );
        assert!(
            close(rank[j], row[2]),
            "gene {j}: rank {} vs scanpy {}",
            rank[j],
            row[2]
        );
        assert_eq!(r.n_batches_hvg[j], row[3] as u32, "gene {j}: nbatches");
    }
    assert_eq!(r.selected, selected_of(&rows, 4));
}

#[test]
fn seurat_v3_paper_matches_scanpy_on_synthetic_counts() {
    let (x, batch) = synthetic();
    let text = fixture("synthetic.seurat_v3_paper.txt");
    let want: Vec<usize> = text.lines().skip(1).map(|l| l.parse().unwrap()).collect();
    let r = seurat_v3_paper(BatchedCounts::new(&x, Some(&batch), 2), want.len()).unwrap();
    assert_eq!(r.selected, want);
    // The two orderings must differ on this matrix, or the test proves nothing.
    assert_ne!(
        seurat_v3(BatchedCounts::new(&x, Some(&batch), 2), want.len())
            .unwrap()
            .selected,
        want
    );
}

#[test]
fn seurat_matches_scanpy_on_synthetic_counts() {
    let (x, batch) = synthetic();
    let (n_top, rows) = expected("synthetic.seurat.tsv");
    let r = seurat(BatchedCounts::new(&x, Some(&batch), 2), n_top).unwrap();
    for (j, row) in rows.iter().enumerate() {
        // float32 log1p/expm1 differ from numpy's by an ulp at most.
        let ok = (r.score[j].is_nan() && row[1].is_nan()) || (r.score[j] - row[1]).abs() < 1e-4;
        assert!(
            ok,
            "gene {j}: dispersions_norm {} vs scanpy {}",
            r.score[j], row[1]
        );
        assert_eq!(r.n_batches_hvg[j], row[2] as u32, "gene {j}: nbatches");
    }
    assert_eq!(r.selected, selected_of(&rows, 3));
}

#[test]
fn all_genes_kept_when_n_top_is_large() {
    let (x, batch) = synthetic();
    for r in [
        seurat_v3(BatchedCounts::new(&x, Some(&batch), 2), 30).unwrap(),
        seurat(BatchedCounts::new(&x, Some(&batch), 2), 100).unwrap(),
    ] {
        assert_eq!(r.selected, (0..30).collect::<Vec<_>>());
    }
}

#[test]
fn no_batch_is_one_batch() {
    let (x, _) = synthetic();
    let zeros = vec![0u32; x.n_rows];
    // Debug text, because NaN != NaN.
    let v3 =
        |b: Option<&[u32]>, n| format!("{:?}", seurat_v3(BatchedCounts::new(&x, b, n), 8).unwrap());
    assert_eq!(v3(None, 0), v3(Some(&zeros), 1));
    let s =
        |b: Option<&[u32]>, n| format!("{:?}", seurat(BatchedCounts::new(&x, b, n), 8).unwrap());
    assert_eq!(s(None, 0), s(Some(&zeros), 1));
}

#[test]
fn bad_batch_codes_are_errors() {
    let (x, mut batch) = synthetic();
    batch[3] = 5;
    let e = seurat_v3(BatchedCounts::new(&x, Some(&batch), 2), 5)
        .unwrap_err()
        .to_string();
    assert!(e.contains("cell 3") && e.contains("code 5"), "{e}");
    assert!(seurat(BatchedCounts::new(&x, Some(&batch[..10]), 2), 5).is_err());
}
