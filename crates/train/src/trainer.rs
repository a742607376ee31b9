//! The training loop: AdamW on cross-entropy, a learning-rate scheduler stepped per batch,
//! validation after every epoch, the best weights kept, a checkpoint after every epoch, early
//! stopping, and resume.

use crate::config::{Balance, ModelSpec, TrainConfig};
use crate::model_dir::{
    Checkpoint, DataInfo, FORMAT, FORMAT_VERSION, ModelDir, ModelInfo, RunState, StopReason,
    write_history, write_info,
};
use crate::progress::{BatchStats, EpochMetrics, Phase, TrainProgress};
use crate::{TrainDevice, TrainError, batch_to_tensors};
use burn::lr_scheduler::LrSchedulerRecord;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Bytes, Device, Int, Tensor, TensorData};
use gc_core::Gender;
use gc_models::ImageClassifier;
use gc_models::weights::safetensors_bytes;
use gc_pipeline::{Augment, Cache, ImageFolder, Pipeline, PipelineConfig, Sample, Size};
use sha2::{Digest, Sha256};
use std::path::Path;
use std::time::Instant;

/// The labelled images of a run: training and validation samples with their class names.
#[derive(Debug, Clone)]
pub struct TrainData {
    pub train: Vec<Sample>,
    pub val: Vec<Sample>,
    pub info: DataInfo,
    /// The teachers' p(female) of each training image, by index, for distillation
    /// ([`crate::Teacher`]); NaN where they could not classify it (its target is then its label).
    pub teacher: Option<Vec<f32>>,
    /// The fingerprint as versions before the file sizes computed it, so that their checkpoints
    /// can still be resumed on the same data.
    legacy_fingerprint: String,
}

impl TrainData {
    /// Reads `dir/train/{female,male}` and `dir/val/{female,male}`, the layout `prepare` writes.
    pub fn from_dir(dir: &Path) -> Result<TrainData, TrainError> {
        gc_dataset::unfinished_prepare(dir)
            .map_err(|reason| TrainError::Data(format!("{}: {reason}", dir.display())))?;
        let open = |split: &str| {
            ImageFolder::open(dir.join(split))
                .map_err(|e| TrainError::Data(format!("{split} images: {e}")))
        };
        TrainData::new(dir, open("train")?, open("val")?)
    }

    /// Checks that both folders have exactly the classes `female` and `male` (in that order) and
    /// some images, and fingerprints the sample lists, with paths relative to `root` and the
    /// size of each file.
    pub fn new(root: &Path, train: ImageFolder, val: ImageFolder) -> Result<TrainData, TrainError> {
        let want: Vec<String> = Gender::ALL.iter().map(|g| g.name().to_string()).collect();
        for (split, folder) in [("train", &train), ("val", &val)] {
            if folder.classes != want {
                return Err(TrainError::Data(format!(
                    "{}: {split} classes are {:?}; expected {want:?}",
                    root.display(),
                    folder.classes
                )));
            }
            if folder.samples.is_empty() {
                return Err(TrainError::Data(format!(
                    "{}: no {split} images",
                    root.display()
                )));
            }
        }
        let lines = |sized: bool| {
            let mut lines: Vec<String> = [("train", &train.samples), ("val", &val.samples)]
                .iter()
                .flat_map(|(split, samples)| {
                    samples.iter().map(move |s| {
                        let rel = s.path.strip_prefix(root).unwrap_or(&s.path);
                        if !sized {
                            return format!("{split}\t{}\t{}\n", s.label, rel.to_string_lossy());
                        }
                        // The size, so that files replaced under the same names are other data
                        // (the contents are not read here: that would be a pass over every
                        // image). A file that cannot be read is skipped by the pipeline; here it
                        // has no size.
                        let size = std::fs::metadata(&s.path)
                            .map_or_else(|_| "-".to_string(), |m| m.len().to_string());
                        format!("{split}\t{}\t{size}\t{}\n", s.label, rel.to_string_lossy())
                    })
                })
                .collect();
            lines.sort();
            let mut hasher = Sha256::new();
            for line in &lines {
                hasher.update(line.as_bytes());
            }
            format!("{:x}", hasher.finalize())
        };
        Ok(TrainData {
            legacy_fingerprint: lines(false),
            info: DataInfo {
                fingerprint: lines(true),
                teacher: None,
                train_images: train.samples.len(),
                val_images: val.samples.len(),
            },
            train: train.samples,
            val: val.samples,
            teacher: None,
        })
    }

    /// Whether `fingerprint`, recorded in a model folder or checkpoint, is this data's: as this
    /// version computes it, or as versions before the file sizes did (their checkpoints can still
    /// be resumed on the same data, and the built-in model's `model.json` still names it).
    pub fn is_fingerprinted(&self, fingerprint: &str) -> bool {
        fingerprint == self.info.fingerprint || fingerprint == self.legacy_fingerprint
    }

