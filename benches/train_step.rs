//! One training step of the notebook CNN, ours (burn's `flex` CPU backend, with the convolution,
//! BatchNorm and max-pooling kernels of `gc_models::{conv, batch_norm, max_pool}`) against PyTorch (and
//! TensorFlow's figure is in docs/BENCHMARKS.md), and inference of the built-in model.
//!
//! ```text
//! PEER_PYTHON=/path/to/venv/bin/python \
//!   cargo bench --workspace --bench train_step -- [--threads 2] [--batch 64] [--size 128] [--rounds 3] [--steps 4]
//! ```
//!
//! The step: forward, cross-entropy, backward, AdamW (lr 1e-3, weight decay 1e-4) on a fixed batch
//! of random `[batch, 3, size, size]` images, for the CNN 4 x (conv3x3 no bias + BatchNorm + ReLU +
//! maxpool 2x2) 32-64-128-256, global average pool, linear 256 -> 2. Each side runs in its own child
//! process, the two alternating for `--rounds` rounds of `--steps` timed steps (after 2 warm-up
//! steps), so that a busy machine slows both alike; the figure is the median over all timed steps.
//! Then the built-in model (`models/builtin/`) classifies batches of 64 images and single images,
//! against PyTorch running the same CNN at the same size. Without PyTorch the peer is skipped with
//! a message. Run by itself with `--side ours`, the binary is the worker for our side.

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::tensor::{Distribution, Int, Tensor, TensorData};
use gc_core::{Classifier, RgbView};
use gc_models::{CnnConfig, ImageClassifier};
use serde_json::{Value, json};
#[path = "common.rs"]
mod common;

