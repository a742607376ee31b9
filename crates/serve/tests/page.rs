//! The page at `/` in headless Chromium (Debian's), driven by playwright-core from
//! `tests/browser/drop.mjs` (at the repository root): a photo is uploaded through the page, the six faces of
//! `group-6-people.jpg` appear as labelled boxes, and a screenshot is saved (its path is printed).
//!
//! Needs `chromium` and `npm ci` in `tests/browser` (`.ci/run` does both). Without them the test
//! says so and passes, unless GC_REQUIRE_BROWSER=1 (set by CI), where it fails.

mod common;

use common::{shared, start, url};
use gc_serve::Limits;
use std::path::Path;
use std::process::Command;

/// Node and Chromium with the page driver installed, or `None` when the test is to be skipped.
fn browser() -> Option<(std::path::PathBuf, String)> {
    let browser_dir =
        gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
    let chromium = std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into());
    let ready = browser_dir.join("node_modules/playwright-core").exists()
        && Path::new(&chromium).exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ready {
        let msg = format!(
            "the page test needs node, {chromium} and `npm ci` in {}",
            browser_dir.display()
        );
        if std::env::var("GC_REQUIRE_BROWSER").is_ok_and(|v| v == "1") {
            panic!("{msg}");
        }
        eprintln!("SKIPPED: {msg}");
        return None;
    }
    Some((browser_dir, chromium))
}

/// Uploads `copies` copies of the group photo through the page of a server with `limits`, and
/// returns what `drop.mjs` printed.
fn drop_photos(limits: Limits, copies: usize, screenshot: &Path) -> Option<serde_json::Value> {
    let (browser_dir, chromium) = browser()?;
    let server = start(limits);
    let _ = std::fs::remove_file(screenshot);
    let out = Command::new("node")
        .current_dir(&browser_dir)
        .arg("drop.mjs")
        .arg(url(&server, "/"))
        .arg(shared("photos/group-6-people.jpg"))
        .arg(screenshot)
        .arg((6 * copies).to_string())
        .arg(copies.to_string())
        .env("CHROMIUM", &chromium)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "drop.mjs failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(serde_json::from_str(stdout.trim()).unwrap())
}

/// A drop of many photos on a server with one place and no waiting room: the page sends a few at
/// a time and comes back after a 503, so every photo gets its faces (it sent all at once, and
/// those turned away showed "busy" for good).
#[test]
fn many_photos_dropped_at_once_are_all_classified() {
    let limits = Limits {
        max_concurrent: 1,
        max_waiting: 0,
        ..Limits::default()
    };
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-many.png");
    let Some(result) = drop_photos(limits, 12, &screenshot) else {
        return;
    };
    let captions = result["captions"].as_array().unwrap();
    assert_eq!(captions.len(), 12, "{result}");
    for c in captions {
        assert!(c.as_str().unwrap().contains("6 faces"), "{result}");
    }
    assert_eq!(result["faces"].as_array().unwrap().len(), 72, "{result}");
}

#[test]
fn a_photo_uploaded_on_the_page_shows_its_faces_boxed() {
    let screenshot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("page-group-6-people.png");
    let Some(result) = drop_photos(Limits::default(), 1, &screenshot) else {
        return;
    };
    let faces = result["faces"].as_array().unwrap();
    assert_eq!(faces.len(), 6, "{result}");
    for f in faces {
        // Each box is laid out over the photo with a visible size and its label.
        assert!(f["width"].as_f64().unwrap() > 10.0, "{f}");
        assert!(f["height"].as_f64().unwrap() > 10.0, "{f}");
        let text = f["text"].as_str().unwrap();
        assert!(text.starts_with(f["label"].as_str().unwrap()), "{f}");
    }
    assert!(
        result["caption"].as_str().unwrap().contains("6 faces"),
        "{result}"
    );
    assert_eq!(result["errors"].as_array().unwrap().len(), 0, "{result}");
    let png = std::fs::read(&screenshot).unwrap();
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000);
    println!("screenshot: {}", screenshot.display());
}
