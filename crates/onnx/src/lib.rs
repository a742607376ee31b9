//! ONNX face classifiers for gender-classifier: an `.onnx` file run with tract (pure Rust, CPU)
//! behind gc-core's `Classifier`.
//!
//! A model needs a preprocessing spec ([`PreprocessSpec`]): input size, channel order, layout,
//! normalisation, crop framing, and where in its outputs the gender scores are. It is found, in
//! this order:
//! 1. the preset named by the caller (`--preset NAME`), one of [`presets()`];
//! 2. a JSON file beside the model, `<stem>.preprocess.json` (`model.onnx` -> `model.preprocess.json`);
//! 3. the preset whose name the model's file name contains (`dlib-cydral-gender-v1.opset13.onnx`
//!    gets `dlib-cydral-gender-v1`).
//!
//! Without any of them loading fails with a `ModelError::Format` that shows [`SPEC_SCHEMA`].
//!
//! Plain convolutions run as im2col and `gemm` rather than tract's own kernel (`conv.rs` says why),
//! 1x1 ones as one `gemm` call (`pointwise.rs`), depthwise ones by a kernel of our own
//! (`depthwise.rs`); a batch norm and ReLU after the last two are folded into them (`fold.rs`).

pub mod conv;
pub mod depthwise;
mod fold;
mod model;
pub mod pointwise;
mod preprocess;
mod presets;
pub mod read;
mod spec;
mod winograd;

pub use model::{DEFAULT_BATCH, OnnxClassifier, RawOutput, SpecSource, use_our_convolutions};
pub use presets::{Preset, preset, preset_for_file, presets};
pub use spec::{
    Channels, Crop, Filter, InputSpec, Layout, Normalize, OutputSpec, OutputTensor, PreprocessSpec,
    SPEC_SCHEMA, SPEC_SUFFIX, Scores,
};
