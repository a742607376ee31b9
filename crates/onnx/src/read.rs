//! Reading ONNX files with tract, done one way for gc-onnx's classifiers and for gc-detect's face
//! detectors: the same checks, the same tract settings, the same error messages.

use gc_core::ModelError;
use std::path::Path;
use tract_onnx::prelude::*;

/// Refuses a path that is missing, unreadable or not a file, before anything else is tried, so
/// that the message says so rather than "bad format".
pub fn check_file(path: &Path) -> Result<(), ModelError> {
    let file_err = |reason: String| ModelError::File {
        path: path.display().to_string(),
        reason,
    };
    let meta = std::fs::metadata(path).map_err(|e| file_err(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(file_err("not a file".to_string()));
    }
    Ok(())
}

/// The ONNX graph of `path`, not yet typed nor optimised.
pub fn read_model(path: &Path) -> Result<InferenceModel, ModelError> {
    // value_info only repeats shapes tract infers itself, and some exporters write it with a
    // symbolic batch that cannot unify with a fixed one (the original dlib-cydral export fails
    // with "Impossible to unify Sym(N) with Val(1)" otherwise).
    tract_onnx::onnx()
        .with_ignore_value_info(true)
        .model_for_path(path)
        .map_err(|e| ModelError::Format {
            path: path.display().to_string(),
            reason: format!("not an ONNX model that tract can read: {e:#}"),
        })
}

/// An output tensor as `f32` values; `path` names the model in the error.
pub fn as_f32(t: &Tensor, path: &str) -> Result<Vec<f32>, ModelError> {
    let err = |e: TractError| ModelError::Run(format!("{path}: output is not numeric: {e:#}"));
    let t = t.cast_to::<f32>().map_err(err)?;
    let view = t.try_as_plain_ram().map_err(err)?;
    Ok(view.as_slice::<f32>().map_err(err)?.to_vec())
}
