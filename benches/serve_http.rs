//! `serve` on loopback: requests per second and latency percentiles, our server (axum, tract) against
//! the usual Python deployment (FastAPI + uvicorn, OpenCV's YuNet + onnxruntime,
//! `benches/peers/serve_photos.py`), with the same detector and classifier (dlib-cydral-gender-v1)
//! and 2 workers each.
//!
//! ```text
//! PEER_PYTHON=/path/to/venv/bin/python \
//!   cargo bench --workspace --bench serve_http -- [--clients 8] [--requests 200] [--rounds 2] [--photo NAME]
//! ```
//!
//! Each server gets `--clients` concurrent keep-alive clients (threads of this process) POSTing
//! the same photo (`../shared/photos/ultraface-imgs-19.jpg`, 1024x754, five faces) `--requests`
//! times in all, after 10 warm-up requests; servers alternate for `--rounds` rounds, and the best
//! round is reported. Latency is per request, from send to the whole answer read.

#[path = "common.rs"]
mod common;

use common::shared;
use gc_classify::photos::DetectMode;
use gc_detect::{Detector, DetectorKind};
use gc_serve::{Limits, Running, Service};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

struct Args {
    clients: usize,
    requests: usize,
    rounds: usize,
    photo: String,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        clients: 8,
        requests: 200,
        rounds: 2,
        photo: "ultraface-imgs-19.jpg".into(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = |name: &str| it.next().ok_or(format!("{name} needs a value"));
        let number = |v: String, name: &str| v.parse::<usize>().map_err(|e| format!("{name}: {e}"));
        match a.as_str() {
            "--clients" => args.clients = number(value("--clients")?, "--clients")?.max(1),
            "--requests" => args.requests = number(value("--requests")?, "--requests")?.max(1),
            "--rounds" => args.rounds = number(value("--rounds")?, "--rounds")?.max(1),
            "--photo" => args.photo = value("--photo")?,
            "--bench" => {}
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

#[derive(Debug, Clone, Copy)]
struct Load {
    rps: f64,
    p50: f64,
    p95: f64,
    p99: f64,
}

/// `clients` threads share `requests` POSTs of `photo`; every answer must be a 200.
fn load(url: &str, photo: &[u8], clients: usize, requests: usize) -> Load {
    let agent = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(120))
        .build();
    for _ in 0..10 {
        agent.post(url).send_bytes(photo).expect("warm-up request");
    }
    let next = std::sync::atomic::AtomicUsize::new(0);
    let start = Instant::now();
    let mut latencies: Vec<f64> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..clients)
            .map(|_| {
                let agent = agent.clone();
                let next = &next;
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < requests {
                        let t = Instant::now();
                        let r = agent
                            .post(url)
                            .set("Content-Type", "image/jpeg")
                            .send_bytes(photo)
                            .unwrap_or_else(|e| panic!("{url}: {e}"));
                        assert_eq!(r.status(), 200);
                        let body = r.into_string().unwrap();
                        assert!(body.contains("\"faces\""), "{body}");
                        mine.push(t.elapsed().as_secs_f64() * 1e3);
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    });
    let wall = start.elapsed().as_secs_f64();
    latencies.sort_by(f64::total_cmp);
    let pct = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
    Load {
        rps: latencies.len() as f64 / wall,
        p50: pct(0.50),
        p95: pct(0.95),
        p99: pct(0.99),
    }
}

fn start_ours() -> Running {
    let model = Box::new(
        gc_onnx::OnnxClassifier::from_path(
            shared("models/gender/dlib-cydral-gender-v1.opset13.onnx"),
            None,
        )
        .unwrap(),
    );
    let detector = Detector::from_path(
        &shared("models/detect/yunet-n-dynamic.onnx"),
        DetectorKind::YuNet,
    )
    .unwrap();
    let limits = Limits {
        max_concurrent: 2,
        max_waiting: 256,
        ..Limits::default()
    };
    Running::start(
        "127.0.0.1:0",
        Service::new(model, Some(detector), DetectMode::Auto, limits),
    )
    .unwrap()
}

/// Starts the Python server and returns it with its URL, once it says it is listening.
fn start_peer(python: &str) -> Result<(Child, String), String> {
    let script = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/peers/serve_photos.py");
    let mut child = Command::new(python)
        .arg(script)
        .args(["--port", "0", "--workers", "2", "--threads", "1"])
        .arg("--detector")
        .arg(shared("models/detect/yunet-n-dynamic.onnx"))
        .arg("--model")
        .arg(shared("models/gender/dlib-cydral-gender-v1.opset13.onnx"))
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("{python}: {e}"))?;
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .map_err(|e| e.to_string())?;
    match line.trim().strip_prefix("listening on ") {
        Some(url) => Ok((child, url.to_string())),
        None => {
            let _ = child.kill();
            Err(format!("the peer did not start: {line:?}"))
        }
    }
}

fn print(name: &str, l: &Load) {
    println!(
        "  {name:32} {:7.1} req/s   p50 {:7.1} ms   p95 {:7.1} ms   p99 {:7.1} ms",
        l.rps, l.p50, l.p95, l.p99
    );
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
    let photo = std::fs::read(shared(&format!("photos/{}", args.photo))).unwrap();
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let ours = start_ours();
    let our_url = format!("http://{}/v1/classify", ours.addr);
    let peer = start_peer(&python);
    let mut best_ours: Option<Load> = None;
    let mut best_peer: Option<Load> = None;
    let better = |best: Option<Load>, l: Load| match best {
        Some(b) if b.rps >= l.rps => Some(b),
        _ => Some(l),
    };
    for _ in 0..args.rounds {
        best_ours = better(
            best_ours,
            load(&our_url, &photo, args.clients, args.requests),
        );
        if let Ok((_, url)) = &peer {
            let l = load(
                &format!("{url}/v1/classify"),
                &photo,
                args.clients,
                args.requests,
            );
            best_peer = better(best_peer, l);
        }
    }
    println!(
        "serve on loopback: {} ({} bytes), {} clients, {} requests, best of {} rounds",
        args.photo,
        photo.len(),
        args.clients,
        args.requests,
        args.rounds
    );
    let ours_load = best_ours.unwrap();
    print("ours (axum + tract)", &ours_load);
    // Ours serves from this process, whose clients' buffers are counted in too.
    let our_peak = common::peak_rss_mib().unwrap_or(f64::NAN);
    match (peer, best_peer) {
        (Ok((mut child, _)), Some(p)) => {
            print("python (FastAPI + OpenCV + ORT)", &p);
            let peer_peak = common::peak_rss_mib_of(&child.id().to_string()).unwrap_or(f64::NAN);
            println!("  peak RSS: ours {our_peak:.0} MiB, python {peer_peak:.0} MiB");
            println!(
                "  ratio ours/python: throughput {:.2}x, p50 latency {:.2}x lower",
                ours_load.rps / p.rps,
                p.p50 / ours_load.p50
            );
            let _ = child.kill();
            let _ = child.wait();
        }
        (Err(e), _) => println!("  python: skipped: {e}"),
        (Ok((mut child, _)), None) => {
            let _ = child.kill();
        }
    }
    ours.stop().unwrap();
    ExitCode::SUCCESS
}
