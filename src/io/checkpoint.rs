//! Saved models: `weights.safetensors` (every parameter, named `<group>.<name>`) and
//! `config.json` (format version, run configuration, gene list, batch and label categories).
//! Versioned from day one so that a model saved today still loads after an upgrade, and so a
//! gene or batch mismatch with new data is a clear error (scvi-tools#849, #2338).

use std::collections::HashMap;
use std::path::Path;

use anyhow::Context;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::backend::Backend;
use crate::model::config::RunConfig;
use crate::model::dataset::TransformConstants;

/// Serialisable copy of [`TransformConstants`].
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct TransformConstantsDef {
    pub log_norm_max: f32,
    pub authors_max: f32,
    pub library_prior: (f32, f32),
}

impl From<TransformConstants> for TransformConstantsDef {
    fn from(c: TransformConstants) -> Self {
        TransformConstantsDef {
            log_norm_max: c.log_norm_max,
            authors_max: c.authors_max,
            library_prior: c.library_prior,
        }
    }
}

impl From<TransformConstantsDef> for TransformConstants {
    fn from(c: TransformConstantsDef) -> Self {
        TransformConstants {
            log_norm_max: c.log_norm_max,
            authors_max: c.authors_max,
            library_prior: c.library_prior,
        }
    }
}
use crate::tape::Params;

pub const FORMAT_VERSION: u32 = 1;

/// What `config.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedConfig {
    pub format_version: u32,
    pub scdreamer_version: String,
    pub run: RunConfig,
    /// var_names of the genes the model was trained on, in model order.
    pub genes: Vec<String>,
    pub batch_key: String,
    pub batch_categories: Vec<String>,
    /// Sup: label key and categories.
    pub labels_key: Option<String>,
    pub label_categories: Vec<String>,
    /// Constants of the input transforms learnt from the training data.
    pub constants: TransformConstantsDef,
}

/// Writes the model directory (created if needed). Files are written whole or not at all.
pub fn save<B: Backend>(dir: &Path, cfg: &SavedConfig, params: &Params<B>) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create model directory {}", dir.display()))?;
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (group, name, rows, cols, id) in params.iter() {
        let v = params.value_to_host(id);
        let bytes: Vec<u8> = v.iter().flat_map(|x| x.to_le_bytes()).collect();
        tensors.push((format!("{group}.{name}"), bytes, vec![rows, cols]));
    }
    let views: Vec<(String, TensorView)> = tensors
        .iter()
        .map(|(n, b, s)| Ok((n.clone(), TensorView::new(Dtype::F32, s.clone(), b)?)))
        .collect::<Result<_, safetensors::SafeTensorError>>()?;
    let bytes = safetensors::serialize(views, &None)?;
    crate::train::log::write_atomic(&dir.join("weights.safetensors"), &bytes)?;
    let json = serde_json::to_vec_pretty(cfg)?;
    crate::train::log::write_atomic(&dir.join("config.json"), &json)
}

/// Reads `config.json` of a model directory.
pub fn load_config(dir: &Path) -> anyhow::Result<SavedConfig> {
    let path = dir.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| {
        format!(
            "cannot read {}: is {} a saved scdreamer model?",
            path.display(),
            dir.display()
        )
    })?;
    let cfg: SavedConfig = serde_json::from_str(&text)
        .with_context(|| format!("{} is not a valid model config", path.display()))?;
    if cfg.format_version > FORMAT_VERSION {
        anyhow::bail!(
            "model in {} has format version {}, this scdreamer reads up to {}: upgrade scdreamer",
            dir.display(),
            cfg.format_version,
            FORMAT_VERSION
        );
    }
    Ok(cfg)
}

/// Loads the weights into `params`, which must have been built with the same configuration.
pub fn load_weights<B: Backend>(dir: &Path, params: &mut Params<B>) -> anyhow::Result<()> {
    let path = dir.join("weights.safetensors");
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let stored: HashMap<String, TensorView> = st.tensors().into_iter().collect();
    let wanted: Vec<(String, String, usize, usize, crate::tape::ParamId)> = params
        .iter()
        .map(|(g, n, r, c, id)| (g.to_string(), n.to_string(), r, c, id))
        .collect();
    for (group, name, rows, cols, id) in wanted {
        let key = format!("{group}.{name}");
        let t = stored.get(&key).with_context(|| {
            format!(
                "{} has no tensor {key}: saved by a different model",
                path.display()
            )
        })?;
        if t.dtype() != Dtype::F32 || t.shape() != [rows, cols] {
            anyhow::bail!(
                "tensor {key} in {} has shape {:?}, expected [{rows}, {cols}]",
                path.display(),
                t.shape()
            );
        }
        let v: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        params.set_value(id, &v)?;
    }
    Ok(())
}
