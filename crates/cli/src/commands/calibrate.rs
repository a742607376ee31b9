//! `gender-classifier calibrate`: fit a temperature on a labelled split and write the calibration
//! file that `--model` takes.

use super::eval::{labelled, run_with_progress};
use crate::Status;
use crate::args::CalibrateArgs;
use crate::out::{errln, outln};
use anyhow::{Context, bail};
use gc_classify::ModelSpec;
use gc_classify::calibrated::{ALREADY_EXISTS, CalibrationFile, FittedOn};
use gc_eval::calibration::fit_temperature;

pub fn run(args: CalibrateArgs) -> anyhow::Result<Status> {
    // Checked before any image is read: a fit can take minutes.
    if !CalibrationFile::has_its_name(&args.out) {
        bail!(
            "{}: a calibration file must end in .json (that is how --model recognises it)",
            args.out.display()
        );
    }
    if args.out.exists() {
        bail!("{}: {ALREADY_EXISTS}", args.out.display());
    }
    let folder = CalibrationFile::base_dir(&args.out);
    if !folder.is_dir() {
        bail!(
            "{}: no folder {} to write it in",
            args.out.display(),
            folder.display()
        );
    }
    let spec = ModelSpec::parse(args.model.model.as_deref(), args.model.preset.as_deref())?;
    if let ModelSpec::Calibrated(path) = &spec {
        CalibrationFile::read(path)?;
        bail!(
            "{}: already a calibration file; calibrate the model it names",
            path.display()
        );
    }
    let split = super::split_in_use(
        &args.data,
        &args.split,
        "fitting on",
        "; evaluate the calibrated model on other images",
    );
    let model = gc_classify::load(&spec).context("loading the model")?;
    let images = labelled(&args.data, &args.split, args.limit)?;
    let run = run_with_progress(model.as_ref(), &images, args.batch_size);
    for (path, why) in &run.skipped {
        errln!("{}: error: {why}", crate::out::shown(path));
    }
    let classes: std::collections::BTreeSet<_> = run.samples.iter().map(|s| s.truth).collect();
    if classes.len() == 1 {
        bail!(
            "{}: the {} images classified are all {}; a temperature needs both classes",
            args.data.display(),
            run.samples.len(),
            run.samples[0].truth
        );
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
            split: split.clone(),
            fit: fit.clone(),
        }),
    };
    file.write_new(&args.out)?;
    if fit.at_bound {
        errln!(
            "warning: the fit stopped at the edge of its range (T = {:.2}): on these images the model is right nearly always or nearly never, and the temperature says little about others",
            fit.temperature
        );
    }
    if args.json {
        outln!("{}", serde_json::to_string(&file)?);
    } else {
        outln!(
            "{}: temperature {:.3} fitted on {} images ({}, split {})",
            model.name(),
            fit.temperature,
            fit.images,
            data.display(),
            split
        );
        outln!(
            "  on those images: negative log-likelihood {:.4} -> {:.4}, expected calibration error {:.4} -> {:.4}",
            fit.nll_before,
            fit.nll_after,
            fit.ece_before,
            fit.ece_after
        );
        outln!(
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
