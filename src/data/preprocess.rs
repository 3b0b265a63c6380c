//! Preprocessing helpers: library sizes and choosing genes by name.

use std::collections::HashMap;
use std::path::Path;

use crate::data::csr::Csr;

/// Total counts of each cell, summed in f64 and stored as f32 (as scanpy's
/// `normalize_total` computes them).
pub fn library_sizes(x: &Csr) -> Vec<f32> {
    (0..x.n_rows)
        .map(|i| x.row(i).1.iter().map(|&v| v as f64).sum::<f64>() as f32)
        .collect()
}

/// Indices into `var_names` of the genes listed in `path`, one name per line, in
/// file order. Blank lines and lines starting with `#` are skipped; names are
/// trimmed. Unknown names (up to 5 listed) and duplicates are errors.
pub fn genes_from_file(path: &Path, var_names: &[String]) -> anyhow::Result<Vec<usize>> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| anyhow::anyhow!("cannot read gene list {}: {e}", path.display()))?;
    let names: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    genes_by_name(&names, var_names)
        .map_err(|e| anyhow::anyhow!("gene list {}: {e}", path.display()))
}

/// Indices into `var_names` of `names`, in the given order. Unknown names (up to
/// 5 listed), duplicates and an empty list are errors.
pub fn genes_by_name(names: &[&str], var_names: &[String]) -> anyhow::Result<Vec<usize>> {
    anyhow::ensure!(!names.is_empty(), "no gene names given");
    let index: HashMap<&str, usize> = var_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let mut seen = vec![false; var_names.len()];
    let mut out = Vec::with_capacity(names.len());
    let mut unknown = Vec::new();
    let mut n_unknown = 0usize;
    for &name in names {
        match index.get(name) {
            Some(&i) => {
                anyhow::ensure!(!seen[i], "gene '{name}' is listed more than once");
                seen[i] = true;
                out.push(i);
            }
            None => {
                n_unknown += 1;
                if unknown.len() < 5 {
                    unknown.push(format!("'{name}'"));
                }
            }
        }
    }
    anyhow::ensure!(
        n_unknown == 0,
        "{n_unknown} gene name(s) not found in var_names: {}{}",
        unknown.join(", "),
        if n_unknown > unknown.len() {
            ", ..."
        } else {
            ""
        }
    );
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::checked::assemble;
    use crate::data::names::strings as names;

    #[test]
    fn library_sizes_sum_rows() {
        let x = assemble((3, 3), vec![0, 2, 2, 3], vec![0, 2, 1], vec![1.0, 2.5, 3.0]);
        assert_eq!(library_sizes(&x), vec![3.5, 0.0, 3.0]);
    }

    #[test]
    fn genes_from_file_in_file_order() {
        let var = names(&["A", "B", "C", "D"]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("genes.txt");
        std::fs::write(&p, "# my genes\nC\n\n A \n").unwrap();
        assert_eq!(genes_from_file(&p, &var).unwrap(), vec![2, 0]);
    }

    #[test]
    fn unknown_and_duplicate_genes_are_errors() {
        let var = names(&["A", "B"]);
        let e = genes_by_name(&["A", "X1", "X2", "X3", "X4", "X5", "X6"], &var)
            .unwrap_err()
            .to_string();
        assert!(e.contains("6 gene name(s)"), "{e}");
        assert!(
            e.contains("'X5'") && !e.contains("'X6'") && e.contains("..."),
            "{e}"
        );
        let e = genes_by_name(&["B", "A", "B"], &var)
            .unwrap_err()
            .to_string();
        assert!(e.contains("'B' is listed more than once"), "{e}");
        assert!(genes_by_name(&[], &var).is_err());
        let missing = Path::new("/nonexistent/genes.txt");
        let e = genes_from_file(missing, &var).unwrap_err().to_string();
        assert!(e.contains("/nonexistent/genes.txt"), "{e}");
    }
}
