//! The scib-metrics 0.5 Benchmarker table for one embedding: its default BioConservation and
//! BatchCorrection metrics, raw (not min-max scaled), the two aggregates and
//! Total = 0.4 batch + 0.6 bio.

use super::clustering::{InitSampler, ari, kmeans, nmi};
use super::graph::graph_connectivity;
use super::kbet::kbet_per_label;
use super::knn_silhouette::neighbours_and_silhouettes;
use super::lisi::clisi_ilisi;
use super::pcr::{pcr, pcr_comparison};
use super::silhouette::{bras, isolated_labels, silhouette_label};

/// Column names in scib-metrics' order.
pub const METRIC_NAMES: [&str; 13] = [
    "Isolated labels",
    "KMeans NMI",
    "KMeans ARI",
    "Silhouette label",
    "cLISI",
    "BRAS",
    "iLISI",
    "KBET",
    "Graph connectivity",
    "PCR comparison",
    "Batch correction",
    "Bio conservation",
    "Total",
];

/// The cells' batches and labels as codes 0..n.
pub struct Groups<'a> {
    pub batches: &'a [u32],
    pub n_batches: usize,
    pub labels: &'a [u32],
    pub n_labels: usize,
}

/// One row of the table, in [`METRIC_NAMES`] order.
#[derive(Clone, Debug, PartialEq)]
pub struct ScibScores {
    pub values: [f64; 13],
}

impl ScibScores {
    pub fn get(&self, name: &str) -> f64 {
        let i = METRIC_NAMES
            .iter()
            .position(|&m| m == name)
            .expect("metric name");
        self.values[i]
    }
}

/// Score `x` (`n x d`, row-major). `pcr_pre` is the batch's variance share in the unintegrated
/// PCA ([`super::pcr::pcr`] of it); `step` is called with the name of each stage as it starts.
pub fn score_embedding(
    x: &[f32],
    d: usize,
    g: &Groups,
    pcr_pre: f64,
    sampler: &mut dyn InitSampler,
    step: &mut dyn FnMut(&str),
) -> ScibScores {
    score_embedding_without_pcr_pre(x, d, g, sampler, step).finish(pcr_pre)
}

/// Every metric but the PCR comparison, whose reference (the unintegrated PCA) may still be
/// computing beside this embedding: [`PendingScores::finish`] adds it and the aggregates.
pub struct PendingScores {
    /// The first nine metrics in [`METRIC_NAMES`] order.
    values: [f64; 9],
    pcr_post: f64,
}

impl PendingScores {
    pub fn finish(&self, pcr_pre: f64) -> ScibScores {
        let [iso, k_nmi, k_ari, sil_label, c_lisi, b, i_lisi, kb, gc] = self.values;
        let pc = pcr_comparison(pcr_pre, self.pcr_post);
        let bio = (iso + k_nmi + k_ari + sil_label + c_lisi) / 5.0;
        let batch = (b + i_lisi + kb + gc + pc) / 5.0;
        ScibScores {
            values: [
                iso,
                k_nmi,
                k_ari,
                sil_label,
                c_lisi,
                b,
                i_lisi,
                kb,
                gc,
                pc,
                batch,
                bio,
                0.4 * batch + 0.6 * bio,
            ],
        }
    }
}

/// [`score_embedding`] up to the PCR comparison.
pub fn score_embedding_without_pcr_pre(
    x: &[f32],
    d: usize,
    g: &Groups,
    sampler: &mut dyn InitSampler,
    step: &mut dyn FnMut(&str),
) -> PendingScores {
    step("neighbours and silhouettes");
    let n = g.labels.len();
    let (nb90, sil) = neighbours_and_silhouettes(x, n, d, 90, g.labels, g.n_labels);
    let iso = isolated_labels(&sil, g.labels, g.n_labels, g.batches, g.n_batches);
    let sil_label = silhouette_label(&sil);
    step("KMeans");
    let clusters = kmeans(x, d, g.n_labels, sampler);
    let (k_nmi, k_ari) = (nmi(g.labels, &clusters), ari(g.labels, &clusters));
    step("LISI");
    let (c_lisi, i_lisi) = clisi_ilisi(&nb90, g.labels, g.n_labels, g.batches, g.n_batches);
    step("BRAS");
    let b = bras(x, d, g.labels, g.n_labels, g.batches);
    step("kBET");
    let kb = kbet_per_label(&nb90.subset(50), g.batches, g.labels, g.n_labels);
    step("graph connectivity");
    let gc = graph_connectivity(&nb90.subset(15), g.labels, g.n_labels);
    step("PCR");
    PendingScores {
        values: [iso, k_nmi, k_ari, sil_label, c_lisi, b, i_lisi, kb, gc],
        pcr_post: pcr(x, d, g.batches, g.n_batches),
    }
}
