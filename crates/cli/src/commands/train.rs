//! `gender-classifier train`: trains one of our burn architectures on a prepared dataset and writes
//! a model directory (`model.safetensors`, `model.json`, `history.csv`, `checkpoint.bin`), drawing
//! a progress bar per epoch on stderr. Ctrl-C ends the epoch in hand (a second one ends the process
//! at once); either, or a kill, leaves the last finished epoch's checkpoint whole (every file is
//! written atomically, the checkpoint first); `--resume` continues from it.

use super::eval::bar;
use crate::Status;
use crate::out::{errln, outln};
use anyhow::Context;
use gc_classify::{Input, classify_inputs};
use gc_core::Gender;
use gc_pipeline::Sample;
use gc_train::{
    Arch, Balance, BatchStats, EpochMetrics, Phase, RunOptions, Schedule, StopReason, Teacher,
    TrainConfig, TrainData, TrainDevice, TrainProgress,
};
use indicatif::{ProgressBar, ProgressStyle};
use signal_hook::consts::SIGINT;
use signal_hook::flag;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// A prepared dataset: DIR/train/{female,male} and DIR/val/{female,male} (`prepare` writes it).
    #[arg(long)]
    pub data: PathBuf,

    /// The architecture: `cnn` (the notebook's small CNN, from scratch) or `efficientnet-lite0`
    /// (fine-tuned from ImageNet weights given with --init).
    #[arg(long, default_value = "cnn", value_parser = parse_arch)]
    pub arch: Arch,

    /// The model directory to write (new or empty, unless --resume).
    #[arg(long)]
    pub out: PathBuf,

    #[arg(long, default_value_t = 10)]
    pub epochs: usize,

    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,

    /// Peak learning rate of AdamW.
    #[arg(long, default_value_t = 1e-3)]
    pub lr: f64,

    /// Learning-rate schedule: constant, cosine, step (x0.1 every 10 epochs) or step:EPOCHS:GAMMA.
    #[arg(long, default_value = "cosine", value_parser = parse_schedule)]
    pub schedule: Schedule,

    /// Epochs of linear warm-up before the schedule.
    #[arg(long, default_value_t = 0)]
    pub warmup_epochs: usize,

    /// AdamW's decoupled weight decay.
    #[arg(long, default_value_t = 1e-4)]
    pub weight_decay: f64,

    /// Side of the square crop the model sees (images are resized to 1.125x first).
    #[arg(long, default_value_t = 128)]
    pub image_size: u32,

    #[arg(long, default_value_t = 42)]
    pub seed: u64,

    /// cpu, or gpu: the best GPU found through burn's wgpu backend (Vulkan, Metal, DX12), in a
    /// build with the `gpu` feature (see the README); CUBECL_WGPU_DEFAULT_DEVICE picks another.
    #[arg(long, default_value = "cpu", value_parser = parse_device)]
    pub device: TrainDevice,

    /// Threads for computing and for decoding images; 0 means one per core. Results depend on
    /// the seed and on this number (at most 1024).
    #[arg(long, default_value_t = 0,
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(0..=1024))]
    pub workers: usize,

    /// Continue the run checkpointed in --out (same data and settings).
    #[arg(long)]
    pub resume: bool,

    /// ImageNet weights for efficientnet-lite0 (a safetensors file with the PyTorch port's names).
    #[arg(long, value_name = "PATH")]
    pub init: Option<PathBuf>,

    /// Stop when the validation loss has not improved for N epochs (1 or more).
    #[arg(long, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub patience: Option<usize>,

    /// Loss weights: none, race-gender (every race x gender cell of the training set weighs the
    /// same in total) or age-gender (every age bucket x gender cell does); UTKFace file names give
    /// the cells.
    #[arg(long, default_value = "none", value_parser = parse_balance)]
    pub balance: Balance,

    /// The cnn's block widths, one block per value, each halving the image side (default
    /// 32,64,128,256).
    // Set, not the default Append of a list: a second --channels added blocks to the first.
    #[arg(long, value_name = "N,N,...", value_delimiter = ',', num_args = 1..,
          action = clap::ArgAction::Set)]
    pub channels: Option<Vec<usize>>,

    /// Dropout before the classifier (default 0 for the cnn, 0.2 for efficientnet-lite0).
    #[arg(long, value_name = "P")]
    pub dropout: Option<f64>,

    /// Colour jitter of training images: brightness, contrast and saturation each scaled by a
    /// random factor within PERCENT% of 1 (0, the default, for none).
    #[arg(long, value_name = "PERCENT", default_value_t = 0)]
    pub color_jitter: u8,

    /// Knowledge distillation: a model whose probabilities on each training image are mixed into
    /// that image's target (any --model value: an .onnx file, a calibration file, a model or
    /// Hugging Face folder); repeat it to average several. Run over the training images before
    /// the first epoch (and again on --resume, which refuses other answers).
    #[arg(long, value_name = "MODEL")]
    pub teacher: Vec<String>,

    /// The teachers' share of each training target, in (0, 1] (default 0.5); the label has the
    /// rest.
    #[arg(long, value_name = "W", requires = "teacher")]
    pub teacher_weight: Option<f64>,
}

