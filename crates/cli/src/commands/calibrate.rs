//! `gender-classifier calibrate`: fit a temperature on a labelled split and write the calibration
//! file that `--model` takes.

use super::eval::{labelled, run_with_progress};
use crate::Status;
use crate::args::CalibrateArgs;
use anyhow::{Context, bail};
use gc_classify::ModelSpec;
use gc_classify::calibrated::{CalibrationFile, FittedOn};
use gc_eval::calibration::fit_temperature;

pub fn run(args: CalibrateArgs) -> anyhow::Result<Status> {
    // Checked before any image is read: a fit can take minutes.
    if !args
        .out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("json"))
    {
        bail!(
            "{}: a calibration file must end in .json (that is how --model recognises it)",
            args.out.display()
        );
    }
    if args.out.exists() {
        bail!(
            "{}: already exists; calibrate writes a new file and never replaces one",
            args.out.display()
        );
    }
    let spec = ModelSpec::parse(args.model.model.as_deref(), args.model.preset.as_deref())?;
    if let ModelSpec::Calibrated(path) = &spec {
        bail!(
            "{}: already a calibration file; calibrate the model it names",
            path.display()
        );
    }
    let model = gc_classify::load(&spec).context("loading the model")?;
    let images = labelled(&args.data, &args.split, args.limit)?;
    let run = run_with_progress(model.as_ref(), &images, args.batch_size);
    for (path, why) in &run.skipped {
        eprintln!("{path}: {why}");
    }
    let Some(fit) = fit_temperature(&run.samples) else {
        bail!(
            "{}: none of the {} images of split {} could be classified",
            args.data.display(),
            images.len(),
            args.split
        );
    };
    let data = std::fs::canonicalize(&args.data).unwrap_or_else(|_| args.data.clone());
    let file = CalibrationFile {
        calibrates: spec.value(),
        preset: spec.preset().map(str::to_string),
        temperature: fit.temperature,
        fitted_on: Some(FittedOn {
            data: data.display().to_string(),
            split: args.split.clone(),
            fit: fit.clone(),
        }),
    };
    file.write_new(&args.out)?;
    if fit.at_bound {
        eprintln!(
            "warning: the fit stopped at the edge of its range (T = {:.2}): on these images the model is right nearly always or nearly never, and the temperature says little about others",
            fit.temperature
        );
    }
    if args.json {
        println!("{}", serde_json::to_string(&file)?);
    } else {
        println!(
            "{}: temperature {:.3} fitted on {} images ({}, split {})",
            model.name(),
            fit.temperature,
            fit.images,
            data.display(),
            args.split
        );
        println!(
            "  on those images: negative log-likelihood {:.4} -> {:.4}, expected calibration error {:.4} -> {:.4}",
            fit.nll_before, fit.nll_after, fit.ece_before, fit.ece_after
        );
        println!(
            "wrote {0}; use it as --model {0} (and evaluate it on another split)",
            args.out.display()
        );
    }
    Ok(if run.skipped.is_empty() {
        Status::Success
    } else {
        Status::SomeFailed
    })
}
