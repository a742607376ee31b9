//! The preprocessing spec of an ONNX face classifier: what size, channel order, layout and
//! normalisation its input wants, how a face crop is framed, and where in its outputs the gender
//! scores are. Read from a JSON file beside the model (`<stem>.preprocess.json`) or built in for a
//! known model (see `presets`).

use gc_core::ModelError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The suffix of the spec file that sits beside a model: `model.onnx` -> `model.preprocess.json`.
pub const SPEC_SUFFIX: &str = ".preprocess.json";

/// An annotated example of a spec file, shown to users whose model comes without one.
pub const SPEC_SCHEMA: &str = r#"{
  "name": "my-gender-model",            // optional: the name in reports (default: the file stem)
  "input": {
    "width": 64, "height": 64,          // the model's input size in pixels
    "channels": "rgb",                  // "rgb" or "bgr": channel order of the input tensor
    "layout": "nchw"                    // "nchw" or "nhwc" (default "nchw")
  },
  "normalize": {                        // value = (pixel * scale - mean[c]) / std[c], pixel in 0..255,
    "scale": 1.0,                       //   mean and std in the input tensor's channel order
    "mean": [0.0, 0.0, 0.0],            //   raw 0..255: scale 1, mean 0, std 1 (the defaults)
    "std": [1.0, 1.0, 1.0]              //   (x - 127) / 128: mean 127, std 128; 0..1: scale 1/255
  },
  "crop": { "mode": "whole" },          // "whole" face crop, or {"mode": "trim", "fraction": 0.05}
                                        //   to cut 5% off each border, or {"mode": "margin",
                                        //   "fraction": 0.2} to add 20% (edge pixels repeated)
  "filter": "triangle",                 // resize filter: "nearest", "triangle", "catmull_rom", "lanczos3"
  "output": {
    "tensor": 0,                        // output index or name, e.g. "probabilities"
    "offset": 0,                        // where the gender scores start in each image's output row
    "scores": "logits"                  // "logits" (softmax applied) or "probabilities"
  },
  "labels": ["female", "male"],         // the classes in output order
  "batch": 1                            // optional: images per tract run (default 1, the fastest
                                        //   for CNNs on CPU; runs go in parallel)
}
(JSON has no comments: leave them out of the file.)"#;

/// Channel order of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    Rgb,
    Bgr,
}

/// Memory layout of the input tensor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layout {
    #[default]
    Nchw,
    Nhwc,
}

/// The model's input image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InputSpec {
    pub width: u32,
    pub height: u32,
    pub channels: Channels,
    #[serde(default)]
    pub layout: Layout,
}

/// `value = (pixel * scale - mean[c]) / std[c]`, with `pixel` in 0..=255 and `c` the channel's
/// position in the input tensor (so a BGR model lists its blue mean first).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalize {
    #[serde(default = "one")]
    pub scale: f32,
    #[serde(default)]
    pub mean: [f32; 3],
    #[serde(default = "ones")]
    pub std: [f32; 3],
}

fn one() -> f32 {
    1.0
}

fn ones() -> [f32; 3] {
    [1.0; 3]
}

impl Default for Normalize {
    fn default() -> Self {
        Normalize {
            scale: 1.0,
            mean: [0.0; 3],
            std: [1.0; 3],
        }
    }
}

/// How the face crop we are given is framed before it is resized to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Crop {
    /// The whole crop, stretched to the input size.
    #[default]
    Whole,
    /// Cut `fraction` of the width and height off each border: for models trained on tighter crops.
    Trim { fraction: f32 },
    /// Add `fraction` of the width and height on each border, repeating the edge pixels: for models
    /// trained on looser crops.
    Margin { fraction: f32 },
}

/// The resampling filter of the resize to the input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Filter {
    Nearest,
    /// Bilinear, widened when shrinking so that every source pixel counts (like PIL's BILINEAR).
    #[default]
    Triangle,
    CatmullRom,
    Lanczos3,
}

/// Which output tensor holds the gender scores: by position or by the name in the ONNX graph.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum OutputTensor {
    Index(usize),
    Name(String),
}

impl Default for OutputTensor {
    fn default() -> Self {
        OutputTensor::Index(0)
    }
}

