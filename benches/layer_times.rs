//! The notebook CNN's layers one by one, as a training step runs them: convolution forward, its
//! input and weight gradients, BatchNorm's training forward and backward, and the 2 x 2 max
//! pooling's forward (with what the backward needs) and backward, at the four block
//! shapes of the `train_step` bench (batch 64, 128px, 2 threads). Three columns: burn 0.22.1's
//! `flex` backend as it comes, ours (`gc_models::conv`, `gc_models::batch_norm`,
//! `gc_models::max_pool`), and PyTorch on
//! the same shapes; the ratio is ours/PyTorch. It shows where the training step's time goes and
//! what our own kernels are worth.
//!
//! ```text
//! PEER_PYTHON=/path/to/venv/bin/python \
//!   cargo bench --workspace --bench layer_times -- [--threads 2] [--batch 64] [--size 128] [--runs 5]
//! ```
//!
//! Each figure is the median of `--runs` calls after one unmeasured call. Without PyTorch the peer
//! column is left empty with a message.

use burn::backend::Flex;
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::tensor::{IntDType, TensorData};
use gc_models::batch_norm::BatchNormBackend;
use gc_models::conv::Conv2dBackend;
use gc_models::max_pool::MaxPoolBackend;
#[path = "common.rs"]
mod common;

use std::hint::black_box;
use std::process::{Command, ExitCode};
use std::time::Instant;

const CHANNELS: [usize; 5] = [3, 32, 64, 128, 256];
const EPSILON: f64 = 1e-5;

struct Args {
    threads: usize,
    batch: usize,
    size: usize,
    runs: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        threads: 2,
        batch: 64,
        size: 128,
        runs: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let target = match a.as_str() {
            "--threads" => &mut args.threads,
            "--batch" => &mut args.batch,
            "--size" => &mut args.size,
            "--runs" => &mut args.runs,
            // cargo bench passes --bench to every bench binary.
            "--bench" => continue,
            other => return Err(format!("unknown argument {other}")),
        };
        *target = it
            .next()
            .ok_or(format!("{a} needs a value"))?
            .parse()
            .map_err(|e| format!("{a}: {e}"))?;
    }
    if args.runs == 0 || args.batch == 0 || args.size < 8 {
        return Err("--runs and --batch must be positive, --size at least 8".into());
    }
    Ok(args)
}

/// Uniform values in [-0.5, 0.5) from a xorshift: fixed, and no RNG crate for a benchmark.
fn tensor(shape: [usize; 4], seed: u32) -> FlexTensor {
    let mut s = seed.wrapping_mul(2_654_435_761).max(1);
    let values = (0..shape.iter().product::<usize>())
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            s as f32 / u32::MAX as f32 - 0.5
        })
        .collect::<Vec<_>>();
    FlexTensor::from_data(TensorData::new(values, shape))
}

