//! Accuracy and speed of an ONNX classifier on a sample of adult UTKFace faces read from the shared
//! archive; for choosing presets and measuring throughput, not part of the test suite.
//!
//! `cargo run --release -p gc-onnx --example onnx_eval -- MODEL [PRESET] [CROP] [PHASE] [STRIDE]`
//! with CROP `whole`, `trim:0.05` or `margin:0.2`; PHASE 0 and STRIDE 50 are the accuracy test's
//! sample, other phases are disjoint from it. Set RAYON_NUM_THREADS=1 for single-thread figures.

#[path = "../tests/common/mod.rs"]
mod common;

use gc_core::{Classifier, RgbView};
use gc_onnx::{Crop, OnnxClassifier};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let model = args
        .first()
        .ok_or("usage: onnx_eval MODEL [PRESET] [CROP] [PHASE] [STRIDE]")?;
    let preset = args.get(1).map(String::as_str).filter(|p| *p != "-");
    let crop = match args.get(2).map(String::as_str) {
        None | Some("-") => None,
        Some("whole") => Some(Crop::Whole),
        Some(c) => match c.split_once(':') {
            Some(("trim", f)) => Some(Crop::Trim {
                fraction: f.parse()?,
            }),
            Some(("margin", f)) => Some(Crop::Margin {
                fraction: f.parse()?,
            }),
            _ => return Err(format!("bad crop {c}").into()),
        },
    };
    let phase: usize = args.get(3).map_or(Ok(0), |s| s.parse())?;
    let stride: usize = args.get(4).map_or(Ok(50), |s| s.parse())?;

    let started = Instant::now();
    let mut clf = OnnxClassifier::from_path(model, preset)?;
    if let Some(crop) = crop {
        let mut spec = clf.spec().clone();
        spec.crop = crop;
        clf = OnnxClassifier::with_spec(model, spec)?;
    }
    if let Some(b) = std::env::var("GC_ONNX_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
    {
        clf = clf.with_batch(b);
    }
    eprintln!("loaded {} in {:.2?}", clf.name(), started.elapsed());

    let faces = common::adult_sample(stride, phase);
    let views: Vec<RgbView<'_>> = faces
        .iter()
        .map(|f| RgbView::new(f.width, f.height, &f.pixels))
        .collect::<Result<_, _>>()?;
    // One untimed call builds the plans.
    clf.classify(&views[..clf.preferred_batch().min(views.len())])?;
    let started = Instant::now();
    let mut probs = Vec::new();
    for chunk in views.chunks(clf.preferred_batch()) {
        probs.extend(clf.classify(chunk)?);
    }
    let secs = started.elapsed().as_secs_f64();
    let labels = clf.labels();
    let correct = faces
        .iter()
        .zip(&probs)
        .filter(|(f, p)| {
            let best = if p[0] >= p[1] { 0 } else { 1 };
            gc_core::Gender::from_utkface_code(f.gender) == Some(labels[best].gender)
        })
        .count();
    println!(
        "{}: crop {:?}, phase {phase}: {correct}/{} = {:.1}% correct, {:.1} images/s ({} threads, batch {})",
        clf.name(),
        clf.spec().crop,
        faces.len(),
        100.0 * correct as f64 / faces.len() as f64,
        faces.len() as f64 / secs,
        rayon::current_num_threads(),
        clf.preferred_batch(),
    );
    Ok(())
}
