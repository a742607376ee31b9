//! What a `--model` value names, and loading it.
//!
//! | value | model |
//! | --- | --- |
//! | (none), `builtin` | the built-in model, embedded in the binary |
//! | `path/to/file.onnx` | an ONNX classifier run with tract, preprocessing from a JSON spec beside it or a preset |
//! | `path/to/dir` with `model.json` | a model trained by `gender-classifier train` |
//! | `path/to/dir` with `config.json` | a Hugging Face image-classification checkpoint |
//! | `hf:OWNER/NAME[@REVISION]` | the same, fetched once into the Hugging Face cache |
//! | `flip:MODEL` | any of the above, run on each face and its mirror image, the two averaged |
//! | `path/to/file.json` | a calibration file (`gender-classifier calibrate`): a model above, temperature-scaled |

use crate::calibrated::{CalibrationFile, TemperatureScaled};
use gc_core::{Classifier, ModelError};
use std::path::{Path, PathBuf};

/// A model named by the user, resolved to its kind but not loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModelSpec {
    Builtin,
    Onnx {
        path: PathBuf,
        preset: Option<String>,
    },
    Trained(PathBuf),
    HuggingFaceDir(PathBuf),
    Hub {
        repo: String,
        revision: Option<String>,
    },
    /// Test-time augmentation: the model's predictions on each image and its mirror, averaged.
    Flip(Box<ModelSpec>),
    /// A calibration file: the model it names, with its probabilities temperature-scaled.
    Calibrated(PathBuf),
}

impl ModelSpec {
    /// Resolves a `--model` value (and `--preset`, which only ONNX files take).
    pub fn parse(value: Option<&str>, preset: Option<&str>) -> Result<ModelSpec, ModelError> {
        ModelSpec::parse_in(value, preset, None)
    }

