//! The cell-type labels of a dataset (scDREAMER-Sup's training labels): read from an obs
//! column, a code per cell with the unlabelled category and missing values as None.

use crate::data::anndata::Frame;
use crate::data::validate::column_levels;

/// Below this many labelled cells a type gets a warning.
const MIN_LABELLED_PER_TYPE: usize = 3;

/// The cell-type labels of a dataset: a code per cell (None = unlabelled) and the type names.
#[derive(Clone, Debug, PartialEq)]
pub struct CellLabels {
    /// Code into `categories`; None for unlabelled cells (the unlabelled category or missing).
    pub codes: Vec<Option<u32>>,
    /// Cell types, in the column's category order, without the unlabelled category.
    pub categories: Vec<String>,
}

impl CellLabels {
    /// Number of labelled cells.
    pub fn n_labelled(&self) -> usize {
        self.codes.iter().filter(|c| c.is_some()).count()
    }

    /// Labelled cells of each type (indexed by code).
    pub fn labelled_per_type(&self) -> Vec<usize> {
        let mut per_type = vec![0usize; self.categories.len()];
        for c in self.codes.iter().flatten() {
            per_type[*c as usize] += 1;
        }
        per_type
    }

    /// Per-cell weights of the label loss that balance the cell types: a labelled cell of type
    /// c weighs `(n_labelled / (types present x n_c))^power` (power 0: 1 for every labelled
    /// cell; 1: every type weighs the same in total), an unlabelled cell 0.
    pub fn balanced_weights(&self, power: f32) -> Vec<f32> {
        let per_type = self.labelled_per_type();
        let present = per_type.iter().filter(|&&n| n > 0).count().max(1);
        let total = self.n_labelled() as f64;
        let w: Vec<f32> = per_type
            .iter()
            .map(|&n| (total / (present as f64 * n.max(1) as f64)).powf(power as f64) as f32)
            .collect();
        self.codes
            .iter()
            .map(|c| c.map_or(0.0, |c| w[c as usize]))
            .collect()
    }

    /// Codes and 0/1 mask of `rows`. Unlabelled cells get the dummy code 0, masked out (the
    /// authors give them the first type's one-hot, S/utils.py:133-138).
    pub fn gather(&self, rows: &[u32]) -> (Vec<u32>, Vec<f32>) {
        rows.iter()
            .map(|&r| match self.codes.get(r as usize).copied().flatten() {
                Some(c) => (c, 1.0),
                None => (0, 0.0),
            })
            .unzip()
    }
}