/// The teachers' p(female) of every training image, averaged over the teachers that could
/// classify it; NaN where none could (its target is then its label alone). A teacher that
/// classifies none of the images is an error, not a silent fall back to the labels.
fn teach(teachers: &[gc_classify::ModelSpec], samples: &[Sample]) -> anyhow::Result<Vec<f32>> {
    let inputs: Vec<Input> = samples
        .iter()
        .map(|s| Input {
            path: s.path.clone(),
            problem: None,
        })
        .collect();
    // Every teacher is loaded before the first pass: a missing second one must not wait for it.
    let models = teachers
        .iter()
        .map(|spec| {
            gc_classify::load(spec).with_context(|| format!("loading the teacher {}", spec.value()))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut answers = Vec::with_capacity(teachers.len());
    for model in models {
        let bar = bar(inputs.len() as u64, model.name());
        let mut p = Vec::with_capacity(inputs.len());
        classify_inputs(model.as_ref(), &inputs, model.preferred_batch(), |o| {
            bar.inc(1);
            match o.result {
                Ok(prediction) => p.push(Some(prediction.probabilities[Gender::Female.index()])),
                Err(why) => {
                    bar.suspend(|| {
                        errln!(
                            "{}: error: {why}; the teacher's answer is left out",
                            crate::out::shown(&o.path)
                        )
                    });
                    p.push(None);
                }
            }
        });
        bar.finish_and_clear();
        let answered = p.iter().flatten().count();
        errln!(
            "teacher {}: {answered} of the {} training images classified",
            model.name(),
            inputs.len()
        );
        if answered == 0 {
            anyhow::bail!(
                "the teacher {} could not classify any training image",
                model.name()
            );
        }
        answers.push(p);
    }
    Ok(average_answers(&answers))
}

/// Per image, the mean of the teachers that answered (a `Some`), or NaN if none did.
fn average_answers(answers: &[Vec<Option<f32>>]) -> Vec<f32> {
    let n = answers.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| {
            let given: Vec<f32> = answers.iter().filter_map(|a| a[i]).collect();
            if given.is_empty() {
                f32::NAN
            } else {
                given.iter().sum::<f32>() / given.len() as f32
            }
        })
        .collect()
}

fn parse_balance(s: &str) -> Result<Balance, String> {
    s.parse().map_err(|e: gc_train::TrainError| e.to_string())
}

fn parse_device(s: &str) -> Result<TrainDevice, String> {
    s.parse().map_err(|e: gc_train::TrainError| e.to_string())
}

fn parse_arch(s: &str) -> Result<Arch, String> {
    s.parse()
}

fn parse_schedule(s: &str) -> Result<Schedule, String> {
    s.parse()
}

pub fn run(args: TrainArgs) -> anyhow::Result<Status> {
    // Before the training threads start: their large blocks are then kept too (gc_core::malloc).
    gc_core::malloc::one_arena();
    if args.arch == Arch::EfficientNetLite0 && args.init.is_none() && !args.resume {
        errln!(
            "warning: training efficientnet-lite0 from random weights; pass --init with the \
             ImageNet weights to fine-tune instead"
        );
    }
    let mut model = args.arch.default_spec();
    if let Some(channels) = args.channels {
        model = model.with_channels(channels)?;
    }
    if let Some(dropout) = args.dropout {
        model = model.with_dropout(dropout);
    }
    let mut config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        schedule: args.schedule,
        warmup_epochs: args.warmup_epochs,
        weight_decay: args.weight_decay,
        image_size: args.image_size,
        seed: args.seed,
        patience: args.patience,
        // Canonical: --resume compares it with the checkpoint's, which a run from another folder
        // spelt otherwise (`..` steps included). The file has to exist to be read anyway.
        init: args
            .init
            .as_deref()
            .map(|p| {
                p.canonicalize()
                    .with_context(|| format!("--init {}", p.display()))
            })
            .transpose()?,
        balance: args.balance,
        color_jitter: args.color_jitter,
        ..TrainConfig::new(model)
    };
    let teachers = args
        .teacher
        .iter()
        .map(|m| gc_classify::ModelSpec::parse(Some(m), None))
        .collect::<Result<Vec<_>, _>>()?;
    if !teachers.is_empty() {
        config.teacher = Some(Teacher {
            models: teachers.iter().map(|t| t.value()).collect(),
            weight: args.teacher_weight.unwrap_or(0.5),
        });
    }
    config.validate()?;
    let mut data = TrainData::from_dir(&args.data)
        .with_context(|| format!("reading the dataset {}", args.data.display()))?;
    let options = RunOptions {
        threads: args.workers,
        workers: args.workers,
        resume: args.resume,
        device: args.device,
        ..RunOptions::default()
    };
    // Checked before the teachers' pass, which can take minutes, and before the line that says
    // training starts (train checks again: a resume's checkpoint is read twice, a small cost).
    gc_train::check_run(&config, &data, &args.out, &options)
        .with_context(|| format!("training into {}", args.out.display()))?;
    if !teachers.is_empty() {
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(args.workers)
            .build()?;
        let p_female = pool.install(|| teach(&teachers, &data.train))?;
        data = data.with_teacher(p_female)?;
    }
    errln!(
        "training {} on {} + {} images ({}x{}), {} epochs, on the {}, into {}",
        args.arch,
        data.info.train_images,
        data.info.val_images,
        args.image_size,
        args.image_size,
        args.epochs,
        args.device.to_string().to_uppercase(),
        args.out.display()
    );
    // The first Ctrl-C ends the epoch in hand and keeps the last checkpoint (model.json then
    // says "interrupted"); a second one ends the process at once, every file whole either way.
    // Not before: a Ctrl-C during the teachers' pass ends it at once, with nothing written.
    let interrupted = Arc::new(AtomicBool::new(false));
    flag::register_conditional_shutdown(SIGINT, 130, interrupted.clone())
        .and_then(|_| flag::register(SIGINT, interrupted.clone()))
        .context("cannot watch for Ctrl-C")?;
    let bars = Bars::new(interrupted);
    let result = gc_train::train(&config, &data, &args.out, &options, &bars);
    bars.finish();
    let report = match result {
        Err(gc_train::TrainError::Interrupted) => {
            errln!(
                "interrupted during the first epoch: nothing was saved; {} can be used again",
                args.out.display()
            );
            return Ok(Status::Interrupted);
        }
        other => other.with_context(|| format!("training into {}", args.out.display()))?,
    };

    let best = report.best;
    let how = match report.stopped {
        StopReason::Completed | StopReason::Running => "done".to_string(),
        StopReason::EarlyStopped => format!(
            "stopped early: no better validation loss for {} epochs",
            args.patience.unwrap_or(0)
        ),
        StopReason::Interrupted => "interrupted; --resume continues".to_string(),
    };
    outln!(
        "{how}: best epoch {} of {}: val loss {:.4}, val accuracy {:.2}%; model in {}",
        best.epoch,
        report.history.len(),
        best.val_loss,
        100.0 * best.val_acc,
        args.out.display()
    );
    if report.stopped == StopReason::Interrupted {
        return Ok(Status::Interrupted);
    }
    Ok(Status::Success)
}

