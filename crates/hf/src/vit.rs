//! `ViTForImageClassification` of Hugging Face transformers, in burn, loaded from the Hub's
//! checkpoint format.
//!
//! Upstream: `transformers/models/vit/modeling_vit.py`,
//! <https://github.com/huggingface/transformers/blob/main/src/transformers/models/vit/modeling_vit.py>
//! (and `configuration_vit.py` beside it for the config keys and their defaults).
//! Paper: Dosovitskiy et al., "An Image is Worth 16x16 Words: Transformers for Image Recognition at
//! Scale", <https://arxiv.org/abs/2010.11929>.
//!
//! One struct per upstream submodule, named and nested as upstream names them, so that a module
//! path here reads like the checkpoint's tensor names. Those names are mapped in one place,
//! [`names`]; transformers 5 renamed its Python modules (`layers.N.attention.q_proj`...) but still
//! saves, and the Hub still holds, the names below.
//!
//! Inference only: no dropout (transformers' `eval()`), no `interpolate_pos_encoding` (inputs are
//! resized to `image_size` by the preprocessor), no masked-image-modeling token, no pooler (the
//! classification model is built without it; a checkpoint that has one is told to the caller as
//! unused tensors).

use crate::activation::Activation;
pub use crate::common::Size2;
use crate::common::{first_tokens, patch_tokens, self_attention, token_linear};
use crate::weights::Checkpoint;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use gc_core::ModelError;
use serde::Deserialize;
use std::collections::BTreeMap;

/// The `architectures` entry of `config.json` this file implements.
pub const ARCHITECTURE: &str = "ViTForImageClassification";

/// `config.json` of a ViT checkpoint: the keys of transformers' `ViTConfig` that the forward pass
/// needs, with `ViTConfig`'s defaults for the ones a file leaves out (ViT-B/16 at 224 px).
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    #[serde(default = "defaults::hidden_size")]
    pub hidden_size: usize,
    #[serde(default = "defaults::num_hidden_layers")]
    pub num_hidden_layers: usize,
    #[serde(default = "defaults::num_attention_heads")]
    pub num_attention_heads: usize,
    #[serde(default = "defaults::intermediate_size")]
    pub intermediate_size: usize,
    #[serde(default = "defaults::hidden_act")]
    pub hidden_act: String,
    #[serde(default = "defaults::layer_norm_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "defaults::image_size")]
    pub image_size: Size2,
    #[serde(default = "defaults::patch_size")]
    pub patch_size: Size2,
    #[serde(default = "defaults::num_channels")]
    pub num_channels: usize,
    #[serde(default = "defaults::qkv_bias")]
    pub qkv_bias: bool,
    /// Class index (as a string key, as JSON has it) -> the model's own class name.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

mod defaults {
    use super::Size2;
    pub fn hidden_size() -> usize {
        768
    }
    pub fn num_hidden_layers() -> usize {
        12
    }
    pub fn num_attention_heads() -> usize {
        12
    }
    pub fn intermediate_size() -> usize {
        3072
    }
    pub fn hidden_act() -> String {
        "gelu".to_string()
    }
    pub fn layer_norm_eps() -> f64 {
        1e-12
    }
    pub fn image_size() -> Size2 {
        Size2::Square(224)
    }
    pub fn patch_size() -> Size2 {
        Size2::Square(16)
    }
    pub fn num_channels() -> usize {
        3
    }
    pub fn qkv_bias() -> bool {
        true
    }
}

