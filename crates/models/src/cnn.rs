//! The notebook CNN: the small network of the project's original Keras notebook, rebuilt in burn.
//!
//! `blocks x [conv3x3 (padding "same") -> BatchNorm -> ReLU -> maxpool 2x2]`, channels 32-64-128-256
//! by default, then global average pooling, optional dropout and a linear layer to the classes.
//! The convolutions carry no bias: the BatchNorm that follows has its own shift.
//! Input: `[batch, 3, h, w]` `f32` in `[0, 1]`; any `h, w` that survive the poolings (16 and up
//! with 4 blocks).

use crate::batch_norm::batch_norm;
use crate::conv::conv2d;
use crate::max_pool::max_pool2d;
use crate::{ImageClassifier, Normalization};
use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::nn::{PaddingConfig2d, Relu};
use burn::tensor::{Device, Tensor};

/// The architecture's settings, saved as JSON in the model directory.
#[derive(Config, Debug, PartialEq)]
pub struct CnnConfig {
    /// Output channels of each block; one block per entry.
    #[config(default = "vec![32, 64, 128, 256]")]
    pub channels: Vec<usize>,
    #[config(default = 2)]
    pub num_classes: usize,
    /// Dropout before the classifier; 0 disables it.
    #[config(default = 0.0)]
    pub dropout: f64,
    /// Applied inside `forward` to `[0, 1]` input; `None` feeds the pixels as they are.
    #[config(default = "None")]
    pub normalization: Option<Normalization>,
    /// BatchNorm running-statistics momentum (PyTorch's convention: weight of the new batch).
    #[config(default = 0.1)]
    pub batch_norm_momentum: f64,
}

impl CnnConfig {
    /// A CNN with few channels, for fast tests.
    pub fn tiny() -> Self {
        CnnConfig::new().with_channels(vec![8, 16, 16, 32])
    }

    /// Builds the model with freshly initialised weights (from the device's random generator:
    /// seed it first with `device.seed(..)` for reproducible weights).
    pub fn init(&self, device: &Device) -> Cnn {
        let mut in_channels = 3;
        let blocks = self
            .channels
            .iter()
            .map(|&out| {
                let block = ConvBlock {
                    conv: Conv2dConfig::new([in_channels, out], [3, 3])
                        .with_padding(PaddingConfig2d::Same)
                        .with_bias(false)
                        .init(device),
                    bn: BatchNormConfig::new(out)
                        .with_momentum(self.batch_norm_momentum)
                        .init(device),
                    activation: Relu::new(),
                    pool: MaxPool2dConfig::new([2, 2]).with_strides([2, 2]).init(),
                };
                in_channels = out;
                block
            })
            .collect();
        Cnn {
            blocks,
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(in_channels, self.num_classes).init(device),
            normalization: self.normalization,
        }
    }
}

/// conv3x3 -> BatchNorm -> ReLU -> maxpool 2x2.
#[derive(Module, Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub bn: BatchNorm,
    pub activation: Relu,
    pub pool: MaxPool2d,
}

impl ConvBlock {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // [b, c_in, h, w] -> [b, c_out, h/2, w/2]
        let x = batch_norm(&self.bn, conv2d(&self.conv, x));
        max_pool2d(&self.pool, self.activation.forward(x))
    }
}

/// The notebook CNN. Build it with [`CnnConfig::init`].
#[derive(Module, Debug)]
pub struct Cnn {
    pub blocks: Vec<ConvBlock>,
    pub pool: AdaptiveAvgPool2d,
    pub dropout: Dropout,
    pub classifier: Linear,
    #[module(skip)]
    pub normalization: Option<Normalization>,
}

impl ImageClassifier for Cnn {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        let mut x = match &self.normalization {
            Some(n) => n.apply(images),
            None => images,
        };
        for block in &self.blocks {
            x = block.forward(x);
        }
        // [b, c, h, w] -> [b, c, 1, 1] -> [b, c]
        let x = self.pool.forward(x).flatten::<2>(1, 3);
        self.classifier.forward(self.dropout.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::module::Module;

    #[test]
    fn shapes_and_parameter_count() {
        let device = crate::cpu_device();
        let model = CnnConfig::new().init(&device);
        let logits = model.forward(Tensor::zeros([2, 3, 64, 64], &device));
        assert_eq!(logits.dims(), [2, 2]);
        // conv weights (no bias) + BN gamma/beta + linear, as in the PyTorch peer; burn also counts
        // the BN running mean and variance.
        let convs = 3 * 32 * 9 + 32 * 64 * 9 + 64 * 128 * 9 + 128 * 256 * 9;
        let bns = 4 * (32 + 64 + 128 + 256);
        let linear = 256 * 2 + 2;
        assert_eq!(model.num_params(), convs + bns + linear);
    }

    #[test]
    fn config_round_trips_through_json() {
        let config = CnnConfig::tiny()
            .with_dropout(0.25)
            .with_normalization(Some(Normalization::IMAGENET));
        let json = serde_json::to_string(&config).unwrap();
        let back: CnnConfig = serde_json::from_str(&json).unwrap();
        assert_eq!(back, config);
    }

    #[test]
    fn normalization_is_applied() {
        let device = crate::cpu_device();
        let n = Normalization::INCEPTION_127_128;
        let x = Tensor::<4>::ones([1, 3, 2, 2], &device);
        let y: Vec<f32> = n.apply(x).into_data().try_into_vec().unwrap();
        // (255 - 127) / 128 = 1
        assert!(y.iter().all(|v| (v - 1.0).abs() < 1e-6), "{y:?}");
    }
}
