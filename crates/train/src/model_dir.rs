//! The model directory a training run writes and inference reads:
//!
//! | file | what |
//! | --- | --- |
//! | `model.safetensors` | the weights of the epoch with the lowest validation loss |
//! | `model.json` | architecture and config, image size, normalisation, labels, data fingerprint, seed, settings, metrics |
//! | `history.csv` | one line per epoch: `epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds` |
//! | `checkpoint.bin` | the last finished epoch, for `--resume`: weights, optimiser and scheduler state, progress |
//!
//! Every file is written under a temporary name in the same folder and renamed over the old one,
//! so an interrupted run leaves the previous complete file, never a torn one.

use crate::TrainError;
use crate::config::{ModelSpec, TrainConfig};
use crate::progress::EpochMetrics;
use gc_core::ModelError;
use gc_models::Normalization;
use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

pub const WEIGHTS: &str = "model.safetensors";
pub const INFO: &str = "model.json";
pub const HISTORY: &str = "history.csv";
pub const CHECKPOINT: &str = "checkpoint.bin";

/// `format` in `model.json`, and the version of its layout.
pub const FORMAT: &str = "gender-classifier/burn-model";
pub const FORMAT_VERSION: u32 = 1;

/// The training data a model saw, to tell runs apart and refuse a resume on other data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataInfo {
    /// sha256 of the sorted `split\tlabel\tsize\tpath` lines (paths relative to the data
    /// folder, sizes in bytes; models trained before the size was added hashed
    /// `split\tlabel\tpath`).
    pub fingerprint: String,
    pub train_images: usize,
    pub val_images: usize,
    /// sha256 of the teachers' probabilities of the training images, in order, for a run with
    /// teachers ([`crate::Teacher`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
}

/// Why training ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StopReason {
    /// Still running (the file was written after an epoch).
    Running,
    /// All epochs done.
    Completed,
    /// The validation loss did not improve for `patience` epochs.
    EarlyStopped,
    /// Asked to stop (Ctrl-C); `--resume` continues.
    Interrupted,
}

/// `model.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub format: String,
    pub version: u32,
    /// `arch`, `config` and the training settings, flattened to the top level.
    #[serde(flatten)]
    pub training: TrainConfig,
    /// Images are resized to this square, then centre-cropped to `image_size`.
    pub resize_size: u32,
    /// A copy of the config's normalisation, for readers that do not know the architectures.
    pub normalization: Option<Normalization>,
    /// Class names in output order.
    pub labels: Vec<String>,
    pub data: DataInfo,
    /// The epoch whose weights are in `model.safetensors`, and its metrics.
    pub best: EpochMetrics,
    pub epochs_run: usize,
    pub stopped: StopReason,
}

/// The part of `model.json` inference needs; read leniently so that a file with an unknown
/// architecture is refused with that reason rather than a parse error.
#[derive(Debug, Deserialize)]
pub(crate) struct InfoHead {
    pub format: Option<String>,
    pub version: Option<u32>,
    pub arch: Option<String>,
    pub config: Option<serde_json::Value>,
    pub image_size: u32,
    pub resize_size: u32,
    pub labels: Vec<String>,
}

impl InfoHead {
    pub(crate) fn read(path: &Path) -> Result<InfoHead, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        InfoHead::parse(&text, &path.display().to_string())
    }

    /// Parses the text of a `model.json`; `shown` names it in error messages.
    pub(crate) fn parse(text: &str, shown: &str) -> Result<InfoHead, ModelError> {
        let format = |reason: String| ModelError::Format {
            path: shown.to_string(),
            reason,
        };
        let head: InfoHead = serde_json::from_str(text)
            .map_err(|e| format(format!("not a model description: {e}")))?;
        if head.format.as_deref() != Some(FORMAT) || head.version != Some(FORMAT_VERSION) {
            return Err(format(format!(
                "format {:?} version {:?}; expected {FORMAT:?} version {FORMAT_VERSION}",
                head.format, head.version
            )));
        }
        Ok(head)
    }

    /// The architecture and its config, checked as training checks them, or why not.
    pub(crate) fn spec(&self, shown: &str) -> Result<ModelSpec, ModelError> {
        let format = |reason: String| ModelError::Format {
            path: shown.to_string(),
            reason,
        };
        let arch = self
            .arch
            .as_deref()
            .ok_or_else(|| format("no \"arch\" field".into()))?;
        let arch: crate::Arch = arch.parse().map_err(format)?;
        let config = self
            .config
            .clone()
            .ok_or_else(|| format("no \"config\" field".into()))?;
        let spec: ModelSpec =
            serde_json::from_value(serde_json::json!({ "arch": arch.name(), "config": config }))
                .map_err(|e| format(format!("bad {arch} config: {e}")))?;
        spec.check(self.image_size).map_err(format)?;
        Ok(spec)
    }
}

