//! The model architectures of gender-classifier, written with burn: one architecture per file,
//! each with a serialisable `Config` (saved as JSON beside the weights) and a forward pass from
//! NCHW `f32` images in `[0, 1]` to class logits.
//!
//! | file | architecture |
//! | --- | --- |
//! | [`cnn`] | the notebook CNN: 4 x (conv3x3 + BatchNorm + ReLU + maxpool), global average pool, linear |
//! | [`efficientnet_lite0`] | EfficientNet-Lite0, initialised from the ImageNet weights of the PyTorch port |
//!
//! [`batch_norm`], [`conv`] and [`max_pool`] are the layers they use on the CPU (`flex`), with
//! kernels of our own where burn's were the slow part of a training step or of inference; each
//! falls back to burn's layer elsewhere; they call `gemm` through `gc_core::matmul`.
//!
//! Normalisation (mean/std) is part of a model's config and applied inside `forward`, so a caller
//! always feeds `[0, 1]` pixels and cannot pair a model with the wrong statistics.
//!
//! [`weights`] saves and loads safetensors files with strict checks (every tensor present, every
//! shape right), returning [`gc_core::ModelError`] instead of panicking.

pub mod batch_norm;
pub mod cnn;
pub mod conv;
pub mod efficientnet_lite0;
mod flex;
pub mod max_pool;
#[cfg(test)]
mod testing;
pub mod weights;

pub use cnn::{Cnn, CnnConfig};
pub use efficientnet_lite0::{EfficientNetLite0, EfficientNetLite0Config};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

/// An image classifier: NCHW `f32` pixels in `[0, 1]` in, one row of logits per image out.
///
/// The training loop is generic over this trait, so every architecture trains the same way.
pub trait ImageClassifier: Module + Sized + 'static {
    /// `[batch, 3, height, width]` in `[0, 1]` -> `[batch, num_classes]` logits.
    fn forward(&self, images: Tensor<4>) -> Tensor<2>;
}

/// Per-channel normalisation, in the `[0, 1]` pixel scale: `(x - mean) / std`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f32; 3],
    pub std: [f32; 3],
}

impl Normalization {
    /// The statistics torchvision uses for ImageNet models.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };

    /// The "inception-style" statistics of TensorFlow's EfficientNet-Lite models: `(x*255 - 127) / 128`
    /// (`MEAN_RGB = [127.0] * 3`, `STDDEV_RGB = [128.0] * 3` in
    /// `tensorflow/tpu/models/official/efficientnet/lite/efficientnet_lite_builder.py`).
    pub const INCEPTION_127_128: Normalization = Normalization {
        mean: [127.0 / 255.0; 3],
        std: [128.0 / 255.0; 3],
    };

    /// Applies the normalisation to `[batch, 3, h, w]` images.
    pub fn apply(&self, images: Tensor<4>) -> Tensor<4> {
        let device = images.device();
        let mean = channel_tensor(self.mean, &device);
        let inv_std = channel_tensor(self.std.map(|s| 1.0 / s), &device);
        // [batch, 3, h, w] - [1, 3, 1, 1], broadcast
        (images - mean) * inv_std
    }
}

fn channel_tensor(values: [f32; 3], device: &Device) -> Tensor<4> {
    Tensor::<1>::from_floats(values, device).reshape([1, 3, 1, 1])
}

/// The default burn device of this project: the pure-Rust CPU backend `flex`.
pub fn cpu_device() -> Device {
    Device::flex()
}