/// Reads the labels column `key` of `obs`. Cells whose value is `unlabeled` or missing (code -1
/// in a categorical, NaN in numbers) are unlabelled. Returns the labels and warnings for the
/// user (a type with fewer than 3 labelled cells, a single type).
///
/// Errors: the key is missing (the message lists the obs keys) or no cell is labelled.
pub fn cell_labels(
    obs: &Frame,
    key: &str,
    unlabeled: &str,
) -> anyhow::Result<(CellLabels, Vec<String>)> {
    let col = obs
        .require(key, "obs")
        .map_err(|e| anyhow::anyhow!("labels {e} (choose one with --labels-key)"))?;
    let (levels, names) = column_levels(col);
    let skip = names.iter().position(|n| n == unlabeled);
    let categories: Vec<String> = names.iter().filter(|n| *n != unlabeled).cloned().collect();
    let codes: Vec<Option<u32>> = levels
        .iter()
        .map(|l| match (*l, skip) {
            (Some(c), Some(s)) if c as usize == s => None,
            (Some(c), Some(s)) if c as usize > s => Some(c - 1),
            (l, _) => l,
        })
        .collect();
    let labels = CellLabels { codes, categories };
    if labels.n_labelled() == 0 {
        anyhow::bail!(
            "obs['{key}'] labels none of the {} cells (all are '{unlabeled}' or missing): \
             run without --labels-key for the unsupervised model",
            levels.len()
        );
    }
    let counts = labels.labelled_per_type();
    let mut warnings = Vec::new();
    let rare: Vec<(&String, usize)> = labels
        .categories
        .iter()
        .zip(counts.iter().copied())
        .filter(|&(_, k)| k < MIN_LABELLED_PER_TYPE)
        .collect();
    if let [(name, k)] = rare.as_slice() {
        warnings.push(format!(
            "cell type '{name}' in obs['{key}'] has only {k} labelled cell(s): \
             too few to learn it, its predictions will be unreliable"
        ));
    } else if !rare.is_empty() {
        // One line, however many: a numeric column (one value per cell) is not a label column.
        let shown: Vec<String> = rare
            .iter()
            .take(3)
            .map(|(n, k)| format!("'{n}' ({k})"))
            .collect();
        warnings.push(format!(
            "{} of the {} cell types in obs['{key}'] have fewer than {MIN_LABELLED_PER_TYPE} \
             labelled cells (e.g. {}): too few to learn them, their predictions will be \
             unreliable{}",
            rare.len(),
            labels.categories.len(),
            shown.join(", "),
            if rare.len() * 2 > labels.categories.len() {
                "; is this a label column?"
            } else {
                ""
            }
        ));
    }
    if labels.categories.len() == 1 {
        warnings.push(format!(
            "obs['{key}'] has a single labelled type ('{}'): every cell will be predicted as it",
            labels.categories[0]
        ));
    }
    Ok((labels, warnings))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::anndata::Column;

    #[test]
    fn balanced_weights_give_every_labelled_type_the_same_total() {
        // 6 labelled cells: 4 of type 0, 2 of type 2, none of type 1 (absent: not counted).
        let l = CellLabels {
            codes: vec![Some(0), Some(0), None, Some(2), Some(0), Some(2), Some(0)],
            categories: vec!["a".into(), "b".into(), "c".into()],
        };
        let w = l.balanced_weights(1.0);
        assert_eq!(w, vec![0.75, 0.75, 0.0, 1.5, 0.75, 1.5, 0.75]);
        let total = |c: u32| -> f32 {
            (0..w.len())
                .filter(|&i| l.codes[i] == Some(c))
                .map(|i| w[i])
                .sum()
        };
        assert_eq!(total(0), total(2));
        // Power 0: every labelled cell weighs 1 (the plain masked mean).
        assert_eq!(
            l.balanced_weights(0.0),
            vec![1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0]
        );
        let half = l.balanced_weights(0.5);
        assert!((half[0] - 0.75f32.sqrt()).abs() < 1e-6 && (half[3] - 1.5f32.sqrt()).abs() < 1e-6);
    }

    #[test]
    fn unlabelled_category_and_missing_values_are_unlabelled() {
        let col = Column::Categorical {
            codes: vec![0, 1, 2, -1, 2, 0, 0, 2],
            categories: vec!["B".into(), "Unknown".into(), "T".into()],
            ordered: false,
        };
        let (l, w) =
            cell_labels(&Frame::one_column("cell_type", col), "cell_type", "Unknown").unwrap();
        assert_eq!(l.categories, vec!["B", "T"]);
        assert_eq!(
            l.codes,
            vec![
                Some(0),
                None,
                Some(1),
                None,
                Some(1),
                Some(0),
                Some(0),
                Some(1)
            ]
        );
        assert!(w.is_empty(), "{w:?}");
        let (codes, mask) = l.gather(&[1, 2, 0]);
        assert_eq!(codes, vec![0, 1, 0]);
        assert_eq!(mask, vec![0.0, 1.0, 1.0]);
    }

    #[test]
    fn rare_type_warns_and_all_unlabelled_errors() {
        let col = Column::Str(
            ["a", "a", "a", "rare", "?", "?"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
        );
        let (l, w) = cell_labels(&Frame::one_column("cell_type", col), "cell_type", "?").unwrap();
        assert_eq!(l.categories, vec!["a", "rare"]);
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(w[0].contains("'rare'") && w[0].contains("only 1"), "{w:?}");

        let col = Column::F64(vec![f64::NAN, f64::NAN]);
        let e = cell_labels(&Frame::one_column("cell_type", col), "cell_type", "Unknown")
            .unwrap_err()
            .to_string();
        assert!(e.contains("without --labels-key"), "{e}");
        let e = cell_labels(
            &Frame::one_column("cell_type", Column::I32(vec![1])),
            "celltype",
            "Unknown",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("'celltype' not found") && e.contains("cell_type"),
            "{e}"
        );
    }
}