/// What names the temporary file of [`write_atomic`]: `.NAME.tmp-PID`.
const TEMP_MARK: &str = ".tmp-";

/// Whether `name` is a temporary file [`write_atomic`] leaves behind when the run is killed.
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.contains(TEMP_MARK)
}

/// Removes the temporary files a killed run left in `dir` (`.model.json.tmp-PID` and the like,
/// of the model directory's own files only): nothing reads them, and they would pile up, a
/// checkpoint's worth each. Best effort: one that cannot be removed is left.
pub(crate) fn remove_stale_temps(dir: &Path) {
    let Ok(Some(names)) = gc_core::folder::entries(dir) else {
        return;
    };
    for name in names {
        let ours = [WEIGHTS, INFO, HISTORY, CHECKPOINT].iter().any(|file| {
            name.strip_prefix('.')
                .and_then(|n| n.strip_prefix(file))
                .and_then(|n| n.strip_prefix(TEMP_MARK))
                .is_some_and(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        });
        if ours {
            let _ = std::fs::remove_file(dir.join(name));
        }
    }
}

/// Writes `path` atomically: `write` fills a temporary file in the same folder, which is flushed
/// to disk and renamed over `path`.
pub(crate) fn write_atomic(
    path: &Path,
    write: impl FnOnce(&Path) -> Result<(), TrainError>,
) -> Result<(), TrainError> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}{TEMP_MARK}{}", std::process::id()));
    let result = write(&tmp).and_then(|()| {
        let io = |e| TrainError::io(&tmp, e);
        File::open(&tmp).and_then(|f| f.sync_all()).map_err(io)?;
        std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))?;
        // Make the rename itself durable; not every platform can open a folder, so best effort.
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

pub(crate) fn write_bytes_atomic(path: &Path, bytes: &[u8]) -> Result<(), TrainError> {
    write_atomic(path, |tmp| {
        std::fs::write(tmp, bytes).map_err(|e| TrainError::io(tmp, e))
    })
}

pub(crate) fn write_info(dir: &Path, info: &ModelInfo) -> Result<(), TrainError> {
    let mut json =
        serde_json::to_string_pretty(info).map_err(|e| TrainError::Internal(e.to_string()))?;
    json.push('\n');
    write_bytes_atomic(&dir.join(INFO), json.as_bytes())
}

