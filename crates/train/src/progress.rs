//! What a training run reports while it works. The library prints nothing: the CLI draws these
//! events as progress bars, tests ignore them or stop the run with [`TrainProgress::should_stop`].

use serde::{Deserialize, Serialize};

/// Which pass over the data a batch belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Train,
    Validate,
}

/// Running figures of the current pass, after each batch.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BatchStats {
    pub phase: Phase,
    /// 0-based epoch.
    pub epoch: usize,
    /// Batches and images done so far in this pass.
    pub batches: usize,
    pub images: usize,
    /// Mean loss and accuracy over the images done so far in this pass.
    pub loss: f64,
    pub accuracy: f64,
    /// Images per second since the pass started.
    pub images_per_second: f64,
    /// The learning rate of the last step (training only; 0 while validating).
    pub lr: f64,
}

/// One line of `history.csv`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based, as the history and the CLI show it.
    pub epoch: usize,
    pub train_loss: f64,
    pub train_acc: f64,
    pub val_loss: f64,
    pub val_acc: f64,
    /// The learning rate at the last step of the epoch.
    pub lr: f64,
    /// Wall-clock seconds of the epoch: training and validation (the files written after them
    /// are not counted).
    pub seconds: f64,
    /// Training images per second.
    pub images_per_second: f64,
}

/// Receives the events of a run. Every method has a do-nothing default.
pub trait TrainProgress: Sync {
    /// A pass starts: `batches` expected (fewer if images fail to decode), `images` in total.
    fn pass_start(
        &self,
        _phase: Phase,
        _epoch: usize,
        _epochs: usize,
        _batches: usize,
        _images: usize,
    ) {
    }

    /// A batch is done.
    fn batch(&self, _stats: &BatchStats) {}

    /// An epoch is done and its checkpoint saved (`improved`: its validation loss is the best so
    /// far, and its weights are now `model.safetensors`).
    fn epoch_end(&self, _metrics: &EpochMetrics, _improved: bool) {}

    /// Asked before every epoch and every batch: `true` ends the run there (a stop request, a
    /// test), the epoch in hand left unfinished. The last checkpoint written is the one
    /// `--resume` continues from.
    fn should_stop(&self) -> bool {
        false
    }
}

/// Reports nothing.
pub struct NoProgress;

impl TrainProgress for NoProgress {}