/// One bar per pass (training, then validation), and a summary line per epoch; a stop when
/// `interrupted` is set (Ctrl-C).
struct Bars {
    bar: Mutex<ProgressBar>,
    interrupted: Arc<AtomicBool>,
}

impl Bars {
    fn new(interrupted: Arc<AtomicBool>) -> Self {
        Bars {
            bar: Mutex::new(ProgressBar::hidden()),
            interrupted,
        }
    }

    fn with(&self, f: impl FnOnce(&mut ProgressBar)) {
        if let Ok(mut bar) = self.bar.lock() {
            f(&mut bar);
        }
    }

    fn finish(&self) {
        self.with(|b| b.finish_and_clear());
    }
}

impl TrainProgress for Bars {
    fn pass_start(
        &self,
        phase: Phase,
        epoch: usize,
        epochs: usize,
        batches: usize,
        _images: usize,
    ) {
        let name = match phase {
            Phase::Train => format!("epoch {}/{epochs}", epoch + 1),
            Phase::Validate => "  validate".to_string(),
        };
        self.with(|b| {
            b.finish_and_clear();
            *b = ProgressBar::new(batches as u64)
                .with_style(
                    ProgressStyle::with_template(
                        "{prefix:12} {bar:30} {pos}/{len} {msg} eta {eta}",
                    )
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
                )
                .with_prefix(name);
        });
    }

    fn batch(&self, s: &BatchStats) {
        self.with(|b| {
            b.set_position(s.batches as u64);
            b.set_message(format!(
                "loss {:.4} acc {:.3} {:.0} img/s",
                s.loss, s.accuracy, s.images_per_second
            ));
        });
    }

    fn epoch_end(&self, m: &EpochMetrics, improved: bool) {
        self.with(|b| {
            b.finish_and_clear();
            b.suspend(|| {
                errln!(
                    "epoch {:>3}: train loss {:.4} acc {:.3} | val loss {:.4} acc {:.3} | lr {:.2e} | {:.0} img/s, {:.0} s{}",
                    m.epoch,
                    m.train_loss,
                    m.train_acc,
                    m.val_loss,
                    m.val_acc,
                    m.lr,
                    m.images_per_second,
                    m.seconds,
                    if improved { "  *best" } else { "" }
                )
            });
        });
    }

    fn should_stop(&self) -> bool {
        self.interrupted.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teachers_are_averaged_over_those_that_answered() {
        let a = vec![Some(0.2), Some(0.9), None, None];
        let b = vec![Some(0.6), None, Some(0.3), None];
        let p = average_answers(&[a, b]);
        assert!((p[0] - 0.4).abs() < 1e-6, "{p:?}");
        assert_eq!(p[1..3], [0.9, 0.3]);
        assert!(p[3].is_nan());
        assert!(average_answers(&[]).is_empty());
    }
}
