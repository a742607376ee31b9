//! `sort`: photos per second, ours (gc-sort: tract YuNet + the classifier, rayon) against the
//! usual Python stack (OpenCV's YuNet + onnxruntime, `benches/peers/sort_photos.py`), on the same
//! photos with the same detector and the same classifier (dlib-cydral-gender-v1, which both can
//! run), both using 2 threads.
//!
//! ```text
//! PEER_PYTHON=/path/to/venv/bin/python \
//!   cargo bench --workspace --bench sort_photos -- [--utkface 1000] [--copies 10] [--rounds 2]
//! ```
//!
//! Two sets: the six photos of `../shared/photos` `--copies` times over (real photos: detection on
//! every one), and the first `--utkface` images of UTKFace's 200px crops (face crops, classified
//! whole). Each run sorts into a fresh folder (copies, index.csv); the time covers the whole sort
//! after the models are loaded. Sides alternate for `--rounds` rounds; the figure is the best round.
//! Our built-in model is timed too, on our side only. Without the peer's Python, the peer is
//! skipped with a message.

#[path = "common.rs"]
mod common;
#[path = "utkface.rs"]
mod utkface;

use common::{run_child, shared};
use gc_classify::photos::DetectMode;
use gc_core::Classifier;
use gc_detect::{Detector, DetectorKind};
use gc_sort::{Settings, Sort};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

struct Args {
    utkface: usize,
    copies: usize,
    rounds: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        utkface: 1000,
        copies: 10,
        rounds: 2,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<usize, String> {
            it.next()
                .ok_or(format!("{name} needs a value"))?
                .parse()
                .map_err(|e| format!("{name}: {e}"))
        };
        match a.as_str() {
            "--utkface" => args.utkface = value("--utkface")?,
            "--copies" => args.copies = value("--copies")?,
            "--rounds" => args.rounds = value("--rounds")?.max(1),
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

fn photo_set(dir: &Path, copies: usize) -> usize {
    let photos: Vec<PathBuf> = std::fs::read_dir(shared("photos"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jpg"))
        .collect();
    for k in 0..copies {
        let sub = dir.join(format!("copy-{k:02}"));
        std::fs::create_dir_all(&sub).unwrap();
        for p in &photos {
            std::fs::copy(p, sub.join(p.file_name().unwrap())).unwrap();
        }
    }
    photos.len() * copies
}

/// Sorts `src` into a fresh folder with our library; seconds after the models are loaded.
fn ours(model: &dyn Classifier, detector: &Detector, src: &Path, dst: &Path) -> f64 {
    let settings = Settings {
        model: model.name().into(),
        detector: Some("yunet".into()),
        detect: "auto".into(),
        min_confidence: 0.8,
        link: false,
    };
    let start = Instant::now();
    let sort = Sort::open(src, dst, settings).unwrap();
    let summary = sort
        .run(
            model,
            Some(detector),
            DetectMode::Auto,
            model.preferred_batch(),
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
    let seconds = start.elapsed().as_secs_f64();
    assert!(summary.sorted > 0);
    seconds
}

fn peer(python: &str, src: &Path, dst: &Path) -> Result<f64, String> {
    let script = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/peers/sort_photos.py");
    let mut cmd = Command::new(python);
    cmd.arg(script)
        .arg(src)
        .arg("--out")
        .arg(dst)
        .arg("--detector")
        .arg(shared("models/detect/yunet-n-dynamic.onnx"))
        .arg("--model")
        .arg(shared("models/gender/dlib-cydral-gender-v1.opset13.onnx"))
        .args(["--workers", "2", "--threads", "1"]);
    let v = run_child(cmd)?;
    v["seconds"]
        .as_f64()
        .ok_or("the peer printed no seconds".into())
}

fn main() -> ExitCode {
    // As the CLI runs: glibc malloc keeps freed memory (gc_core::malloc).
    gc_core::malloc::keep_freed_memory();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let tmp = tempfile::tempdir().unwrap();
    let photos = tmp.path().join("photos");
    let utk = tmp.path().join("utkface");
    let sets = [
        ("shared photos", photo_set(&photos, args.copies), photos),
        (
            "UTKFace crops",
            utkface::extract(
                &shared("data/utkface-crop_part1-200px.tar.gz"),
                &utk,
                args.utkface,
            ),
            utk,
        ),
    ];
    let dlib: Box<dyn Classifier> = Box::new(
        gc_onnx::OnnxClassifier::from_path(
            shared("models/gender/dlib-cydral-gender-v1.opset13.onnx"),
            None,
        )
        .unwrap(),
    );
    let builtin: Box<dyn Classifier> = Box::new(gc_classify::builtin::load().unwrap());
    let detector = Detector::from_path(
        &shared("models/detect/yunet-n-dynamic.onnx"),
        DetectorKind::YuNet,
    )
    .unwrap();
    println!(
        "sort, photos per second (best of {} rounds; {} threads)",
        args.rounds,
        rayon::current_num_threads()
    );
    for (k, (name, n, src)) in sets.iter().enumerate() {
        // A fresh folder for every run, deleted only at the end: ext4 slows down creating files
        // where many were just deleted, which would penalise whichever side runs next.
        let dst = |side: &str, round: usize| tmp.path().join(format!("out-{k}-{side}-{round}"));
        let mut best_ours = f64::INFINITY;
        let mut best_peer: Option<f64> = None;
        let mut peer_error = None;
        for round in 0..args.rounds {
            best_ours = best_ours.min(ours(dlib.as_ref(), &detector, src, &dst("ours", round)));
            match peer(&python, src, &dst("peer", round)) {
                Ok(s) => best_peer = Some(best_peer.map_or(s, |b: f64| b.min(s))),
                Err(e) => peer_error = Some(e),
            }
        }
        let builtin_s = ours(builtin.as_ref(), &detector, src, &dst("builtin", 0));
        let rate = |s: f64| *n as f64 / s;
        println!("{name} ({n} images):");
        println!(
            "  ours   dlib-cydral: {:8.1} photos/s   built-in model: {:8.1} photos/s",
            rate(best_ours),
            rate(builtin_s)
        );
        match (best_peer, peer_error) {
            (Some(p), _) => println!(
                "  python dlib-cydral: {:8.1} photos/s   ratio ours/python: {:.2}",
                rate(p),
                p / best_ours
            ),
            (None, e) => println!("  python: skipped: {}", e.unwrap_or_default()),
        }
    }
    ExitCode::SUCCESS
}
