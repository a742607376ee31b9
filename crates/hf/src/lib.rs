//! Hugging Face image-classification checkpoints as gender classifiers, run with burn on the CPU.
//!
//! A model is a directory as the Hub serves it: `config.json` (architecture, sizes, `id2label`),
//! `model.safetensors` (or sharded safetensors with `model.safetensors.index.json`) and
//! `preprocessor_config.json` (resize, rescale, normalise). [`HfClassifier::from_dir`] reads one;
//! [`HfClassifier::from_hub`] first finds it in the Hugging Face cache or downloads it there
//! (`hf:OWNER/NAME[@REVISION]`, see [`hub`]).
//!
//! | file | what |
//! | --- | --- |
//! | [`vit`] | `ViTForImageClassification` |
//! | [`siglip`] | `SiglipForImageClassification` (SigLIP's vision tower, mean-pooled) |
//! | [`attention`] | multi-head self-attention on the fused QKV values, with `gemm` |
//! | [`common`] | what the architectures share: sizes, patch tokens, token-wise linear, self-attention |
//! | [`preprocess`] | `preprocessor_config.json`, and Pillow's resize ported exactly |
//! | [`weights`] | safetensors -> burn tensors, with shape checks and PyTorch layouts undone |
//! | [`hub`] | the Hugging Face cache and the download |
//!
//! The model's class names come from `id2label` and are mapped to ours with
//! [`gc_core::map_labels`]; they are kept for display. Probabilities are the softmax of the logits,
//! as transformers' `image-classification` pipeline computes them for single-label models.
//! Not read: PyTorch pickles (`pytorch_model.bin`), architectures other than those in
//! [`SUPPORTED_ARCHITECTURES`].

pub mod activation;
pub mod attention;
pub mod common;
pub mod hub;
pub mod preprocess;
pub mod siglip;
pub mod vit;
pub mod weights;

pub use hub::{HubOptions, parse_hub_spec};
pub use preprocess::{Preprocessor, Resample};

use burn::tensor::{Device, Tensor, TensorData};
use gc_core::{ClassLabel, Classifier, ModelError, RgbView};
use hub::{CONFIG_FILE, PREPROCESSOR_FILE};
use std::path::Path;
use weights::Checkpoint;

/// The `architectures` values of `config.json` this crate runs.
pub const SUPPORTED_ARCHITECTURES: &[&str] = &[vit::ARCHITECTURE, siglip::ARCHITECTURE];

/// The `config.json` of one of the supported architectures.
#[derive(Debug)]
enum NetworkConfig {
    Vit(vit::Config),
    Siglip(siglip::Config),
}

impl NetworkConfig {
    /// Reads `config.json` as the config of `architecture`; the error says why it is not one.
    fn parse(architecture: &str, json: serde_json::Value) -> Result<NetworkConfig, String> {
        let not_one = |e: serde_json::Error| format!("not a {architecture} config: {e}");
        match architecture {
            vit::ARCHITECTURE => serde_json::from_value(json)
                .map(NetworkConfig::Vit)
                .map_err(not_one),
            siglip::ARCHITECTURE => serde_json::from_value(json)
                .map(NetworkConfig::Siglip)
                .map_err(not_one),
            other => Err(format!(
                "architecture {other} is not supported; supported: {}",
                SUPPORTED_ARCHITECTURES.join(", ")
            )),
        }
    }

    fn check(&self, path: &str) -> Result<(), ModelError> {
        match self {
            NetworkConfig::Vit(c) => c.check(path),
            NetworkConfig::Siglip(c) => c.check(path),
        }
    }

    fn id2label(&self) -> &std::collections::BTreeMap<String, String> {
        match self {
            NetworkConfig::Vit(c) => &c.id2label,
            NetworkConfig::Siglip(c) => &c.id2label,
        }
    }

    /// `[channels, height, width]` the network takes.
    fn input(&self) -> [usize; 3] {
        let (c, [h, w]) = match self {
            NetworkConfig::Vit(c) => (c.num_channels, c.image_size.hw()),
            NetworkConfig::Siglip(c) => (c.vision_config.num_channels, c.image_hw()),
        };
        [c, h, w]
    }
}

