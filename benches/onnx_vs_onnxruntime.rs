//! ONNX gender models, ours (tract, through gc-classify as `predict` runs them) against
//! onnxruntime (`benches/peers/onnx_classify.py`), with the same model files and preprocessing:
//!
//! - cold start: wall time from process start to the printed result for one image, ours (this
//!   binary re-run as `--cold-child`, what `gender-classifier predict --model M.onnx face.jpg`
//!   does) and Python's (`onnx_classify.py --one`), median of `--runs` after one unmeasured run;
//! - throughput: images/s over the first `--images` images of UTKFace's 200px crops, decoding
//!   included (ours: rayon; theirs: a thread pool), batches of `--batch`, 2 threads each; ours
//!   and theirs alternately, median of `--throughput-runs` each.
//!
//! ```text
//! PEER_PYTHON=/path/to/venv/bin/python \
//!   cargo bench --workspace --bench onnx_vs_onnxruntime -- [--images 1000] [--runs 3] [--batch 64]
//!   [--throughput-runs 3] [--only NAME]
//! ```

#[path = "common.rs"]
mod common;
#[path = "utkface.rs"]
mod utkface;

use common::{median, run_child, shared, time_process};
use gc_classify::{Input, classify_inputs};
use gc_core::{Classifier, RgbView};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

/// `--cold-child MODEL IMAGE`: load, decode, classify, print, as a user's first run does.
fn cold_child(model: &str, image: &str) -> Result<(), String> {
    let clf = gc_onnx::OnnxClassifier::from_path(model, None).map_err(|e| e.to_string())?;
    let img = gc_pipeline::decode::decode_rgb(image).map_err(|e| e.to_string())?;
    let view = RgbView::new(img.width(), img.height(), img.as_raw()).map_err(|e| e.to_string())?;
    let row = clf.classify(&[view]).map_err(|e| e.to_string())?.remove(0);
    let p = gc_classify::Prediction::from_row(&clf, &row);
    println!("{image}  {}  {:.3}", p.label, p.confidence());
    Ok(())
}

fn main() -> ExitCode {
    // As the CLI runs: glibc malloc keeps freed memory (gc_core::malloc).
    gc_core::malloc::keep_freed_memory();
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--cold-child") {
        let (Some(model), Some(image)) = (argv.get(i + 1), argv.get(i + 2)) else {
            eprintln!("--cold-child MODEL IMAGE");
            return ExitCode::from(2);
        };
        return match cold_child(model, image) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let number = |name: &str, default: usize| {
        argv.iter()
            .position(|a| a == name)
            .and_then(|i| argv.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (images, runs, batch, throughput_runs) = (
        number("--images", 1000),
        number("--runs", 3),
        number("--batch", 64),
        number("--throughput-runs", 3).max(1),
    );
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/peers/onnx_classify.py");
    let tmp = tempfile::tempdir().unwrap();
    let n = utkface::extract(
        &shared("data/utkface-crop_part1-200px.tar.gz"),
        tmp.path(),
        images,
    );
    let mut files: Vec<PathBuf> = std::fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let one = files[0].clone();
    let exe = std::env::current_exe().unwrap();
    println!(
        "ONNX models, ours (tract) against onnxruntime; {n} UTKFace 200px images, batch {batch}"
    );
    // `--only TEXT`: the models whose name contains it.
    let only = argv
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| argv.get(i + 1))
        .map_or("", String::as_str);
    for name in [
        "dlib-cydral-gender-v1.opset13",
        "insightface-genderage-112",
        "yu4u-wrn16-8-agegender-64",
    ]
    .into_iter()
    .filter(|name| name.contains(only))
    {
        let model = shared(&format!("models/gender/{name}.onnx"));
        println!("{name}:");
        let ours_cold = time_process(
            || {
                let mut c = Command::new(&exe);
                c.arg("--cold-child").arg(&model).arg(&one);
                c
            },
            runs,
        );
        let peer_cold = time_process(
            || {
                let mut c = Command::new(&python);
                c.arg(&script)
                    .arg("--model")
                    .arg(&model)
                    .arg("--one")
                    .arg(&one);
                c
            },
            runs,
        );
        match (&ours_cold, &peer_cold) {
            (Ok(o), Ok(p)) => println!(
                "  cold start: ours {:6.0} ms, onnxruntime {:6.0} ms: {:.1}x faster",
                o.as_secs_f64() * 1e3,
                p.as_secs_f64() * 1e3,
                p.as_secs_f64() / o.as_secs_f64()
            ),
            (o, p) => println!("  cold start: ours {o:?}, onnxruntime {p:?}"),
        }
        let clf = gc_onnx::OnnxClassifier::from_path(&model, None).unwrap();
        let inputs: Vec<Input> = files
            .iter()
            .map(|p| Input {
                path: p.clone(),
                problem: None,
            })
            .collect();
        // Ours and onnxruntime's alternately, `throughput_runs` times each: onnxruntime's own
        // figure moved by up to a quarter between single runs on the shared machine.
        let (mut ours, mut peers) = (Vec::new(), Vec::new());
        for _ in 0..throughput_runs {
            let start = Instant::now();
            let mut done = 0;
            classify_inputs(&clf, &inputs, batch, |o| {
                assert!(o.result.is_ok(), "{:?}", o.result);
                done += 1;
            });
            ours.push(done as f64 / start.elapsed().as_secs_f64());
            let mut cmd = Command::new(&python);
            cmd.arg(&script)
                .arg("--model")
                .arg(&model)
                .arg("--dir")
                .arg(tmp.path())
                .args(["--batch", &batch.to_string(), "--threads", "2"]);
            match run_child(cmd) {
                Ok(v) => peers.push(v["images_per_s"].as_f64().unwrap_or(f64::NAN)),
                Err(e) => {
                    println!("  onnxruntime skipped: {e}");
                    break;
                }
            }
        }
        // Each round's ratio, from the rounds where both ran.
        let ratios: Vec<String> = ours
            .iter()
            .zip(&peers)
            .map(|(o, p)| format!("{:.2}", o / p))
            .collect();
        let ours_rate = median(&mut ours);
        if peers.len() < ours.len() {
            println!(
                "  throughput: ours {ours_rate:7.1} images/s (median of {}), onnxruntime failed",
                ours.len()
            );
            continue;
        }
        let peer_rate = median(&mut peers);
        println!(
            "  throughput (median of {throughput_runs}): ours {ours_rate:7.1} images/s, onnxruntime {peer_rate:7.1} images/s: ratio {:.2} (runs: {})",
            ours_rate / peer_rate,
            ratios.join(", ")
        );
    }
    ExitCode::SUCCESS
}