    /// The same data with the teachers' p(female) of each training image, in the order of
    /// `train`: a probability in [0, 1], or NaN for an image they could not classify.
    /// Their fingerprint joins the data's, so that `--resume` refuses teachers that have changed
    /// their minds (a calibration file fitted again, a model folder trained again).
    pub fn with_teacher(self, p_female: Vec<f32>) -> Result<TrainData, TrainError> {
        check_teacher(&self.train, &p_female)?;
        // At 6 decimals: a teacher whose last bits move with the thread count is the same teacher.
        let mut hasher = Sha256::new();
        for p in &p_female {
            hasher.update(format!("{p:.6}\n").as_bytes());
        }
        Ok(TrainData {
            info: DataInfo {
                teacher: Some(format!("{:x}", hasher.finalize())),
                ..self.info
            },
            teacher: Some(p_female),
            ..self
        })
    }
}

/// One teacher probability per training image, each in [0, 1] or NaN.
fn check_teacher(train: &[Sample], p_female: &[f32]) -> Result<(), TrainError> {
    if p_female.len() != train.len() {
        return Err(TrainError::Data(format!(
            "{} teacher probabilities for {} training images",
            p_female.len(),
            train.len()
        )));
    }
    if let Some((i, p)) = p_female
        .iter()
        .enumerate()
        .find(|(_, p)| !p.is_nan() && !(0.0..=1.0).contains(*p))
    {
        return Err(TrainError::Data(format!(
            "{}: teacher probability {p} is not in [0, 1]",
            train[i].path.display()
        )));
    }
    Ok(())
}

/// How to run (not what to learn): none of this changes the result except `threads`, which
/// changes the order of floating-point sums (see `docs/BENCHMARKS.md`).
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Threads for the tensor computations; 0 means one per core.
    pub threads: usize,
    /// Threads decoding images; 0 means one per core.
    pub workers: usize,
    /// Continue the run whose checkpoint is in the output folder.
    pub resume: bool,
    /// Where decoded training and validation images are kept between epochs.
    pub cache: Cache,
    /// CPU, or a GPU where built with the `gpu` feature. The same seed gives the same weights
    /// on one device, not across devices (their kernels sum in other orders); across CPUs it is
    /// observed (the built-in recipe on an AVX-512 CPU), not promised.
    pub device: TrainDevice,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            threads: 0,
            workers: 0,
            resume: false,
            cache: Cache::Memory,
            device: TrainDevice::Cpu,
        }
    }
}

/// What a run did.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainReport {
    /// Every epoch of the run, those before a resume included.
    pub history: Vec<EpochMetrics>,
    /// The epoch whose weights are in `model.safetensors`.
    pub best: EpochMetrics,
    pub stopped: StopReason,
    /// Epochs already done when this call resumed the run.
    pub resumed_after: Option<usize>,
}

/// Trains `config.model` on `data`, writing the model directory `out` (see [`crate::model_dir`]).
/// `out` must be new or empty, unless `options.resume` continues the run checkpointed there, in
/// which case `config` and the data must be those of that run.
pub fn train(
    config: &TrainConfig,
    data: &TrainData,
    out: &Path,
    options: &RunOptions,
    progress: &dyn TrainProgress,
) -> Result<TrainReport, TrainError> {
    let teacher = match (&config.teacher, &data.teacher) {
        (None, None) => None,
        (Some(t), Some(p)) => {
            check_teacher(&data.train, p)?;
            Some((p.as_slice(), t.weight as f32))
        }
        (Some(_), None) => {
            return Err(TrainError::Config(
                "the settings name a teacher, but the data has no teacher probabilities".into(),
            ));
        }
        (None, Some(_)) => {
            return Err(TrainError::Config(
                "the data has teacher probabilities, but the settings name no teacher".into(),
            ));
        }
    };
    let Ready {
        device,
        weights,
        checkpoint,
    } = preflight(config, data, out, options)?;
    let files = ModelDir::new(out);
    crate::model_dir::remove_stale_temps(out);
    if checkpoint.is_none() {
        std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    }

    let pipeline = |samples: &[Sample], train: bool| {
        Pipeline::new(samples.to_vec(), pipeline_config(config, options, train))
            .map_err(|e| TrainError::Data(e.to_string()))
    };
    let run = Run {
        config,
        data: &data.info,
        files: &files,
        weights,
        teacher,
        train: pipeline(&data.train, true)?,
        val: pipeline(&data.val, false)?,
        progress,
        checkpoint,
    };

    let threads = resolved_threads(options);
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("gc-train-{i}"))
        .build()
        .map_err(|e| TrainError::Config(format!("cannot start {threads} threads: {e}")))?;
    pool.install(|| {
        let device = device.autodiff();
        // Initial weights come from the seed (or from the checkpoint when resuming).
        device.seed(config.seed);
        match &config.model {
            ModelSpec::Cnn(c) => run.run(c.init(&device), &device),
            ModelSpec::EfficientNetLite0(c) => {
                let model = match (&config.init, &run.checkpoint) {
                    (Some(path), None) => c.init_imagenet(path, &device)?,
                    _ => c.init(&device),
                };
                run.run(model, &device)
            }
        }
    })
}

