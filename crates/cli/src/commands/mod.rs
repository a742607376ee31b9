//! One file per subcommand, and the model and detector loading they share.

mod calibrate;
mod eval;
mod predict;
mod prepare;
mod serve;
mod sort;
pub mod train;

use crate::Status;
use crate::args::{Command, Detect, FaceArgs, ModelArgs};
use crate::out::errln;
use anyhow::{Context, bail};
use gc_classify::ModelSpec;
use gc_classify::photos::DetectMode;
use gc_core::Classifier;
use gc_detect::{Detector, DetectorKind};
use std::path::Path;

pub fn run(command: Command) -> anyhow::Result<Status> {
    match command {
        Command::Predict(args) => predict::run(args),
        Command::Eval(args) => eval::run_eval(args),
        Command::Compare(args) => eval::run_compare(args),
        Command::Calibrate(args) => calibrate::run(args),
        Command::Prepare(args) => prepare::run(args),
        Command::Train(args) => train::run(args),
        Command::Sort(args) => sort::run(args),
        Command::Serve(args) => serve::run(args),
    }
}

/// `--min-confidence`, which `sort`, `eval` and `compare` take, is a probability.
fn check_min_confidence<P: Into<f64> + std::fmt::Display + Copy>(p: P) -> anyhow::Result<()> {
    if !(0.0..=1.0).contains(&p.into()) {
        anyhow::bail!("--min-confidence {p}: must be between 0 and 1");
    }
    Ok(())
}

/// The model `--model`/`--preset` name.
fn load_model(args: &ModelArgs) -> anyhow::Result<Box<dyn Classifier>> {
    let spec = ModelSpec::parse(args.model.as_deref(), args.preset.as_deref())?;
    gc_classify::load(&spec).context("loading the model")
}

/// The split `eval`, `compare` and `calibrate` read, as their outputs record it. Without a
/// manifest or a folder for the split, `read_labelled` takes the whole folder: say so, rather than
/// record a split that was not used (`--split bogus` was taken silently).
fn split_in_use(data: &Path, split: &str, doing: &str, advice: &str) -> String {
    // An unfinished prepare is refused when it is read; a warning about its layout would only
    // come before that refusal and mislead.
    if gc_classify::labelled::Scope::of(data, split) != gc_classify::labelled::Scope::WholeFolder
        || gc_dataset::unfinished_prepare(data).is_err()
    {
        return split.to_string();
    }
    errln!(
        "warning: {} has no manifest.csv and no {split}/ folder: {doing} every image in it{advice}",
        data.display(),
    );
    "whole folder".to_string()
}

/// The detector and detection mode of `--detector`/`--detect`; no detector means whole images.
fn load_faces(args: &FaceArgs) -> anyhow::Result<(Option<Detector>, DetectMode)> {
    let mode = match args.detect {
        Detect::Auto => DetectMode::Auto,
        Detect::Always => DetectMode::Always,
        Detect::Never => DetectMode::Never,
    };
    let detector = match (args.detector(), args.detect) {
        (Some(path), Detect::Auto | Detect::Always) => {
            Some(load_detector(path, args.detector_kind.as_deref())?)
        }
        (None, Detect::Always) => {
            bail!("--detect always needs a face detector: pass --detector FILE.onnx")
        }
        _ => None,
    };
    Ok((detector, mode))
}

/// Loads a face detector, its family from `kind` or else from the file name. A folder (such as
/// `../shared/models/detect`) holds the detectors under their published names; from it the
/// family of `kind` is taken, UltraFace RFB-320 when none is named.
fn load_detector(path: &Path, kind: Option<&str>) -> anyhow::Result<Detector> {
    let kind = kind
        .map(|k| {
            k.parse::<DetectorKind>()
                .map_err(|e| anyhow::anyhow!("--detector-kind: {e}"))
        })
        .transpose()?;
    // A missing file in the folder is named by Detector::from_path, as any missing model file is;
    // a missing path is named before its name is asked for a family.
    if !path.exists() {
        bail!("--detector {}: no such file or folder", path.display());
    }
    let (file, kind) = match kind {
        _ if path.is_dir() => {
            let kind = kind.unwrap_or(DetectorKind::UltraFaceRfb320);
            (path.join(kind.file_name()), kind)
        }
        Some(k) => (path.to_path_buf(), k),
        None => (path.to_path_buf(), kind_from_name(path)?),
    };
    Detector::from_path(&file, kind).context("loading the face detector")
}

/// The detector's family from its file name (the names the detectors are published under).
fn kind_from_name(path: &Path) -> anyhow::Result<DetectorKind> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    Ok(if name.contains("yunet") {
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
    })
}