fn median_ms(runs: usize, f: impl Fn()) -> f64 {
    f();
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// `("block0.conv_forward", stock ms, ours ms)`, ... for the four blocks.
fn run_ours(args: &Args) -> Vec<(String, f64, f64)> {
    let mut out = Vec::new();
    let mut size = args.size;
    for block in 0..4 {
        let (cin, cout) = (CHANNELS[block], CHANNELS[block + 1]);
        let x = tensor([args.batch, cin, size, size], 1);
        let w = tensor([cout, cin, 3, 3], 2);
        let g = tensor([args.batch, cout, size, size], 3);
        let gamma = FlexTensor::from_data(TensorData::new(vec![1.0f32; cout], [cout]));
        let beta = FlexTensor::from_data(TensorData::new(vec![0.0f32; cout], [cout]));
        let opt = ConvOptions::new([1, 1], [1, 1], [1, 1], 1);
        let runs = args.runs;
        let (_, mean, var) = <Flex as BatchNormBackend>::fused_batch_norm_train(
            g.clone(),
            gamma.clone(),
            beta.clone(),
            EPSILON,
        );
        // The notebook CNN's pooling, as flex's pooling ops take it: kernel, stride, padding,
        // dilation, ceil mode.
        let (kernel, stride, padding, dilation, ceil) = ([2, 2], [2, 2], [0, 0], [1, 1], false);
        // What a training step runs on flex: the pooling keeps the indices for the backward.
        let flex_pool = || {
            <Flex as ModuleOps<Flex>>::max_pool2d_with_indices(
                g.clone(),
                kernel,
                stride,
                padding,
                dilation,
                ceil,
                IntDType::I64,
            )
        };
        let pooled = tensor([args.batch, cout, size / 2, size / 2], 4);
        let indices = flex_pool().indices;
        let pairs: [(&str, f64, f64); 7] = [
            (
                "conv_forward",
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::conv2d(
                        x.clone(),
                        w.clone(),
                        None,
                        opt.clone(),
                    ));
                }),
                median_ms(runs, || {
                    black_box(<Flex as Conv2dBackend>::conv2d_no_bias(
                        x.clone(),
                        w.clone(),
                        opt.clone(),
                    ));
                }),
            ),
            (
                "conv_input_grad",
                // Ours is flex's: the same call twice, for the run-to-run spread.
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::conv2d_x_backward(
                        x.clone(),
                        w.clone(),
                        g.clone(),
                        opt.clone(),
                    ));
                }),
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::conv2d_x_backward(
                        x.clone(),
                        w.clone(),
                        g.clone(),
                        opt.clone(),
                    ));
                }),
            ),
            (
                "conv_weight_grad",
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                        x.clone(),
                        w.clone(),
                        g.clone(),
                        opt.clone(),
                    ));
                }),
                median_ms(runs, || {
                    black_box(<Flex as Conv2dBackend>::conv2d_weight_grad(
                        x.clone(),
                        w.clone(),
                        g.clone(),
                        opt.clone(),
                    ));
                }),
            ),
            (
                "batchnorm_train_forward",
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::batch_norm_train(
                        g.clone(),
                        gamma.clone(),
                        beta.clone(),
                        EPSILON,
                    ));
                }),
                median_ms(runs, || {
                    black_box(<Flex as BatchNormBackend>::fused_batch_norm_train(
                        g.clone(),
                        gamma.clone(),
                        beta.clone(),
                        EPSILON,
                    ));
                }),
            ),
            (
                "batchnorm_backward",
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::batch_norm_train_backward(
                        g.clone(),
                        gamma.clone(),
                        mean.clone(),
                        var.clone(),
                        EPSILON,
                        g.clone(),
                    ));
                }),
                median_ms(runs, || {
                    black_box(<Flex as BatchNormBackend>::fused_batch_norm_train_backward(
                        g.clone(),
                        gamma.clone(),
                        mean.clone(),
                        var.clone(),
                        EPSILON,
                        g.clone(),
                    ));
                }),
            ),
            (
                "maxpool_forward",
                median_ms(runs, || {
                    black_box(flex_pool());
                }),
                median_ms(runs, || {
                    black_box(<Flex as MaxPoolBackend>::max_pool2d_tiled(
                        g.clone(),
                        kernel,
                    ));
                }),
            ),
            (
                "maxpool_backward",
                median_ms(runs, || {
                    black_box(<Flex as ModuleOps<Flex>>::max_pool2d_with_indices_backward(
                        g.clone(),
                        kernel,
                        stride,
                        padding,
                        dilation,
                        ceil,
                        pooled.clone(),
                        indices.clone(),
                    ));
                }),
                median_ms(runs, || {
                    black_box(<Flex as MaxPoolBackend>::max_pool2d_tiled_backward(
                        g.clone(),
                        kernel,
                        pooled.clone(),
                    ));
                }),
            ),
        ];
        for (name, stock, ours) in pairs {
            out.push((format!("block{block}.{name}"), stock, ours));
        }
        eprintln!("block {block} of 4 done");
        size /= 2;
    }
    out
}

fn main() -> ExitCode {
    // As the CLI's `train` runs (gc_core::malloc).
    gc_core::malloc::keep_freed_memory();
    gc_core::malloc::one_arena();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("layer_times: {e}");
            return ExitCode::from(2);
        }
    };
    let pool = match rayon::ThreadPoolBuilder::new()
        .num_threads(args.threads)
        .build()
    {
        Ok(p) => p,
        Err(e) => {
            eprintln!("layer_times: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ours = pool.install(|| run_ours(&args));
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3".into());
    let script = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR"))
        .join("../../benches/peers/layer_times.py");
    let mut cmd = Command::new(python);
    cmd.arg(script);
    for (flag, value) in [
        ("--threads", args.threads),
        ("--batch", args.batch),
        ("--size", args.size),
        ("--runs", args.runs),
    ] {
        cmd.args([flag, &value.to_string()]);
    }
    let peer = match common::run_child(cmd) {
        Ok(v) => Some(v),
        Err(e) => {
            eprintln!("PyTorch peer skipped: {e}");
            None
        }
    };
    let framework = peer
        .as_ref()
        .and_then(|p| p["framework"].as_str())
        .unwrap_or("PyTorch");
    println!(
        "Layers of the notebook CNN's training step: batch {}, {}px, {} threads, median of {} calls (ms, lower is better)\n",
        args.batch, args.size, args.threads, args.runs
    );
    println!("| layer | burn flex as it comes | ours | {framework} | ours/peer |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    let mut totals = [0.0f64; 3];
    for (key, stock, mine) in &ours {
        let (stock, mine) = (*stock, *mine);
        let theirs = peer.as_ref().and_then(|p| p["times"][key].as_f64());
        totals[0] += stock;
        totals[1] += mine;
        totals[2] += theirs.unwrap_or(f64::NAN);
        let (t, ratio) = match theirs {
            Some(t) => (format!("{t:.0}"), format!("{:.2}", mine / t)),
            None => (String::new(), String::new()),
        };
        println!("| {key} | {stock:.0} | {mine:.0} | {t} | {ratio} |");
    }
    println!(
        "| **all of the above** | {:.0} | {:.0} | {:.0} | {:.2} |",
        totals[0],
        totals[1],
        totals[2],
        totals[1] / totals[2]
    );
    ExitCode::SUCCESS
}