/// The input of the training (`train`) or validation pass.
fn pipeline_config(config: &TrainConfig, options: &RunOptions, train: bool) -> PipelineConfig {
    let image_size = Size::square(config.image_size);
    let geometry = gc_pipeline::Geometry::from_image_size(image_size);
    PipelineConfig {
        image_size,
        resize_size: geometry.resize_size,
        batch_size: config.batch_size,
        shuffle: train,
        seed: config.seed,
        augment: if train && config.augment {
            Augment::Train
        } else {
            Augment::Eval
        },
        color_jitter_percent: config.color_jitter,
        cache: options.cache.clone(),
        workers: options.workers,
        ..PipelineConfig::default()
    }
}

/// The threads of the tensor work: `options.threads`, 0 being one per core.
fn resolved_threads(options: &RunOptions) -> usize {
    match options.threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    }
}

/// Checks what can refuse a run before any work is done: the settings, the device, the loss
/// weights, the ImageNet weights' file, and the output folder (with `resume`, a checkpoint of the
/// same settings and data; otherwise a new or empty folder). [`train`] checks it all
/// first; a caller with slow work to do before training (the teachers' pass over the images)
/// checks it before that work, with the data as it then is.
pub fn check_run(
    config: &TrainConfig,
    data: &TrainData,
    out: &Path,
    options: &RunOptions,
) -> Result<(), TrainError> {
    preflight(config, data, out, options).map(|_| ())
}

/// What [`preflight`] found, for [`train`] to use.
struct Ready {
    device: Device,
    weights: Option<Vec<f32>>,
    checkpoint: Option<Checkpoint>,
}

/// A new run writes `history.csv`, `model.json` and the weights into `out`: only a folder that
/// does not exist yet or is empty is taken, so that no file of another run or of the user is
/// replaced (a user's `history.csv` was). A file browser's litter and the temporary file of a
/// run killed while writing do not count.
fn check_output_is_free(files: &ModelDir) -> Result<(), TrainError> {
    let out = &files.dir;
    let names = match gc_core::folder::entries(out) {
        Ok(names) => names.unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            return Err(TrainError::OutputNotAFolder(out.to_path_buf()));
        }
        Err(e) => return Err(TrainError::io(out, e)),
    };
    let Some(holds) = names
        .into_iter()
        .find(|n| !crate::model_dir::is_temp_name(n))
    else {
        return Ok(());
    };
    let advice = if files.checkpoint().is_file() {
        "pass --resume to continue the run there, or choose another output folder"
    } else {
        "choose another output folder"
    };
    Err(TrainError::OutputExists {
        path: out.to_path_buf(),
        holds,
        advice,
    })
}

fn preflight(
    config: &TrainConfig,
    data: &TrainData,
    out: &Path,
    options: &RunOptions,
) -> Result<Ready, TrainError> {
    config.validate()?;
    for (samples, train) in [(&data.train, true), (&data.val, false)] {
        pipeline_config(config, options, train)
            .check(samples.len())
            .map_err(|e| TrainError::Config(e.to_string()))?;
    }
    // Sized by every image: those that turn out unreadable only make the epochs shorter.
    config.scheduler(data.train.len().div_ceil(config.batch_size))?;
    // A build without the GPU, or a machine without one, fails here.
    let device = options.device.burn_device()?;
    let weights = match config.balance {
        Balance::None => None,
        balance => Some(cell_weights(&data.train, balance)?),
    };
    let files = ModelDir::new(out);
    let checkpoint = if options.resume {
        let path = files.checkpoint();
        if !path.is_file() {
            return Err(TrainError::Resume(format!(
                "{}: no checkpoint to resume",
                path.display()
            )));
        }
        let checkpoint = Checkpoint::read(&path)?;
        same_run(&checkpoint.state, config, data)?;
        // On a GPU the sums are the GPU's: the CPU threads do not change them.
        let threads = resolved_threads(options);
        if matches!(options.device, TrainDevice::Cpu)
            && let Some(was) = checkpoint.state.threads.filter(|&was| was != threads)
        {
            return Err(TrainError::Resume(format!(
                "the checkpoint was trained on {was} threads, this run would use {threads}: the \
                 weights would differ from those of an uninterrupted run; resume on {was} threads \
                 (--workers {was})"
            )));
        }
        Some(checkpoint)
    } else {
        check_output_is_free(&files)?;
        if let Some(init) = &config.init
            && !init.is_file()
        {
            return Err(TrainError::Config(format!(
                "--init {}: no such file",
                init.display()
            )));
        }
        None
    };
    Ok(Ready {
        device,
        weights,
        checkpoint,
    })
}

