//! Training curves of a scdreamer run (`<output>.log.json`) as inline SVG line charts.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::{Context, Result};

/// Per-epoch values of one log column.
pub struct Series {
    pub key: String,
    pub values: Vec<f64>,
}

/// The columns worth plotting, from a scdreamer `.log.json` (a list of per-epoch objects).
pub fn read_log(path: &Path) -> Result<Vec<Series>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let rows: Vec<serde_json::Map<String, serde_json::Value>> = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a scdreamer training log", path.display()))?;
    let keys = [
        "loss_ae",
        "reconstruction",
        "kl",
        "bhattacharyya",
        "loss_discriminator",
        "discriminator_accuracy",
        "batch_cross_entropy",
        "batch_classifier_accuracy",
        "label_accuracy",
    ];
    let mut out = Vec::new();
    for k in keys {
        let values: Vec<f64> = rows
            .iter()
            .filter_map(|r| r.get(k).and_then(|v| v.as_f64()))
            .collect();
        // Columns a run did not use (Sup's label terms, the consistency term) stay at 0.
        if values.len() == rows.len() && !values.is_empty() && values.iter().any(|&v| v != 0.0) {
            out.push(Series {
                key: k.to_string(),
                values,
            });
        }
    }
    Ok(out)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_tick(v: f64) -> String {
    if v.abs() >= 1000.0 {
        format!("{v:.0}")
    } else if v.abs() >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.3}")
    }
}

/// One line chart over epochs; `chance` draws a dashed reference line with its label.
pub fn line_chart(title: &str, values: &[f64], chance: Option<f64>) -> String {
    let (w, h, left, right, top, bottom) = (320.0, 190.0, 52.0, 10.0, 24.0, 28.0);
    let mut lo = values.iter().copied().fold(f64::INFINITY, f64::min);
    let mut hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if let Some(c) = chance {
        lo = lo.min(c);
        hi = hi.max(c);
    }
    if hi <= lo {
        hi = lo + 1.0;
    }
    let n = values.len().max(2);
    let x = |i: usize| left + (w - left - right) * i as f64 / (n - 1) as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - (v - lo) / (hi - lo));
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg class="curve" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" role="img"><title>{t}</title><rect x="{left}" y="{top}" width="{pw}" height="{ph}" fill="#fafafa" stroke="#bbb"/><text x="{tx}" y="16" font-size="13" text-anchor="middle">{t}</text>"##,
        t = esc(title),
        pw = w - left - right,
        ph = h - top - bottom,
        tx = w / 2.0
    );
    for v in [lo, hi] {
        let _ = write!(
            s,
            r##"<text x="{}" y="{}" font-size="10" text-anchor="end">{}</text>"##,
            left - 4.0,
            y(v) + 3.0,
            fmt_tick(v)
        );
    }
    let _ = write!(
        s,
        r##"<text x="{left}" y="{}" font-size="10">1</text><text x="{}" y="{}" font-size="10" text-anchor="end">epoch {}</text>"##,
        h - 12.0,
        w - right,
        h - 12.0,
        values.len()
    );
    if let Some(c) = chance {
        let _ = write!(
            s,
            r##"<line x1="{left}" x2="{}" y1="{yc}" y2="{yc}" stroke="#d62728" stroke-dasharray="5,4"/><text x="{}" y="{}" font-size="10" fill="#d62728" text-anchor="end">chance {c:.2}</text>"##,
            w - right,
            w - right - 2.0,
            y(c) - 3.0,
            yc = y(c)
        );
    }
    let pts: Vec<String> = values
        .iter()
        .enumerate()
        .map(|(i, &v)| format!("{:.1},{:.1}", x(i), y(v)))
        .collect();
    let _ = write!(
        s,
        r##"<polyline fill="none" stroke="#1f77b4" stroke-width="1.5" points="{}"/></svg>"##,
        pts.join(" ")
    );
    s
}

/// Every chart of a log; the batch-classifier accuracy gets the chance line 1 / batches.
pub fn charts(series: &[Series], n_batches: usize) -> String {
    series
        .iter()
        .map(|s| {
            let chance = (s.key == "batch_classifier_accuracy").then(|| 1.0 / n_batches as f64);
            let title = match s.key.as_str() {
                "batch_classifier_accuracy" => "batch-classifier accuracy".to_string(),
                other => other.replace('_', " "),
            };
            line_chart(&title, &s.values, chance)
        })
        .collect()
}
