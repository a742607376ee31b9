//! `gender-classifier predict` (and the bare `gender-classifier PATH...`): classify images and print
//! one line, or one JSON object, per input, in input order.
//!
//! Errors for single files go to stderr as `PATH: error: REASON` (and, with --json, also as
//! `{"path":..., "error":...}` on stdout, so a consumer sees every input); the run goes on and exits 1.

use crate::Status;
use crate::args::PredictArgs;
use anyhow::Context;
use gc_classify::{ModelSpec, Outcome, Prediction, classify_inputs, expand};
use std::io::Write;

pub fn run(args: PredictArgs) -> anyhow::Result<Status> {
    let spec = ModelSpec::parse(args.model.as_deref(), args.preset.as_deref())?;
    let model = gc_classify::load(&spec).context("loading the model")?;
    let inputs = expand(&args.paths, args.recursive, &mut std::io::stdin().lock());
    let batch = args.batch_size.unwrap_or_else(|| model.preferred_batch());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    let mut io_error = None;
    classify_inputs(model.as_ref(), &inputs, batch, |o| {
        if o.result.is_err() {
            failed += 1;
        }
        if io_error.is_none()
            && let Err(e) = print_outcome(&mut out, &o, args.json)
        {
            io_error = Some(e);
        }
    });
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
