//! Saved models: `weights.safetensors` (every parameter, named `<group>.<name>`) and
//! `config.json` (format version, run configuration, gene list, batch and label categories).
//! Versioned from day one so that a model saved today still loads after an upgrade, and so a
//! gene or batch mismatch with new data is a clear error (scvi-tools#849, #2338).

use std::collections::HashMap;
use std::io::Write;
use std::path::Path;

use anyhow::Context;
use safetensors::tensor::{Dtype, TensorView};
use serde::{Deserialize, Serialize};

use crate::files::cleanup::{Pending, TempPath, commit_all, temp_beside, write_pending};
use crate::model::config::RunConfig;
use crate::model::dataset::TransformConstants;
use crate::ops::Backend;

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
/// The two files of a model directory.
pub const WEIGHTS: &str = "weights.safetensors";
pub const CONFIG: &str = "config.json";

/// What `config.json` holds.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SavedConfig {
    pub format_version: u32,
    pub scdreamer_version: String,
    pub run: RunConfig,
    /// var_names of the genes the model was trained on, in model order.
    pub genes: Vec<String>,
    /// var_names the training input repeated (made unique on reading as anndata does).
    #[serde(default)]
    pub repeated_genes: Vec<String>,
    pub batch_key: String,
    pub batch_categories: Vec<String>,
    /// Sup: label key and categories.
    pub labels_key: Option<String>,
    pub label_categories: Vec<String>,
    /// Constants of the input transforms learnt from the training data.
    pub constants: TransformConstantsDef,
}

/// Writes the model directory (created if needed), whole or not at all: never a weights file
/// without its config.
pub fn save<B: Backend>(dir: &Path, cfg: &SavedConfig, params: &Params<B>) -> anyhow::Result<()> {
    commit_all(save_pending(dir, cfg, params)?)
}

/// [`save`] up to the final renames, which [`commit_all`] does (with the run's other outputs).
pub fn save_pending<B: Backend>(
    dir: &Path,
    cfg: &SavedConfig,
    params: &Params<B>,
) -> anyhow::Result<Vec<Pending>> {
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
    let json = serde_json::to_vec_pretty(cfg)?;
    write_model_dir(dir, &[(WEIGHTS, &bytes), (CONFIG, &json)])
}

/// A new (or empty) directory is written whole under a temp name and renamed into place; in a
/// directory that already holds files (an older model) both files go to temps there and are
/// renamed together, with signals held off.
fn write_model_dir(dir: &Path, files: &[(&str, &[u8])]) -> anyhow::Result<Vec<Pending>> {
    if dir.exists() && !dir.is_dir() {
        anyhow::bail!(
            "--save-model {} is an existing file, not a directory",
            dir.display()
        );
    }
    let non_empty = dir.is_dir()
        && std::fs::read_dir(dir)
            .with_context(|| format!("cannot read model directory {}", dir.display()))?
            .next()
            .is_some();
    if non_empty {
        return files
            .iter()
            .map(|(name, bytes)| write_pending(&dir.join(name), bytes))
            .collect();
    }
    let created = create_parents(dir)?;
    let tmp = TempPath::new(temp_beside(dir)?);
    let written = (|| -> std::io::Result<()> {
        std::fs::create_dir(&tmp.path)?;
        for (name, bytes) in files {
            let mut f = std::fs::File::create(tmp.path.join(name))?;
            f.write_all(bytes)?;
            f.sync_all()?;
        }
        Ok(())
    })();
    if let Err(e) = written {
        anyhow::bail!("cannot write the model directory {}: {e}", dir.display());
    }
    Ok(vec![
        Pending::new(tmp, dir.to_path_buf()).with_created(created),
    ])
}

/// Creates the missing parents of `dir`; the topmost one created comes back registered, so a
/// failed save removes it again.
fn create_parents(dir: &Path) -> anyhow::Result<Option<TempPath>> {
    let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) else {
        return Ok(None);
    };
    let top = parent
        .ancestors()
        .take_while(|a| !a.as_os_str().is_empty() && !a.exists())
        .last()
        .map(Path::to_path_buf);
    let guard = top.map(TempPath::new);
    std::fs::create_dir_all(parent)
        .with_context(|| format!("cannot create model directory {}", parent.display()))?;
    Ok(guard)
}