impl Config {
    /// Refuses settings the forward pass cannot run, naming the key.
    pub fn check(&self, path: &str) -> Result<(), ModelError> {
        let fail = |reason: String| {
            Err(ModelError::Format {
                path: path.to_string(),
                reason,
            })
        };
        let [h, w] = self.image_size.hw();
        let [ph, pw] = self.patch_size.hw();
        if self.hidden_size == 0
            || self.num_attention_heads == 0
            || self.num_channels == 0
            || self.intermediate_size == 0
            || ph == 0
            || pw == 0
        {
            return fail("hidden_size, num_attention_heads, intermediate_size, num_channels and patch_size must be positive".into());
        }
        if !self.hidden_size.is_multiple_of(self.num_attention_heads) {
            return fail(format!(
                "hidden_size {} is not a multiple of num_attention_heads {}",
                self.hidden_size, self.num_attention_heads
            ));
        }
        if h == 0 || w == 0 || !h.is_multiple_of(ph) || !w.is_multiple_of(pw) {
            return fail(format!(
                "image_size {h}x{w} is not a whole number of {ph}x{pw} patches"
            ));
        }
        Activation::from_hf(&self.hidden_act).map_err(|reason| ModelError::Format {
            path: path.to_string(),
            reason,
        })?;
        Ok(())
    }

    /// Patches along height and width.
    fn grid(&self) -> [usize; 2] {
        let [h, w] = self.image_size.hw();
        let [ph, pw] = self.patch_size.hw();
        [h / ph, w / pw]
    }
}

/// The checkpoint's tensor names, in one place: `state_dict()` names of transformers'
/// `ViTForImageClassification` as saved on the Hub. `prefix.weight`/`prefix.bias` are appended by
/// the loader for linear, conv and layer-norm layers.
pub mod names {
    pub const CLS_TOKEN: &str = "vit.embeddings.cls_token";
    pub const POSITION_EMBEDDINGS: &str = "vit.embeddings.position_embeddings";
    pub const PATCH_PROJECTION: &str = "vit.embeddings.patch_embeddings.projection";
    /// Encoder layer `i`; the names below are relative to it.
    pub fn layer(i: usize) -> String {
        format!("vit.encoder.layer.{i}")
    }
    pub const QUERY: &str = "attention.attention.query";
    pub const KEY: &str = "attention.attention.key";
    pub const VALUE: &str = "attention.attention.value";
    pub const ATTENTION_OUTPUT: &str = "attention.output.dense";
    pub const INTERMEDIATE: &str = "intermediate.dense";
    pub const OUTPUT: &str = "output.dense";
    pub const LAYERNORM_BEFORE: &str = "layernorm_before";
    pub const LAYERNORM_AFTER: &str = "layernorm_after";
    pub const FINAL_LAYERNORM: &str = "vit.layernorm";
    pub const CLASSIFIER: &str = "classifier";
}

/// `ViTPatchEmbeddings`: a conv with kernel = stride = patch size.
#[derive(Module, Debug)]
pub struct ViTPatchEmbeddings {
    pub projection: Conv2d,
}

impl ViTPatchEmbeddings {
    /// `[batch, channels, height, width]` -> `[batch, patches, hidden]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        patch_tokens(&self.projection, pixels)
    }
}

/// `ViTEmbeddings`: patch embeddings, a learnt CLS token in front, learnt position embeddings added.
#[derive(Module, Debug)]
pub struct ViTEmbeddings {
    /// `[1, 1, hidden]`
    pub cls_token: Param<Tensor<3>>,
    /// `[1, patches + 1, hidden]`
    pub position_embeddings: Param<Tensor<3>>,
    pub patch_embeddings: ViTPatchEmbeddings,
}

impl ViTEmbeddings {
    /// `[batch, channels, height, width]` -> `[batch, tokens, hidden]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        // [batch, patches, hidden]
        let patches = self.patch_embeddings.forward(pixels);
        let [b, _, d] = patches.dims();
        // [batch, 1, hidden]
        let cls = self.cls_token.val().expand([b, 1, d]);
        // [batch, tokens, hidden] + [1, tokens, hidden]
        Tensor::cat(vec![cls, patches], 1) + self.position_embeddings.val()
    }
}

/// `ViTSelfAttention`: multi-head scaled dot-product attention over all tokens.
///
/// Upstream's three projections `query`, `key`, `value` are one [`Linear`] here, `hidden ->
/// 3 * hidden` (built from the three checkpoint tensors; why: [`self_attention`]).
#[derive(Module, Debug)]
pub struct ViTSelfAttention {
    pub query_key_value: Linear,
    pub num_heads: usize,
}

