//! What a training run is asked to do: the architecture and its config, the optimiser and the
//! learning-rate schedule, the image size, the seed. Saved in the model directory and in the
//! checkpoint, so that `--resume` can refuse to continue a different run.

use crate::TrainError;
use burn::lr_scheduler::LrSchedulerConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::{ModuleLrScheduler, ModuleLrSchedulerConfig};
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::lr_scheduler::step::StepLrSchedulerConfig;
use gc_models::{CnnConfig, EfficientNetLite0Config};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

/// The architectures gc-train builds, by their name in `model.json` and on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arch {
    #[serde(rename = "cnn")]
    Cnn,
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0,
}

impl Arch {
    pub const ALL: [Arch; 2] = [Arch::Cnn, Arch::EfficientNetLite0];

    pub fn name(self) -> &'static str {
        match self {
            Arch::Cnn => "cnn",
            Arch::EfficientNetLite0 => "efficientnet-lite0",
        }
    }

    /// The architecture's default config, for 2 classes.
    pub fn default_spec(self) -> ModelSpec {
        match self {
            Arch::Cnn => ModelSpec::Cnn(CnnConfig::new()),
            Arch::EfficientNetLite0 => ModelSpec::EfficientNetLite0(EfficientNetLite0Config::new()),
        }
    }
}

impl fmt::Display for Arch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Arch {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Arch::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Arch::ALL.iter().map(|a| a.name()).collect();
                format!("unknown architecture {s:?}; known: {}", known.join(", "))
            })
    }
}

/// An architecture with its config: `{"arch": "cnn", "config": {...}}` in JSON.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "arch", content = "config")]
pub enum ModelSpec {
    #[serde(rename = "cnn")]
    Cnn(CnnConfig),
    #[serde(rename = "efficientnet-lite0")]
    EfficientNetLite0(EfficientNetLite0Config),
}

impl ModelSpec {
    pub fn arch(&self) -> Arch {
        match self {
            ModelSpec::Cnn(_) => Arch::Cnn,
            ModelSpec::EfficientNetLite0(_) => Arch::EfficientNetLite0,
        }
    }

    pub fn num_classes(&self) -> usize {
        match self {
            ModelSpec::Cnn(c) => c.num_classes,
            ModelSpec::EfficientNetLite0(c) => c.num_classes,
        }
    }

    pub fn normalization(&self) -> Option<gc_models::Normalization> {
        match self {
            ModelSpec::Cnn(c) => c.normalization,
            ModelSpec::EfficientNetLite0(c) => c.normalization,
        }
    }

    /// Dropout before the classifier.
    pub fn dropout(&self) -> f64 {
        match self {
            ModelSpec::Cnn(c) => c.dropout,
            ModelSpec::EfficientNetLite0(c) => c.dropout,
        }
    }

    /// The same architecture with another dropout before the classifier.
    pub fn with_dropout(self, dropout: f64) -> ModelSpec {
        match self {
            ModelSpec::Cnn(c) => ModelSpec::Cnn(c.with_dropout(dropout)),
            ModelSpec::EfficientNetLite0(c) => {
                ModelSpec::EfficientNetLite0(c.with_dropout(dropout))
            }
        }
    }

    /// The CNN with other block widths (one block per entry); EfficientNet-Lite0's widths are
    /// fixed by its ImageNet weights, so it refuses them.
    pub fn with_channels(self, channels: Vec<usize>) -> Result<ModelSpec, TrainError> {
        match self {
            ModelSpec::Cnn(c) => Ok(ModelSpec::Cnn(c.with_channels(channels))),
            ModelSpec::EfficientNetLite0(_) => Err(TrainError::Config(format!(
                "--channels sets the widths of the cnn's blocks, not of {}",
                self.arch()
            ))),
        }
    }

    /// The smallest image side the network takes: each CNN block halves the side, and
    /// EfficientNet-Lite0 has a total stride of 32.
    fn min_image_size(&self) -> u32 {
        match self {
            ModelSpec::Cnn(c) => 1u32 << c.channels.len().min(31),
            ModelSpec::EfficientNetLite0(_) => 32,
        }
    }

