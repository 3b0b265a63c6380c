//! The query's genes and batches against a saved model: genes by name (missing ones are an
//! error, or zero columns when asked), batches by name (unknown ones become new batches).

use std::collections::HashMap;

use crate::data::validate::batch_codes;
use crate::data::{AnnData, Column};

/// The query's batches against the model's.
#[derive(Clone, Debug, PartialEq)]
pub struct QueryBatches {
    /// Code of every cell into `names`.
    pub codes: Vec<u32>,
    /// The model's batches followed by the query's new ones.
    pub names: Vec<String>,
    /// How many of `names` the model already had.
    pub n_reference: usize,
}

impl QueryBatches {
    pub fn new_names(&self) -> &[String] {
        &self.names[self.n_reference..]
    }
}

/// Batch codes of the query's cells: known batches keep the model's code, unknown ones get the
/// next codes in the order of the query's categories.
pub fn query_batches(
    adata: &AnnData,
    key: &str,
    reference: &[String],
) -> anyhow::Result<QueryBatches> {
    let (codes, names) = batch_codes(&adata.obs, key, true)?;
    let mut all = reference.to_vec();
    let mut pos: HashMap<String, u32> = reference
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), i as u32))
        .collect();
    let mut remap = Vec::with_capacity(names.len());
    for n in &names {
        let code = *pos.entry(n.clone()).or_insert_with(|| {
            all.push(n.clone());
            (all.len() - 1) as u32
        });
        remap.push(code);
    }
    Ok(QueryBatches {
        codes: codes.iter().map(|&c| remap[c as usize]).collect(),
        names: all,
        n_reference: reference.len(),
    })
}

/// Indices of the model's genes in `adata.var`. With `fill_missing`, genes the query lacks are
/// appended to `adata` as columns of zeros (their count is returned); at least one model gene
/// must be present either way.
pub fn query_genes(
    adata: &mut AnnData,
    model_genes: &[String],
    fill_missing: bool,
) -> anyhow::Result<(Vec<usize>, usize)> {
    let (pos, missing) = crate::saved_model::gene_positions(model_genes, &adata.var.index);
    if missing.len() == model_genes.len() {
        anyhow::bail!(
            "the query has none of the model's {} genes (model genes e.g. {}; query genes e.g. \
             {}): check that both use the same gene identifiers (symbols vs Ensembl IDs)",
            model_genes.len(),
            first_names(model_genes.iter()),
            first_names(adata.var.index.iter())
        );
    }
    if !missing.is_empty() && !fill_missing {
        anyhow::bail!(
            "the query lacks {} of the model's {} genes (e.g. {}): give data with those genes, \
             or --fill-missing-genes to treat them as zero counts",
            missing.len(),
            model_genes.len(),
            first_names(missing.iter().copied())
        );
    }
    let n_missing = missing.len();
    let mut idx = Vec::with_capacity(model_genes.len());
    let first_new = adata.var.index.len();
    let mut added = 0;
    for g in model_genes {
        match pos.get(g.as_str()) {
            Some(&j) => idx.push(j),
            None => {
                idx.push(first_new + added);
                added += 1;
            }
        }
    }
    if n_missing > 0 {
        let names: Vec<String> = missing.iter().map(|s| s.to_string()).collect();
        add_zero_genes(adata, names);
    }
    Ok((idx, n_missing))
}

/// Appends genes `names` with no counts (CSR: only the column count grows).
fn add_zero_genes(adata: &mut AnnData, names: Vec<String>) {
    adata.x.n_cols += names.len();
    let var = &mut adata.var;
    var.index.extend(names);
    let n = var.index.len();
    // Other var columns get missing values for the added genes.
    var.columns = std::mem::take(&mut var.columns)
        .into_iter()
        .map(|(k, c)| (k, pad_column(c, n)))
        .collect();
}

fn pad_column(c: Column, n: usize) -> Column {
    use Column as C;
    match c {
        C::Categorical {
            mut codes,
            categories,
            ordered,
        } => {
            codes.resize(n, -1);
            C::Categorical {
                codes,
                categories,
                ordered,
            }
        }
        C::Str(mut v) => {
            v.resize(n, String::new());
            C::Str(v)
        }
        C::F64(mut v) => {
            v.resize(n, f64::NAN);
            C::F64(v)
        }
        C::F32(mut v) => {
            v.resize(n, f32::NAN);
            C::F32(v)
        }
        C::I64(mut v) => {
            v.resize(n, 0);
            C::I64(v)
        }
        C::I32(mut v) => {
            v.resize(n, 0);
            C::I32(v)
        }
        C::Bool(mut v) => {
            v.resize(n, false);
            C::Bool(v)
        }
    }
}

fn first_names<'a>(names: impl Iterator<Item = &'a String>) -> String {
    names.take(5).cloned().collect::<Vec<_>>().join(", ")
}
