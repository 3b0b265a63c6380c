//! The self-contained HTML report: per embedding a UMAP coloured by batch and by label (PNG
//! images inlined as base64, legends as HTML), the scib metrics table with the best value per
//! column marked, and the training curves of scdreamer runs. No scripts, no network.

use std::fmt::Write as _;

use super::curves::{Series, charts};
use super::png::{base64, encode_png, palette, scatter};
use crate::metrics::scib::{METRIC_NAMES, ScibScores};

/// Pixels per UMAP panel.
pub const PANEL: usize = 420;

/// One embedding's part of the report.
pub struct EmbeddingView {
    pub name: String,
    pub source: String,
    /// `n x 2` UMAP coordinates.
    pub umap: Vec<f32>,
    pub scores: Option<ScibScores>,
    /// Training curves when the embedding comes from a scdreamer run with a log.
    pub log: Option<(String, Vec<Series>)>,
}

/// What the report is about.
pub struct ReportData<'a> {
    pub input: String,
    pub batch_key: &'a str,
    pub label_key: &'a str,
    pub batch_names: &'a [String],
    pub batches: &'a [u32],
    pub label_names: &'a [String],
    pub labels: &'a [u32],
    pub views: Vec<EmbeddingView>,
}

pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The two UMAP images of one embedding (by batch, by label) as PNG bytes.
pub fn umap_pngs(data: &ReportData, view: &EmbeddingView) -> anyhow::Result<[Vec<u8>; 2]> {
    let by_batch = scatter(
        &view.umap,
        data.batches,
        &palette(data.batch_names.len()),
        PANEL,
    );
    let by_label = scatter(
        &view.umap,
        data.labels,
        &palette(data.label_names.len()),
        PANEL,
    );
    Ok([
        encode_png(&by_batch, PANEL, PANEL)?,
        encode_png(&by_label, PANEL, PANEL)?,
    ])
}

