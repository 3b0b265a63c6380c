//! `evaluate --report/--figures` and `integrate --evaluate --report`: the HTML report is
//! self-contained, opens in headless chromium without console errors, and its screenshot
//! shows the UMAP plots.

mod common;

use std::path::Path;
use std::process::Command;

use common::{DEMO, argv, harmony, run, scratch};

/// Nothing the page could fetch: no scripts, stylesheets or remote images.
fn assert_self_contained(html: &str) {
    for bad in [
        "<script",
        "<link",
        "src=\"http",
        "href=\"http",
        "url(http",
        "@import",
    ] {
        assert!(!html.contains(bad), "report references '{bad}'");
    }
}

fn chromium() -> Option<String> {
    for name in ["chromium", "chromium-browser"] {
        let found = Command::new("sh")
            .args(["-c", &format!("command -v {name}")])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string());
        if found.is_some() {
            return found;
        }
    }
    None
}

/// Pixels of exactly this colour in a PNG.
fn count_colour(png_path: &Path, rgb: [u8; 3]) -> usize {
    let decoder = png::Decoder::new(std::fs::File::open(png_path).unwrap());
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    let step = info.color_type.samples();
    buf[..info.buffer_size()]
        .chunks(step)
        .filter(|p| p[..3] == rgb)
        .count()
}

#[test]
fn report_is_self_contained_and_renders_in_headless_chromium() {
    let (dir, [report, figs]) = scratch(["report.html", "figs"]);
    let spec = format!("Harmony={}", harmony());
    let err = run(&argv(
        "evaluate --input {} -e {} --report {} --figures {}",
        &[&DEMO, &spec, &report, &figs],
    ))
    .expect_ok("evaluate");
    assert!(err.contains("UMAP of Harmony took"), "{err}");
    for f in [
        "Harmony_umap_by_batch.png",
        "Harmony_umap_by_cell_type.png",
        "Harmony_umap.npy",
    ] {
        assert!(figs.join(f).is_file(), "{f} missing");
    }
    // The figure shows the batch colours (Tableau blue and orange).
    assert!(count_colour(&figs.join("Harmony_umap_by_batch.png"), [31, 119, 180]) > 500);
    assert!(count_colour(&figs.join("Harmony_umap_by_batch.png"), [255, 127, 14]) > 100);
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    assert_eq!(html.matches("src=\"data:image/png;base64,").count(), 2);
    for s in [
        "scIB metrics",
        "Harmony",
        "10x",
        "CEL-seq2",
        "H1975",
        "HCC827",
        "KBET",
        "Total",
    ] {
        assert!(html.contains(s), "report lacks '{s}'");
    }

    let Some(browser) = chromium() else {
        assert!(
            std::env::var("CI").is_err(),
            "CI=true but chromium is missing (scripts/setup.sh --test installs it)"
        );
        eprintln!(
            "skipped the browser check: chromium is not installed (scripts/setup.sh --test installs it)"
        );
        return;
    };
    let profile = tempfile::tempdir().unwrap();
    let shot = dir.path().join("shot.png");
    let url = format!("file://{}", report.display());
    let common = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        // Containers often have a tiny /dev/shm.
        "--disable-dev-shm-usage",
    ];
    let user_dir = format!("--user-data-dir={}", profile.path().display());
    let shot_arg = format!("--screenshot={}", shot.display());
    let out = Command::new("timeout")
        .arg("120")
        .arg(&browser)
        .args(common)
        .args([
            user_dir.as_str(),
            "--enable-logging=stderr",
            "--v=1",
            "--window-size=1200,1400",
            &shot_arg,
            &url,
        ])
        .output()
        .expect("chromium runs");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "chromium failed: {log}");
    // Page console messages are logged as CONSOLE lines; a clean page has none.
    let console: Vec<&str> = log.lines().filter(|l| l.contains(":CONSOLE")).collect();
    assert!(console.is_empty(), "console messages: {console:?}");
    // The screenshot shows the plots: many pixels in the first batch colour.
    assert!(
        count_colour(&shot, [31, 119, 180]) > 500,
        "no UMAP in the screenshot"
    );
    let dom = Command::new("timeout")
        .arg("120")
        .arg(&browser)
        .args(common)
        .args([user_dir.as_str(), "--dump-dom", &url])
        .output()
        .expect("chromium runs");
    let dom = String::from_utf8_lossy(&dom.stdout);
    assert!(
        dom.contains("Integration report") && dom.contains("<table class=\"metrics\">"),
        "{dom:.300}"
    );
}

#[test]
fn integrate_evaluates_and_reports_its_own_run() {
    let (_dir, [out, report, csv, o2]) = scratch(["out.h5ad", "run.html", "m.csv", "o2.h5ad"]);
    let r = run(&argv(
        "integrate --input {} --output {} --epochs 3 --hidden 32 --quiet --evaluate \
         --metrics-output {} --report {}",
        &[&DEMO, &out, &csv, &report],
    ));
    assert!(r.ok, "{}", r.stderr);
    let stdout = r.stdout;
    assert!(
        stdout.contains("X_scdreamer") && stdout.contains("Total"),
        "{stdout}"
    );
    assert!(
        std::fs::read_to_string(&csv)
            .unwrap()
            .starts_with("Embedding,Isolated labels")
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert_self_contained(&html);
    // Training curves from out.log.json, with the chance line of 3 batches.
    for s in [
        "Training",
        "batch-classifier accuracy",
        "chance 0.33",
        "loss ae",
        "out.log.json",
    ] {
        assert!(html.contains(s), "report lacks '{s}'");
    }
    // A label key that is not there is refused before training.
    run(&argv(
        "integrate --input {} --output {} --epochs 1 --hidden 16 --quiet --evaluate \
         --label-key celltype",
        &[&DEMO, &o2],
    ))
    .expect_err(&["'celltype'", "--label-key"]);
    assert!(!o2.exists(), "no training before the error");
}
