//! Benchmark: gc-hf's ViT or SigLIP (burn, flex backend) against transformers'
//! `image-classification` pipeline (PyTorch), the same model files, in the same run.
//!
//! ```text
//! cargo bench --release --workspace --bench vit_vs_transformers -- [--arch vit|siglip] [--model DIR]
//!     [--images N] [--batch B] [--python PATH] [--runs R] [--skip-python]
//! ```
//!
//! - model: a Hub-format directory; default `/tmp/gc-hf-bench/vit-b16` (`--arch siglip`:
//!   `/tmp/gc-hf-bench/siglip-b16`), created when missing by `benches/pipeline_bench.py make-model`
//!   (a randomly initialised ViT-B/16 or SigLIP-B/16 vision tower, 224 px, no download);
//! - cold start: wall time from process start to the printed result for one image, ours (this
//!   binary re-run as `--cold-child`) and Python's (`pipeline_bench.py cold`), median of R runs
//!   after one unmeasured run (so both read the model from the page cache);
//! - throughput: images/s over the first N faces of `shared/data/utkface-aligned-64px.tar.gz`
//!   (resized to 224 by each side's preprocessing), batch B, decoding excluded, after one warm-up
//!   batch; ours twice, as the CLI runs (glibc malloc keeps freed memory, `gc_core::malloc`)
//!   and with glibc's defaults ([`MALLOC_DEFAULTS`]).

use gc_core::{Classifier, RgbView};
use gc_hf::HfClassifier;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

struct Args {
    arch: String,
    model: Option<PathBuf>,
    images: usize,
    batch: usize,
    python: PathBuf,
    runs: usize,
    skip_python: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        arch: "vit".into(),
        model: None,
        images: 200,
        batch: 8,
        python: PathBuf::from("/work/venvs/peers/bin/python"),
        runs: 3,
        skip_python: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        match a.as_str() {
            "--arch" => args.arch = value("--arch")?,
            "--model" => args.model = Some(value("--model")?.into()),
            "--images" => args.images = value("--images")?.parse().map_err(|e| format!("{e}"))?,
            "--batch" => args.batch = value("--batch")?.parse().map_err(|e| format!("{e}"))?,
            "--python" => args.python = value("--python")?.into(),
            "--runs" => args.runs = value("--runs")?.parse().map_err(|e| format!("{e}"))?,
            "--skip-python" => args.skip_python = true,
            // cargo bench passes --bench; ignore it and anything else cargo adds.
            _ => {}
        }
    }
    if !["vit", "siglip"].contains(&args.arch.as_str()) {
        return Err(format!("--arch {}: expected vit or siglip", args.arch));
    }
    Ok(args)
}

/// `--cold-child MODEL IMAGE`: what a user's first run does: load, decode, classify, print.
fn cold_child(model: &str, image: &str) -> Result<(), String> {
    let t0 = Instant::now();
    let clf = HfClassifier::from_dir(model).map_err(|e| e.to_string())?;
    let loaded = t0.elapsed();
    let img = image::open(image).map_err(|e| e.to_string())?.to_rgb8();
    let view = RgbView::new(img.width(), img.height(), img.as_raw()).map_err(|e| e.to_string())?;
    let t1 = Instant::now();
    let p = clf.classify(&[view]).map_err(|e| e.to_string())?;
    let inferred = t1.elapsed();
    let labels: Vec<String> = clf
        .labels()
        .iter()
        .zip(&p[0])
        .map(|(l, p)| format!("{}: {p:.4}", l.name))
        .collect();
    println!("{}", labels.join(", "));
    eprintln!(
        "load {:.0} ms, classify {:.0} ms",
        loaded.as_secs_f64() * 1e3,
        inferred.as_secs_f64() * 1e3
    );
    Ok(())
}