/// A loaded network of one of the supported architectures.
#[derive(Debug)]
enum Network {
    Vit(vit::ViTForImageClassification),
    Siglip(siglip::SiglipForImageClassification),
}

impl Network {
    fn load(
        config: &NetworkConfig,
        num_labels: usize,
        ckpt: &mut Checkpoint,
    ) -> Result<Network, ModelError> {
        Ok(match config {
            NetworkConfig::Vit(c) => {
                Network::Vit(vit::ViTForImageClassification::load(c, num_labels, ckpt)?)
            }
            NetworkConfig::Siglip(c) => Network::Siglip(
                siglip::SiglipForImageClassification::load(c, num_labels, ckpt)?,
            ),
        })
    }

    /// `[batch, channels, height, width]` -> `[batch, labels]` logits.
    fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        match self {
            Network::Vit(m) => m.forward(pixels),
            Network::Siglip(m) => m.forward(pixels),
        }
    }
}

/// A Hugging Face image-classification model, as a [`Classifier`].
#[derive(Debug)]
pub struct HfClassifier {
    name: String,
    architecture: String,
    labels: Vec<ClassLabel>,
    network: Network,
    preprocessor: Preprocessor,
    /// `[channels, height, width]` the network takes.
    input: [usize; 3],
    device: Device,
    batch: usize,
}

/// What `config.json` says before the architecture-specific part is read.
#[derive(serde::Deserialize)]
struct ConfigHead {
    #[serde(default)]
    architectures: Vec<String>,
}

fn read_text(path: &Path, what: &str) -> Result<String, ModelError> {
    std::fs::read_to_string(path).map_err(|e| ModelError::File {
        path: path.display().to_string(),
        reason: if e.kind() == std::io::ErrorKind::NotFound {
            format!("missing {what}")
        } else {
            format!("cannot read {what}: {e}")
        },
    })
}

impl HfClassifier {
    /// Loads a model directory in the Hub's layout. Errors name the file and what is wrong with
    /// it: a missing file, an unsupported architecture, a tensor missing or of the wrong shape,
    /// class names that do not say female and male.
    pub fn from_dir(dir: impl AsRef<Path>) -> Result<HfClassifier, ModelError> {
        let dir = dir.as_ref();
        let name = format!("hf:{}", dir.display());
        HfClassifier::load(dir, name)
    }

    /// Loads `repo` (`OWNER/NAME`) at `revision` (default `main`) from the Hugging Face cache,
    /// downloading it there first if needed, with the settings of the environment (`HF_HOME`,
    /// `HF_HUB_CACHE`, `HF_HUB_OFFLINE`, `HF_ENDPOINT`, `HF_TOKEN`).
    pub fn from_hub(repo: &str, revision: Option<&str>) -> Result<HfClassifier, ModelError> {
        HfClassifier::from_hub_with(repo, revision, &HubOptions::from_env())
    }

    /// [`HfClassifier::from_hub`] with explicit cache and network settings.
    pub fn from_hub_with(
        repo: &str,
        revision: Option<&str>,
        opts: &HubOptions,
    ) -> Result<HfClassifier, ModelError> {
        let dir = hub::fetch(repo, revision, opts)?;
        let name = match revision {
            Some(rev) => format!("hf:{repo}@{rev}"),
            None => format!("hf:{repo}"),
        };
        HfClassifier::load(&dir, name)
    }

    /// `hf:OWNER/NAME[@REVISION]` -> [`HfClassifier::from_hub`]; anything else is a directory.
    pub fn open(spec: &str) -> Result<HfClassifier, ModelError> {
        match parse_hub_spec(spec) {
            Some((repo, rev)) => HfClassifier::from_hub(&repo, rev.as_deref()),
            None => HfClassifier::from_dir(spec),
        }
    }

