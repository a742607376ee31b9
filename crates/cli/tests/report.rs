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
    let prepared = prepared_faces(dir.path(), 150);
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

    let browser = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser");
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

#[test]
fn calibrate_writes_a_file_that_models_take_and_never_replaces_one() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let prepared = prepared_faces(d, 150);
    let calibrate = |model: &str, out: &Path| {
        run(bin()
            .args(["calibrate", "--model", model, "--data"])
            .arg(&prepared)
            .arg("--out")
            .arg(out))
    };

    // dlib-cydral, fitted on the 30 validation faces.
    let cal = d.join("dlib-cal.json");
    let (code, stdout, stderr) = calibrate(&dlib_model(), &cal);
    assert_eq!(code, 0, "{stderr}\n{stdout}");
    assert!(
        stdout.contains("temperature") && stdout.contains("split val"),
        "{stdout}"
    );
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&cal).unwrap()).unwrap();
    let t = file["temperature"].as_f64().unwrap();
    assert!((0.05..=20.0).contains(&t), "{file}");
    assert_eq!(file["fitted_on"]["split"], "val");
    assert_eq!(file["fitted_on"]["images"], 30, "{file}");
    assert!(
        file["fitted_on"]["nll_after"].as_f64().unwrap()
            <= file["fitted_on"]["nll_before"].as_f64().unwrap(),
        "{file}"
    );
    let calibrates = file["calibrates"].as_str().unwrap();
    assert!(
        Path::new(calibrates).is_absolute()
            && std::fs::canonicalize(calibrates).unwrap()
                == std::fs::canonicalize(dlib_model()).unwrap(),
        "{file}"
    );

    // The file is a model: each probability is the plain model's, temperature-scaled.
    let test_faces: Vec<_> = walk_images(&prepared.join("test"))
        .into_iter()
        .take(8)
        .collect();
    let p_female = |model: &str| -> Vec<f64> {
        let (code, stdout, stderr) = run(bin()
            .args(["predict", "--json", "--model", model])
            .args(&test_faces));
        assert_eq!(code, 0, "{model}: {stderr}");
        json_lines(&stdout)
            .iter()
            .map(|row| row["probabilities"]["female"].as_f64().unwrap())
            .collect()
    };
    let plain = p_female(&dlib_model());
    let scaled = p_female(cal.to_str().unwrap());
    assert_eq!(scaled.len(), 8);
    for (p, q) in plain.iter().zip(&scaled) {
        let p = p.clamp(1e-7, 1.0 - 1e-7);
        let want = 1.0 / (1.0 + (-(p / (1.0 - p)).ln() / t).exp());
        assert!((q - want).abs() < 1e-5, "{p} at T {t}: {q} vs {want}");
    }

    // eval and compare take it too, under a name that shows the temperature.
    let out = d.join("report");
    let (code, _, stderr) = run(bin()
        .args(["compare", "--model", &dlib_model(), "--model"])
        .arg(&cal)
        .arg("--data")
        .arg(&prepared)
        .arg("--out")
        .arg(&out));
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("report.json")).unwrap()).unwrap();
    let names: Vec<&str> = report["models"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["name"].as_str().unwrap())
        .collect();
    assert!(names[1].ends_with(&format!("+T{t:.2}")), "{names:?}");

    // --json prints what the file holds; the built-in model is named as `builtin`.
    let builtin_cal = d.join("builtin-cal.json");
    let (code, stdout, stderr) = run(bin()
        .args(["calibrate", "--json", "--data"])
        .arg(&prepared)
        .arg("--out")
        .arg(&builtin_cal));
    assert_eq!(code, 0, "{stderr}");
    let printed: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let written: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&builtin_cal).unwrap()).unwrap();
    assert_eq!(printed, written);
    assert_eq!(written["calibrates"], "builtin");

    // Refused before any image is read, each with its reason; the existing file is untouched.
    let before = std::fs::read(&cal).unwrap();
    let cal_arg = cal.to_str().unwrap().to_string();
    for (model, out, says) in [
        (dlib_model(), cal.clone(), "already exists"),
        (dlib_model(), d.join("cal.txt"), "must end in .json"),
        (
            cal_arg.clone(),
            d.join("again.json"),
            "already a calibration file",
        ),
        (
            format!("flip:{cal_arg}"),
            d.join("flip.json"),
            "calibrate --model flip:MODEL",
        ),
        (
            dlib_model(),
            d.join("missing").join("cal.json"),
            "no folder",
        ),
    ] {
        let (code, _, stderr) = calibrate(&model, &out);
        assert_eq!(code, 2, "{model} -> {}: {stderr}", out.display());
        assert!(stderr.contains(says), "{model}: {stderr}");
        if out != cal {
            assert!(!out.exists(), "{} written", out.display());
        }
    }
    assert_eq!(std::fs::read(&cal).unwrap(), before);

    // Images of one class only: refused, nothing written.
    let women = d.join("women");
    std::fs::create_dir_all(women.join("female")).unwrap();
    for f in walk_images(&prepared.join("val/female")) {
        std::fs::copy(&f, women.join("female").join(f.file_name().unwrap())).unwrap();
    }
    let few = d.join("few.json");
    let limited = |data: &Path, limit: &str, out: &Path| {
        run(bin()
            .args([
                "calibrate",
                "--limit",
                limit,
                "--model",
                &dlib_model(),
                "--data",
            ])
            .arg(data)
            .arg("--out")
            .arg(out))
    };
    let (code, _, stderr) = limited(&women, "5", &few);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs both classes"), "{stderr}");
    assert!(!few.exists());
    // --limit spreads its images over the split: 6 of the 30 validation faces hold both
    // classes (the first 6, sorted by class, were all women, and this was refused).
    let (code, _, stderr) = limited(&prepared, "6", &few);
    assert_eq!(code, 0, "{stderr}");
    let file: serde_json::Value = serde_json::from_slice(&std::fs::read(&few).unwrap()).unwrap();
    assert_eq!(file["fitted_on"]["images"], 6, "{file}");
}

