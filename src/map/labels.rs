//! Label transfer with an "Unknown" answer: cells whose predicted type has a probability below
//! the threshold are labelled `Unknown` (a type the reference may lack), and the best guess is
//! kept beside it.

use crate::data::Column;
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
        (
            "scdreamer_label_best".into(),
            Column::Categorical {
                codes: pred.codes.iter().map(|&c| c as i32).collect(),
                categories: categories.to_vec(),
                ordered: false,
            },
        ),
        (
            "scdreamer_label_confidence".into(),
            Column::F32(pred.confidence.clone()),
        ),
    ]
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
}