/// What the selected scores are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Scores {
    /// Unnormalised: softmax is applied over the slice.
    Logits,
    /// Already probabilities: the slice is renormalised to sum to 1 (it may be part of a larger
    /// distribution).
    Probabilities,
}

/// Where the gender scores are: `labels.len()` values from `offset` in each image's row of the
/// tensor (everything after the batch dimension, flattened).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OutputSpec {
    #[serde(default)]
    pub tensor: OutputTensor,
    #[serde(default)]
    pub offset: usize,
    pub scores: Scores,
}

/// Everything needed to turn face crops into the model's input and its output into probabilities.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreprocessSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub input: InputSpec,
    #[serde(default)]
    pub normalize: Normalize,
    #[serde(default)]
    pub crop: Crop,
    #[serde(default)]
    pub filter: Filter,
    pub output: OutputSpec,
    pub labels: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch: Option<usize>,
}

/// The largest input side we accept: a larger one is far more likely a typo than a face model.
const MAX_SIDE: u32 = 4096;

impl PreprocessSpec {
    /// Where the spec of `model` is looked for: `dir/model.onnx` -> `dir/model.preprocess.json`.
    pub fn sidecar_path(model: &Path) -> PathBuf {
        let stem = model
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        model.with_file_name(format!("{stem}{SPEC_SUFFIX}"))
    }