/// Reads `config.json` of a model directory.
pub fn load_config(dir: &Path) -> anyhow::Result<SavedConfig> {
    let path = dir.join(CONFIG);
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
    cfg.validate()
        .with_context(|| format!("{} does not describe a usable model", path.display()))?;
    Ok(cfg)
}

/// The first name that occurs twice in `names`.
fn first_repeat(names: &[String]) -> Option<&str> {
    let mut seen = std::collections::HashSet::new();
    names
        .iter()
        .find(|n| !seen.insert(n.as_str()))
        .map(String::as_str)
}

impl SavedConfig {
    /// The lists must agree with the architecture the weights were built for (their shapes are
    /// checked on loading): a gene list shorter than the model's inputs would index past the
    /// weights, a repeated gene or batch would match two columns or codes to one.
    pub fn validate(&self) -> anyhow::Result<()> {
        let m = &self.run.model;
        let counted = [
            ("genes", self.genes.len(), "model.n_genes", m.n_genes),
            (
                "batch_categories",
                self.batch_categories.len(),
                "model.n_batches",
                m.n_batches,
            ),
            (
                "label_categories",
                self.label_categories.len(),
                "model.n_labels",
                m.n_labels,
            ),
        ];
        for (list, len, field, want) in counted {
            if len != want {
                anyhow::bail!("'{list}' lists {len} names but '{field}' is {want}");
            }
        }
        for (list, names) in [
            ("genes", &self.genes),
            ("batch_categories", &self.batch_categories),
            ("label_categories", &self.label_categories),
        ] {
            if let Some(n) = first_repeat(names) {
                anyhow::bail!("'{list}' names '{n}' more than once");
            }
        }
        if m.n_genes == 0 || m.n_batches == 0 || m.latent == 0 {
            anyhow::bail!(
                "the model has {} genes, {} batches and latent dimension {}: all must be at least 1",
                m.n_genes,
                m.n_batches,
                m.latent
            );
        }
        if m.hidden.is_empty() || m.hidden.contains(&0) {
            anyhow::bail!(
                "'model.hidden' is {:?}: one or more positive widths are needed",
                m.hidden
            );
        }
        if (self.labels_key.is_some()) != (m.n_labels > 0) {
            anyhow::bail!("'labels_key' and 'model.n_labels' disagree");
        }
        let c = &self.constants;
        let finite = [
            c.log_norm_max,
            c.authors_max,
            c.library_prior.0,
            c.library_prior.1,
        ];
        if finite.iter().any(|v| !v.is_finite()) {
            anyhow::bail!("'constants' holds a non-finite value: {c:?}");
        }
        Ok(())
    }
}

/// Loads the weights into `params`, which must have been built with the same configuration.
pub fn load_weights<B: Backend>(dir: &Path, params: &mut Params<B>) -> anyhow::Result<()> {
    let path = dir.join(WEIGHTS);
    let size = std::fs::metadata(&path)
        .with_context(|| format!("cannot read {}", path.display()))?
        .len();
    crate::files::memory::check_fits(size as u128, &format!("reading {}", path.display()))?;
    let bytes = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let st = safetensors::SafeTensors::deserialize(&bytes)
        .with_context(|| format!("{} is not a valid safetensors file", path.display()))?;
    let stored: HashMap<String, TensorView> = st.tensors().into_iter().collect();
    let wanted: Vec<(String, String, usize, usize, crate::tape::ParamId)> = params
        .iter()
        .map(|(g, n, r, c, id)| (g.to_string(), n.to_string(), r, c, id))
        .collect();
    let names: std::collections::HashSet<String> =
        wanted.iter().map(|(g, n, ..)| format!("{g}.{n}")).collect();
    if let Some(extra) = stored.keys().find(|k| !names.contains(*k)) {
        anyhow::bail!(
            "{} holds tensor {extra}, which the model of config.json does not have: \
             the config and the weights come from different models",
            path.display()
        );
    }
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
                "tensor {key} in {} has shape {:?}, but config.json asks for [{rows}, {cols}]: \
                 the config and the weights come from different models",
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
