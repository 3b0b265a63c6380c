//! The Python keyword arguments as the library's settings: hyper-parameters, gene choice,
//! device.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use scdreamer::backend::device::{self, Device, DeviceRequest};
use scdreamer::model::config::{AdversaryInput, LabelLoss, Likelihood, LrSchedule};
use scdreamer::model::hyper;
use scdreamer::model::hyper::{HyperParams, Preset};
use scdreamer::pipeline::GeneSelection;

use crate::errors::IntoPy;

pub(crate) fn bad(msg: String) -> PyErr {
    PyValueError::new_err(msg)
}

/// The Python keyword arguments (already type-checked there) as hyper-parameters.
#[derive(FromPyObject)]
pub struct HyperArgs {
    preset: String,
    n_latent: Option<usize>,
    n_hidden: Option<Vec<usize>>,
    batch_adv_weight: Option<f32>,
    adversary_input: Option<String>,
    encode_batch: Option<bool>,
    batch_gene_offsets: Option<bool>,
    disc_weight: Option<f32>,
    kl_weight: Option<f32>,
    gene_likelihood: String,
    max_epochs: Option<usize>,
    batch_size: Option<usize>,
    lr_schedule: Option<String>,
    lr: Option<f32>,
    label_balance: Option<f32>,
    label_loss: Option<String>,
    seed: u64,
}

/// The variant that `value` names among `choices`; an error naming `what` and the choices
/// otherwise.
fn one_of<T: Copy>(what: &str, value: &str, choices: &[(&str, T)]) -> PyResult<T> {
    match choices.iter().find(|c| c.0 == value) {
        Some(c) => Ok(c.1),
        None => {
            let names: Vec<String> = choices.iter().map(|c| format!("'{}'", c.0)).collect();
            Err(bad(format!(
                "{what} must be {}, not '{value}'",
                names.join(" or ")
            )))
        }
    }
}

pub(crate) fn parse_preset(p: &str) -> PyResult<Preset> {
    let choices = [("default", Preset::Default), ("authors", Preset::Authors)];
    one_of("preset", p, &choices)
}

const ADVERSARY_INPUTS: [(&str, AdversaryInput); 2] = [
    ("sample", AdversaryInput::Sample),
    ("mean", AdversaryInput::Mean),
];
const LABEL_LOSSES: [(&str, LabelLoss); 2] = [
    ("ce", LabelLoss::CrossEntropy),
    ("gce", LabelLoss::Generalized),
];
const LIKELIHOODS: [(&str, Likelihood); 2] = [("zinb", Likelihood::Zinb), ("nb", Likelihood::Nb)];
const LR_SCHEDULES: [(&str, LrSchedule); 2] = [
    ("constant", LrSchedule::Constant),
    ("cosine", LrSchedule::Cosine),
];

impl HyperArgs {
    pub(crate) fn resolve(&self) -> PyResult<HyperParams> {
        Ok(HyperParams {
            preset: parse_preset(&self.preset)?,
            latent: self.n_latent,
            hidden: self.n_hidden.clone(),
            batch_adv_weight: self.batch_adv_weight,
            adversary_input: self
                .adversary_input
                .as_deref()
                .map(|v| one_of("adversary_input", v, &ADVERSARY_INPUTS))
                .transpose()?,
            encode_batch: self.encode_batch,
            batch_gene_offsets: self.batch_gene_offsets,
            disc_weight: self.disc_weight,
            kl_weight: self.kl_weight,
            likelihood: one_of("gene_likelihood", &self.gene_likelihood, &LIKELIHOODS)?,
            epochs: self.max_epochs,
            batch_size: self.batch_size,
            lr_schedule: self
                .lr_schedule
                .as_deref()
                .map(|v| one_of("lr_schedule", v, &LR_SCHEDULES))
                .transpose()?,
            lr: self.lr,
            label_balance: self.label_balance,
            label_loss: self
                .label_loss
                .as_deref()
                .map(|v| one_of("label_loss", v, &LABEL_LOSSES))
                .transpose()?,
            seed: self.seed,
        })
    }
}

/// Gene choice: every gene, the given names, or HVG selection.
#[derive(FromPyObject)]
pub struct GeneArgs {
    all_genes: bool,
    genes: Option<Vec<String>>,
    hvg_flavor: Option<String>,
    n_top_genes: usize,
}

pub(crate) fn resolve_device(device: &str) -> PyResult<Device> {
    let request = match device {
        "auto" => DeviceRequest::Auto,
        "cpu" => DeviceRequest::Cpu,
        "cuda" => DeviceRequest::Cuda,
        o => {
            return Err(bad(format!(
                "device must be 'auto', 'cpu' or 'cuda', not '{o}'"
            )));
        }
    };
    device::resolve(request).py_err()
}

impl GeneArgs {
    /// The genes as the library selects them, given the preset and the var names.
    pub(crate) fn resolve(&self, preset: Preset, var_names: &[String]) -> PyResult<GeneSelection> {
        Ok(if self.all_genes {
            GeneSelection::All
        } else if let Some(names) = &self.genes {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            GeneSelection::Given(
                scdreamer::data::preprocess::genes_by_name(&names, var_names)
                    .map_err(|e| e.context("genes"))
                    .py_err()?,
            )
        } else {
            let flavor = match self.hvg_flavor.as_deref() {
                None => None,
                Some("seurat_v3") => Some(hyper::HvgFlavor::SeuratV3),
                Some("seurat") => Some(hyper::HvgFlavor::Seurat),
                Some(o) => {
                    return Err(bad(format!(
                        "hvg_flavor must be 'seurat_v3' or 'seurat', not '{o}'"
                    )));
                }
            };
            hyper::hvg_selection(preset, flavor, self.n_top_genes)
        })
    }
}
