//! `gender-classifier predict` (and the bare `gender-classifier PATH...`): classify images and print
//! one line, or one JSON object, per input, in input order.
//!
//! Errors for single files go to stderr as `PATH: error: REASON` (and, with --json, also as
//! `{"path":..., "error":...}` on stdout, so a consumer sees every input); the run goes on and exits 1.

use crate::Status;
use crate::args::PredictArgs;
use crate::out::errln;
use gc_classify::annotate::write_annotated;
use gc_classify::json;
use gc_classify::photos::{PhotoOutcome, Verdict, classify_photos, classify_photos_keeping_files};
use gc_classify::{Outcome, Prediction, classify_inputs, expand};
use std::io::Write;

pub fn run(args: PredictArgs) -> anyhow::Result<Status> {
    // Once up front, not once per photo ("File exists" for each).
    if let Some(dir) = &args.annotate
        && dir.exists()
        && !dir.is_dir()
    {
        anyhow::bail!("--annotate {}: is a file, not a folder", dir.display());
    }
    let model = super::load_model(&args.model)?;
    let (detector, mode) = super::load_faces(&args.faces)?;
    let inputs = expand(&args.paths, args.recursive, &mut std::io::stdin().lock());
    let batch = args.batch_size.unwrap_or_else(|| model.preferred_batch());
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut failed = 0usize;
    let mut not_annotated = 0usize;
    let mut io_error = None;
    match &detector {
        None if args.annotate.is_none() => classify_inputs(model.as_ref(), &inputs, batch, |o| {
            if o.result.is_err() {
                failed += 1;
            }
            if io_error.is_none()
                && let Err(e) = print_outcome(&mut out, &o, args.json)
            {
                io_error = Some(e);
            }
        }),
        detector => {
            let emit = |o: PhotoOutcome| {
                if o.result.is_err() {
                    failed += 1;
                }
                if io_error.is_none()
                    && let Err(e) = print_photo(&mut out, &o, args.json)
                {
                    io_error = Some(e);
                }
                if let (Some(dir), Ok(verdict), Some(file)) = (&args.annotate, &o.result, &o.file) {
                    match write_annotated(&o.path, file, verdict, dir) {
                        Ok(written) => {
                            tracing::info!("{}: wrote {}", o.path.display(), written.display())
                        }
                        Err(e) => {
                            errln!("{}: error: annotating: {e}", crate::out::shown(&o.path));
                            not_annotated += 1;
                        }
                    }
                }
            };
            let (model, detector) = (model.as_ref(), detector.as_ref());
            if args.annotate.is_some() {
                classify_photos_keeping_files(model, detector, mode, &inputs, batch, emit);
            } else {
                classify_photos(model, detector, mode, &inputs, batch, emit);
            }
        }
    }
    // A closed pipe (`| head`) is the reader's choice, not a failure of ours.
    crate::out::stdout_result(io_error.map_or_else(|| out.flush(), Err))?;
    if failed > 0 {
        errln!(
            "{failed} of {} inputs could not be classified",
            inputs.len()
        );
    }
    if not_annotated > 0 {
        errln!(
            "{not_annotated} of {} inputs could not be annotated",
            inputs.len()
        );
    }
    if failed + not_annotated > 0 {
        Ok(Status::SomeFailed)
    } else {
        Ok(Status::Success)
    }
}

fn print_photo(out: &mut impl Write, o: &PhotoOutcome, json: bool) -> std::io::Result<()> {
    let path = output_path(&o.path, json);
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
        (Ok(v @ Verdict::Faces(_)), true) => {
            writeln!(out, "{}", json::with_path(&path, json::verdict(v)))
        }
        (Err(reason), json) => print_failure(out, &o.path, &path, reason, json),
    }
}

fn print_outcome(out: &mut impl Write, o: &Outcome, json: bool) -> std::io::Result<()> {
    let path = output_path(&o.path, json);
    match (&o.result, json) {
        (Ok(p), false) => writeln!(out, "{}", text_line(&path, p)),
        (Ok(p), true) => writeln!(out, "{}", json_line(&path, p)),
        (Err(reason), json) => print_failure(out, &o.path, &path, reason, json),
    }
}

/// JSON escapes control characters itself; a text line gets them written out.
fn output_path(path: &std::path::Path, json: bool) -> String {
    if json {
        gc_classify::inputs::path_text(path.as_os_str())
    } else {
        crate::out::shown(path)
    }
}

/// A failed input: named on stderr, and with `--json` an error object in its place on stdout.
fn print_failure(
    out: &mut impl Write,
    file: &std::path::Path,
    path: &str,
    reason: &str,
    json: bool,
) -> std::io::Result<()> {
    errln!("{}: error: {reason}", crate::out::shown(file));
    if json {
        let v = serde_json::json!({ "path": path, "error": reason });
        writeln!(out, "{v}")?;
    }
    Ok(())
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
    json::with_path(path, json::prediction(p))
}
