//! Training of gender-classifier's burn models, and loading their model directories for inference.
//!
//! - [`train`] runs a hand-written training loop (AdamW, cross-entropy, a burn learning-rate
//!   scheduler stepped per batch, validation after every epoch, early stopping, checkpoints and
//!   resume) over the batches of [`gc_pipeline`], on burn's pure-Rust CPU backend `flex` or, built with the
//!   `gpu` feature, on a GPU through burn's `wgpu` backend ([`device`]).
//! - [`model_dir`] is the directory it writes: `model.safetensors`, `model.json`, `history.csv`,
//!   `checkpoint.bin`, each written atomically.
//! - [`load_model`] reads such a directory back as a [`gc_core::Classifier`].
//!
//! Why a hand-written loop rather than burn's `Learner`: the loop is about 150 lines, and owning it
//! gives what the `Learner` would make us work around: progress events for our own CLI instead of
//! its TUI, our model directory layout and atomic writes, a resume that checks the data and the
//! settings, and one `history.csv`. It also keeps the `train` feature (and its dependencies) out of
//! the build.
//!
//! Reproducibility: the weights after a run are a function of the config (seed included), the data
//! (with the teachers' answers, for distillation) and the number of threads. Every random draw
//! depends on (seed, epoch) only; see [`model_dir`]'s `RunState::rng`. burn's flex backend keeps
//! its random generator in a process-wide static, so two trainings in one process at the same
//! time are not reproducible.

pub mod batcher;
pub mod classifier;
pub mod config;
pub mod device;
pub mod model_dir;
pub mod progress;
mod trainer;

pub use batcher::batch_to_tensors;
pub use classifier::{BurnClassifier, load_model, load_model_bytes};
pub use config::{Arch, Balance, ModelSpec, Schedule, Teacher, TrainConfig};
pub use device::TrainDevice;
pub use model_dir::{DataInfo, ModelDir, ModelInfo, StopReason, read_info};
pub use progress::{BatchStats, EpochMetrics, NoProgress, Phase, TrainProgress};
pub use trainer::{RunOptions, TrainData, TrainReport, check_run, train};

use std::path::{Path, PathBuf};

/// Why a training run could not start or finish. Each variant names the value or file involved.
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// A setting is out of range or does not fit the architecture.
    #[error("bad training settings: {0}")]
    Config(String),
    /// The dataset folder or its images cannot be used.
    #[error("{0}")]
    Data(String),
    /// A file of the model directory could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Initial weights could not be loaded, or the model could not be saved.
    #[error(transparent)]
    Model(#[from] gc_core::ModelError),
    /// `--resume` found no usable checkpoint, or one from another run.
    #[error("cannot resume: {0}")]
    Resume(String),
    /// The output folder is not empty (another run, or a user's files). `holds` names one thing
    /// in it; `advice` is what to do (`--resume` where there is a checkpoint).
    #[error("{}: already holds files ({holds}); train writes only into a new or empty folder: {advice}", path.display())]
    OutputExists {
        path: PathBuf,
        holds: String,
        advice: &'static str,
    },
    /// The output path exists and is not a folder.
    #[error("{}: is a file, not a folder; choose a new folder for the model", .0.display())]
    OutputNotAFolder(PathBuf),
    /// The loss of the `training` or `validation` pass became NaN or infinite: the learning
    /// rate is likely too high.
    #[error("the {pass} loss became {value} at epoch {epoch}; try a lower learning rate")]
    Diverged {
        pass: &'static str,
        epoch: usize,
        value: f64,
    },
    /// Asked to stop ([`TrainProgress::should_stop`]) before the first epoch ended: there is no
    /// checkpoint to resume, nor a model.
    #[error("stopped before the first epoch ended: nothing was saved")]
    Interrupted,
    /// A bug: an invariant of this crate did not hold.
    #[error("internal error: {0}")]
    Internal(String),
}

impl TrainError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.to_path_buf(),
            source,
        }
    }
}