/// Refuses to resume with other settings (but the patience) or other data, naming what differs.
fn same_run(state: &RunState, config: &TrainConfig, data: &TrainData) -> Result<(), TrainError> {
    let counts = |d: &DataInfo| (d.train_images, d.val_images);
    let same = data.is_fingerprinted(&state.data.fingerprint);
    let data = &data.info;
    if !same || counts(&state.data) != counts(data) {
        return Err(TrainError::Resume(format!(
            "the checkpoint was trained on other data ({} + {} images, fingerprint {}); these are {} + {} images, fingerprint {}",
            state.data.train_images,
            state.data.val_images,
            state.data.fingerprint,
            data.train_images,
            data.val_images,
            data.fingerprint
        )));
    }
    // The patience only decides when to stop, never what an epoch computes: an early-stopped run
    // may go on with a longer one (or none) and ends with the weights it would have had.
    let checkpoint_config = TrainConfig {
        patience: config.patience,
        ..state.config.clone()
    };
    if checkpoint_config != *config {
        let (was, now) = (
            // Compared with the patience already aligned, so that only what blocks is named.
            serde_json::to_value(&checkpoint_config).unwrap_or_default(),
            serde_json::to_value(config).unwrap_or_default(),
        );
        let differ: Vec<String> = match (was.as_object(), now.as_object()) {
            (Some(a), Some(b)) => a
                .iter()
                .filter(|(k, v)| b.get(*k) != Some(*v))
                .map(|(k, v)| {
                    format!(
                        "{k}: {v} in the checkpoint, {} now",
                        b.get(k).cloned().unwrap_or_default()
                    )
                })
                .collect(),
            _ => vec![],
        };
        return Err(TrainError::Resume(format!(
            "the checkpoint was made with other settings: {}",
            differ.join("; ")
        )));
    }
    // Unknown until the teachers' pass, which a caller checks before (check_run).
    if data.teacher.is_some() && state.data.teacher != data.teacher {
        return Err(TrainError::Resume(format!(
            "the teachers' probabilities differ from those the checkpoint was trained with (fingerprint {} then, {} now): a teacher has changed since; train anew into another folder",
            state.data.teacher.as_deref().unwrap_or("none"),
            data.teacher.as_deref().unwrap_or("none")
        )));
    }
    Ok(())
}