    fn load(dir: &Path, name: String) -> Result<HfClassifier, ModelError> {
        let started = std::time::Instant::now();
        if !dir.is_dir() {
            return Err(ModelError::File {
                path: dir.display().to_string(),
                reason: "not a directory".into(),
            });
        }
        let config_path = dir.join(CONFIG_FILE);
        let config_shown = config_path.display().to_string();
        let config_text = read_text(&config_path, "model config (config.json)")?;
        let config_format = |reason: String| ModelError::Format {
            path: config_shown.clone(),
            reason,
        };
        let config_json: serde_json::Value = serde_json::from_str(&config_text)
            .map_err(|e| config_format(format!("not JSON: {e}")))?;
        let head: ConfigHead = serde_json::from_value(config_json.clone())
            .map_err(|e| config_format(format!("bad `architectures`: {e}")))?;
        let architecture = match head.architectures.as_slice() {
            [one] => one.clone(),
            [] => {
                return Err(config_format(format!(
                    "no `architectures` entry; supported: {}",
                    SUPPORTED_ARCHITECTURES.join(", ")
                )));
            }
            many => {
                return Err(config_format(format!(
                    "several architectures {many:?}; expected one of: {}",
                    SUPPORTED_ARCHITECTURES.join(", ")
                )));
            }
        };
        if !SUPPORTED_ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(config_format(format!(
                "architecture {architecture} is not supported; supported: {}",
                SUPPORTED_ARCHITECTURES.join(", ")
            )));
        }

        // Architecture-specific config, labels and input size; the weights come last, because
        // they are the expensive part and everything else can be refused before reading them.
        let config = NetworkConfig::parse(&architecture, config_json).map_err(config_format)?;
        config.check(&config_shown)?;
        let class_names = labels_in_order(config.id2label(), &config_shown)?;
        let labels = gc_core::map_labels(&class_names, &config_shown)?;
        let input = config.input();
        let [channels, h, w] = input;
        if channels != 3 {
            return Err(config_format(format!(
                "num_channels {channels}: only RGB (3) models are supported"
            )));
        }
        // Read once all of config.json is known good: a broken or unsupported config.json was
        // reported as a missing preprocessor_config.json, sending the user to write the wrong
        // file.
        let preprocessor_path = dir.join(PREPROCESSOR_FILE);
        let preprocessor_text = read_text(
            &preprocessor_path,
            "preprocessing config (preprocessor_config.json)",
        )?;
        let preprocessor =
            Preprocessor::from_json(&preprocessor_text, &preprocessor_path.display().to_string())?;
        if let Some(out) = preprocessor.fixed_output()
            && out != [h, w]
        {
            return Err(ModelError::Format {
                path: preprocessor_path.display().to_string(),
                reason: format!(
                    "produces {}x{} images but config.json's image_size is {h}x{w}",
                    out[0], out[1]
                ),
            });
        }

        let device = Device::flex();
        let mut ckpt = Checkpoint::open_dir(dir, &device)?;
        let network = Network::load(&config, labels.len(), &mut ckpt)?;
        let unused = ckpt.unused();
        if !unused.is_empty() {
            // transformers warns and goes on in this case (e.g. a pooler saved with the model).
            tracing::warn!(
                model = %name,
                count = unused.len(),
                first = ?unused.iter().take(5).collect::<Vec<_>>(),
                "checkpoint tensors the architecture does not use"
            );
        }
        tracing::info!(
            model = %name,
            architecture = %architecture,
            labels = ?class_names,
            ms = started.elapsed().as_millis() as u64,
            "loaded Hugging Face model"
        );
        Ok(HfClassifier {
            name,
            architecture,
            labels,
            network,
            preprocessor,
            input,
            device,
            batch: 8,
        })
    }

    /// The `architectures` entry of the model's config.
    pub fn architecture(&self) -> &str {
        &self.architecture
    }

    /// The preprocessing read from `preprocessor_config.json`.
    pub fn preprocessor(&self) -> &Preprocessor {
        &self.preprocessor
    }

    /// `[channels, height, width]` the network takes.
    pub fn input_shape(&self) -> [usize; 3] {
        self.input
    }

    /// Sets how many images [`Classifier::classify`] runs through the network at once (at least 1).
    pub fn with_batch(mut self, batch: usize) -> HfClassifier {
        self.batch = batch.max(1);
        self
    }

    /// Logits for already-preprocessed input: `pixels` is `[batch, channels, height, width]`
    /// row-major, `shape` that shape. One row of logits per image, in `labels()` order. For
    /// parity tests and for callers that do their own preprocessing.
    pub fn logits(&self, pixels: &[f32], shape: [usize; 4]) -> Result<Vec<Vec<f32>>, ModelError> {
        let [b, c, h, w] = shape;
        if [c, h, w] != self.input || b == 0 {
            return Err(ModelError::Input(format!(
                "{} takes [batch >= 1, {}, {}, {}] pixels, got {shape:?}",
                self.name, self.input[0], self.input[1], self.input[2]
            )));
        }
        if pixels.len() != b * c * h * w {
            return Err(ModelError::Input(format!(
                "shape {shape:?} needs {} values, got {}",
                b * c * h * w,
                pixels.len()
            )));
        }
        let input = Tensor::<4>::from_data(TensorData::new(pixels.to_vec(), shape), &self.device);
        // [batch, labels]
        let logits = self.network.forward(input);
        let n = self.labels.len();
        let values = logits
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| ModelError::Run(format!("reading logits: {e:?}")))?;
        if values.len() != b * n {
            return Err(ModelError::Run(format!(
                "expected {b}x{n} logits, got {} values",
                values.len()
            )));
        }
        Ok(values.chunks(n).map(<[f32]>::to_vec).collect())
    }

    /// Preprocesses images as the model's `preprocessor_config.json` says, into one
    /// `[batch, 3, height, width]` buffer.
    pub fn preprocess(&self, images: &[RgbView<'_>]) -> Result<Vec<f32>, ModelError> {
        let [c, h, w] = self.input;
        let mut out = Vec::with_capacity(images.len() * c * h * w);
        for (i, image) in images.iter().enumerate() {
            let (pixels, size) = self.preprocessor.apply(image);
            if size != [h, w] {
                return Err(ModelError::Input(format!(
                    "image {i} ({}x{}) preprocesses to {}x{}, the model takes {w}x{h}",
                    image.width, image.height, size[1], size[0]
                )));
            }
            out.extend_from_slice(&pixels);
        }
        Ok(out)
    }
}

