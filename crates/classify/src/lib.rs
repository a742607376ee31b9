//! Classifying image files with any gender-classifier model: which model a `--model` value names,
//! which files the user means, and the batched, ordered, failure-tolerant run over them. The CLI's
//! `predict`, `eval`, `sort` and `serve` are thin layers over this crate.

pub mod annotate;
pub mod builtin;
pub mod calibrated;
pub mod inputs;
pub mod json;
pub mod labelled;
pub mod model;
pub mod photos;
pub mod place;
pub mod run;
#[cfg(test)]
mod testing;
pub mod tta;

pub use inputs::{Input, expand};
pub use labelled::{LabelledImage, ModelRun, read_labelled, run_labelled, thumbnail_data_uri};
pub use model::{ModelSpec, load};
pub use run::{Outcome, Prediction, classify_inputs};