    /// Checks what the network is built from, for images of `image_size`: training refuses bad
    /// settings with it, and loading a `model.json` edited by hand does too, since burn's layers
    /// panic on a zero width, a dropout outside [0, 1] or an image the poolings shrink to nothing.
    pub fn check(&self, image_size: u32) -> Result<(), String> {
        if let ModelSpec::Cnn(c) = self
            && (c.channels.is_empty()
                || c.channels.len() > 8
                || c.channels.iter().any(|&n| n == 0 || n > 4096))
        {
            return Err(format!(
                "cnn channels {:?}: expected 1 to 8 blocks of 1 to 4096 channels each",
                c.channels
            ));
        }
        let dropout = self.dropout();
        if !(0.0..1.0).contains(&dropout) {
            return Err(format!("dropout {dropout} must be in [0, 1)"));
        }
        if self.num_classes() != 2 {
            return Err(format!(
                "the model must have 2 classes (female, male), not {}",
                self.num_classes()
            ));
        }
        let min_size = self.min_image_size();
        if image_size < min_size {
            let why = match self {
                ModelSpec::Cnn(c) => {
                    format!(" ({} blocks, each halving the side)", c.channels.len())
                }
                ModelSpec::EfficientNetLite0(_) => String::new(),
            };
            return Err(format!(
                "image size {image_size} is below {min_size}, the least {}{why} takes",
                self.arch()
            ));
        }
        Ok(())
    }
}

/// How the learning rate changes over the run (per step), after the optional warm-up.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind")]
pub enum Schedule {
    /// The same rate throughout.
    Constant,
    /// Cosine annealing from the rate to 0 over the remaining steps.
    Cosine,
    /// Multiplied by `gamma` every `epochs` epochs.
    Step { epochs: usize, gamma: f64 },
}

impl FromStr for Schedule {
    type Err = String;
    /// `constant`, `cosine`, `step` (every 10 epochs, x0.1) or `step:EPOCHS:GAMMA`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad =
            || format!("bad schedule {s:?}: expected constant, cosine, step or step:EPOCHS:GAMMA");
        match s.split(':').collect::<Vec<_>>().as_slice() {
            ["constant"] => Ok(Schedule::Constant),
            ["cosine"] => Ok(Schedule::Cosine),
            ["step"] => Ok(Schedule::Step {
                epochs: 10,
                gamma: 0.1,
            }),
            ["step", e, g] => Ok(Schedule::Step {
                epochs: e.parse().map_err(|_| bad())?,
                gamma: g.parse().map_err(|_| bad())?,
            }),
            _ => Err(bad()),
        }
    }
}

/// A training run's settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// `"arch"` and `"config"` at the top level of the JSON.
    #[serde(flatten)]
    pub model: ModelSpec,
    pub epochs: usize,
    pub batch_size: usize,
    /// Peak learning rate of AdamW.
    pub lr: f64,
    pub schedule: Schedule,
    /// Epochs of linear warm-up from `lr / 100` to `lr`, before the schedule.
    pub warmup_epochs: usize,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// Side of the square crop the model sees; images are resized to 1.125 times it first.
    pub image_size: u32,
    /// Random crop and horizontal flip of training images.
    pub augment: bool,
    pub seed: u64,
    /// Stop when the validation loss has not improved for this many epochs.
    pub patience: Option<usize>,
    /// ImageNet weights for EfficientNet-Lite0 (refused for the CNN).
    pub init: Option<PathBuf>,
    /// How training images are weighted in the loss; absent in model.json files from before it.
    #[serde(default)]
    pub balance: Balance,
    /// Colour jitter of training images, in percent (`gc_pipeline::ColorJitter`); 0 (and absent
    /// in model.json files from before it) means none.
    #[serde(default)]
    pub color_jitter: u8,
    /// Knowledge distillation from other models; absent (and in model.json files from before it)
    /// for the labels alone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<Teacher>,
}

/// Knowledge distillation: each training image's target mixes its label with the probabilities
/// other models give it, `(1 - weight) * label + weight * teacher`. The teachers' probabilities
/// come with the data ([`crate::TrainData::with_teacher`]); this records which models gave them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Teacher {
    /// The teachers as `--model` values (paths absolute); their p(female) is averaged.
    pub models: Vec<String>,
    /// The teachers' share of each target, in (0, 1].
    pub weight: f64,
}

/// Weights of the training images in the loss.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Balance {
    /// Every image counts the same (plain cross-entropy).
    #[default]
    None,
    /// Every (race, gender) cell of the training set weighs the same in total, from the UTKFace
    /// labels in the file names: a group with few images is not outvoted by a large one.
    RaceGender,
    /// Every (age bucket, gender) cell weighs the same in total: children and the elderly, whom
    /// the model fails most and who are few in UTKFace, count more.
    AgeGender,
}

impl Balance {
    pub const ALL: [Balance; 3] = [Balance::None, Balance::RaceGender, Balance::AgeGender];

