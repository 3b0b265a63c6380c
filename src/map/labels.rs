//! Label transfer with an "Unknown" answer: cells whose predicted type has a probability below
//! the threshold are labelled `Unknown` (a type the reference may lack), and the best guess is
//! kept beside it.

use crate::data::labels::{CellLabels, cell_labels};
use crate::data::{Column, Frame};
use crate::model::sup::LabelPrediction;

/// The label given to cells below the confidence threshold.
pub const UNKNOWN: &str = "Unknown";

/// The obs columns of a mapped query: `scdreamer_label` (categories of the model plus
/// `Unknown`), `scdreamer_label_best` (the most probable reference type),
/// `scdreamer_label_confidence` (its probability).
pub fn obs_columns(
    pred: &LabelPrediction,
    categories: &[String],
    threshold: f32,
) -> Vec<(String, Column)> {
    let mut with_unknown = categories.to_vec();
    let unknown = match categories.iter().position(|c| c == UNKNOWN) {
        Some(i) => i as i32,
        None => {
            with_unknown.push(UNKNOWN.to_string());
            categories.len() as i32
        }
    };
    let label: Vec<i32> = pred
        .codes
        .iter()
        .zip(&pred.confidence)
        .map(|(&c, &p)| if p < threshold { unknown } else { c as i32 })
        .collect();
    vec![
        (
            "scdreamer_label".into(),
            Column::Categorical {
                codes: label,
                categories: with_unknown,
                ordered: false,
            },
        ),
        ("scdreamer_label_best".into(), pred.label_column(categories)),
        (
            "scdreamer_label_confidence".into(),
            Column::F32(pred.confidence.clone()),
        ),
    ]
}

/// `map --labels-key`: the query's own labels as codes into the model's `categories` (by
/// name; a label the model lacks counts as none). Errors: the model is not Sup, the key is
/// missing, or no cell is labelled.
pub fn query_labels(
    obs: &Frame,
    key: &str,
    unlabeled: &str,
    categories: &[String],
) -> anyhow::Result<CellLabels> {
    if categories.is_empty() {
        anyhow::bail!("--labels-key needs a scDREAMER-Sup model (this one has no cell types)");
    }
    let (own, _) = cell_labels(obs, key, unlabeled)?;
    let to_model: Vec<Option<u32>> = own
        .categories
        .iter()
        .map(|c| categories.iter().position(|m| m == c).map(|i| i as u32))
        .collect();
    Ok(CellLabels {
        codes: own
            .codes
            .iter()
            .map(|c| c.and_then(|c| to_model[c as usize]))
            .collect(),
        categories: categories.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn low_confidence_is_unknown_and_best_guess_is_kept() {
        let pred = LabelPrediction {
            codes: vec![0, 1, 1],
            confidence: vec![0.9, 0.4, 0.6],
        };
        let cats = vec!["B".to_string(), "T".to_string()];
        let cols = obs_columns(&pred, &cats, 0.5);
        let Column::Categorical {
            codes, categories, ..
        } = &cols[0].1
        else {
            panic!("scdreamer_label is not categorical")
        };
        assert_eq!(categories, &["B", "T", "Unknown"]);
        assert_eq!(codes, &[0, 2, 1]);
        let Column::Categorical { codes, .. } = &cols[1].1 else {
            panic!("scdreamer_label_best is not categorical")
        };
        assert_eq!(codes, &[0, 1, 1]);
    }

    #[test]
    fn query_labels_are_matched_to_the_model_by_name() {
        let obs = Frame {
            repeated_names: Vec::new(),
            index: (0..4).map(|i| format!("c{i}")).collect(),
            index_name: "_index".into(),
            columns: vec![(
                "ct".into(),
                Column::Str(["T", "NK", "Unknown", "B"].map(String::from).to_vec()),
            )],
        };
        let cats = vec!["B".to_string(), "T".to_string()];
        let l = query_labels(&obs, "ct", "Unknown", &cats).unwrap();
        assert_eq!(l.codes, vec![Some(1), None, None, Some(0)]);
        assert_eq!(l.categories, cats);
        let e = query_labels(&obs, "ct", "Unknown", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("scDREAMER-Sup model"), "{e}");
    }
}