fn legend(names: &[String]) -> String {
    let cols = palette(names.len());
    let mut s = String::from(r#"<ul class="legend">"#);
    for (n, c) in names.iter().zip(cols) {
        let _ = write!(
            s,
            r#"<li><span class="sw" style="background:rgb({},{},{})"></span>{}</li>"#,
            c[0],
            c[1],
            c[2],
            esc(n)
        );
    }
    s.push_str("</ul>");
    s
}

fn metrics_table(views: &[EmbeddingView]) -> String {
    let scored: Vec<&EmbeddingView> = views.iter().filter(|v| v.scores.is_some()).collect();
    if scored.is_empty() {
        return String::new();
    }
    let mut s = String::from(
        "<h2>scIB metrics</h2><p>scib-metrics 0.5 Benchmarker metrics, raw (not min-max scaled); \
         higher is better; <b>bold ★</b> = best per column. Total = 0.4 batch correction + 0.6 bio conservation.</p>\
         <table class=\"metrics\"><thead><tr><th>embedding</th>",
    );
    for m in METRIC_NAMES {
        let _ = write!(s, "<th>{}</th>", esc(m));
    }
    s.push_str("</tr></thead><tbody>");
    let best: Vec<f64> = (0..METRIC_NAMES.len())
        .map(|c| {
            scored
                .iter()
                .map(|v| v.scores.as_ref().expect("scored").values[c])
                .filter(|x| x.is_finite())
                .fold(f64::NEG_INFINITY, f64::max)
        })
        .collect();
    for v in &scored {
        let _ = write!(s, "<tr><th>{}</th>", esc(&v.name));
        for (c, &x) in v.scores.as_ref().expect("scored").values.iter().enumerate() {
            let class = if METRIC_NAMES[c] == "Total" {
                " class=\"total\""
            } else {
                ""
            };
            if scored.len() > 1 && x == best[c] {
                let _ = write!(s, "<td{class}><b>{x:.3} ★</b></td>");
            } else {
                let _ = write!(s, "<td{class}>{x:.3}</td>");
            }
        }
        s.push_str("</tr>");
    }
    s.push_str("</tbody></table>");
    s
}

const STYLE: &str = "body{font-family:DejaVu Sans,Helvetica,Arial,sans-serif;margin:24px;color:#222}\
h1{font-size:22px}h2{font-size:18px;margin-top:28px}h3{font-size:15px;margin:18px 0 6px}\
table.metrics{border-collapse:collapse;font-size:12px}table.metrics td,table.metrics th{border:1px solid #ccc;padding:4px 6px;text-align:right}\
table.metrics thead th{background:#f0f0f0;max-width:80px}td.total{background:#eef5ff}\
.row{display:flex;flex-wrap:wrap;gap:18px;align-items:flex-start}figure{margin:0}\
figure img{border:1px solid #ccc;width:420px;height:420px;image-rendering:auto}figcaption{font-size:13px;margin:4px 0}\
ul.legend{list-style:none;padding:0;margin:4px 0;font-size:12px;columns:2;max-width:420px}\
ul.legend li{margin:1px 0;break-inside:avoid}.sw{display:inline-block;width:11px;height:11px;border-radius:6px;margin-right:5px;vertical-align:middle}\
.curves{display:flex;flex-wrap:wrap;gap:8px}.src{color:#666;font-size:12px}";

/// The whole HTML page.
pub fn render(data: &ReportData) -> anyhow::Result<String> {
    let mut s = String::new();
    let _ = write!(
        s,
        "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>scdreamer report: {t}</title>\
         <style>{STYLE}</style></head><body><h1>Integration report: {t}</h1>\
         <p>{n} cells; batches from obs['{bk}'] ({nb}), labels from obs['{lk}'] ({nl}); {ne} embedding(s).</p>",
        t = esc(&data.input),
        n = data.batches.len(),
        bk = esc(data.batch_key),
        nb = data.batch_names.len(),
        lk = esc(data.label_key),
        nl = data.label_names.len(),
        ne = data.views.len()
    );
    s.push_str(&metrics_table(&data.views));
    s.push_str("<h2>UMAP</h2><p>UMAP of each embedding (15 neighbours, min_dist 0.1, seeded), coloured by batch (left: well-mixed batches overlap) and by label (right: cell types should stay apart).</p>");
    for v in &data.views {
        let [pb, pl] = umap_pngs(data, v)?;
        let _ = write!(
            s,
            "<h3>{name}</h3><p class=\"src\">{src}</p><div class=\"row\">\
             <figure><img alt=\"UMAP of {name} coloured by {bk}\" src=\"data:image/png;base64,{b64b}\"><figcaption>by {bk}</figcaption>{lb}</figure>\
             <figure><img alt=\"UMAP of {name} coloured by {lk}\" src=\"data:image/png;base64,{b64l}\"><figcaption>by {lk}</figcaption>{ll}</figure></div>",
            name = esc(&v.name),
            src = esc(&v.source),
            bk = esc(data.batch_key),
            lk = esc(data.label_key),
            b64b = base64(&pb),
            b64l = base64(&pl),
            lb = legend(data.batch_names),
            ll = legend(data.label_names),
        );
    }
    let logs: Vec<&EmbeddingView> = data.views.iter().filter(|v| v.log.is_some()).collect();
    if !logs.is_empty() {
        s.push_str("<h2>Training</h2>");
        for v in logs {
            let (path, series) = v.log.as_ref().expect("log");
            let _ = write!(
                s,
                "<h3>{}</h3><p class=\"src\">{}: per-epoch means; the batch classifier on z should stay near chance (1 / batches) when batches mix.</p><div class=\"curves\">{}</div>",
                esc(&v.name),
                esc(path),
                charts(series, data.batch_names.len())
            );
        }
    }
    s.push_str("</body></html>\n");
    Ok(s)
}