    /// As [`ModelSpec::parse`], with relative paths read from `base` (a calibration file's folder)
    /// rather than the working directory.
    fn parse_in(
        value: Option<&str>,
        preset: Option<&str>,
        base: Option<&Path>,
    ) -> Result<ModelSpec, ModelError> {
        if let Some(v) = value
            && let Some(rest) = v.strip_prefix("flip:")
        {
            if rest.starts_with("flip:") {
                return Err(ModelError::Format {
                    path: v.to_string(),
                    reason: "flip: given twice".into(),
                });
            }
            let inner = ModelSpec::parse_in(Some(rest), preset, base)?;
            if let ModelSpec::Calibrated(_) = inner {
                // The temperature was fitted on the model's own outputs, not on mirror averages.
                return Err(ModelError::Format {
                    path: v.to_string(),
                    reason: "flip: cannot wrap a calibration file; calibrate the mirrored model instead (calibrate --model flip:MODEL)".into(),
                });
            }
            return Ok(ModelSpec::Flip(Box::new(inner)));
        }
        let spec = match value {
            None | Some("builtin") | Some("built-in") => ModelSpec::Builtin,
            // It was read as a path: "error: : No such file or directory".
            Some("") => {
                return Err(ModelError::File {
                    path: "\"\"".into(),
                    reason: "an empty model name: name a model file or folder, hf:OWNER/NAME, \
                             or builtin"
                        .into(),
                });
            }
            Some(v) if v.starts_with("hf:") => {
                let rest = &v[3..];
                let (repo, revision) = match rest.split_once('@') {
                    Some((r, rev)) => (r, Some(rev.to_string())),
                    None => (rest, None),
                };
                let parts: Vec<&str> = repo.split('/').collect();
                if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
                    return Err(ModelError::File {
                        path: v.to_string(),
                        reason: "expected hf:OWNER/NAME[@REVISION]".into(),
                    });
                }
                ModelSpec::Hub {
                    repo: repo.to_string(),
                    revision,
                }
            }
            Some(v) => {
                let path = match base {
                    Some(b) if Path::new(v).is_relative() => b.join(v),
                    _ => PathBuf::from(v),
                };
                let meta = std::fs::metadata(&path).map_err(|e| ModelError::File {
                    path: v.to_string(),
                    reason: e.to_string(),
                })?;
                if meta.is_dir() {
                    dir_kind(&path)?
                } else if is_onnx_name(&path) {
                    ModelSpec::Onnx { path, preset: None }
                } else if let Some(name @ ("model.json" | "config.json")) =
                    path.file_name().and_then(|n| n.to_str())
                {
                    return Err(ModelError::Format {
                        path: v.to_string(),
                        reason: format!(
                            "{name} describes the model in its folder: pass the folder"
                        ),
                    });
                } else if CalibrationFile::has_its_name(&path) {
                    ModelSpec::Calibrated(path)
                } else {
                    return Err(ModelError::Format {
                        path: v.to_string(),
                        reason: "not a model: expected an .onnx file, a folder with model.json (ours) or config.json (Hugging Face), a calibration .json file, or hf:OWNER/NAME".into(),
                    });
                }
            }
        };
        match (spec, preset) {
            (ModelSpec::Onnx { path, .. }, preset) => Ok(ModelSpec::Onnx {
                path,
                preset: preset.map(str::to_string),
            }),
            (spec, None) => Ok(spec),
            (spec, Some(_)) => Err(ModelError::Format {
                path: spec.value(),
                reason: "--preset applies to .onnx models only".into(),
            }),
        }
    }

    /// The `--model` value that names this model from any working directory (paths made
    /// absolute), as a calibration file records it.
    pub fn value(&self) -> String {
        match self {
            ModelSpec::Builtin => "builtin".into(),
            ModelSpec::Onnx { path, .. }
            | ModelSpec::Trained(path)
            | ModelSpec::HuggingFaceDir(path)
            // Not canonicalised: a symlink's own name is what gives an ONNX model its preset
            // and its `.preprocess.json`.
            | ModelSpec::Calibrated(path) => std::path::absolute(path)
                .unwrap_or_else(|_| path.clone())
                .display()
                .to_string(),
            ModelSpec::Hub { repo, revision } => match revision {
                Some(r) => format!("hf:{repo}@{r}"),
                None => format!("hf:{repo}"),
            },
            ModelSpec::Flip(inner) => format!("flip:{}", inner.value()),
        }
    }

    /// The ONNX preset this model was given, if any.
    pub fn preset(&self) -> Option<&str> {
        match self {
            ModelSpec::Onnx { preset, .. } => preset.as_deref(),
            ModelSpec::Flip(inner) => inner.preset(),
            _ => None,
        }
    }
}

fn is_onnx_name(path: &Path) -> bool {
    path.extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("onnx"))
}

fn dir_kind(dir: &Path) -> Result<ModelSpec, ModelError> {
    if dir.join("model.json").is_file() {
        Ok(ModelSpec::Trained(dir.to_path_buf()))
    } else if dir.join("config.json").is_file() {
        Ok(ModelSpec::HuggingFaceDir(dir.to_path_buf()))
    } else {
        Err(ModelError::File {
            path: dir.display().to_string(),
            reason: "folder holds neither model.json (a model trained by gender-classifier) nor config.json (a Hugging Face checkpoint)".into(),
        })
    }
}

