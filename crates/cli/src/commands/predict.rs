//! `gender-classifier predict` (and the bare `gender-classifier PATH...`): classify images and print
//! one line, or one JSON object, per input, in input order.
//!
//! Errors for single files go to stderr as `PATH: error: REASON` (and, with --json, also as
//! `{"path":..., "error":...}` on stdout, so a consumer sees every input); the run goes on and exits 1.

use crate::Status;
use crate::args::{Detect, PredictArgs};
use anyhow::{Context, bail};
use gc_classify::photos::{DetectMode, PhotoOutcome, Verdict, classify_photos};
use gc_classify::{ModelSpec, Outcome, Prediction, classify_inputs, expand};
use gc_detect::{Detector, DetectorKind};
use std::io::Write;
use std::path::Path;

pub fn run(args: PredictArgs) -> anyhow::Result<Status> {
    let spec = ModelSpec::parse(args.model.as_deref(), args.preset.as_deref())?;
    let model = gc_classify::load(&spec).context("loading the model")?;
    let detector = match (&args.detector, args.detect) {
        (Some(path), Detect::Auto | Detect::Always) => {
            Some(load_detector(path, args.detector_kind.as_deref())?)
        }
        (None, Detect::Always) => {
            bail!("--detect always needs a face detector: pass --detector FILE.onnx")
        }
        _ => None,
    };
    let inputs = expand(&args.paths, args.recursive, &mut std::io::stdin().lock());
    let batch = args.batch_size.unwrap_or_else(|| model.preferred_batch());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    let mut io_error = None;
    match &detector {
        None => classify_inputs(model.as_ref(), &inputs, batch, |o| {
            if o.result.is_err() {
                failed += 1;
            }
            if io_error.is_none()
                && let Err(e) = print_outcome(&mut out, &o, args.json)
            {
                io_error = Some(e);
            }
        }),
        Some(detector) => {
            let mode = match args.detect {
                Detect::Always => DetectMode::Always,
                Detect::Never => DetectMode::Never,
                Detect::Auto => DetectMode::Auto,
            };
            classify_photos(model.as_ref(), detector, mode, &inputs, batch, |o| {
                if o.result.is_err() {
                    failed += 1;
                }
                if io_error.is_none()
                    && let Err(e) = print_photo(&mut out, &o, args.json)
                {
                    io_error = Some(e);
                }
            })
        }
    }
    out.flush()?;
    if let Some(e) = io_error {
        // A closed pipe (`| head`) is the reader's choice, not a failure of ours.
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing results");
        }
    }
    if failed > 0 {
        eprintln!(
            "{failed} of {} inputs could not be classified",
            inputs.len()
        );
        Ok(Status::SomeFailed)
    } else {
        Ok(Status::Success)
    }
}

/// Loads a face detector, its family from `kind` or else from the file name.
pub fn load_detector(path: &Path, kind: Option<&str>) -> anyhow::Result<Detector> {
    let kind = match kind {
        Some(k) => k
            .parse::<DetectorKind>()
            .map_err(|e| anyhow::anyhow!("--detector-kind: {}", e.0))?,
        None => {
            let name = path
                .file_name()
                .map(|n| n.to_string_lossy().to_lowercase())
                .unwrap_or_default();
            if name.contains("yunet") {
                DetectorKind::YuNet
            } else if name.contains("slim") {
                DetectorKind::UltraFaceSlim320
            } else if name.contains("ultraface") || name.contains("rfb") {
                DetectorKind::UltraFaceRfb320
            } else {
                bail!(
                    "{}: cannot tell the detector's family from its name; pass --detector-kind ultraface, ultraface-slim or yunet",
                    path.display()
                )
            }
        }
    };
    Detector::from_path(path, kind).context("loading the face detector")
}

fn print_photo(out: &mut impl Write, o: &PhotoOutcome, json: bool) -> std::io::Result<()> {
    let path = o.path.display().to_string();
    match (&o.result, json) {
        (Ok(Verdict::Whole(p)), false) => writeln!(out, "{}", text_line(&path, p)),
        (Ok(Verdict::Whole(p)), true) => writeln!(out, "{}", json_line(&path, p)),
        (Ok(Verdict::Faces(faces)), false) => {
            if faces.is_empty() {
                return writeln!(out, "{path}  no face found");
            }
            for (i, f) in faces.iter().enumerate() {
                let [x, y, w, h] = f.bbox.map(|v| v.round() as i64);
                let at = format!("face {} of {} at {x},{y} {w}x{h}", i + 1, faces.len());
                writeln!(
                    out,
                    "{}",
                    text_line(&format!("{path}  {at}"), &f.prediction)
                )?;
            }
            Ok(())
        }
        (Ok(Verdict::Faces(faces)), true) => {
            let faces: Vec<serde_json::Value> = faces
                .iter()
                .map(|f| {
                    let mut v = json_line(&path, &f.prediction);
                    if let Some(obj) = v.as_object_mut() {
                        obj.remove("path");
                        obj.insert("box".into(), serde_json::json!(f.bbox));
                        obj.insert("score".into(), serde_json::json!(f.score));
                    }
                    v
                })
                .collect();
            let v = serde_json::json!({ "path": path, "faces": faces });
            writeln!(out, "{v}")
        }
        (Err(reason), json) => {
            eprintln!("{path}: error: {reason}");
            if json {
                let v = serde_json::json!({ "path": path, "error": reason });
                writeln!(out, "{v}")?;
            }
            Ok(())
        }
    }
}

fn print_outcome(out: &mut impl Write, o: &Outcome, json: bool) -> std::io::Result<()> {
    let path = o.path.display().to_string();
    match (&o.result, json) {
        (Ok(p), false) => writeln!(out, "{}", text_line(&path, p)),
        (Ok(p), true) => writeln!(out, "{}", json_line(&path, p)),
        (Err(reason), json) => {
            eprintln!("{path}: error: {reason}");
            if json {
                let v = serde_json::json!({ "path": path, "error": reason });
                writeln!(out, "{v}")?;
            }
            Ok(())
        }
    }
}

/// `photo.jpg  female  0.931  (female 0.931, male 0.069)`: the model's own class names in brackets.
pub fn text_line(path: &str, p: &Prediction) -> String {
    let all: Vec<String> = p
        .model_labels
        .iter()
        .map(|(name, v)| format!("{name} {v:.3}"))
        .collect();
    format!(
        "{path}  {}  {:.3}  ({})",
        p.label,
        p.confidence(),
        all.join(", ")
    )
}

pub fn json_line(path: &str, p: &Prediction) -> serde_json::Value {
    let model_labels: serde_json::Map<String, serde_json::Value> = p
        .model_labels
        .iter()
        .map(|(n, v)| (n.clone(), serde_json::json!(v)))
        .collect();
    serde_json::json!({
        "path": path,
        "label": p.label,
        "probabilities": { "female": p.probabilities[0], "male": p.probabilities[1] },
        "model_labels": model_labels,
    })
}