use common::{median, peak_rss_mib, run_child};
use std::hint::black_box;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Clone)]
struct Args {
    threads: usize,
    batch: usize,
    size: usize,
    rounds: usize,
    steps: usize,
    side: Option<String>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 2,
        batch: 64,
        size: 128,
        rounds: 3,
        steps: 4,
        side: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut number = |name: &str| -> Result<usize, String> {
            it.next()
                .ok_or(format!("{name} needs a value"))?
                .parse()
                .map_err(|e| format!("{name}: {e}"))
        };
        match a.as_str() {
            "--threads" => args.threads = number("--threads")?,
            "--batch" => args.batch = number("--batch")?,
            "--size" => args.size = number("--size")?,
            "--rounds" => args.rounds = number("--rounds")?,
            "--steps" => args.steps = number("--steps")?,
            "--side" => args.side = Some(it.next().ok_or("--side needs a value")?),
            // `cargo bench` passes --bench to every bench binary.
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if args.batch == 0 || args.steps == 0 || args.rounds == 0 || args.size < 16 {
        return Err("--batch, --steps and --rounds must be >= 1 and --size >= 16".into());
    }
    Ok(args)
}

fn builtin_dir() -> std::path::PathBuf {
    gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("../../models/builtin")
}

/// Our side, in this process: train steps, then the built-in model's inference.
fn run_ours(args: &Args) -> Result<Value, String> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
        .map_err(|e| e.to_string())?;
    pool.install(|| {
        let device = gc_models::cpu_device().autodiff();
        device.seed(0);
        let mut model = CnnConfig::new().init(&device);
        let mut optimizer = AdamWConfig::new().with_weight_decay(1e-4).init();
        let loss_fn = CrossEntropyLossConfig::new().init(&device);
        let shape = [args.batch, 3, args.size, args.size];
        let x = Tensor::<4>::random(shape, Distribution::Uniform(0.0, 1.0), &device);
        let labels: Vec<i64> = (0..args.batch as i64).map(|i| i % 2).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [args.batch]), &device);
        let mut times = Vec::new();
        for step in 0..2 + args.steps {
            let t = Instant::now();
            let loss = loss_fn.forward(model.forward(x.clone()), y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            model = optimizer.step(1e-3_f64, model, grads);
            black_box(loss.into_scalar::<f32>());
            if step >= 2 {
                times.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let train_rss = peak_rss_mib();

        // The built-in model through its Classifier (resize + crop + forward + softmax).
        let builtin = gc_train::load_model(&builtin_dir()).map_err(|e| e.to_string())?;
        let side = builtin.geometry().image_size.width as usize;
        let pixels: Vec<u8> = (0..side * side * 3).map(|i| (i * 7 % 251) as u8).collect();
        let view = RgbView::new(side as u32, side as u32, &pixels).map_err(|e| e.to_string())?;
        let batch: Vec<RgbView<'_>> = vec![view; args.batch];
        let mut batch_ms = Vec::new();
        let mut single_ms = Vec::new();
        for i in 0..1 + args.steps {
            let t = Instant::now();
            black_box(builtin.classify(&batch).map_err(|e| e.to_string())?);
            if i > 0 {
                batch_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        for i in 0..3 + 4 * args.steps {
            let t = Instant::now();
            black_box(builtin.classify(&batch[..1]).map_err(|e| e.to_string())?);
            if i >= 3 {
                single_ms.push(t.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let batch_median = median(&mut batch_ms);
        Ok(json!({
            "framework": "burn 0.22.1 flex + gc-models kernels",
            "train_step_all_ms": times,
            "peak_rss_mib": train_rss,
            "builtin_size": side,
            "inference_images_per_s": args.batch as f64 / batch_median * 1000.0,
            "single_image_ms": median(&mut single_ms),
        }))
    })
}

fn peer(args: &Args, size: usize, steps: usize) -> Command {
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/peers/train_step.py");
    let mut cmd = Command::new(python);
    cmd.arg(script).args([
        "--threads",
        &args.threads.to_string(),
        "--batch",
        &args.batch.to_string(),
        "--size",
        &size.to_string(),
        "--steps",
        &steps.to_string(),
    ]);
    cmd
}

fn times(v: &Value) -> Vec<f64> {
    v["train_step_all_ms"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_f64).collect())
        .unwrap_or_default()
}

fn drive(args: &Args) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let (mut ours_ms, mut peer_ms) = (Vec::new(), Vec::new());
    let (mut ours_last, mut peer_last) = (None, None);
    for round in 0..args.rounds {
        let mut cmd = Command::new(&exe);
        cmd.args(["--side", "ours", "--threads", &args.threads.to_string()])
            .args(["--batch", &args.batch.to_string()])
            .args(["--size", &args.size.to_string()])
            .args(["--steps", &args.steps.to_string()]);
        let ours = run_child(cmd)?;
        ours_ms.extend(times(&ours));
        ours_last = Some(ours);
        match run_child(peer(args, args.size, args.steps)) {
            Ok(p) => {
                peer_ms.extend(times(&p));
                peer_last = Some(p);
            }
            Err(e) => {
                println!("peer skipped: {e}");
                break;
            }
        }
        eprintln!("round {} of {} done", round + 1, args.rounds);
    }
    let ours = ours_last.ok_or("our side gave no result")?;
    let builtin_size = ours["builtin_size"].as_u64().unwrap_or(64) as usize;
    // PyTorch's inference of the same CNN at the built-in model's size.
    let peer_infer = peer_last
        .as_ref()
        .and_then(|_| run_child(peer(args, builtin_size, args.steps)).ok());

    let our_step = median(&mut ours_ms);
    let peer_step = (!peer_ms.is_empty()).then(|| median(&mut peer_ms));
    let peer_name = peer_last
        .as_ref()
        .and_then(|p| p["framework"].as_str())
        .unwrap_or("PyTorch")
        .to_string();
    let cell = |v: Option<f64>, digits: usize| v.map_or("n/a".into(), |v| format!("{v:.digits$}"));
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => format!("{:.2}", a / b),
        _ => "n/a".into(),
    };
    println!(
        "Train step of the notebook CNN: batch {} of {}x{} RGB, {} threads, median of {} steps over {} interleaved rounds",
        args.batch,
        args.size,
        args.size,
        args.threads,
        ours_ms.len(),
        args.rounds
    );
    println!();
    println!(
        "| measure | gc-train (burn flex + our conv, BatchNorm and max-pool kernels) | {peer_name} | ours/peer |"
    );
    println!("| --- | ---: | ---: | ---: |");
    println!(
        "| train step, ms (lower is better) | {} | {} | {} |",
        cell(Some(our_step), 0),
        cell(peer_step, 0),
        ratio(Some(our_step), peer_step)
    );
    let peak = |v: Option<&Value>| v.and_then(|v| v["peak_rss_mib"].as_f64());
    println!(
        "| peak RSS of the training process, MiB | {} | {} | {} |",
        cell(peak(Some(&ours)), 0),
        cell(peak(peer_last.as_ref()), 0),
        ratio(peak(Some(&ours)), peak(peer_last.as_ref()))
    );
    let our_ips = ours["inference_images_per_s"].as_f64();
    let peer_ips = peer_infer
        .as_ref()
        .and_then(|p| p["inference_images_per_s"].as_f64());
    println!(
        "| built-in model ({builtin_size}x{builtin_size}), images/s at batch {} (higher is better) | {} | {} | {} |",
        args.batch,
        cell(our_ips, 0),
        cell(peer_ips, 0),
        ratio(our_ips, peer_ips)
    );
    let our_single = ours["single_image_ms"].as_f64();
    let peer_single = peer_infer
        .as_ref()
        .and_then(|p| p["single_image_ms"].as_f64());
    println!(
        "| built-in model, one image, ms (lower is better) | {} | {} | {} |",
        cell(our_single, 2),
        cell(peer_single, 2),
        ratio(our_single, peer_single)
    );
    println!();
    println!(
        "Ours includes resize and centre crop from RGB8 in the inference rows; PyTorch's does not."
    );
    Ok(())
}

fn main() -> ExitCode {
    // As the CLI's `train` runs: glibc malloc keeps freed memory, on one arena (gc_core::malloc).
    gc_core::malloc::keep_freed_memory();
    gc_core::malloc::one_arena();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("train_step: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match args.side.as_deref() {
        Some("ours") => run_ours(&args).map(|v| println!("{v}")),
        Some(other) => Err(format!("unknown side {other}")),
        None => drive(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("train_step: {e}");
            ExitCode::FAILURE
        }
    }
}