/// Loads the model a spec names.
pub fn load(spec: &ModelSpec) -> Result<Box<dyn Classifier>, ModelError> {
    match spec {
        ModelSpec::Builtin => Ok(Box::new(crate::builtin::load()?)),
        ModelSpec::Onnx { path, preset } => Ok(Box::new(gc_onnx::OnnxClassifier::from_path(
            path,
            preset.as_deref(),
        )?)),
        ModelSpec::Trained(dir) => Ok(Box::new(gc_train::load_model(dir)?)),
        ModelSpec::HuggingFaceDir(dir) => Ok(Box::new(gc_hf::HfClassifier::from_dir(dir)?)),
        ModelSpec::Hub { repo, revision } => Ok(Box::new(gc_hf::HfClassifier::from_hub(
            repo,
            revision.as_deref(),
        )?)),
        ModelSpec::Flip(inner) => Ok(Box::new(crate::tta::FlipAveraged::new(load(inner)?))),
        ModelSpec::Calibrated(path) => {
            let file = CalibrationFile::read(path)?;
            let base = CalibrationFile::base_dir(path);
            let inner =
                ModelSpec::parse_in(Some(&file.calibrates), file.preset.as_deref(), Some(&base))
                    .map_err(|e| ModelError::Format {
                        path: path.display().to_string(),
                        reason: format!("the model it calibrates: {e}"),
                    })?;
            if let ModelSpec::Calibrated(_) = inner {
                return Err(ModelError::Format {
                    path: path.display().to_string(),
                    reason: "calibrates another calibration file; name the model itself".into(),
                });
            }
            Ok(Box::new(TemperatureScaled::new(
                load(&inner)?,
                file.temperature,
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_resolve_to_kinds() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(ModelSpec::parse(None, None).unwrap(), ModelSpec::Builtin);
        assert_eq!(
            ModelSpec::parse(Some("builtin"), None).unwrap(),
            ModelSpec::Builtin
        );
        assert_eq!(
            ModelSpec::parse(Some("hf:owner/name@v2"), None).unwrap(),
            ModelSpec::Hub {
                repo: "owner/name".into(),
                revision: Some("v2".into())
            }
        );
        assert!(ModelSpec::parse(Some("hf:nope"), None).is_err());
        let empty = ModelSpec::parse(Some(""), None).unwrap_err().to_string();
        assert!(empty.starts_with("\"\": an empty model name"), "{empty}");
        assert_eq!(
            ModelSpec::parse(Some("flip:builtin"), None).unwrap(),
            ModelSpec::Flip(Box::new(ModelSpec::Builtin))
        );
        assert!(ModelSpec::parse(Some("flip:flip:builtin"), None).is_err());
        assert!(ModelSpec::parse(Some("flip:hf:nope"), None).is_err());

        let onnx = dir.path().join("m.onnx");
        std::fs::write(&onnx, b"x").unwrap();
        let spec = ModelSpec::parse(Some(onnx.to_str().unwrap()), Some("dlib")).unwrap();
        assert_eq!(
            spec,
            ModelSpec::Onnx {
                path: onnx.clone(),
                preset: Some("dlib".into())
            }
        );
        let flip = format!("flip:{}", onnx.display());
        assert_eq!(
            ModelSpec::parse(Some(&flip), Some("dlib")).unwrap(),
            ModelSpec::Flip(Box::new(spec.clone()))
        );
        assert!(ModelSpec::parse(Some("flip:builtin"), Some("dlib")).is_err());

        let hf = dir.path().join("hf");
        std::fs::create_dir(&hf).unwrap();
        let err = ModelSpec::parse(Some(hf.to_str().unwrap()), None).unwrap_err();
        assert!(err.to_string().contains("config.json"), "{err}");
        std::fs::write(hf.join("config.json"), b"{}").unwrap();
        assert_eq!(
            ModelSpec::parse(Some(hf.to_str().unwrap()), None).unwrap(),
            ModelSpec::HuggingFaceDir(hf.clone())
        );
        assert!(ModelSpec::parse(Some(hf.to_str().unwrap()), Some("x")).is_err());

        let missing = dir.path().join("missing.onnx");
        let err = ModelSpec::parse(Some(missing.to_str().unwrap()), None).unwrap_err();
        assert!(err.to_string().contains("missing.onnx"), "{err}");
        std::fs::write(hf.join("model.json"), b"{}").unwrap();
        let err = ModelSpec::parse(Some(hf.join("model.json").to_str().unwrap()), None)
            .unwrap_err()
            .to_string();
        assert!(err.contains("pass the folder"), "{err}");
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, b"x").unwrap();
        assert!(ModelSpec::parse(Some(txt.to_str().unwrap()), None).is_err());
    }

    #[test]
    fn calibration_files_name_a_model_relative_to_themselves() {
        use gc_core::RgbView;
        let dir = tempfile::tempdir().unwrap();
        let models = dir.path().join("models");
        std::fs::create_dir(&models).unwrap();
        let cal = models.join("builtin-cal.json");
        std::fs::write(
            &cal,
            r#"{"calibrates": "flip:builtin", "temperature": 2.0}"#,
        )
        .unwrap();
        let spec = ModelSpec::parse(Some(cal.to_str().unwrap()), None).unwrap();
        assert_eq!(spec, ModelSpec::Calibrated(cal.clone()));
        assert!(ModelSpec::parse(Some(cal.to_str().unwrap()), Some("dlib")).is_err());
        let scaled = load(&spec).unwrap();
        assert_eq!(scaled.name(), "built-in+flip+T2.00");
        let plain = load(&ModelSpec::parse(Some("flip:builtin"), None).unwrap()).unwrap();
        let px: Vec<u8> = (0..64 * 64 * 3).map(|i| (i * 7 % 251) as u8).collect();
        let view = [RgbView::new(64, 64, &px).unwrap()];
        let (p, q) = (
            plain.classify(&view).unwrap(),
            scaled.classify(&view).unwrap(),
        );
        let want = gc_eval::calibration::scale_probability(p[0][0] as f64, 2.0);
        assert!((q[0][0] as f64 - want).abs() < 1e-5, "{p:?} -> {q:?}");

        // A relative path is read from the file's folder, not the working directory.
        let onnx = models.join("m.onnx");
        std::fs::write(&onnx, b"not onnx").unwrap();
        let rel = models.join("m-cal.json");
        std::fs::write(
            &rel,
            r#"{"calibrates": "m.onnx", "preset": "dlib", "temperature": 1.5}"#,
        )
        .unwrap();
        let err = load(&ModelSpec::Calibrated(rel.clone()))
            .err()
            .unwrap()
            .to_string();
        assert!(
            err.contains("m.onnx") && !err.contains("the model it calibrates"),
            "{err}"
        );

        // The temperature was fitted on the model's outputs, not on mirror averages.
        let flip = format!("flip:{}", cal.display());
        let err = ModelSpec::parse(Some(&flip), None).unwrap_err().to_string();
        assert!(err.contains("calibrate --model flip:MODEL"), "{err}");
        for (name, json, says) in [
            (
                "nested.json",
                r#"{"calibrates": "builtin-cal.json", "temperature": 1.0}"#,
                "another calibration file",
            ),
            (
                "gone.json",
                r#"{"calibrates": "gone.onnx", "temperature": 1.0}"#,
                "gone.onnx",
            ),
        ] {
            let file = models.join(name);
            std::fs::write(&file, json).unwrap();
            let err = load(&ModelSpec::Calibrated(file))
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(name) && err.contains(says), "{err}");
        }

        // What a calibration file records names the same model from anywhere.
        let spec =
            ModelSpec::parse(Some(&format!("flip:{}", onnx.display())), Some("dlib")).unwrap();
        let value = spec.value();
        assert!(
            value.starts_with("flip:/") && value.ends_with("m.onnx"),
            "{value}"
        );
        assert_eq!(spec.preset(), Some("dlib"));
        assert_eq!(
            ModelSpec::parse(Some(&value), spec.preset()).unwrap(),
            ModelSpec::Flip(Box::new(ModelSpec::Onnx {
                path: std::path::absolute(&onnx).unwrap(),
                preset: Some("dlib".into())
            }))
        );
        let hub = ModelSpec::parse(Some("hf:a/b@main"), None).unwrap();
        assert_eq!(hub.value(), "hf:a/b@main");
        assert_eq!(ModelSpec::Builtin.value(), "builtin");
    }
}