/// `--throughput-child MODEL DIR N BATCH`: images/s over the first N `.jpg` of DIR (sorted),
/// decoding excluded, after one warm-up batch. A child process, so that it can run with and
/// without the malloc setting.
fn throughput_child(model: &str, dir: &str, n: usize, batch: usize) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jpg"))
        .collect();
    files.sort();
    files.truncate(n);
    let clf = HfClassifier::from_dir(model)
        .map_err(|e| e.to_string())?
        .with_batch(batch);
    let decoded: Vec<image::RgbImage> = files
        .iter()
        .map(|f| image::open(f).map(|i| i.to_rgb8()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    let views: Vec<RgbView<'_>> = decoded
        .iter()
        .map(|i| RgbView::new(i.width(), i.height(), i.as_raw()))
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    clf.classify(&views[..batch.min(views.len())])
        .map_err(|e| e.to_string())?;
    let start = Instant::now();
    let probs = clf.classify(&views).map_err(|e| e.to_string())?;
    let secs = start.elapsed().as_secs_f64();
    assert_eq!(probs.len(), views.len());
    println!(
        "images/s {:.3} ({} images in {secs:.2} s, batch {batch})",
        views.len() as f64 / secs,
        views.len()
    );
    Ok(())
}

/// The child argument that leaves glibc malloc at its defaults.
const MALLOC_DEFAULTS: &str = "--malloc-defaults";

/// Runs a `... throughput` command and returns its `images/s ...` line.
fn throughput_line(mut cmd: Command) -> Result<String, String> {
    let out = cmd.output().map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find(|l| l.starts_with("images/s"))
        .map(|l| l.trim_start_matches("images/s ").to_string())
        .ok_or(format!(
            "throughput run failed:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        ))
}

/// Median wall time of `runs` runs of a command (after one unmeasured run).
fn time_process(mut make: impl FnMut() -> Command, runs: usize) -> Result<Duration, String> {
    let mut times = Vec::new();
    for i in 0..=runs {
        let start = Instant::now();
        let out = make().output().map_err(|e| e.to_string())?;
        let took = start.elapsed();
        if !out.status.success() {
            return Err(format!(
                "{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        if i == 0 {
            eprintln!(
                "  first output: {} {}",
                String::from_utf8_lossy(&out.stdout).trim(),
                String::from_utf8_lossy(&out.stderr)
                    .lines()
                    .filter(|l| l.starts_with("load "))
                    .collect::<String>()
            );
        } else {
            times.push(took);
        }
    }
    times.sort();
    Ok(times[times.len() / 2])
}

/// The first `n` files (archive order) of the 64px UTKFace archive, written as JPEGs into `dir`.
fn extract_faces(n: usize, dir: &Path) -> Result<Vec<PathBuf>, String> {
    let archive = gc_testdata::shared("data/utkface-aligned-64px.tar.gz");
    let file = std::fs::File::open(&archive).map_err(|e| e.to_string())?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in tar.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| e.to_string())?;
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
        // Names sort in archive order, so both sides take the same images.
        let path = dir.join(format!("{:05}.jpg", out.len()));
        std::fs::write(&path, bytes).map_err(|e| e.to_string())?;
        out.push(path);
        if out.len() == n {
            break;
        }
    }
    Ok(out)
}

fn run() -> Result<(), String> {
    let argv: Vec<String> = std::env::args().collect();
    if let Some(i) = argv.iter().position(|a| a == "--throughput-child") {
        let arg = |k: usize| {
            argv.get(i + k)
                .ok_or("--throughput-child MODEL DIR N BATCH")
        };
        let n = arg(3)?.parse().map_err(|e| format!("N: {e}"))?;
        let batch = arg(4)?.parse().map_err(|e| format!("BATCH: {e}"))?;
        return throughput_child(arg(1)?, arg(2)?, n, batch);
    }
    if let Some(i) = argv.iter().position(|a| a == "--cold-child") {
        let model = argv.get(i + 1).ok_or("--cold-child MODEL IMAGE")?;
        let image = argv.get(i + 2).ok_or("--cold-child MODEL IMAGE")?;
        return cold_child(model, image);
    }
    let args = parse_args()?;
    let model = args
        .model
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("/tmp/gc-hf-bench/{}-b16", args.arch)));
    let bench_py =
        gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("benches/pipeline_bench.py");
    if !model.join("model.safetensors").is_file() {
        eprintln!(
            "creating a random {}-B/16 in {}",
            args.arch,
            model.display()
        );
        let status = Command::new(&args.python)
            .arg(&bench_py)
            .arg("make-model")
            .arg(&model)
            .arg(&args.arch)
            .status()
            .map_err(|e| format!("{}: {e}", args.python.display()))?;
        if !status.success() {
            return Err("could not create the benchmark model".into());
        }
    }
    let tmp = std::env::temp_dir().join(format!("gc-hf-bench-faces-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).map_err(|e| e.to_string())?;
    let faces = extract_faces(args.images, &tmp)?;
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "model {}, {} faces (64 px), batch {}, {threads} CPU threads",
        model.display(),
        faces.len(),
        args.batch
    );

    println!(
        "cold start, process start to printed result, one image (median of {}):",
        args.runs
    );
    let ours_cold = time_process(
        || {
            let mut c = Command::new(&exe);
            c.arg("--cold-child").arg(&model).arg(&faces[0]);
            c
        },
        args.runs,
    )?;
    println!("  gc-hf (burn flex)      {:8.3} s", ours_cold.as_secs_f64());
    let py_cold = if args.skip_python {
        None
    } else {
        let t = time_process(
            || {
                let mut c = Command::new(&args.python);
                c.arg(&bench_py).arg("cold").arg(&model).arg(&faces[0]);
                c
            },
            args.runs,
        )?;
        println!("  transformers pipeline  {:8.3} s", t.as_secs_f64());
        Some(t)
    };

    println!("throughput, {} images, batch {}:", faces.len(), args.batch);
    let ours = |defaults: bool| {
        let mut c = Command::new(&exe);
        c.arg("--throughput-child")
            .arg(&model)
            .arg(&tmp)
            .arg(faces.len().to_string())
            .arg(args.batch.to_string());
        if defaults {
            c.arg(MALLOC_DEFAULTS);
        }
        throughput_line(c)
    };
    println!("  gc-hf (burn flex)      {}", ours(false)?);
    println!("  gc-hf, malloc defaults {}", ours(true)?);
    if !args.skip_python {
        let mut c = Command::new(&args.python);
        c.arg(&bench_py)
            .arg("throughput")
            .arg(&model)
            .arg(&tmp)
            .arg(faces.len().to_string())
            .arg(args.batch.to_string());
        println!("  transformers pipeline  {}", throughput_line(c)?);
        if let Some(py) = py_cold {
            println!(
                "cold start: gc-hf {:.1}x faster",
                py.as_secs_f64() / ours_cold.as_secs_f64()
            );
        }
    }
    let _ = std::fs::remove_dir_all(&tmp);
    Ok(())
}

fn main() {
    // Ours runs as the CLI does (glibc malloc keeps freed memory, gc_core::malloc), except in the
    // throughput child asked for glibc's defaults, the row that shows what the setting is worth.
    if !std::env::args().any(|a| a == MALLOC_DEFAULTS) {
        gc_core::malloc::keep_freed_memory();
    }
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