    /// Reads and checks a spec file.
    pub fn from_json_file(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|e| ModelError::File {
            path: path.display().to_string(),
            reason: format!("cannot read the preprocessing spec: {e}"),
        })?;
        Self::from_json(&text, &path.display().to_string())
    }

    /// Parses and checks a spec; `origin` names it in errors.
    pub fn from_json(text: &str, origin: &str) -> Result<Self, ModelError> {
        let spec: PreprocessSpec = serde_json::from_str(text).map_err(|e| ModelError::Format {
            path: origin.to_string(),
            reason: format!("not a valid preprocessing spec: {e}\nexpected:\n{SPEC_SCHEMA}"),
        })?;
        spec.validate(origin)?;
        Ok(spec)
    }

    /// Refuses values that parse but cannot work: zero sizes, zero std, absurd crop fractions.
    pub fn validate(&self, origin: &str) -> Result<(), ModelError> {
        let bad = |reason: String| ModelError::Format {
            path: origin.to_string(),
            reason,
        };
        let InputSpec { width, height, .. } = self.input;
        if !(1..=MAX_SIDE).contains(&width) || !(1..=MAX_SIDE).contains(&height) {
            return Err(bad(format!(
                "input size {width}x{height} is outside 1..={MAX_SIDE}"
            )));
        }
        let n = &self.normalize;
        if !n.scale.is_finite() || n.scale == 0.0 {
            return Err(bad(format!(
                "normalize.scale must be finite and non-zero, got {}",
                n.scale
            )));
        }
        if n.mean.iter().any(|m| !m.is_finite()) {
            return Err(bad(format!(
                "normalize.mean must be finite, got {:?}",
                n.mean
            )));
        }
        if n.std.iter().any(|s| !s.is_finite() || *s == 0.0) {
            return Err(bad(format!(
                "normalize.std must be finite and non-zero, got {:?}",
                n.std
            )));
        }
        match self.crop {
            Crop::Whole => {}
            // Trimming half of each side or more would leave nothing.
            Crop::Trim { fraction } if !(0.0..0.45).contains(&fraction) => {
                return Err(bad(format!(
                    "crop trim fraction must be in [0, 0.45), got {fraction}"
                )));
            }
            Crop::Margin { fraction } if !(0.0..=2.0).contains(&fraction) => {
                return Err(bad(format!(
                    "crop margin fraction must be in [0, 2], got {fraction}"
                )));
            }
            Crop::Trim { .. } | Crop::Margin { .. } => {}
        }
        if self.labels.len() < 2 {
            return Err(bad(format!(
                "labels must name at least two classes, got {:?}",
                self.labels
            )));
        }
        if let Some(b) = self.batch.filter(|b| !(1..=gc_core::MAX_BATCH).contains(b)) {
            return Err(bad(format!(
                "batch must be in 1..={}, got {b}",
                gc_core::MAX_BATCH
            )));
        }
        Ok(())
    }

    /// Floats per image in the input tensor.
    pub fn image_len(&self) -> usize {
        self.input.width as usize * self.input.height as usize * 3
    }

    /// The input tensor's shape for `batch` images.
    pub fn input_shape(&self, batch: usize) -> [usize; 4] {
        let (w, h) = (self.input.width as usize, self.input.height as usize);
        match self.input.layout {
            Layout::Nchw => [batch, 3, h, w],
            Layout::Nhwc => [batch, h, w, 3],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"{
        "input": {"width": 32, "height": 24, "channels": "bgr"},
        "output": {"scores": "logits"},
        "labels": ["female", "male"]
    }"#;

    #[test]
    fn minimal_spec_takes_defaults() {
        let s = PreprocessSpec::from_json(MINIMAL, "m.json").unwrap();
        assert_eq!(s.input.layout, Layout::Nchw);
        assert_eq!(s.normalize, Normalize::default());
        assert_eq!(s.crop, Crop::Whole);
        assert_eq!(s.filter, Filter::Triangle);
        assert_eq!(s.output.tensor, OutputTensor::Index(0));
        assert_eq!(s.output.offset, 0);
        assert_eq!(s.input_shape(5), [5, 3, 24, 32]);
        assert_eq!(s.image_len(), 32 * 24 * 3);
    }

    #[test]
    fn full_spec_round_trips() {
        let text = r#"{
            "name": "x",
            "input": {"width": 8, "height": 8, "channels": "rgb", "layout": "nhwc"},
            "normalize": {"scale": 0.00392156862, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]},
            "crop": {"mode": "margin", "fraction": 0.25},
            "filter": "catmull_rom",
            "output": {"tensor": "gender", "offset": 2, "scores": "probabilities"},
            "labels": ["woman", "man"],
            "batch": 4
        }"#;
        let s = PreprocessSpec::from_json(text, "x.json").unwrap();
        assert_eq!(s.crop, Crop::Margin { fraction: 0.25 });
        assert_eq!(s.output.tensor, OutputTensor::Name("gender".into()));
        assert_eq!(s.input_shape(2), [2, 8, 8, 3]);
        let again = serde_json::to_string(&s).unwrap();
        assert_eq!(PreprocessSpec::from_json(&again, "again").unwrap(), s);
    }

    #[test]
    fn bad_specs_are_format_errors_naming_the_file() {
        for text in [
            "not json",
            r#"{"input": {"width": 8, "height": 8, "channels": "rgb"}, "labels": ["female", "male"]}"#,
            r#"{"input": {"width": 0, "height": 8, "channels": "rgb"}, "output": {"scores": "logits"}, "labels": ["female", "male"]}"#,
            r#"{"input": {"width": 8, "height": 8, "channels": "rgb"}, "normalize": {"std": [1, 0, 1]}, "output": {"scores": "logits"}, "labels": ["female", "male"]}"#,
            r#"{"input": {"width": 8, "height": 8, "channels": "rgb"}, "crop": {"mode": "trim", "fraction": 0.5}, "output": {"scores": "logits"}, "labels": ["female", "male"]}"#,
            r#"{"input": {"width": 8, "height": 8, "channels": "rgb"}, "output": {"scores": "logits"}, "labels": ["female", "male"], "colour": "yes"}"#,
            r#"{"input": {"width": 8, "height": 8, "channels": "yuv"}, "output": {"scores": "logits"}, "labels": ["female", "male"]}"#,
            r#"{"input": {"width": 8, "height": 8, "channels": "rgb"}, "output": {"scores": "logits"}, "labels": ["female", "male"], "batch": 0}"#,
            // `sort` made a queue of this many slots and aborted.
            r#"{"input": {"width": 8, "height": 8, "channels": "rgb"}, "output": {"scores": "logits"}, "labels": ["female", "male"], "batch": 1000000000000}"#,
        ] {
            match PreprocessSpec::from_json(text, "dir/m.preprocess.json") {
                Err(ModelError::Format { path, .. }) => assert_eq!(path, "dir/m.preprocess.json"),
                other => panic!("{text}: {other:?}"),
            }
        }
    }

    #[test]
    fn sidecar_sits_beside_the_model() {
        assert_eq!(
            PreprocessSpec::sidecar_path(Path::new("/m/a.opset13.onnx")),
            PathBuf::from("/m/a.opset13.preprocess.json")
        );
    }
}
