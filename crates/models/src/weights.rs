//! Saving and loading a model's weights as safetensors, with burn-store, strictly: a file that lacks
//! a tensor, holds one of the wrong shape or of a dtype that is not a float, or holds tensors the
//! model does not know is refused with a [`ModelError`] that names them. Half-precision (and f64)
//! weights are widened to f32. Nothing here panics on a bad file.

use burn::store::{KeyRemapper, ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};
use gc_core::ModelError;
use safetensors::Dtype;
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
    // Read it first, so that a missing or unreadable file says so rather than "bad format".
    let bytes = std::fs::read(path).map_err(|e| ModelError::File {
        path: shown.clone(),
        reason: e.to_string(),
    })?;
    load_safetensors_bytes(model, bytes, &shown, spec)
}

/// Like [`load_safetensors`], from the bytes of a safetensors file (the built-in model is
/// embedded in the binary); `name` stands for the file in error messages.
pub fn load_safetensors_bytes<M: ModuleSnapshot>(
    model: M,
    bytes: Vec<u8>,
    name: &str,
    spec: &WeightsSpec,
) -> Result<M, ModelError> {
    let bytes = floats_as_f32(bytes, name)?;
    load_from_store(model, SafetensorsStore::from_bytes(Some(bytes)), name, spec)
}

/// The safetensors bytes with every F16, BF16 and F64 tensor turned into F32, the models' only
/// float type; the bytes as they are when there is none.
///
/// Why: burn-store loads a tensor in the file's dtype, and flex then panics on the first
/// operation that mixes it with f32 ("dtype mismatch"). Half-precision files are common (the
/// Hub's, and ours when stored small), so they are widened here rather than refused.
fn floats_as_f32(bytes: Vec<u8>, shown: &str) -> Result<Vec<u8>, ModelError> {
    use safetensors::{SafeTensors, tensor::TensorView};
    use std::borrow::Cow;
    let format = |e: safetensors::SafeTensorError| ModelError::Format {
        path: shown.to_string(),
        reason: format!("not a readable safetensors file: {e}"),
    };
    let narrow = |d: Dtype| matches!(d, Dtype::F16 | Dtype::BF16 | Dtype::F64);
    let (_, header) = SafeTensors::read_metadata(&bytes).map_err(format)?;
    if !header.tensors().values().any(|t| narrow(t.dtype)) {
        return Ok(bytes);
    }
    let file = SafeTensors::deserialize(&bytes).map_err(format)?;
    let tensors: Vec<_> = file
        .tensors()
        .into_iter()
        .map(|(name, t)| {
            if !narrow(t.dtype()) {
                return (name, t.dtype(), t.shape().to_vec(), Cow::Borrowed(t.data()));
            }
            let mut values = vec![0.0; t.shape().iter().product()];
            widen_to_f32(t.dtype(), t.data(), &mut values);
            let data = values.iter().flat_map(|v| v.to_le_bytes()).collect();
            (name, Dtype::F32, t.shape().to_vec(), Cow::Owned(data))
        })
        .collect();
    let views = tensors
        .iter()
        .map(|(name, dtype, shape, data)| {
            TensorView::new(*dtype, shape.clone(), data).map(|v| (name.clone(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(format)?;
    safetensors::serialize(views, header.metadata().clone()).map_err(format)
}

/// Writes the values of a safetensors tensor's little-endian F16, BF16 or F64 bytes into `out`
/// as f32 (as many as both hold). Returns false, leaving `out` as it was, for any other dtype.
/// Also gc-hf's way of reading Hub checkpoints stored in half precision.
pub fn widen_to_f32(dtype: Dtype, raw: &[u8], out: &mut [f32]) -> bool {
    use burn::tensor::{bf16, f16};
    match dtype {
        Dtype::F16 => {
            for (v, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
                *v = f16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        Dtype::BF16 => {
            for (v, b) in out.iter_mut().zip(raw.chunks_exact(2)) {
                *v = bf16::from_le_bytes([b[0], b[1]]).to_f32();
            }
        }
        Dtype::F64 => {
            for (v, b) in out.iter_mut().zip(raw.chunks_exact(8)) {
                let b = [b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]];
                *v = f64::from_le_bytes(b) as f32;
            }
        }
        _ => return false,
    }
    true
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
/// bytes. burn-store's temporary file is private (mode 0600), and so is a new file it makes: a
/// caller that shares the file writes [`safetensors_bytes`] itself.
pub fn save_safetensors<M: ModuleSnapshot>(model: &M, path: &Path) -> Result<(), ModelError> {
    let mut store = producer(SafetensorsStore::from_file(path).overwrite(true));
    model.save_into(&mut store).map_err(|e| ModelError::File {
        path: path.display().to_string(),
        reason: format!("writing weights: {e}"),
    })
}

/// The bytes [`save_safetensors`] writes.
pub fn safetensors_bytes<M: ModuleSnapshot>(model: &M) -> Result<Vec<u8>, ModelError> {
    let failed = |e: &dyn std::fmt::Display| ModelError::File {
        path: "(weights in memory)".into(),
        reason: format!("writing weights: {e}"),
    };
    let mut store = producer(SafetensorsStore::from_bytes(None));
    model.save_into(&mut store).map_err(|e| failed(&e))?;
    store.get_bytes().map_err(|e| failed(&e))
}

fn producer(store: SafetensorsStore) -> SafetensorsStore {
    // One metadata key only: burn-store keeps metadata in a HashMap, whose order (and so the
    // file's bytes) would change from run to run with several keys.
    store
        .clear_metadata()
        .metadata("producer", "gender-classifier gc-models (burn 0.22.1)")
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
