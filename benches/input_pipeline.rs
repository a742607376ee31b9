//! Input pipeline benchmark: gc-pipeline against the notebook's tf.data pipeline, same images, same
//! thread count, each side in its own process so that peak memory is its own.
//!
//! ```text
//! PEER_PYTHON=/path/to/venv/bin/python \
//!   cargo bench -p gc-pipeline --bench input_pipeline -- DIR [--epochs 3] [--threads 2]
//! ```
//!
//! DIR holds one folder per class (the `train` folder written by `gender-classifier prepare`).
//! Prints, per side, images/s of the first epoch (decode + resize + cache fill: "cold") and of the
//! later epochs (from the cache: "cached"), and the peak RSS; then ours/TF ratios. The files are read
//! once before either side starts, so both find them in the page cache. Without TensorFlow (or
//! without `PEER_PYTHON`'s interpreter) the peer is skipped with a message.
//!
//! Run by itself with `--side ours`, the binary is the worker for our side and prints one JSON line.

#[path = "common.rs"]
mod common;

use common::{peak_rss_mib, run_child};
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use gc_pipeline::{Cache, ImageFolder, Pipeline, PipelineConfig};
use serde_json::{Value, json};

struct Args {
    dir: Option<PathBuf>,
    epochs: usize,
    threads: usize,
    side: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        dir: None,
        epochs: 3,
        threads: 2,
        side: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--epochs" => {
                args.epochs = value("--epochs")?
                    .parse()
                    .map_err(|e| format!("--epochs: {e}"))?
            }
            "--threads" => {
                args.threads = value("--threads")?
                    .parse()
                    .map_err(|e| format!("--threads: {e}"))?
            }
            "--side" => args.side = Some(value("--side")?),
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            other if other.starts_with("--") => return Err(format!("unknown option {other}")),
            other => args.dir = Some(PathBuf::from(other)),
        }
    }
    if args.epochs < 2 {
        return Err("--epochs must be at least 2 (one cold, one cached)".into());
    }
    Ok(args)
}

/// Our side: the same work as the peer script, in this process.
fn run_ours(dir: &Path, epochs: usize, threads: usize) -> Result<Value, String> {
    let started = Instant::now();
    let folder = ImageFolder::open(dir).map_err(|e| e.to_string())?;
    let config = PipelineConfig {
        workers: threads,
        cache: Cache::Memory,
        ..PipelineConfig::train()
    };
    let pipeline = Pipeline::new(folder.samples, config).map_err(|e| e.to_string())?;
    let index_s = started.elapsed().as_secs_f64();
    let mut results = Vec::new();
    for epoch in 0..epochs {
        let t = Instant::now();
        let mut images = 0;
        for batch in pipeline.epoch(epoch as u64) {
            images += batch.len();
            black_box(&batch.images);
        }
        let seconds = t.elapsed().as_secs_f64();
        results.push(
            json!({"images": images, "seconds": seconds, "images_per_s": images as f64 / seconds}),
        );
    }
    Ok(json!({
        "side": "gc-pipeline",
        "threads": threads,
        "index_s": index_s,
        "epochs": results,
        "skipped": pipeline.skipped().len(),
        "peak_rss_mib": peak_rss_mib(),
    }))
}

/// Cold (first epoch) and cached (mean of the later epochs) images/s.
fn rates(v: &Value) -> Option<(f64, f64)> {
    let epochs: Vec<f64> = v["epochs"]
        .as_array()?
        .iter()
        .filter_map(|e| e["images_per_s"].as_f64())
        .collect();
    let (cold, cached) = epochs.split_first()?;
    Some((
        *cold,
        cached.iter().sum::<f64>() / cached.len().max(1) as f64,
    ))
}

fn warm_page_cache(dir: &Path) -> Result<usize, String> {
    let folder = ImageFolder::open(dir).map_err(|e| e.to_string())?;
    let mut n = 0;
    for s in &folder.samples {
        n += std::fs::read(&s.path).map(|b| b.len()).unwrap_or(0);
    }
    black_box(n);
    Ok(folder.samples.len())
}

fn drive(args: &Args, dir: &Path) -> Result<(), String> {
    let images = warm_page_cache(dir)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let mut ours = Command::new(exe);
    ours.arg(dir).args([
        "--side",
        "ours",
        "--epochs",
        &args.epochs.to_string(),
        "--threads",
        &args.threads.to_string(),
    ]);
    let ours = run_child(ours)?;

    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/peers/tf_pipeline.py");
    let mut peer = Command::new(&python);
    peer.arg(&script).arg(dir).args([
        "--epochs",
        &args.epochs.to_string(),
        "--threads",
        &args.threads.to_string(),
    ]);
    let peer = match run_child(peer) {
        Ok(v) if v.get("skipped").is_some() => {
            println!("peer skipped: {}", v["skipped"].as_str().unwrap_or("?"));
            None
        }
        Ok(v) => Some(v),
        Err(e) => {
            println!("peer skipped: {e}");
            None
        }
    };

    println!(
        "Input pipeline: {images} images in {}, {} epochs, {} threads",
        dir.display(),
        args.epochs,
        args.threads
    );
    println!();
    let (our_cold, our_cached) = rates(&ours).ok_or("our side printed no epochs")?;
    let our_rss = ours["peak_rss_mib"].as_f64();
    let (peer_cold, peer_cached, peer_rss) = match &peer {
        Some(p) => {
            let (c, k) = rates(p).ok_or("the peer printed no epochs")?;
            (Some(c), Some(k), p["peak_rss_mib"].as_f64())
        }
        None => (None, None, None),
    };
    let cell = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.0}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}x", a / b),
        _ => "n/a".into(),
    };
    let peer_name = peer
        .as_ref()
        .and_then(|p| p["version"].as_str())
        .map_or("tf.data".into(), |v| format!("tf.data (TF {v})"));
    println!("| measure | gc-pipeline | {peer_name} | ours/TF |");
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| cold epoch (decode, resize, fill cache), images/s | {} | {} | {} |",
        cell(Some(our_cold)),
        cell(peer_cold),
        ratio(Some(our_cold), peer_cold)
    );
    println!(
        "| cached epochs, images/s | {} | {} | {} |",
        cell(Some(our_cached)),
        cell(peer_cached),
        ratio(Some(our_cached), peer_cached)
    );
    println!(
        "| peak RSS, MiB | {} | {} | {} |",
        cell(our_rss),
        cell(peer_rss),
        ratio(our_rss, peer_rss)
    );
    if let Some(n) = ours["skipped"].as_u64().filter(|&n| n > 0) {
        println!("\ngc-pipeline skipped {n} unreadable images");
    }
    Ok(())
}

fn main() -> ExitCode {
    // As the CLI runs: glibc malloc keeps freed memory (gc_core::malloc).
    gc_core::malloc::keep_freed_memory();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("input_pipeline: {e}");
            return ExitCode::from(2);
        }
    };
    let Some(dir) = args.dir.clone() else {
        // `cargo bench` over the workspace runs every bench; without data this one has nothing to do.
        println!(
            "input_pipeline: skipped, no data folder given. Usage: cargo bench -p gc-pipeline --bench input_pipeline -- DIR"
        );
        return ExitCode::SUCCESS;
    };
    let result = match args.side.as_deref() {
        Some("ours") => run_ours(&dir, args.epochs, args.threads).map(|v| println!("{v}")),
        Some(other) => Err(format!("unknown side {other}")),
        None => drive(&args, &dir),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("input_pipeline: {e}");
            ExitCode::FAILURE
        }
    }
}