/// Reads `model.json` in full (all fields must be there).
pub fn read_info(dir: &Path) -> Result<ModelInfo, ModelError> {
    let path = dir.join(INFO);
    InfoHead::read(&path)?;
    let text = std::fs::read_to_string(&path).map_err(|e| ModelError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })?;
    serde_json::from_str(&text).map_err(|e| ModelError::Format {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

pub(crate) fn write_history(dir: &Path, history: &[EpochMetrics]) -> Result<(), TrainError> {
    let mut csv = String::from("epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n");
    for m in history {
        csv.push_str(&format!(
            "{},{:.6},{:.6},{:.6},{:.6},{:.3e},{:.1}\n",
            m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.lr, m.seconds
        ));
    }
    write_bytes_atomic(&dir.join(HISTORY), csv.as_bytes())
}

/// Where the run stands after an epoch: what `--resume` needs besides the tensors.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RunState {
    pub config: TrainConfig,
    pub data: DataInfo,
    /// Epochs finished; the next one to run is this (0-based).
    pub epochs_done: usize,
    pub best: Option<EpochMetrics>,
    pub epochs_since_best: usize,
    pub history: Vec<EpochMetrics>,
    /// How the random state is restored: nothing is saved because every random draw depends
    /// only on (seed, epoch): the pipeline's shuffles and crops by design, the backend's
    /// (dropout) because the device is re-seeded from them at the start of every epoch.
    pub rng: String,
    /// Threads the tensor work ran on: they set the order of floating-point sums, so a resume on
    /// another number would end with weights no uninterrupted run gives. `None` in checkpoints
    /// written before it was recorded.
    #[serde(default)]
    pub threads: Option<usize>,
}

/// `checkpoint.bin`: a magic string, then four length-prefixed sections: the [`RunState`] as
/// JSON, and the burnpack records of the model, the optimiser and the learning-rate scheduler.
const MAGIC: &[u8; 8] = b"GCCKPT01";

pub(crate) struct Checkpoint {
    pub state: RunState,
    pub model: Vec<u8>,
    pub optimizer: Vec<u8>,
    pub scheduler: Vec<u8>,
}

impl Checkpoint {
    pub(crate) fn write(&self, path: &Path) -> Result<(), TrainError> {
        let state =
            serde_json::to_vec(&self.state).map_err(|e| TrainError::Internal(e.to_string()))?;
        let mut bytes = MAGIC.to_vec();
        for section in [&state[..], &self.model, &self.optimizer, &self.scheduler] {
            bytes.extend_from_slice(&(section.len() as u64).to_le_bytes());
            bytes.extend_from_slice(section);
        }
        write_bytes_atomic(path, &bytes)
    }

    pub(crate) fn read(path: &Path) -> Result<Checkpoint, TrainError> {
        let bad = |reason: String| TrainError::Resume(format!("{}: {reason}", path.display()));
        let mut bytes = Vec::new();
        File::open(path)
            .and_then(|mut f| f.read_to_end(&mut bytes))
            .map_err(|e| TrainError::io(path, e))?;
        let mut rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or_else(|| bad("not a gender-classifier checkpoint".into()))?;
        let mut take = || -> Result<Vec<u8>, TrainError> {
            if rest.len() < 8 {
                return Err(bad("truncated".into()));
            }
            let (len, tail) = rest.split_at(8);
            let len =
                u64::from_le_bytes(len.try_into().map_err(|_| bad("truncated".into()))?) as usize;
            if tail.len() < len {
                return Err(bad("truncated".into()));
            }
            let (section, tail) = tail.split_at(len);
            rest = tail;
            Ok(section.to_vec())
        };
        let state = take()?;
        let state: RunState =
            serde_json::from_slice(&state).map_err(|e| bad(format!("bad run state: {e}")))?;
        Ok(Checkpoint {
            state,
            model: take()?,
            optimizer: take()?,
            scheduler: take()?,
        })
    }
}

/// The files of a model directory.
pub struct ModelDir {
    pub dir: PathBuf,
}

impl ModelDir {
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ModelDir { dir: dir.into() }
    }
    pub fn weights(&self) -> PathBuf {
        self.dir.join(WEIGHTS)
    }
    pub fn info(&self) -> PathBuf {
        self.dir.join(INFO)
    }
    pub fn history(&self) -> PathBuf {
        self.dir.join(HISTORY)
    }
    pub fn checkpoint(&self) -> PathBuf {
        self.dir.join(CHECKPOINT)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Arch;

    fn metrics(epoch: usize) -> EpochMetrics {
        EpochMetrics {
            epoch,
            train_loss: 0.5,
            train_acc: 0.75,
            val_loss: 0.6,
            val_acc: 0.7,
            lr: 1e-3,
            seconds: 1.5,
            images_per_second: 100.0,
        }
    }

    #[test]
    fn model_json_is_flat_and_round_trips() {
        let info = ModelInfo {
            format: FORMAT.into(),
            version: FORMAT_VERSION,
            training: TrainConfig::new(Arch::Cnn.default_spec()),
            resize_size: 144,
            normalization: None,
            labels: vec!["female".into(), "male".into()],
            data: DataInfo {
                fingerprint: "ab".into(),
                train_images: 10,
                val_images: 2,
                teacher: None,
            },
            best: metrics(1),
            epochs_run: 1,
            stopped: StopReason::Completed,
        };
        let json = serde_json::to_value(&info).unwrap();
        assert_eq!(json["arch"], "cnn");
        assert_eq!(json["image_size"], 128);
        assert_eq!(json["config"]["num_classes"], 2);
        assert_eq!(json["stopped"], "completed");
        let back: ModelInfo = serde_json::from_value(json).unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn checkpoint_round_trips_and_truncation_is_detected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(CHECKPOINT);
        let ckpt = Checkpoint {
            state: RunState {
                config: TrainConfig::new(Arch::Cnn.default_spec()),
                data: DataInfo {
                    fingerprint: "x".into(),
                    train_images: 1,
                    val_images: 1,
                    teacher: Some("t".into()),
                },
                epochs_done: 1,
                best: Some(metrics(1)),
                epochs_since_best: 0,
                history: vec![metrics(1)],
                rng: "per epoch".into(),
                threads: Some(2),
            },
            model: vec![1, 2, 3],
            optimizer: vec![4],
            scheduler: vec![],
        };
        ckpt.write(&path).unwrap();
        let back = Checkpoint::read(&path).unwrap();
        assert_eq!(back.state, ckpt.state);
        assert_eq!(
            (back.model, back.optimizer, back.scheduler),
            (vec![1, 2, 3], vec![4], vec![])
        );
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let bytes = std::fs::read(&path).unwrap();
        std::fs::write(&path, &bytes[..bytes.len() - 2]).unwrap();
        let err = Checkpoint::read(&path).err().unwrap().to_string();
        assert!(err.contains("truncated"), "{err}");
    }

    #[test]
    fn history_has_the_documented_columns() {
        let dir = tempfile::tempdir().unwrap();
        write_history(dir.path(), &[metrics(1), metrics(2)]).unwrap();
        let text = std::fs::read_to_string(dir.path().join(HISTORY)).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(
            lines[0],
            "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds"
        );
        assert_eq!(lines.len(), 3);
        assert!(
            lines[2].starts_with("2,0.500000,0.750000,0.600000,0.700000,"),
            "{}",
            lines[2]
        );
    }
}
