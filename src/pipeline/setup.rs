//! `setup`: the batch registry, the genes and the prepared counts of a data set held in memory.

use std::borrow::Cow;

use crate::data::labels::CellLabels;
use crate::data::{AnnData, Csr};
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
    /// Selects `genes` of `adata.x` (a copy: `adata` keeps its matrix).
    pub fn new(
        adata: &AnnData,
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        let x = Cow::Borrowed(&adata.x);
        let names = &adata.var.index;
        let mut s = Self::from_x(x, names, batch_key, batch, batch_names, genes, cfg, fixed)?;
        s.repeated_gene_names = adata.var.repeated_names.clone();
        Ok(s)
    }

    /// [`Setup::new`] that takes `adata.x` (left empty): when every gene is kept, in order,
    /// the matrix moves instead of being copied, so a file read whole is held once.
    pub fn new_taking_x(
        adata: &mut AnnData,
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        let x = Cow::Owned(std::mem::take(&mut adata.x));
        let names = &adata.var.index;
        let mut s = Self::from_x(x, names, batch_key, batch, batch_names, genes, cfg, fixed)?;
        s.repeated_gene_names = adata.var.repeated_names.clone();
        Ok(s)
    }

    /// `x`: cells x all input genes, named by `var_index`. Borrowed, the selected genes are
    /// copied out of it; owned, they are taken from it (no copy when every gene is kept).
    #[allow(clippy::too_many_arguments)]
    fn from_x(
        x: Cow<'_, Csr>,
        var_index: &[String],
        batch_key: &str,
        batch: Vec<u32>,
        batch_names: Vec<String>,
        genes: Vec<usize>,
        cfg: &ModelConfig,
        fixed: Option<TransformConstants>,
    ) -> anyhow::Result<Self> {
        // normalize_total's denominator: counts over all input genes, before selection.
        let total: Vec<f32> = x.row_sums().iter().map(|&s| s as f32).collect();
        let counts = match x {
            Cow::Borrowed(m) => m.select(&(0..m.n_rows).collect::<Vec<_>>(), &genes),
            Cow::Owned(m) => m.into_columns(&genes),
        };
        let gene_names = genes.iter().map(|&j| var_index[j].clone()).collect();
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
            repeated_gene_names: Vec::new(),
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