/// `id2label` in class-index order, refusing gaps and non-numeric keys.
fn labels_in_order(
    id2label: &std::collections::BTreeMap<String, String>,
    path: &str,
) -> Result<Vec<String>, ModelError> {
    let format = |reason: String| ModelError::Format {
        path: path.to_string(),
        reason,
    };
    if id2label.is_empty() {
        return Err(format(
            "no id2label: the class names are needed to know which output means female and which male"
                .into(),
        ));
    }
    let mut indexed: Vec<(usize, &String)> = id2label
        .iter()
        .map(|(k, v)| {
            k.trim()
                .parse::<usize>()
                .map(|i| (i, v))
                .map_err(|_| format(format!("id2label key {k:?} is not a class index")))
        })
        .collect::<Result<_, _>>()?;
    indexed.sort();
    for (expected, (i, _)) in indexed.iter().enumerate() {
        if *i != expected {
            return Err(format(format!(
                "id2label indices are not 0..{}: {:?}",
                indexed.len(),
                indexed.iter().map(|(i, _)| *i).collect::<Vec<_>>()
            )));
        }
    }
    Ok(indexed.into_iter().map(|(_, v)| v.clone()).collect())
}

impl Classifier for HfClassifier {
    fn name(&self) -> &str {
        &self.name
    }

    fn labels(&self) -> &[ClassLabel] {
        &self.labels
    }

    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let [c, h, w] = self.input;
        let mut out = Vec::with_capacity(images.len());
        for chunk in images.chunks(self.batch) {
            let pixels = self.preprocess(chunk)?;
            let logits = self.logits(&pixels, [chunk.len(), c, h, w])?;
            out.extend(logits.iter().map(|row| gc_core::softmax(row)));
        }
        Ok(out)
    }

    fn preferred_batch(&self) -> usize {
        self.batch
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn id2label_order_and_gaps() {
        let mut m = std::collections::BTreeMap::new();
        m.insert("1".to_string(), "male".to_string());
        m.insert("0".to_string(), "female".to_string());
        assert_eq!(labels_in_order(&m, "c").unwrap(), vec!["female", "male"]);
        m.insert("3".to_string(), "x".to_string());
        assert!(labels_in_order(&m, "c").is_err());
        let mut n = std::collections::BTreeMap::new();
        n.insert("a".to_string(), "male".to_string());
        assert!(labels_in_order(&n, "c").is_err());
    }
}