impl ViTSelfAttention {
    /// `[batch, tokens, hidden]` -> `[batch, queries, hidden]` (heads concatenated): the first
    /// `queries` tokens attending over all.
    pub fn forward(&self, x: Tensor<3>, queries: usize) -> Tensor<3> {
        self_attention(&self.query_key_value, self.num_heads, x, queries)
    }
}

/// `ViTSelfOutput`: the attention's output projection (the residual is added by the layer).
#[derive(Module, Debug)]
pub struct ViTSelfOutput {
    pub dense: Linear,
}

/// `ViTAttention`: self-attention and its output projection.
#[derive(Module, Debug)]
pub struct ViTAttention {
    pub attention: ViTSelfAttention,
    pub output: ViTSelfOutput,
}

impl ViTAttention {
    /// `[batch, tokens, hidden]` -> `[batch, queries, hidden]`.
    pub fn forward(&self, x: Tensor<3>, queries: usize) -> Tensor<3> {
        token_linear(&self.output.dense, self.attention.forward(x, queries))
    }
}

/// `ViTIntermediate`: the MLP's expansion and activation.
#[derive(Module, Debug)]
pub struct ViTIntermediate {
    pub dense: Linear,
    #[module(skip)]
    pub activation: Activation,
}

impl ViTIntermediate {
    /// `[batch, tokens, hidden]` -> `[batch, tokens, intermediate]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        self.activation.forward(token_linear(&self.dense, x))
    }
}

/// `ViTOutput`: the MLP's projection back to the hidden size, plus the residual.
#[derive(Module, Debug)]
pub struct ViTOutput {
    pub dense: Linear,
}

impl ViTOutput {
    /// `[batch, tokens, intermediate]`, residual `[batch, tokens, hidden]` -> `[batch, tokens, hidden]`.
    pub fn forward(&self, x: Tensor<3>, residual: Tensor<3>) -> Tensor<3> {
        token_linear(&self.dense, x) + residual
    }
}

/// `ViTLayer`: a pre-norm transformer block.
#[derive(Module, Debug)]
pub struct ViTLayer {
    pub attention: ViTAttention,
    pub intermediate: ViTIntermediate,
    pub output: ViTOutput,
    pub layernorm_before: LayerNorm,
    pub layernorm_after: LayerNorm,
}

impl ViTLayer {
    /// `[batch, tokens, hidden]` -> `[batch, queries, hidden]`: the outputs of the first `queries`
    /// tokens (every token's keys and values are still computed, as they all attend).
    pub fn forward(&self, x: Tensor<3>, queries: usize) -> Tensor<3> {
        let attended = self
            .attention
            .forward(self.layernorm_before.forward(x.clone()), queries)
            + first_tokens(x, queries);
        let expanded = self
            .intermediate
            .forward(self.layernorm_after.forward(attended.clone()));
        self.output.forward(expanded, attended)
    }
}

/// `ViTEncoder`: the stack of layers.
#[derive(Module, Debug)]
pub struct ViTEncoder {
    pub layer: Vec<ViTLayer>,
}

impl ViTEncoder {
    /// `[batch, tokens, hidden]` -> `[batch, queries, hidden]`: the last layer computes only the
    /// first `queries` tokens' outputs, since nothing after it reads the others.
    pub fn forward(&self, mut x: Tensor<3>, queries: usize) -> Tensor<3> {
        let last = self.layer.len().saturating_sub(1);
        for (i, layer) in self.layer.iter().enumerate() {
            let tokens = x.dims()[1];
            x = layer.forward(x, if i == last { queries } else { tokens });
        }
        x
    }
}

/// `ViTModel` without pooler: embeddings, encoder, final layer norm.
#[derive(Module, Debug)]
pub struct ViTModel {
    pub embeddings: ViTEmbeddings,
    pub encoder: ViTEncoder,
    pub layernorm: LayerNorm,
}

