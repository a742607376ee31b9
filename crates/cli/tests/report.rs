//! `eval` on a small real split: `prepare` 150 UTKFace faces, evaluate dlib-cydral on the test
//! split, check the three report files, and open report.html in headless Chromium (Debian's,
//! driven by playwright-core from `tests/browser/render.mjs`), saving a screenshot.
//!
//! The browser part needs `chromium` and `npm ci` in `tests/browser` (`.ci/run` does both); without
//! them it says so and is skipped, unless GC_REQUIRE_BROWSER=1 (set by CI), where it fails.

mod common;

use common::*;
use std::path::Path;
use std::process::Command;

#[test]
fn eval_writes_reports_that_open_in_chromium() {
    let dir = tempfile::tempdir().unwrap();
    let faces = dir.path().join("faces");
    std::fs::create_dir_all(&faces).unwrap();
    real_faces(&faces, 150);
    let prepared = dir.path().join("prepared");
    let (code, _, stderr) = run(bin().arg("prepare").arg(&faces).arg("--out").arg(&prepared));
    assert_eq!(code, 0, "{stderr}");
    let out = dir.path().join("report");
    let (code, stdout, stderr) = run(bin()
        .args([
            "eval",
            "--model",
            &dlib_model(),
            "--split",
            "test",
            "--failures",
            "6",
        ])
        .arg("--data")
        .arg(&prepared)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}\n{stdout}");

    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let text = report.to_string();
    assert!(text.contains("accuracy"), "{text}");
    let markdown = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(markdown.contains('|'), "no table in report.md");
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert!(html.contains("<svg"), "no inline chart in report.html");

    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = browser.join("node_modules/playwright-core").exists()
        && Path::new(&chromium).exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        let msg = format!(
            "opening report.html needs node, {chromium} and `npm ci` in {}",
            browser.display()
        );
        assert!(
            std::env::var("GC_REQUIRE_BROWSER").as_deref() != Ok("1"),
            "{msg}"
        );
        eprintln!("SKIPPED: {msg}");
        return;
    }
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("report-html.png");
    let _ = std::fs::remove_file(&screenshot);
    let shown = Command::new("node")
        .current_dir(&browser)
        .arg("render.mjs")
        .arg(out.join("report.html"))
        .arg(&screenshot)
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&shown.stdout);
    assert!(
        shown.status.success(),
        "render.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let page: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    assert!(
        page["svgs"].as_u64().unwrap() >= 2,
        "charts not drawn: {page}"
    );
    assert!(page["tables"].as_u64().unwrap() >= 2, "{page}");
    assert_eq!(page["brokenImages"], 0, "{page}");
    assert!(
        page["images"].as_u64().unwrap() >= 1,
        "no failure thumbnails: {page}"
    );
    assert_eq!(page["errors"].as_array().unwrap().len(), 0, "{page}");
    assert_eq!(
        page["requests"].as_array().unwrap().len(),
        0,
        "not self-contained: {page}"
    );
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    println!("screenshot: {}", screenshot.display());
}
