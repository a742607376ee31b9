//! A checkpoint's tensors, read from safetensors files as the Hub stores them (one
//! `model.safetensors`, or the shards that `model.safetensors.index.json` lists), handed out by name
//! as burn tensors of a checked shape.
//!
//! Every way a file can be wrong ends in a [`ModelError`] that names the file and the tensor: a
//! missing tensor, a shape that is not the one the config implies, a dtype we cannot read. Tensors
//! the architecture does not take are reported by [`Checkpoint::unused`] for the caller to judge.
//!
//! PyTorch conventions are undone here, once: `nn.Linear` stores its weight `[out, in]` where burn's
//! [`Linear`] takes `[in, out]`, so [`Checkpoint::linear`] hands burn a transposed view of it.

use burn::module::Param;
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, LayerNormConfig, Linear, PaddingConfig2d};
use burn::tensor::{Device, Tensor, TensorData};
use gc_core::ModelError;
use safetensors::Dtype;
use safetensors::tensor::Metadata;
use std::collections::{BTreeSet, HashMap};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

/// The single-file weights of a Hub model directory.
pub const SAFETENSORS_FILE: &str = "model.safetensors";
/// The index of sharded safetensors weights (`weight_map`: tensor name -> shard file).
pub const SAFETENSORS_INDEX_FILE: &str = "model.safetensors.index.json";
/// PyTorch pickle weights, which we do not read (see [`Checkpoint::open_dir`]).
pub const PYTORCH_FILE: &str = "pytorch_model.bin";

/// Where one tensor lies: which file, its dtype and shape, and its bytes within that file.
#[derive(Debug, Clone)]
struct Entry {
    file: usize,
    dtype: Dtype,
    shape: Vec<usize>,
    /// Byte offset within the file.
    start: u64,
    len: usize,
}

/// The tensors of a checkpoint: the files' headers are read when it is opened, each tensor's bytes
/// when it is taken, straight into the buffer that becomes the burn tensor (one copy from the page
/// cache: for ViT-B/16's 330 MB that is most of the loading time), with a record of which were taken.
pub struct Checkpoint {
    files: Vec<(PathBuf, File)>,
    entries: HashMap<String, Entry>,
    taken: BTreeSet<String>,
    device: Device,
}

/// The largest safetensors header we accept (the format's own limit).
const MAX_HEADER: u64 = 100_000_000;

impl Checkpoint {
    /// Reads the safetensors weights of a Hub model directory: `model.safetensors`, or else the
    /// shards of `model.safetensors.index.json`. A directory with only `pytorch_model.bin` is
    /// refused with a message that says so: reading pickles means running (or re-implementing)
    /// Python's unpickler, and the Hub converts most models to safetensors anyway.
    pub fn open_dir(dir: &Path, device: &Device) -> Result<Checkpoint, ModelError> {
        let single = dir.join(SAFETENSORS_FILE);
        if single.is_file() {
            return Checkpoint::open_files(&[single], device);
        }
        let index = dir.join(SAFETENSORS_INDEX_FILE);
        if index.is_file() {
            let shards = shard_files(&index)?;
            let paths: Vec<PathBuf> = shards.iter().map(|s| dir.join(s)).collect();
            return Checkpoint::open_files(&paths, device);
        }
        let reason = if dir.join(PYTORCH_FILE).is_file() {
            format!(
                "no weights in safetensors format ({SAFETENSORS_FILE} or {SAFETENSORS_INDEX_FILE}); \
                 this directory has only {PYTORCH_FILE} (a PyTorch pickle), which gc-hf does not read: \
                 convert it with `transformers` (`model.save_pretrained(dir, safe_serialization=True)`) \
                 or use the Hub's safetensors conversion of the model"
            )
        } else {
            format!("no weights: neither {SAFETENSORS_FILE} nor {SAFETENSORS_INDEX_FILE} is there")
        };
        Err(ModelError::File {
            path: dir.display().to_string(),
            reason,
        })
    }

