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
}

impl ModelSpec {
    /// Resolves a `--model` value (and `--preset`, which only ONNX files take).
    pub fn parse(value: Option<&str>, preset: Option<&str>) -> Result<ModelSpec, ModelError> {
        if let Some(v) = value
            && let Some(rest) = v.strip_prefix("flip:")
        {
            if rest.starts_with("flip:") {
                return Err(ModelError::Format {
                    path: v.to_string(),
                    reason: "flip: given twice".into(),
                });
            }
            return Ok(ModelSpec::Flip(Box::new(ModelSpec::parse(
                Some(rest),
                preset,
            )?)));
        }
        let spec = match value {
            None | Some("builtin") | Some("built-in") => ModelSpec::Builtin,
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
                let path = PathBuf::from(v);
                let meta = std::fs::metadata(&path).map_err(|e| ModelError::File {
                    path: v.to_string(),
                    reason: e.to_string(),
                })?;
                if meta.is_dir() {
                    dir_kind(&path)?
                } else if is_onnx_name(&path) {
                    ModelSpec::Onnx { path, preset: None }
                } else {
                    return Err(ModelError::Format {
                        path: v.to_string(),
                        reason: "not a model: expected an .onnx file, a folder with model.json (ours) or config.json (Hugging Face), or hf:OWNER/NAME".into(),
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
                path: format!("{spec:?}"),
                reason: "--preset applies to .onnx models only".into(),
            }),
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
        let txt = dir.path().join("notes.txt");
        std::fs::write(&txt, b"x").unwrap();
        assert!(ModelSpec::parse(Some(txt.to_str().unwrap()), None).is_err());
    }
}