/// The seed of the backend's random generator for an epoch (dropout), so that an epoch draws the
/// same numbers whether the run was resumed before it or not.
fn epoch_seed(seed: u64, epoch: usize) -> u64 {
    // splitmix64 of the pair
    let mut z = seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

struct Run<'a> {
    config: &'a TrainConfig,
    data: &'a DataInfo,
    files: &'a ModelDir,
    /// Loss weight of each training sample, by its index; `None` for plain cross-entropy.
    weights: Option<Vec<f32>>,
    /// The teachers' p(female) of each training sample, by index, and their share of the target.
    teacher: Option<(&'a [f32], f32)>,
    train: Pipeline,
    val: Pipeline,
    progress: &'a dyn TrainProgress,
    checkpoint: Option<Checkpoint>,
}

/// Sums over a pass.
#[derive(Default)]
struct Tally {
    loss: f64,
    correct: usize,
    images: usize,
    batches: usize,
}

impl Tally {
    fn add(&mut self, mean_loss: f64, correct: usize, images: usize) {
        self.loss += mean_loss * images as f64;
        self.correct += correct;
        self.images += images;
        self.batches += 1;
    }
    fn mean_loss(&self) -> f64 {
        self.loss / self.images.max(1) as f64
    }
    fn accuracy(&self) -> f64 {
        self.correct as f64 / self.images.max(1) as f64
    }
}

/// Cross-entropy with a weight per sample: `sum(w_i * ce_i) / sum(w_i)`. burn's
/// `CrossEntropyLoss` weighs classes, not samples.
fn weighted_cross_entropy(
    logits: Tensor<2>,
    labels: Tensor<1, Int>,
    weights: Tensor<1>,
) -> Tensor<1> {
    let n = labels.dims()[0];
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let picked = log_p.gather(1, labels.reshape([n, 1])).reshape([n]);
    (picked.neg() * weights.clone()).sum() / weights.sum()
}

/// Cross-entropy against soft targets `[n, 2]` (rows summing to 1), each sample weighted as in
/// [`weighted_cross_entropy`] when weights are given.
fn soft_cross_entropy(
    logits: Tensor<2>,
    targets: Tensor<2>,
    weights: Option<Tensor<1>>,
) -> Tensor<1> {
    let n = logits.dims()[0];
    let log_p = burn::tensor::activation::log_softmax(logits, 1);
    let per_sample = (log_p * targets).sum_dim(1).reshape([n]).neg();
    match weights {
        None => per_sample.mean(),
        Some(w) => (per_sample * w.clone()).sum() / w.sum(),
    }
}

/// The distillation targets of a batch, `[female, male]` per image, row after row: the label's
/// one-hot vector and the teachers' probabilities mixed, `(1 - weight) * label + weight *
/// teacher`; the label alone where the teachers gave NaN.
fn distill_targets(labels: &[u32], indices: &[usize], p_female: &[f32], weight: f32) -> Vec<f32> {
    // Labels index Gender::ALL: TrainData::new checks the class folders against it.
    let (female, male) = (Gender::Female.index(), Gender::Male.index());
    labels
        .iter()
        .zip(indices)
        .flat_map(|(&label, &i)| {
            let truth = if label as usize == female { 1.0 } else { 0.0 };
            let q = p_female[i];
            let t = if q.is_nan() {
                truth
            } else {
                (1.0 - weight) * truth + weight * q
            };
            let mut row = [0.0; 2];
            row[female] = t;
            row[male] = 1.0 - t;
            row
        })
        .collect()
}

/// Weights that give every cell of `samples` (`Balance::cell`: a race or age bucket, with a
/// gender) the same total: `n / (cells * n_cell)`, so they average 1. The cells come from UTKFace
/// file names; a name without them is an error.
fn cell_weights(samples: &[Sample], balance: Balance) -> Result<Vec<f32>, TrainError> {
    let cells: Vec<Option<(usize, gc_core::Gender)>> = samples
        .iter()
        .map(|s| {
            let name = s
                .path
                .file_name()
                .map(|n| n.to_string_lossy())
                .unwrap_or_default();
            gc_dataset::parse_utkface_name(&name)
                .map(|p| balance.cell(&p.label))
                .map_err(|e| {
                    TrainError::Data(format!(
                        "{}: --balance {} needs UTKFace file names: {e}",
                        s.path.display(),
                        balance.name()
                    ))
                })
        })
        .collect::<Result<_, _>>()?;
    let mut counts = std::collections::HashMap::new();
    for c in &cells {
        *counts.entry(*c).or_insert(0usize) += 1;
    }
    let total = cells.len() as f32;
    let groups = counts.len() as f32;
    Ok(cells
        .iter()
        .map(|c| total / (groups * counts[c] as f32))
        .collect())
}

/// Predictions equal to the labels.
fn correct(logits: &Tensor<2>, labels: Tensor<1, Int>) -> usize {
    let n = labels.dims()[0];
    let predicted = logits.clone().argmax(1).reshape([n]);
    predicted.equal(labels).int().sum().into_scalar::<i64>() as usize
}

impl Run<'_> {
    fn run<M: ImageClassifier>(
        mut self,
        mut model: M,
        device: &Device,
    ) -> Result<TrainReport, TrainError> {
        let config = self.config;
        // The schedule is sized by the batches an epoch will have: the images that cannot be
        // decoded are found first (in the memory cache, the first epoch's decoding done early).
        let usable = self.train.load_all();
        if usable == 0 {
            return Err(TrainError::Data(
                "no training image could be decoded".into(),
            ));
        }
        let steps = self.train.batches_per_epoch();
        let mut optimizer = AdamWConfig::new()
            .with_weight_decay(config.weight_decay as f32)
            .init();
        let mut scheduler = config.scheduler(steps)?;
        let mut state = RunState {
            config: config.clone(),
            data: self.data.clone(),
            epochs_done: 0,
            best: None,
            epochs_since_best: 0,
            history: Vec::new(),
            rng: "none saved: every draw depends on (seed, epoch) only; the backend is re-seeded at each epoch".into(),
            threads: Some(rayon::current_num_threads()),
        };
        let mut resumed_after = None;
        let mut stopped = StopReason::Completed;
        if let Some(checkpoint) = self.checkpoint.take() {
            (model, optimizer, scheduler) = restore(
                &checkpoint,
                model,
                optimizer,
                scheduler,
                &self.files.checkpoint(),
            )?;
            // The settings of this call, which may differ from the checkpoint's in patience.
            state = RunState {
                config: config.clone(),
                ..checkpoint.state
            };
            resumed_after = Some(state.epochs_done);
            // A run that stopped early with this patience stays stopped, as a finished one does:
            // only a longer patience goes on.
            if self.stops_early(&state) {
                stopped = StopReason::EarlyStopped;
            }
            // A kill after the checkpoint was written left the files that follow it an epoch
            // behind: they are written again from it (the best weights are the checkpoint's
            // own when its epoch was the best; otherwise they were written before it).
            if state.epochs_since_best == 0 {
                self.write_weights(&model.valid())?;
            }
            write_history(&self.files.dir, &state.history)?;
            self.write_status(&state, stopped)?;
        }
        let plain = device.clone().inner();
        let loss_fn = CrossEntropyLossConfig::new().init(device);

        'epochs: for epoch in state.epochs_done..config.epochs {
            if stopped != StopReason::Completed {
                break;
            }
            // Asked before every batch too: a stop request ends the epoch in hand, whose work is
            // lost, and leaves the last checkpoint (an epoch can take minutes).
            if self.progress.should_stop() {
                stopped = StopReason::Interrupted;
                break;
            }
            let started = Instant::now();
            device.seed(epoch_seed(config.seed, epoch));

            // Training pass.
            self.progress
                .pass_start(Phase::Train, epoch, config.epochs, steps, usable);
            let mut tally = Tally::default();
            let mut lr = 0.0;
            for batch in self.train.epoch(epoch as u64) {
                if self.progress.should_stop() {
                    stopped = StopReason::Interrupted;
                    break 'epochs;
                }
                let n = batch.len();
                let weights = self.weights.as_ref().map(|w| {
                    let w: Vec<f32> = batch.indices.iter().map(|&i| w[i]).collect();
                    Tensor::<1>::from_data(TensorData::new(w, [n]), device)
                });
                let targets = self.teacher.map(|(p, weight)| {
                    let t = distill_targets(&batch.labels, &batch.indices, p, weight);
                    Tensor::<2>::from_data(TensorData::new(t, [n, 2]), device)
                });
                let (images, labels) = batch_to_tensors(batch, device);
                let logits = model.forward(images);
                let loss = match (targets, weights) {
                    (Some(t), w) => soft_cross_entropy(logits.clone(), t, w),
                    (None, None) => loss_fn.forward(logits.clone(), labels.clone()),
                    (None, Some(w)) => weighted_cross_entropy(logits.clone(), labels.clone(), w),
                };
                let rates = scheduler.step();
                lr = rates.base();
                let grads = GradientsParams::from_grads(loss.backward(), &model);
                model = optimizer.step(rates, model, grads);
                let loss = f64::from(loss.into_scalar::<f32>());
                if !loss.is_finite() {
                    return Err(TrainError::Diverged {
                        pass: "training",
                        epoch: epoch + 1,
                        value: loss,
                    });
                }
                tally.add(loss, correct(&logits, labels), n);
                self.report(Phase::Train, epoch, &tally, started, lr);
            }
            if tally.images == 0 {
                return Err(TrainError::Data(
                    "no training image could be decoded".into(),
                ));
            }
            let train_seconds = started.elapsed().as_secs_f64();
            let train_tally = tally;

            // Validation pass, on a validation copy (no autodiff, BatchNorm running statistics).
            let eval = model.valid();
            let Some(val) = self.evaluate(&eval, &plain, epoch)? else {
                stopped = StopReason::Interrupted;
                break;
            };
            // No loss compares below NaN: a NaN epoch would stay the best for good.
            if !val.mean_loss().is_finite() {
                return Err(TrainError::Diverged {
                    pass: "validation",
                    epoch: epoch + 1,
                    value: val.mean_loss(),
                });
            }

            let metrics = EpochMetrics {
                epoch: epoch + 1,
                train_loss: train_tally.mean_loss(),
                train_acc: train_tally.accuracy(),
                val_loss: val.mean_loss(),
                val_acc: val.accuracy(),
                lr,
                seconds: started.elapsed().as_secs_f64(),
                images_per_second: train_tally.images as f64 / train_seconds.max(1e-9),
            };
            let improved = state.best.is_none_or(|b| metrics.val_loss < b.val_loss);
            if improved {
                state.best = Some(metrics);
                state.epochs_since_best = 0;
            } else {
                state.epochs_since_best += 1;
            }
            state.epochs_done = epoch + 1;
            if self.stops_early(&state) {
                stopped = StopReason::EarlyStopped;
            }

            // The checkpoint first, then the files that describe it, which --resume writes again
            // from it: a kill at any point is mended by resuming. (With the best weights first,
            // a kill before the checkpoint left weights that model.json did not describe, and a
            // first epoch's folder that could be neither resumed nor reused.) Until then, a kill
            // between the weights and model.json, two small writes apart, leaves them at odds.
            state.history.push(metrics);
            Checkpoint {
                state: state.clone(),
                model: model
                    .clone()
                    .into_record()
                    .into_bytes()
                    .map_err(record_err)?
                    .to_vec(),
                optimizer: optimizer.into_bytes().map_err(record_err)?.to_vec(),
                scheduler: scheduler
                    .to_record()
                    .into_bytes()
                    .map_err(record_err)?
                    .to_vec(),
            }
            .write(&self.files.checkpoint())?;
            if improved {
                self.write_weights(&eval)?;
            }
            write_history(&self.files.dir, &state.history)?;
            self.progress.epoch_end(&metrics, improved);
            self.write_status(&state, stopped)?;
        }
        if stopped == StopReason::Interrupted {
            if state.best.is_none() {
                return Err(TrainError::Interrupted);
            }
            self.write_info(&state, StopReason::Interrupted)?;
        }
        let best = state
            .best
            .ok_or_else(|| TrainError::Internal("no epoch finished".into()))?;
        Ok(TrainReport {
            history: state.history,
            best,
            stopped,
            resumed_after,
        })
    }

    /// Writes model.json: "running" while epochs remain and nothing stopped the run.
    fn write_status(&self, state: &RunState, stopped: StopReason) -> Result<(), TrainError> {
        let running = state.epochs_done < self.config.epochs && stopped == StopReason::Completed;
        self.write_info(
            state,
            if running {
                StopReason::Running
            } else {
                stopped
            },
        )
    }

    /// Whether the run stops here for want of a better validation loss (a run whose epochs are
    /// all done is complete, whatever its patience).
    fn stops_early(&self, state: &RunState) -> bool {
        self.config
            .patience
            .is_some_and(|p| state.epochs_since_best >= p && state.epochs_done < self.config.epochs)
    }

    /// Writes `model.safetensors`: by us, not burn-store, so that the file gets the permissions
    /// of any new file (burn-store's are private) and is synced like the checkpoint.
    fn write_weights<M: ImageClassifier>(&self, model: &M) -> Result<(), TrainError> {
        let bytes = safetensors_bytes(model)?;
        crate::model_dir::write_bytes_atomic(&self.files.weights(), &bytes)
    }

    /// The validation pass; `None` when a stop was asked for during it.
    fn evaluate<M: ImageClassifier>(
        &self,
        model: &M,
        device: &Device,
        epoch: usize,
    ) -> Result<Option<Tally>, TrainError> {
        let loss_fn: CrossEntropyLoss = CrossEntropyLossConfig::new().init(device);
        self.progress.pass_start(
            Phase::Validate,
            epoch,
            self.config.epochs,
            self.val.batches_per_epoch(),
            self.val.len(),
        );
        let started = Instant::now();
        let mut tally = Tally::default();
        // The validation pipeline neither shuffles nor augments: every epoch sees the same batches.
        for batch in self.val.epoch(0) {
            if self.progress.should_stop() {
                return Ok(None);
            }
            let n = batch.len();
            let (images, labels) = batch_to_tensors(batch, device);
            let logits = model.forward(images);
            let loss = f64::from(
                loss_fn
                    .forward(logits.clone(), labels.clone())
                    .into_scalar::<f32>(),
            );
            tally.add(loss, correct(&logits, labels), n);
            self.report(Phase::Validate, epoch, &tally, started, 0.0);
        }
        if tally.images == 0 {
            return Err(TrainError::Data(
                "no validation image could be decoded".into(),
            ));
        }
        Ok(Some(tally))
    }

    fn report(&self, phase: Phase, epoch: usize, tally: &Tally, started: Instant, lr: f64) {
        self.progress.batch(&BatchStats {
            phase,
            epoch,
            batches: tally.batches,
            images: tally.images,
            loss: tally.mean_loss(),
            accuracy: tally.accuracy(),
            images_per_second: tally.images as f64 / started.elapsed().as_secs_f64().max(1e-9),
            lr,
        });
    }

    fn write_info(&self, state: &RunState, stopped: StopReason) -> Result<(), TrainError> {
        let Some(best) = state.best else {
            return Ok(());
        };
        let geometry = gc_pipeline::Geometry::from_image_size(Size::square(self.config.image_size));
        write_info(
            &self.files.dir,
            &ModelInfo {
                format: FORMAT.into(),
                version: FORMAT_VERSION,
                training: self.config.clone(),
                resize_size: geometry.resize_size.width,
                normalization: self.config.model.normalization(),
                labels: Gender::ALL.iter().map(|g| g.name().to_string()).collect(),
                data: self.data.clone(),
                best,
                epochs_run: state.epochs_done,
                stopped,
            },
        )
    }
}