    /// Opens the given safetensors files and reads their headers; a tensor name must not appear in
    /// two of them.
    pub fn open_files(paths: &[PathBuf], device: &Device) -> Result<Checkpoint, ModelError> {
        let mut files = Vec::with_capacity(paths.len());
        let mut entries = HashMap::new();
        for (i, path) in paths.iter().enumerate() {
            let shown = path.display().to_string();
            let io = |e: std::io::Error| ModelError::File {
                path: shown.clone(),
                reason: format!("cannot read weights: {e}"),
            };
            let format = |reason: String| ModelError::Format {
                path: shown.clone(),
                reason: format!("not a safetensors file: {reason}"),
            };
            let mut file = File::open(path).map_err(io)?;
            let file_len = file.metadata().map_err(io)?.len();
            // 8 bytes of header length (little-endian), the JSON header, then the tensors' bytes.
            let mut n = [0u8; 8];
            file.read_exact(&mut n)
                .map_err(|_| format("shorter than 8 bytes".into()))?;
            let header_len = u64::from_le_bytes(n);
            if header_len > MAX_HEADER || 8 + header_len > file_len {
                return Err(format(format!(
                    "header of {header_len} bytes in a {file_len}-byte file"
                )));
            }
            let mut header = vec![0u8; header_len as usize];
            file.read_exact(&mut header).map_err(io)?;
            let metadata: Metadata =
                serde_json::from_slice(&header).map_err(|e| format(e.to_string()))?;
            let data_start = 8 + header_len;
            if metadata.data_len() as u64 != file_len - data_start {
                return Err(format(format!(
                    "the header describes {} bytes of tensors, the file holds {}",
                    metadata.data_len(),
                    file_len - data_start
                )));
            }
            for (name, info) in metadata.tensors() {
                let entry = Entry {
                    file: i,
                    dtype: info.dtype,
                    shape: info.shape.clone(),
                    start: data_start + info.data_offsets.0 as u64,
                    len: info.data_offsets.1 - info.data_offsets.0,
                };
                if entries.insert(name.clone(), entry).is_some() {
                    return Err(ModelError::Format {
                        path: shown,
                        reason: format!("tensor {name} is in more than one shard"),
                    });
                }
            }
            files.push((path.clone(), file));
        }
        tracing::debug!(
            files = paths.len(),
            tensors = entries.len(),
            "opened checkpoint"
        );
        Ok(Checkpoint {
            files,
            entries,
            taken: BTreeSet::new(),
            device: device.clone(),
        })
    }

    /// The file(s) for error messages.
    pub fn shown(&self) -> String {
        let names: Vec<String> = self
            .files
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        names.join(", ")
    }

