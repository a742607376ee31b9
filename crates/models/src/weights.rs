//! Saving and loading a model's weights as safetensors, with burn-store, strictly: a file that lacks
//! a tensor, holds one of the wrong shape or dtype, or holds tensors the model does not know is
//! refused with a [`ModelError`] that names them. Nothing here panics on a bad file.

use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use gc_core::ModelError;
use std::path::Path;

/// How a file's tensor names relate to the model's.
pub struct WeightsSpec {
    /// `(regex, replacement)` renames from the file's names to the model's paths, in order.
    pub rename: &'static [(&'static str, &'static str)],
    /// The file follows PyTorch's conventions (BatchNorm `weight`/`bias`, linear weights
    /// `[out, in]`): adapt them to burn's.
    pub pytorch_layout: bool,
    /// Tensors of the file (after renaming) the model has no use for and may leave behind.
    pub ignore_unused: fn(&str) -> bool,
}

impl WeightsSpec {
    /// The file was written by [`save_safetensors`] from the same architecture: names as they are.
    pub const NATIVE: WeightsSpec = WeightsSpec {
        rename: &[],
        pytorch_layout: false,
        ignore_unused: |_| false,
    };
}

/// Loads the weights of `path` into `model` (whose architecture fixes the expected names and
/// shapes), returning the loaded model.
pub fn load_safetensors<M: ModuleSnapshot>(
    model: M,
    path: &Path,
    spec: &WeightsSpec,
) -> Result<M, ModelError> {
    let shown = path.display().to_string();
    // Open it first, so that a missing or unreadable file says so rather than "bad format".
    std::fs::File::open(path).map_err(|e| ModelError::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    load_from_store(model, SafetensorsStore::from_file(path), &shown, spec)
}

/// Like [`load_safetensors`], from the bytes of a safetensors file (the built-in model is
/// embedded in the binary); `name` stands for the file in error messages.
pub fn load_safetensors_bytes<M: ModuleSnapshot>(
    model: M,
    bytes: Vec<u8>,
    name: &str,
    spec: &WeightsSpec,
) -> Result<M, ModelError> {
    load_from_store(model, SafetensorsStore::from_bytes(Some(bytes)), name, spec)
}

fn load_from_store<M: ModuleSnapshot>(
    mut model: M,
    store: SafetensorsStore,
    shown: &str,
    spec: &WeightsSpec,
) -> Result<M, ModelError> {
    let format = |reason: String| ModelError::Format {
        path: shown.to_string(),
        reason,
    };
    let mut remapper = KeyRemapper::new();
    for (from, to) in spec.rename {
        remapper = remapper
            .add_pattern(*from, *to)
            .map_err(|e| format(format!("bad rename pattern {from:?}: {e}")))?;
    }
    // allow_partial + no validation: the store then reports everything in the ApplyResult, and
    // the checks below turn it into one message.
    let mut store = store.remap(remapper).allow_partial(true).validate(false);
    if spec.pytorch_layout {
        store = store.with_from_adapter(PyTorchToBurnAdapter);
    }
    let result = model
        .load_from(&mut store)
        .map_err(|e| format(format!("not a readable safetensors file: {e}")))?;
    // Everything wrong at once: a file of another architecture shows as missing and unexpected
    // names, a file of another size as shape mismatches.
    let mut problems = Vec::new();
    if !result.errors.is_empty() {
        let errors: Vec<String> = result.errors.iter().map(|e| e.to_string()).collect();
        problems.push(format!(
            "{} tensor(s) do not fit the architecture: {}",
            errors.len(),
            list(&errors)
        ));
    }
    if !result.missing.is_empty() {
        let missing: Vec<String> = result.missing.iter().map(|(p, _)| p.clone()).collect();
        problems.push(format!(
            "missing {} tensor(s): {}",
            missing.len(),
            list(&missing)
        ));
    }
    let unused: Vec<String> = result
        .unused
        .iter()
        .filter(|name| !(spec.ignore_unused)(name))
        .cloned()
        .collect();
    if !unused.is_empty() {
        problems.push(format!(
            "{} tensor(s) the architecture does not have: {}",
            unused.len(),
            list(&unused)
        ));
    }
    if !problems.is_empty() {
        return Err(format(problems.join("; ")));
    }
    Ok(model)
}

/// Writes the model's weights (parameters and BatchNorm running statistics) to `path`, replacing
/// the file if it exists. Atomic: burn-store builds the file beside `path` and renames it into
/// place, so an interrupted save leaves the previous file whole. The same weights give the same
/// bytes.
pub fn save_safetensors<M: ModuleSnapshot>(model: &M, path: &Path) -> Result<(), ModelError> {
    // One metadata key only: burn-store keeps metadata in a HashMap, whose order (and so the
    // file's bytes) would change from run to run with several keys.
    let mut store = SafetensorsStore::from_file(path)
        .overwrite(true)
        .clear_metadata()
        .metadata("producer", "gender-classifier gc-models (burn 0.22.1)");
    model.save_into(&mut store).map_err(|e| ModelError::File {
        path: path.display().to_string(),
        reason: format!("writing weights: {e}"),
    })
}

/// The first few names of a list, for an error message.
fn list(names: &[String]) -> String {
    const SHOWN: usize = 5;
    let mut s = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        s.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    s
}
