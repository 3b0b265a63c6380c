//! `setup`: the batch registry, the genes and the prepared counts of a data set held in memory.

use crate::data::AnnData;
use crate::data::labels::CellLabels;
use crate::model::config::ModelConfig;
use crate::model::dataset::{PreparedData, TransformConstants};

pub use crate::data::hvg::{GeneSelection, select_genes};

/// Everything `setup` decides: the genes, the batch registry and the prepared counts.
pub struct Setup {
    /// var indices (into the input) of the genes used, in model order.
    pub genes: Vec<usize>,
    pub gene_names: Vec<String>,
    /// var_names the input repeated (made unique on reading; recorded in a saved model so
    /// `embed` can tell a consistent renaming from an ambiguous one).
    pub repeated_gene_names: Vec<String>,
    pub batch_key: String,
    /// Sup: the obs key of the labels (their codes are in `prep.labels`).
    pub labels_key: Option<String>,
    pub prep: PreparedData,
    /// Cells with counts in the selected genes: the ones trained on. Every cell is embedded.
    pub train_rows: Vec<u32>,
}

impl Setup {
    /// Takes `adata.x` (left empty; clone the AnnData to keep it): when every gene is kept, in
    /// order, the matrix moves instead of being copied, so a file read whole is held once.
    pub fn new_taking_x(
        adata: &mut AnnData,
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        let x = std::mem::take(&mut adata.x);
        // normalize_total's denominator: counts over all input genes, before selection.
        let total: Vec<f32> = x.row_sums().iter().map(|&s| s as f32).collect();
        let counts = x.into_columns(&genes);
        let gene_names = genes.iter().map(|&j| adata.var.index[j].clone()).collect();
        let prep = PreparedData::new(counts, &total, batch, batch_names, cfg, fixed);
        let train_rows: Vec<u32> = (0..prep.n_cells())
            .filter(|&i| prep.library[i] > 0.0)
            .map(|i| i as u32)
            .collect();
        if train_rows.len() < 2 {
            anyhow::bail!(
                "only {} cell(s) have counts in the {} selected genes: nothing to train on",
                train_rows.len(),
                genes.len()
            );
        }
        Ok(Setup {
            genes,
            gene_names,
            repeated_gene_names: adata.var.repeated_names.clone(),
            batch_key: batch_key.to_string(),
            labels_key: None,
            prep,
            train_rows,
        })
    }
}

impl Setup {
    /// Registers cell-type labels (from `data::labels::cell_labels`): training becomes
    /// scDREAMER-Sup. The model config needs `n_labels = labels.categories.len()`.
    pub fn with_labels(mut self, labels_key: &str, labels: CellLabels) -> Self {
        self.labels_key = Some(labels_key.to_string());
        self.prep.labels = Some(labels);
        self
    }
}