    /// The value `--balance` takes for it.
    pub fn name(self) -> &'static str {
        match self {
            Balance::None => "none",
            Balance::RaceGender => "race-gender",
            Balance::AgeGender => "age-gender",
        }
    }

    /// The cell an image with these UTKFace labels weighs in (a race or an age bucket, by index,
    /// with the gender); `None` when every image counts the same.
    pub fn cell(self, label: &gc_dataset::UtkLabel) -> Option<(usize, gc_core::Gender)> {
        match self {
            Balance::None => None,
            Balance::RaceGender => Some((label.race as usize, label.gender)),
            Balance::AgeGender => {
                Some((gc_core::AgeBucket::of_age(label.age) as usize, label.gender))
            }
        }
    }
}

impl std::str::FromStr for Balance {
    type Err = TrainError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Balance::ALL
            .into_iter()
            .find(|b| b.name() == s)
            .ok_or_else(|| {
                let known: Vec<&str> = Balance::ALL.iter().map(|b| b.name()).collect();
                TrainError::Config(format!(
                    "balance {s:?}: expected one of {}",
                    known.join(", ")
                ))
            })
    }
}

impl TrainConfig {
    /// The notebook's settings for an architecture: 128x128, batches of 64, AdamW 1e-3, cosine.
    pub fn new(model: ModelSpec) -> Self {
        TrainConfig {
            model,
            epochs: 10,
            batch_size: 64,
            lr: 1e-3,
            schedule: Schedule::Cosine,
            warmup_epochs: 0,
            weight_decay: 1e-4,
            image_size: 128,
            augment: true,
            seed: 42,
            patience: None,
            init: None,
            balance: Balance::None,
            color_jitter: 0,
            teacher: None,
        }
    }

    /// Checks the settings before any work starts, naming the bad value.
    pub fn validate(&self) -> Result<(), TrainError> {
        let bad = |msg: String| Err(TrainError::Config(msg));
        if self.color_jitter > 0 && !self.augment {
            return bad(
                "color jitter needs augmentation on (it applies to training images only)".into(),
            );
        }
        if self.color_jitter > 100 {
            return bad(format!(
                "color jitter {}% is above 100% (a factor below zero)",
                self.color_jitter
            ));
        }
        if let Some(t) = &self.teacher {
            if t.models.is_empty() {
                return bad("distillation needs at least one teacher model".into());
            }
            if !(t.weight > 0.0 && t.weight <= 1.0) {
                return bad(format!("teacher weight {} must be in (0, 1]", t.weight));
            }
        }
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 || self.batch_size > gc_core::MAX_BATCH {
            return bad(format!(
                "batch size {} must be in 1..={}",
                self.batch_size,
                gc_core::MAX_BATCH
            ));
        }
        if !(self.lr > 0.0 && self.lr <= 1.0) {
            return bad(format!("learning rate {} must be in (0, 1]", self.lr));
        }
        // AdamW takes it as an f32: 1e39 passed as finite here and trained on infinity.
        if !(0.0..=1.0).contains(&self.weight_decay) {
            return bad(format!(
                "weight decay {} must be in [0, 1]",
                self.weight_decay
            ));
        }
        if self.warmup_epochs >= self.epochs && self.warmup_epochs > 0 {
            return bad(format!(
                "warm-up ({} epochs) must be shorter than the run ({} epochs)",
                self.warmup_epochs, self.epochs
            ));
        }
        if let Schedule::Step { epochs, gamma } = self.schedule
            && (epochs == 0 || !(gamma > 0.0 && gamma <= 1.0))
        {
            return bad(format!(
                "step schedule needs epochs >= 1 and gamma in (0, 1], got {epochs} and {gamma}"
            ));
        }
        self.model.check(self.image_size).or_else(bad)?;
        if self.image_size > 1024 {
            return bad(format!(
                "image size {} is above 1024, the most training takes",
                self.image_size
            ));
        }
        if self.init.is_some() && self.model.arch() != Arch::EfficientNetLite0 {
            return bad(format!(
                "--init (ImageNet weights) applies to efficientnet-lite0, not {}",
                self.model.arch()
            ));
        }
        Ok(())
    }