    /// Whether the checkpoint holds a tensor of that name.
    pub fn contains(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// The tensor `name`, which must have exactly `shape`, as f32 on the checkpoint's device.
    pub fn tensor<const D: usize>(
        &mut self,
        name: &str,
        shape: [usize; D],
    ) -> Result<Tensor<D>, ModelError> {
        let mut values = vec![0.0; self.check(name, &shape)?];
        self.read_f32(name, &shape, &mut values)?;
        Ok(Tensor::from_data(
            TensorData::new(values, shape),
            &self.device,
        ))
    }

    /// A `nn.Linear` of PyTorch, `{prefix}.weight` `[d_out, d_in]` and `{prefix}.bias` `[d_out]`,
    /// as a burn [`Linear`].
    pub fn linear(
        &mut self,
        prefix: &str,
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        self.linear_fused(&[prefix], d_in, d_out, bias)
    }

    /// Several `nn.Linear`s of PyTorch that read the same input, each `[d_out, d_in]`, as one burn
    /// [`Linear`] of `d_in -> prefixes.len() * d_out` whose outputs are theirs side by side (one
    /// wide matmul instead of several narrow ones).
    pub fn linear_fused(
        &mut self,
        prefixes: &[&str],
        d_in: usize,
        d_out: usize,
        bias: bool,
    ) -> Result<Linear, ModelError> {
        let n = prefixes.len();
        for prefix in prefixes {
            self.check(&format!("{prefix}.weight"), &[d_out, d_in])?;
            if bias {
                self.check(&format!("{prefix}.bias"), &[d_out])?;
            }
        }
        // [n * d_out, d_in]: PyTorch's layout, the blocks stacked along the output dimension.
        // Zeroed by the allocator (fresh pages need no writing), filled by the reads.
        let mut w = vec![0.0; n * d_out * d_in];
        let mut b = vec![0.0; if bias { n * d_out } else { 0 }];
        for (i, prefix) in prefixes.iter().enumerate() {
            let block = &mut w[i * d_out * d_in..(i + 1) * d_out * d_in];
            self.read_f32(&format!("{prefix}.weight"), &[d_out, d_in], block)?;
            if bias {
                let block = &mut b[i * d_out..(i + 1) * d_out];
                self.read_f32(&format!("{prefix}.bias"), &[d_out], block)?;
            }
        }
        // burn's linear computes `x @ weight` with weight `[d_in, d_out]`: the transpose is a
        // strided view, not a copy (burn's `LinearLayout::Col`); flex's 2-D matmul reads it in
        // place, and is no slower for it (the architectures keep their inputs 2-D for that:
        // `common::token_linear`).
        let weight =
            Tensor::<2>::from_data(TensorData::new(w, [n * d_out, d_in]), &self.device).transpose();
        let bias = bias.then(|| {
            Param::from_tensor(Tensor::<1>::from_data(
                TensorData::new(b, [n * d_out]),
                &self.device,
            ))
        });
        Ok(Linear {
            weight: Param::from_tensor(weight),
            bias,
        })
    }

    /// A `nn.LayerNorm` of PyTorch, `{prefix}.weight` and `{prefix}.bias`, both `[d]`.
    pub fn layer_norm(
        &mut self,
        prefix: &str,
        d: usize,
        eps: f64,
    ) -> Result<LayerNorm, ModelError> {
        // LayerNorm's epsilon is private: build one with the right epsilon, then swap its parameters.
        // Checked first: `init` allocates `d` values, and `d` comes from config.json.
        self.check(&format!("{prefix}.weight"), &[d])?;
        self.check(&format!("{prefix}.bias"), &[d])?;
        let mut norm = LayerNormConfig::new(d).with_epsilon(eps).init(&self.device);
        norm.gamma = Param::from_tensor(self.tensor(&format!("{prefix}.weight"), [d])?);
        norm.beta = Some(Param::from_tensor(
            self.tensor(&format!("{prefix}.bias"), [d])?,
        ));
        Ok(norm)
    }

    /// The patch embedding of a vision transformer: a PyTorch `nn.Conv2d` with kernel = stride =
    /// `patch` and no padding, `{prefix}.weight` `[d_out, channels, patch_h, patch_w]` and
    /// `{prefix}.bias` `[d_out]`, as a burn [`Conv2d`] (same weight layout).
    pub fn patch_conv(
        &mut self,
        prefix: &str,
        channels: usize,
        d_out: usize,
        patch: [usize; 2],
    ) -> Result<Conv2d, ModelError> {
        let [ph, pw] = patch;
        Ok(Conv2d {
            weight: Param::from_tensor(
                self.tensor(&format!("{prefix}.weight"), [d_out, channels, ph, pw])?,
            ),
            bias: Some(Param::from_tensor(
                self.tensor(&format!("{prefix}.bias"), [d_out])?,
            )),
            stride: patch,
            kernel_size: patch,
            dilation: [1, 1],
            groups: 1,
            padding: PaddingConfig2d::Valid,
        })
    }

    /// Counts the tensors whose names start with `prefix` as taken without reading them, and
    /// returns how many there were: for parts of a checkpoint that upstream computes but whose
    /// output never reaches the logits, which [`Checkpoint::unused`] should not report.
    pub fn skip_prefix(&mut self, prefix: &str) -> usize {
        let names: Vec<String> = self
            .entries
            .keys()
            .filter(|n| n.starts_with(prefix))
            .cloned()
            .collect();
        let n = names.len();
        self.taken.extend(names);
        n
    }

    /// Names of the tensors no call has taken, sorted.
    pub fn unused(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .entries
            .keys()
            .filter(|n| !self.taken.contains(*n))
            .cloned()
            .collect();
        names.sort();
        names
    }

    /// Checks that tensor `name` exists with `shape` and a dtype this reads, and returns its
    /// number of values: called before a buffer is allocated for it, since the shape comes from
    /// `config.json` (a `hidden_size` of 4e9 aborted allocating 12 TB before the tensor was
    /// found to be missing).
    fn check(&self, name: &str, shape: &[usize]) -> Result<usize, ModelError> {
        let Some(entry) = self.entries.get(name) else {
            return Err(ModelError::Format {
                path: self.shown(),
                reason: format!("missing tensor {name} (expected shape {shape:?})"),
            });
        };
        let path = &self.files[entry.file].0;
        let shown = path.display().to_string();
        let format = |reason: String| ModelError::Format {
            path: shown.clone(),
            reason,
        };
        if entry.shape != shape {
            return Err(format(format!(
                "tensor {name} has shape {:?}, expected {shape:?} (from config.json)",
                entry.shape
            )));
        }
        let count = shape
            .iter()
            .try_fold(1usize, |n, &d| n.checked_mul(d))
            .ok_or_else(|| format(format!("tensor {name}: shape {shape:?} is too large")))?;
        let width = match entry.dtype {
            Dtype::F32 => 4,
            Dtype::F16 | Dtype::BF16 => 2,
            Dtype::F64 => 8,
            other => {
                return Err(format(format!(
                    "tensor {name} has dtype {other}; only F32, F16, BF16 and F64 are read"
                )));
            }
        };
        if Some(entry.len) != count.checked_mul(width) {
            return Err(format(format!(
                "tensor {name} has {} bytes, its shape {shape:?} and dtype {} need {}",
                entry.len,
                entry.dtype,
                count as u128 * width as u128
            )));
        }
        Ok(count)
    }

    /// Writes the values of `name` in row-major order, as f32, into `out` (of the shape's size),
    /// after checking its shape and dtype.
    fn read_f32(&mut self, name: &str, shape: &[usize], out: &mut [f32]) -> Result<(), ModelError> {
        let count = self.check(name, shape)?;
        let entry = &self.entries[name];
        let (path, file) = &self.files[entry.file];
        let shown = path.display().to_string();
        let format = |reason: String| ModelError::Format {
            path: shown.clone(),
            reason,
        };
        let io = |e: std::io::Error| ModelError::File {
            path: shown.clone(),
            reason: format!("reading tensor {name}: {e}"),
        };
        if out.len() != count {
            return Err(format(format!(
                "tensor {name}: {} values asked for, its shape {shape:?} has {count}",
                out.len()
            )));
        }
        if entry.dtype == Dtype::F32 {
            // Straight into the f32 buffer: no intermediate copy.
            let bytes: &mut [u8] = bytemuck::cast_slice_mut(out);
            read_exact_at(file, entry.start, bytes).map_err(io)?;
            if cfg!(target_endian = "big") {
                for v in out.iter_mut() {
                    *v = f32::from_bits(v.to_bits().swap_bytes());
                }
            }
        } else {
            let mut raw = vec![0u8; entry.len];
            read_exact_at(file, entry.start, &mut raw).map_err(io)?;
            // The dtype was checked above to be one of the widths this reads.
            if !gc_models::weights::widen_to_f32(entry.dtype, &raw, out) {
                return Err(format(format!(
                    "tensor {name}: dtype {} not read",
                    entry.dtype
                )));
            }
        }
        self.taken.insert(name.to_string());
        Ok(())
    }
}

/// Reads `buf.len()` bytes of `file` from `offset`, in 1 MiB pieces on rayon's threads.
///
/// Why not one `read_exact`: loading the weights is half of a cold start, and a single thread
/// copying ViT-B/16's 330 MB out of the page cache (faulting in every page it writes) leaves the
/// other cores idle.
#[cfg(unix)]
fn read_exact_at(file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    use rayon::prelude::*;
    use std::os::unix::fs::FileExt;
    const PIECE: usize = 1 << 20;
    buf.par_chunks_mut(PIECE)
        .enumerate()
        .try_for_each(|(i, piece)| file.read_exact_at(piece, offset + (i * PIECE) as u64))
}

#[cfg(not(unix))]
fn read_exact_at(mut file: &File, offset: u64, buf: &mut [u8]) -> std::io::Result<()> {
    use std::io::{Seek, SeekFrom};
    file.seek(SeekFrom::Start(offset))?;
    file.read_exact(buf)
}

/// The shard files named by a `model.safetensors.index.json`, each once, in first-seen order.
fn shard_files(index: &Path) -> Result<Vec<String>, ModelError> {
    #[derive(serde::Deserialize)]
    struct Index {
        weight_map: HashMap<String, String>,
    }
    let text = std::fs::read_to_string(index).map_err(|e| ModelError::File {
        path: index.display().to_string(),
        reason: e.to_string(),
    })?;
    let parsed: Index = serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: index.display().to_string(),
        reason: format!("not a safetensors index: {e}"),
    })?;
    let mut shards: Vec<String> = parsed.weight_map.into_values().collect();
    shards.sort();
    shards.dedup();
    if let Some(bad) = shards
        .iter()
        .find(|s| s.contains('/') || s.contains('\\') || s.starts_with('.'))
    {
        return Err(ModelError::Format {
            path: index.display().to_string(),
            reason: format!("shard name {bad:?} points outside the model directory"),
        });
    }
    Ok(shards)
}

/// The shard file names of an index file, for the Hub download.
pub fn shards_of_index(index: &Path) -> Result<Vec<String>, ModelError> {
    shard_files(index)
}