impl ViTModel {
    /// `[batch, channels, height, width]` -> `[batch, queries, hidden]`, the final states of the
    /// first `queries` tokens (the CLS token first; all of them: the token count, 1 + patches).
    pub fn forward(&self, pixels: Tensor<4>, queries: usize) -> Tensor<3> {
        let x = self.embeddings.forward(pixels);
        self.layernorm
            .forward(first_tokens(self.encoder.forward(x, queries), queries))
    }
}

/// `ViTForImageClassification`: a linear classifier on the final CLS token.
#[derive(Module, Debug)]
pub struct ViTForImageClassification {
    pub vit: ViTModel,
    pub classifier: Linear,
}

impl ViTForImageClassification {
    /// `[batch, channels, height, width]` normalised pixels -> `[batch, labels]` logits.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        // Only the CLS token's final state is read, so the last layer computes only its row: about
        // 6% of ViT-B/16's work saved (its MLP, output projection and attention for 196 patches).
        let x = self.vit.forward(pixels, 1);
        let [b, _, d] = x.dims();
        // [batch, hidden]
        self.classifier.forward(x.reshape([b, d]))
    }

    /// Builds the model from a checkpoint, every tensor's shape checked against `config`.
    pub fn load(
        config: &Config,
        num_labels: usize,
        ckpt: &mut Checkpoint,
    ) -> Result<ViTForImageClassification, ModelError> {
        let d = config.hidden_size;
        let c = config.num_channels;
        let [ph, pw] = config.patch_size.hw();
        let [gh, gw] = config.grid();
        let eps = config.layer_norm_eps;
        let activation =
            Activation::from_hf(&config.hidden_act).map_err(|reason| ModelError::Format {
                path: "config.json".into(),
                reason,
            })?;

        let projection = ckpt.patch_conv(names::PATCH_PROJECTION, c, d, [ph, pw])?;
        let embeddings = ViTEmbeddings {
            cls_token: Param::from_tensor(ckpt.tensor(names::CLS_TOKEN, [1, 1, d])?),
            position_embeddings: Param::from_tensor(
                ckpt.tensor(names::POSITION_EMBEDDINGS, [1, gh * gw + 1, d])?,
            ),
            patch_embeddings: ViTPatchEmbeddings { projection },
        };

        let mut layers = Vec::with_capacity(config.num_hidden_layers);
        for i in 0..config.num_hidden_layers {
            let p = names::layer(i);
            let qkv_names = [names::QUERY, names::KEY, names::VALUE].map(|n| format!("{p}.{n}"));
            let qkv = qkv_names.each_ref().map(String::as_str);
            layers.push(ViTLayer {
                attention: ViTAttention {
                    attention: ViTSelfAttention {
                        query_key_value: ckpt.linear_fused(&qkv, d, d, config.qkv_bias)?,
                        num_heads: config.num_attention_heads,
                    },
                    output: ViTSelfOutput {
                        dense: ckpt.linear(
                            &format!("{p}.{}", names::ATTENTION_OUTPUT),
                            d,
                            d,
                            true,
                        )?,
                    },
                },
                intermediate: ViTIntermediate {
                    dense: ckpt.linear(
                        &format!("{p}.{}", names::INTERMEDIATE),
                        d,
                        config.intermediate_size,
                        true,
                    )?,
                    activation,
                },
                output: ViTOutput {
                    dense: ckpt.linear(
                        &format!("{p}.{}", names::OUTPUT),
                        config.intermediate_size,
                        d,
                        true,
                    )?,
                },
                layernorm_before: ckpt.layer_norm(
                    &format!("{p}.{}", names::LAYERNORM_BEFORE),
                    d,
                    eps,
                )?,
                layernorm_after: ckpt.layer_norm(
                    &format!("{p}.{}", names::LAYERNORM_AFTER),
                    d,
                    eps,
                )?,
            });
        }

        Ok(ViTForImageClassification {
            vit: ViTModel {
                embeddings,
                encoder: ViTEncoder { layer: layers },
                layernorm: ckpt.layer_norm(names::FINAL_LAYERNORM, d, eps)?,
            },
            classifier: ckpt.linear(names::CLASSIFIER, d, num_labels, true)?,
        })
    }
}