/// The image files under `dir`, sorted.
fn walk_images(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "jpg") {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

#[test]
fn eval_checks_before_the_work_and_names_each_failed_file() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let faces = d.join("faces");
    std::fs::create_dir_all(&faces).unwrap();
    let data = d.join("classes");
    for (i, face) in real_faces(&faces, 6).iter().enumerate() {
        let class = if i % 2 == 0 { "female" } else { "male" };
        std::fs::create_dir_all(data.join(class)).unwrap();
        std::fs::copy(face, data.join(class).join(face.file_name().unwrap())).unwrap();
    }
    std::fs::write(data.join("female/zero.jpg"), b"").unwrap();
    std::fs::write(data.join("male/text.jpg"), b"not an image").unwrap();
    let eval = |args: &[&str], out: &Path| {
        run(bin()
            .args(args)
            .arg("--data")
            .arg(&data)
            .arg("--out")
            .arg(out))
    };

    // Two models fail on the same two files: each is named once, and the exit code is 1.
    let (code, _, stderr) = eval(
        &["compare", "--model", "builtin", "--model", "flip:builtin"],
        &d.join("r"),
    );
    assert_eq!(code, 1, "{stderr}");
    for name in ["zero.jpg: error:", "text.jpg: error:"] {
        assert_eq!(stderr.matches(name).count(), 1, "{name}: {stderr}");
    }
    // A folder of class folders has no test split: said, and the report says what was read
    // (`--split bogus` was taken silently and recorded as the split).
    assert!(
        stderr.contains("no manifest.csv and no test/ folder"),
        "{stderr}"
    );
    let md = std::fs::read_to_string(d.join("r/report.md")).unwrap();
    assert!(md.contains("(split whole folder)"), "{md}");
    // An earlier report is replaced by a new run into its folder, litter or not.
    std::fs::write(d.join("r/.DS_Store"), b"").unwrap();
    let (code, _, stderr) = eval(&["eval", "--limit", "2"], &d.join("r"));
    assert_eq!(code, 0, "{stderr}");
    let md = std::fs::read_to_string(d.join("r/report.md")).unwrap();
    assert!(md.contains("2 images"), "{md}");

    // Refused before any model runs (no accuracy line), each with its reason.
    let file = d.join("a-file");
    std::fs::write(&file, b"mine").unwrap();
    let missing = d.join("missing.onnx");
    // A user's own report.md, and a folder of other files (the data itself), are not report
    // folders: they were overwritten.
    let notes = d.join("notes");
    std::fs::create_dir(&notes).unwrap();
    std::fs::write(notes.join("report.md"), b"my notes").unwrap();
    for (args, out, needle) in [
        (vec!["eval"], file.as_path(), "cannot be the report folder"),
        (
            vec!["eval"],
            notes.as_path(),
            "no earlier eval or compare wrote",
        ),
        (vec!["eval"], data.as_path(), "which is not a report"),
        (
            vec!["eval", "--limit", "0"],
            d.join("r6").as_path(),
            "--limit 0 leaves no images",
        ),
        (
            vec!["eval", "--min-confidence", "2"],
            d.join("r2").as_path(),
            "--min-confidence 2",
        ),
        (
            vec![
                "compare",
                "--model",
                "builtin",
                "--model",
                missing.to_str().unwrap(),
            ],
            d.join("r3").as_path(),
            "missing.onnx",
        ),
    ] {
        let (code, _, stderr) = eval(&args, out);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(!stderr.contains("accuracy"), "{args:?}: {stderr}");
        assert!(
            [file.as_path(), notes.as_path(), data.as_path()].contains(&out) || !out.exists(),
            "{args:?} made {}",
            out.display()
        );
    }
    assert_eq!(std::fs::read(&file).unwrap(), b"mine");
    assert_eq!(std::fs::read(notes.join("report.md")).unwrap(), b"my notes");
    assert!(!data.join("report.md").exists());

    // An ONNX model under a name that gives no preset: compare takes one for it (and not for the
    // built-in model beside it).
    let renamed = d.join("renamed.onnx");
    std::fs::copy(dlib_model(), &renamed).unwrap();
    let args = [
        "compare",
        "--model",
        "builtin",
        "--model",
        renamed.to_str().unwrap(),
    ];
    let (code, _, stderr) = eval(&args, &d.join("r4"));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("preset"), "{stderr}");
    let (code, _, stderr) = eval(
        &[&args[..], &["--preset", "dlib-cydral-gender-v1"]].concat(),
        &d.join("r5"),
    );
    assert_eq!(code, 1, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("r5/report.json")).unwrap()).unwrap();
    assert_eq!(report["models"].as_array().unwrap().len(), 2, "{report}");
}

/// `compare --preset` serves the ONNX models that need it, and leaves alone a model whose file
/// name is recognised (the preset was forced on every model, and such a pair could not be
/// compared; a spec beside a model is tested in crates/onnx/tests/errors.rs).
#[test]
fn compare_gives_the_preset_only_to_the_models_that_need_it() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = prepared_faces(d, 30);
    let renamed = d.join("faces-model.onnx");
    std::fs::copy(
        shared("models/gender/insightface-genderage-112.onnx"),
        &renamed,
    )
    .unwrap();
    let (code, _, stderr) = run(bin()
        .args(["compare", "--model", &dlib_model(), "--model"])
        .arg(&renamed)
        .args(["--preset", "insightface-genderage-112", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(d.join("report")));
    assert_eq!(code, 0, "{stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("report/report.json")).unwrap()).unwrap();
    let text = report.to_string();
    assert!(
        text.contains("dlib-cydral-gender-v1") && text.contains("insightface-genderage-112"),
        "{text}"
    );
}