    /// The learning-rate scheduler, stepped once per batch; `steps_per_epoch` sizes it.
    pub(crate) fn scheduler(
        &self,
        steps_per_epoch: usize,
    ) -> Result<ModuleLrScheduler, TrainError> {
        let steps_per_epoch = steps_per_epoch.max(1);
        // burn's schedulers count their steps in an i32 and panic past it.
        let most = i32::MAX as usize;
        if self
            .epochs
            .checked_mul(steps_per_epoch)
            .is_none_or(|n| n > most)
        {
            return Err(TrainError::Config(format!(
                "{} epochs of {steps_per_epoch} batches are more than the {most} steps the \
                 learning-rate schedule counts",
                self.epochs
            )));
        }
        // Neither product can overflow now: both factors are at most the run's epochs.
        let warmup = self.warmup_epochs * steps_per_epoch;
        let main_steps = (self.epochs - self.warmup_epochs) * steps_per_epoch;
        let main = match self.schedule {
            Schedule::Constant => LrSchedulerConfig::Constant(self.lr),
            Schedule::Cosine => {
                CosineAnnealingLrSchedulerConfig::new(self.lr, main_steps.max(1)).into()
            }
            Schedule::Step { epochs, gamma } => {
                // A step longer than the run never comes, as one of the run's length does not:
                // the same rates, without an overflow that made a huge step a short one.
                StepLrSchedulerConfig::new(self.lr, epochs.min(self.epochs) * steps_per_epoch)
                    .with_gamma(gamma)
                    .into()
            }
        };
        let base = if warmup > 0 {
            let ramp = LinearLrSchedulerConfig::new(self.lr / 100.0, self.lr, warmup);
            SequentialLrSchedulerConfig::new(vec![ramp.into(), main], vec![warmup]).into()
        } else {
            main
        };
        ModuleLrSchedulerConfig::new(base)
            .init()
            .map_err(|e| TrainError::Config(format!("learning-rate schedule: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn balance_names_are_what_parses_and_what_model_json_holds() {
        for b in Balance::ALL {
            assert_eq!(b.name().parse::<Balance>().unwrap(), b);
            assert_eq!(
                serde_json::to_string(&b).unwrap(),
                format!("\"{}\"", b.name())
            );
        }
        let err = "race".parse::<Balance>().unwrap_err().to_string();
        assert!(err.contains("none, race-gender, age-gender"), "{err}");
    }

    #[test]
    fn model_spec_json_names_the_architecture() {
        let spec = Arch::Cnn.default_spec();
        let json = serde_json::to_value(&spec).unwrap();
        assert_eq!(json["arch"], "cnn");
        assert_eq!(
            json["config"]["channels"],
            serde_json::json!([32, 64, 128, 256])
        );
        let back: ModelSpec = serde_json::from_value(json).unwrap();
        assert_eq!(back, spec);
        let effnet = serde_json::to_value(Arch::EfficientNetLite0.default_spec()).unwrap();
        assert_eq!(effnet["arch"], "efficientnet-lite0");
    }

    #[test]
    fn names_parse() {
        assert_eq!("cnn".parse::<Arch>(), Ok(Arch::Cnn));
        assert!(
            "resnet"
                .parse::<Arch>()
                .unwrap_err()
                .contains("efficientnet-lite0")
        );
        assert_eq!("cosine".parse::<Schedule>(), Ok(Schedule::Cosine));
        assert_eq!(
            "step:3:0.5".parse::<Schedule>(),
            Ok(Schedule::Step {
                epochs: 3,
                gamma: 0.5
            })
        );
        assert!("step:x".parse::<Schedule>().is_err());
    }

    #[test]
    fn bad_settings_are_refused() {
        let ok = TrainConfig::new(Arch::Cnn.default_spec());
        assert!(ok.validate().is_ok());
        for bad in [
            TrainConfig {
                epochs: 0,
                ..ok.clone()
            },
            TrainConfig {
                lr: 0.0,
                ..ok.clone()
            },
            TrainConfig {
                image_size: 8,
                ..ok.clone()
            },
            TrainConfig {
                warmup_epochs: 10,
                ..ok.clone()
            },
            TrainConfig {
                init: Some("x".into()),
                ..ok.clone()
            },
            TrainConfig {
                model: ModelSpec::Cnn(CnnConfig::new().with_channels(vec![])),
                ..ok.clone()
            },
            TrainConfig {
                model: ModelSpec::Cnn(CnnConfig::new().with_channels(vec![32, 0])),
                ..ok.clone()
            },
            TrainConfig {
                model: ok.model.clone().with_dropout(1.0),
                ..ok.clone()
            },
            // Six halvings of 32 pixels leave less than one.
            TrainConfig {
                model: ok.model.clone().with_channels(vec![8; 6]).unwrap(),
                image_size: 32,
                ..ok.clone()
            },
            TrainConfig {
                color_jitter: 101,
                ..ok.clone()
            },
            // Infinite as AdamW's f32.
            TrainConfig {
                weight_decay: 1e39,
                ..ok.clone()
            },
            TrainConfig {
                weight_decay: -0.1,
                ..ok.clone()
            },
            TrainConfig {
                color_jitter: 20,
                augment: false,
                ..ok.clone()
            },
            teacher(vec![], 0.5),
            teacher(vec!["a.onnx".into()], 0.0),
            teacher(vec!["a.onnx".into()], 1.5),
            teacher(vec!["a.onnx".into()], f64::NAN),
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert!(teacher(vec!["a.onnx".into()], 1.0).validate().is_ok());
    }

    fn teacher(models: Vec<String>, weight: f64) -> TrainConfig {
        TrainConfig {
            teacher: Some(Teacher { models, weight }),
            ..TrainConfig::new(Arch::Cnn.default_spec())
        }
    }

    #[test]
    fn a_teacher_is_saved_only_when_there_is_one() {
        let plain = serde_json::to_value(TrainConfig::new(Arch::Cnn.default_spec())).unwrap();
        assert!(plain.get("teacher").is_none(), "{plain}");
        let config = teacher(vec!["/m/dlib.json".into()], 0.5);
        let json = serde_json::to_value(&config).unwrap();
        assert_eq!(
            json["teacher"],
            serde_json::json!({"models": ["/m/dlib.json"], "weight": 0.5})
        );
        assert_eq!(serde_json::from_value::<TrainConfig>(json).unwrap(), config);
        // model.json files from before distillation read as no teacher.
        assert_eq!(
            serde_json::from_value::<TrainConfig>(plain)
                .unwrap()
                .teacher,
            None
        );
    }

    #[test]
    fn channels_and_dropout_change_the_spec_they_apply_to() {
        let wide = Arch::Cnn
            .default_spec()
            .with_channels(vec![32, 64, 128, 256, 512])
            .unwrap()
            .with_dropout(0.25);
        let ModelSpec::Cnn(c) = &wide else {
            panic!("{wide:?}")
        };
        assert_eq!((c.channels.len(), c.dropout), (5, 0.25));
        // Five halvings: 32 pixels is the least that leaves one.
        let at = |image_size| TrainConfig {
            model: wide.clone(),
            image_size,
            ..TrainConfig::new(Arch::Cnn.default_spec())
        };
        assert!(at(32).validate().is_ok());
        assert!(at(16).validate().is_err());
        let err = Arch::EfficientNetLite0
            .default_spec()
            .with_channels(vec![8])
            .unwrap_err()
            .to_string();
        assert!(err.contains("efficientnet-lite0"), "{err}");
        assert_eq!(
            Arch::EfficientNetLite0
                .default_spec()
                .with_dropout(0.5)
                .dropout(),
            0.5
        );
    }

    #[test]
    fn a_step_longer_than_the_run_never_decays() {
        let config = |epochs, schedule| TrainConfig {
            epochs,
            schedule,
            lr: 0.01,
            ..TrainConfig::new(Arch::Cnn.default_spec())
        };
        // 1844674407370955162 epochs of 10 batches wrapped to a step of 4 batches; 2^63 epochs
        // of 2 batches to a step of 0, an error once training had started.
        for (every, steps) in [(1_844_674_407_370_955_162, 10), (1 << 63, 2)] {
            let step = Schedule::Step {
                epochs: every,
                gamma: 0.5,
            };
            let mut s = config(3, step).scheduler(steps).unwrap();
            let lrs: Vec<f64> = (0..3 * steps).map(|_| s.step().base()).collect();
            assert!(lrs.iter().all(|&lr| lr == 0.01), "{lrs:?}");
        }
        // A step inside the run still comes when it should.
        let step = Schedule::Step {
            epochs: 2,
            gamma: 0.5,
        };
        let mut s = config(3, step).scheduler(10).unwrap();
        let lrs: Vec<f64> = (0..30).map(|_| s.step().base()).collect();
        assert_eq!((lrs[19], lrs[20]), (0.01, 0.005));
        // More steps than burn's schedulers count is refused, not wrapped.
        let err = config(usize::MAX / 2, Schedule::Constant)
            .scheduler(10)
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("more than the 2147483647 steps"), "{err}");
    }

    #[test]
    fn warmup_then_cosine() {
        let config = TrainConfig {
            epochs: 3,
            warmup_epochs: 1,
            lr: 0.01,
            ..TrainConfig::new(Arch::Cnn.default_spec())
        };
        let mut s = config.scheduler(10).unwrap();
        let lrs: Vec<f64> = (0..30).map(|_| s.step().base()).collect();
        assert!((lrs[0] - 1e-4).abs() < 1e-9, "{lrs:?}");
        assert!(lrs[5] > lrs[0] && lrs[5] < 0.01);
        assert!((lrs[10] - 0.01).abs() < 1e-6, "{lrs:?}");
        assert!(lrs[29] < 0.001, "{lrs:?}");
    }
}