fn record_err(e: burn::store::RecordError) -> TrainError {
    TrainError::Internal(format!("serialising the checkpoint: {e}"))
}

/// Puts the checkpoint's weights, optimiser state and scheduler position back.
fn restore<M: Module>(
    checkpoint: &Checkpoint,
    model: M,
    optimizer: ModuleOptimizer,
    scheduler: ModuleLrScheduler,
    path: &Path,
) -> Result<(M, ModuleOptimizer, ModuleLrScheduler), TrainError> {
    let bad = |what: &str, e: burn::store::RecordError| {
        TrainError::Resume(format!("{}: unreadable {what}: {e}", path.display()))
    };
    let bytes = |v: &[u8]| Bytes::from_bytes_vec(v.to_vec());
    let record =
        ModuleRecord::from_bytes(bytes(&checkpoint.model)).map_err(|e| bad("weights", e))?;
    let model = model
        .try_load_record(record)
        .map_err(|e| bad("weights", e))?;
    let optimizer = optimizer
        .from_bytes(bytes(&checkpoint.optimizer))
        .map_err(|e| bad("optimiser state", e))?;
    let scheduler = scheduler.load_record(
        LrSchedulerRecord::from_bytes(bytes(&checkpoint.scheduler))
            .map_err(|e| bad("scheduler state", e))?,
    );
    Ok((model, optimizer, scheduler))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(name: &str, label: usize) -> Sample {
        Sample {
            path: Path::new("data/train").join(name),
            label,
        }
    }

    #[test]
    fn every_race_gender_cell_weighs_the_same() {
        // 3 white women, 1 black woman, 2 white men: three cells.
        let samples = [
            sample("30_1_0_2017.jpg.chip.jpg", 0),
            sample("31_1_0_2017.jpg.chip.jpg", 0),
            sample("32_1_0_2017.jpg.chip.jpg", 0),
            sample("33_1_1_2017.jpg.chip.jpg", 0),
            sample("34_0_0_2017.jpg.chip.jpg", 1),
            sample("35_0_0_2017.jpg.chip.jpg", 1),
        ];
        let w = cell_weights(&samples, Balance::RaceGender).unwrap();
        // n / (cells * n_cell) = 6 / (3 * 3), 6 / (3 * 1), 6 / (3 * 2).
        let want = [2.0 / 3.0, 2.0 / 3.0, 2.0 / 3.0, 2.0, 1.0, 1.0];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
        assert!((w.iter().sum::<f32>() - 6.0).abs() < 1e-5);
        let err = cell_weights(&[sample("holiday.jpg", 0)], Balance::RaceGender).unwrap_err();
        assert!(err.to_string().contains("holiday.jpg"), "{err}");
        assert!(err.to_string().contains("race-gender"), "{err}");
    }

    #[test]
    fn every_age_gender_cell_weighs_the_same() {
        // Girls of 1 and 2 (one bucket, 0-2), a girl of 5, women of 20, 29 and 31 (buckets 20-29
        // and 30-39), and a man of 40: five cells over seven images.
        let samples = [
            sample("1_1_2_2017.jpg.chip.jpg", 0),
            sample("2_1_0_2017.jpg.chip.jpg", 0),
            sample("5_1_0_2017.jpg.chip.jpg", 0),
            sample("20_1_0_2017.jpg.chip.jpg", 0),
            sample("29_1_1_2017.jpg.chip.jpg", 0),
            sample("31_1_0_2017.jpg.chip.jpg", 0),
            sample("40_0_0_2017.jpg.chip.jpg", 1),
        ];
        let w = cell_weights(&samples, Balance::AgeGender).unwrap();
        // 7 / (5 * n_cell): cells of 2 (0-2 female, 20-29 female) and of 1.
        let want = [0.7, 0.7, 1.4, 0.7, 0.7, 1.4, 1.4];
        for (a, b) in w.iter().zip(want) {
            assert!((a - b).abs() < 1e-6, "{w:?}");
        }
    }

    #[test]
    fn weighted_cross_entropy_matches_hand_computed_values() {
        let device = gc_models::cpu_device();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 1.0], [2, 2]),
            &device,
        );
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 0], [2]), &device);
        // ce_0 = ln(1 + e^-2), ce_1 = ln(1 + e^1).
        let (ce0, ce1) = (
            (1.0f32 + (-2.0f32).exp()).ln(),
            (1.0f32 + 1.0f32.exp()).ln(),
        );
        let loss = |w: Vec<f32>| {
            let w = Tensor::<1>::from_data(TensorData::new(w, [2]), &device);
            weighted_cross_entropy(logits.clone(), labels.clone(), w).into_scalar::<f32>()
        };
        assert!((loss(vec![1.0, 1.0]) - (ce0 + ce1) / 2.0).abs() < 1e-5);
        assert!((loss(vec![1.0, 0.0]) - ce0).abs() < 1e-5);
        assert!((loss(vec![1.0, 3.0]) - (ce0 + 3.0 * ce1) / 4.0).abs() < 1e-5);
        // Equal weights are plain cross-entropy.
        let plain = CrossEntropyLossConfig::new()
            .init(&device)
            .forward(logits.clone(), labels.clone())
            .into_scalar::<f32>();
        assert!((loss(vec![0.5, 0.5]) - plain).abs() < 1e-5);
    }

    #[test]
    fn distillation_targets_mix_label_and_teacher() {
        // Images 0 (female) and 1 (male) with teachers saying 0.8 and 0.3 female; image 2 (male)
        // which the teachers could not classify.
        let p_female = [0.8, 0.3, f32::NAN];
        let t = distill_targets(&[0, 1, 1], &[0, 1, 2], &p_female, 0.25);
        let want = [
            0.75 + 0.25 * 0.8, // female label: 0.75 * 1 + 0.25 * 0.8
            0.25 * 0.2,
            0.25 * 0.3, // male label: 0.75 * 0 + 0.25 * 0.3
            0.75 + 0.25 * 0.7,
            0.0, // NaN: the label alone
            1.0,
        ];
        for (got, want) in t.iter().zip(want) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
        // Batches index the sample list: a batch holding images 2 and 0, in that order.
        let t = distill_targets(&[1, 0], &[2, 0], &p_female, 1.0);
        for (got, want) in t.iter().zip([0.0, 1.0, 0.8, 0.2]) {
            assert!((got - want).abs() < 1e-6, "{t:?}");
        }
    }

    #[test]
    fn soft_cross_entropy_matches_hand_computed_values() {
        let device = gc_models::cpu_device();
        let logits = Tensor::<2>::from_data(
            TensorData::new(vec![2.0f32, 0.0, 0.0, 1.0], [2, 2]),
            &device,
        );
        let targets = |t: Vec<f32>| Tensor::<2>::from_data(TensorData::new(t, [2, 2]), &device);
        let weights = |w: Vec<f32>| Tensor::<1>::from_data(TensorData::new(w, [2]), &device);
        // log p of row 0: [-ln(1 + e^-2), -ln(1 + e^2)]; of row 1: [-ln(1 + e), -ln(1 + e^-1)].
        let lp = |x: f32| -(1.0f32 + x.exp()).ln();
        let (a0, a1, b0, b1) = (lp(-2.0), lp(2.0), lp(1.0), lp(-1.0));
        let loss = |t: Vec<f32>, w: Option<Vec<f32>>| {
            soft_cross_entropy(logits.clone(), targets(t), w.map(weights)).into_scalar::<f32>()
        };
        let got = loss(vec![0.7, 0.3, 0.4, 0.6], None);
        let want = -(0.7 * a0 + 0.3 * a1 + 0.4 * b0 + 0.6 * b1) / 2.0;
        assert!((got - want).abs() < 1e-5, "{got} {want}");
        let got = loss(vec![0.7, 0.3, 0.4, 0.6], Some(vec![1.0, 3.0]));
        let want = -((0.7 * a0 + 0.3 * a1) + 3.0 * (0.4 * b0 + 0.6 * b1)) / 4.0;
        assert!((got - want).abs() < 1e-5, "{got} {want}");
        // One-hot targets are the hard-label losses.
        let labels = Tensor::<1, Int>::from_data(TensorData::new(vec![0i64, 1], [2]), &device);
        let w = vec![2.0, 0.5];
        let hard = weighted_cross_entropy(logits.clone(), labels, weights(w.clone()));
        let soft = loss(vec![1.0, 0.0, 0.0, 1.0], Some(w));
        assert!((hard.into_scalar::<f32>() - soft).abs() < 1e-6);
    }
}
