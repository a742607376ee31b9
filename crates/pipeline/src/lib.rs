//! The input pipeline of gender-classifier, the Rust counterpart of Keras'
//! `image_dataset_from_directory` and `tf.data`'s `cache()`, `shuffle()`, `batch()`, `prefetch()`:
//! it finds labelled images ([`folder`]), decodes them ([`decode`]), resizes, crops and flips them
//! ([`transform`]), and streams shuffled, cached, prefetched batches of plain `f32` buffers
//! ([`loader`]). It knows no ML framework; the training crate turns batches into tensors.
//!
//! ```no_run
//! use gc_pipeline::{ImageFolder, Pipeline, PipelineConfig};
//! let folder = ImageFolder::open("data/train")?;
//! let pipeline = Pipeline::new(folder.samples, PipelineConfig::train())?;
//! for epoch in 0..10 {
//!     for batch in pipeline.epoch(epoch) {
//!         // batch.images: [n, 3, 128, 128] f32 in [0, 1]; batch.labels: class indices.
//!         # let _ = batch;
//!     }
//! }
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod decode;
mod disk_cache;
pub mod folder;
pub mod loader;
pub mod transform;

pub use decode::{
    DecodeError, DecodeLimits, decode_rgb, decode_rgb_bytes, decode_rgb_bytes_with_limits,
    decode_rgb_with_limits,
};
pub use folder::{FolderError, ImageFolder, Sample};
pub use loader::{Augment, Batch, Cache, Epoch, Pipeline, PipelineConfig, PipelineError, Skipped};
pub use transform::{ColorJitter, Crop, Geometry, Size};
