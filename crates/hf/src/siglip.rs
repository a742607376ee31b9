//! `SiglipForImageClassification` of Hugging Face transformers, in burn, loaded from the Hub's
//! checkpoint format: SigLIP's vision tower with a linear classifier on the mean of its tokens.
//!
//! Upstream: `transformers/models/siglip/modeling_siglip.py`,
//! <https://github.com/huggingface/transformers/blob/main/src/transformers/models/siglip/modeling_siglip.py>
//! (and `configuration_siglip.py` beside it for the config keys and their defaults).
//! Paper: Zhai et al., "Sigmoid Loss for Language Image Pre-Training",
//! <https://arxiv.org/abs/2303.15343>.
//!
//! Against ViT ([`crate::vit`]): no CLS token, position embeddings an `nn.Embedding` of one row
//! per patch, a final `post_layernorm`, and the classifier reads the mean over all tokens. Upstream
//! builds and runs the attention-pooling head (`vision_model.head`, when `vision_use_head`), but
//! its output (`pooler_output`) never reaches the logits, so it is not built here and its tensors
//! are skipped, not reported as unused. The same holds for checkpoints fine-tuned from SigLIP 2's
//! fixed-resolution models (`google/siglip2-base-patch16-224`...), which transformers loads as
//! this architecture with `model_type` `siglip`.
//!
//! One struct per upstream submodule, named and nested as upstream names them; the checkpoint's
//! tensor names are mapped in one place, [`names`].
//!
//! Inference only: no dropout, no `interpolate_pos_encoding` (inputs are resized to `image_size` by
//! the preprocessor), no text tower (`text_config` is read by nothing here).

use crate::activation::Activation;
use crate::common::{Size2, patch_tokens, self_attention, token_linear};
use crate::weights::Checkpoint;
use burn::module::{Module, Param};
use burn::nn::conv::Conv2d;
use burn::nn::{LayerNorm, Linear};
use burn::tensor::Tensor;
use gc_core::ModelError;
use serde::{Deserialize, Deserializer};
use std::collections::BTreeMap;

/// The `architectures` entry of `config.json` this file implements.
pub const ARCHITECTURE: &str = "SiglipForImageClassification";

/// `config.json` of a `SiglipForImageClassification` checkpoint (transformers' `SiglipConfig`):
/// the vision tower's settings nested under `vision_config`, the class names at the top level.
#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// Absent or `null`: `SiglipVisionConfig`'s defaults, as transformers takes it.
    #[serde(default, deserialize_with = "default_if_null")]
    pub vision_config: VisionConfig,
    /// Class index (as a string key, as JSON has it) -> the model's own class name.
    #[serde(default)]
    pub id2label: BTreeMap<String, String>,
}

/// `vision_config` of a SigLIP `config.json`: the keys of transformers' `SiglipVisionConfig` that
/// the forward pass needs, with its defaults for the ones a file leaves out (SigLIP-B/16 at 224 px).
#[derive(Debug, Clone, Deserialize)]
#[serde(default)]
pub struct VisionConfig {
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub num_channels: usize,
    pub image_size: Size2,
    pub patch_size: Size2,
    pub hidden_act: String,
    pub layer_norm_eps: f64,
    /// Whether the checkpoint has the attention-pooling head (`vision_model.head.*`).
    pub vision_use_head: bool,
}

impl Default for VisionConfig {
    fn default() -> VisionConfig {
        VisionConfig {
            hidden_size: 768,
            intermediate_size: 3072,
            num_hidden_layers: 12,
            num_attention_heads: 12,
            num_channels: 3,
            image_size: Size2::Square(224),
            patch_size: Size2::Square(16),
            hidden_act: "gelu_pytorch_tanh".to_string(),
            layer_norm_eps: 1e-6,
            vision_use_head: true,
        }
    }
}

fn default_if_null<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(
    d: D,
) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(d)?.unwrap_or_default())
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
        let v = &self.vision_config;
        let [h, w] = v.image_size.hw();
        let [ph, pw] = v.patch_size.hw();
        if v.hidden_size == 0
            || v.num_attention_heads == 0
            || v.intermediate_size == 0
            || v.num_channels == 0
            || ph == 0
            || pw == 0
        {
            return fail("vision_config: hidden_size, num_attention_heads, intermediate_size, num_channels and patch_size must be positive".into());
        }
        if !v.hidden_size.is_multiple_of(v.num_attention_heads) {
            return fail(format!(
                "vision_config.hidden_size {} is not a multiple of vision_config.num_attention_heads {}",
                v.hidden_size, v.num_attention_heads
            ));
        }
        // Not a multiple is allowed: upstream's conv drops the pixels beyond the last whole patch
        // (`siglip-so400m-patch14-384`: 27 patches of 14 px on 384).
        if h < ph || w < pw {
            return fail(format!(
                "vision_config.image_size {h}x{w} is smaller than one {ph}x{pw} patch"
            ));
        }
        Activation::from_hf(&v.hidden_act).map_err(|reason| ModelError::Format {
            path: path.to_string(),
            reason: format!("vision_config.{reason}"),
        })?;
        Ok(())
    }

    /// `[height, width]` of the input image.
    pub fn image_hw(&self) -> [usize; 2] {
        self.vision_config.image_size.hw()
    }

    /// Patches along height and width: whole patches only, as a `padding="valid"` conv makes them.
    fn grid(&self) -> [usize; 2] {
        let [h, w] = self.vision_config.image_size.hw();
        let [ph, pw] = self.vision_config.patch_size.hw();
        [h / ph, w / pw]
    }
}

/// The checkpoint's tensor names, in one place: `state_dict()` names of transformers'
/// `SiglipForImageClassification` as saved on the Hub. `prefix.weight`/`prefix.bias` are appended
/// by the loader for linear, conv and layer-norm layers.
pub mod names {
    pub const PATCH_EMBEDDING: &str = "vision_model.embeddings.patch_embedding";
    /// An `nn.Embedding`: the full name, `[patches, hidden]`.
    pub const POSITION_EMBEDDING: &str = "vision_model.embeddings.position_embedding.weight";
    /// Encoder layer `i`; the names below are relative to it.
    pub fn layer(i: usize) -> String {
        format!("vision_model.encoder.layers.{i}")
    }
    pub const Q_PROJ: &str = "self_attn.q_proj";
    pub const K_PROJ: &str = "self_attn.k_proj";
    pub const V_PROJ: &str = "self_attn.v_proj";
    pub const OUT_PROJ: &str = "self_attn.out_proj";
    pub const LAYER_NORM1: &str = "layer_norm1";
    pub const LAYER_NORM2: &str = "layer_norm2";
    pub const FC1: &str = "mlp.fc1";
    pub const FC2: &str = "mlp.fc2";
    pub const POST_LAYERNORM: &str = "vision_model.post_layernorm";
    /// The attention-pooling head, whose output the classifier does not read.
    pub const HEAD: &str = "vision_model.head.";
    pub const CLASSIFIER: &str = "classifier";
}

/// `SiglipVisionEmbeddings`: patch embeddings plus learnt position embeddings, no CLS token.
#[derive(Module, Debug)]
pub struct SiglipVisionEmbeddings {
    /// A conv with kernel = stride = patch size.
    pub patch_embedding: Conv2d,
    /// `[1, patches, hidden]` (upstream's `[patches, hidden]` embedding table, all rows in order).
    pub position_embedding: Param<Tensor<3>>,
}

impl SiglipVisionEmbeddings {
    /// `[batch, channels, height, width]` -> `[batch, patches, hidden]`.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        // [batch, patches, hidden] + [1, patches, hidden]
        patch_tokens(&self.patch_embedding, pixels) + self.position_embedding.val()
    }
}

/// `SiglipAttention`: multi-head self-attention and its output projection.
///
/// Upstream's `q_proj`, `k_proj`, `v_proj` are one [`Linear`] here, `hidden -> 3 * hidden` (why:
/// [`self_attention`]); its scale is upstream's `head_dim ** -0.5`.
#[derive(Module, Debug)]
pub struct SiglipAttention {
    pub qkv_proj: Linear,
    pub out_proj: Linear,
    pub num_heads: usize,
}

impl SiglipAttention {
    /// `[batch, tokens, hidden]` -> `[batch, tokens, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        // Every token's output: the classifier averages them all.
        let tokens = x.dims()[1];
        token_linear(
            &self.out_proj,
            self_attention(&self.qkv_proj, self.num_heads, x, tokens),
        )
    }
}

/// `SiglipMLP`: expand, activate, project back.
#[derive(Module, Debug)]
pub struct SiglipMLP {
    pub fc1: Linear,
    pub fc2: Linear,
    #[module(skip)]
    pub activation: Activation,
}

impl SiglipMLP {
    /// `[batch, tokens, hidden]` -> `[batch, tokens, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        token_linear(
            &self.fc2,
            self.activation.forward(token_linear(&self.fc1, x)),
        )
    }
}

/// `SiglipEncoderLayer`: a pre-norm transformer block.
#[derive(Module, Debug)]
pub struct SiglipEncoderLayer {
    pub layer_norm1: LayerNorm,
    pub self_attn: SiglipAttention,
    pub layer_norm2: LayerNorm,
    pub mlp: SiglipMLP,
}

impl SiglipEncoderLayer {
    /// `[batch, tokens, hidden]` -> `[batch, tokens, hidden]`.
    pub fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let attended = self.self_attn.forward(self.layer_norm1.forward(x.clone())) + x;
        self.mlp.forward(self.layer_norm2.forward(attended.clone())) + attended
    }
}

/// `SiglipEncoder`: the stack of layers.
#[derive(Module, Debug)]
pub struct SiglipEncoder {
    pub layers: Vec<SiglipEncoderLayer>,
}

impl SiglipEncoder {
    /// `[batch, tokens, hidden]` -> `[batch, tokens, hidden]`.
    pub fn forward(&self, mut x: Tensor<3>) -> Tensor<3> {
        for layer in &self.layers {
            x = layer.forward(x);
        }
        x
    }
}

/// `SiglipVisionModel` without its attention-pooling head: embeddings, encoder, final layer norm.
#[derive(Module, Debug)]
pub struct SiglipVisionModel {
    pub embeddings: SiglipVisionEmbeddings,
    pub encoder: SiglipEncoder,
    pub post_layernorm: LayerNorm,
}

impl SiglipVisionModel {
    /// `[batch, channels, height, width]` -> `[batch, patches, hidden]` (`last_hidden_state`).
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<3> {
        let x = self.embeddings.forward(pixels);
        self.post_layernorm.forward(self.encoder.forward(x))
    }
}

/// `SiglipForImageClassification`: a linear classifier on the mean of the final tokens.
#[derive(Module, Debug)]
pub struct SiglipForImageClassification {
    pub vision_model: SiglipVisionModel,
    pub classifier: Linear,
}

impl SiglipForImageClassification {
    /// `[batch, channels, height, width]` normalised pixels -> `[batch, labels]` logits.
    pub fn forward(&self, pixels: Tensor<4>) -> Tensor<2> {
        // [batch, patches, hidden]
        let x = self.vision_model.forward(pixels);
        let [b, _, d] = x.dims();
        // Upstream's "average pool the patch tokens": [batch, 1, hidden] -> [batch, hidden]
        let pooled = x.mean_dim(1).reshape([b, d]);
        self.classifier.forward(pooled)
    }

    /// Builds the model from a checkpoint, every tensor's shape checked against `config`.
    pub fn load(
        config: &Config,
        num_labels: usize,
        ckpt: &mut Checkpoint,
    ) -> Result<SiglipForImageClassification, ModelError> {
        let v = &config.vision_config;
        let d = v.hidden_size;
        let [gh, gw] = config.grid();
        let eps = v.layer_norm_eps;
        let activation =
            Activation::from_hf(&v.hidden_act).map_err(|reason| ModelError::Format {
                path: "config.json".into(),
                reason: format!("vision_config.{reason}"),
            })?;

        let position_embedding = ckpt
            .tensor::<2>(names::POSITION_EMBEDDING, [gh * gw, d])?
            .unsqueeze::<3>();
        let embeddings = SiglipVisionEmbeddings {
            patch_embedding: ckpt.patch_conv(
                names::PATCH_EMBEDDING,
                v.num_channels,
                d,
                v.patch_size.hw(),
            )?,
            position_embedding: Param::from_tensor(position_embedding),
        };

        let mut layers = Vec::with_capacity(v.num_hidden_layers);
        for i in 0..v.num_hidden_layers {
            let p = names::layer(i);
            let qkv_names =
                [names::Q_PROJ, names::K_PROJ, names::V_PROJ].map(|n| format!("{p}.{n}"));
            let qkv = qkv_names.each_ref().map(String::as_str);
            layers.push(SiglipEncoderLayer {
                layer_norm1: ckpt.layer_norm(&format!("{p}.{}", names::LAYER_NORM1), d, eps)?,
                self_attn: SiglipAttention {
                    qkv_proj: ckpt.linear_fused(&qkv, d, d, true)?,
                    out_proj: ckpt.linear(&format!("{p}.{}", names::OUT_PROJ), d, d, true)?,
                    num_heads: v.num_attention_heads,
                },
                layer_norm2: ckpt.layer_norm(&format!("{p}.{}", names::LAYER_NORM2), d, eps)?,
                mlp: SiglipMLP {
                    fc1: ckpt.linear(
                        &format!("{p}.{}", names::FC1),
                        d,
                        v.intermediate_size,
                        true,
                    )?,
                    fc2: ckpt.linear(
                        &format!("{p}.{}", names::FC2),
                        v.intermediate_size,
                        d,
                        true,
                    )?,
                    activation,
                },
            });
        }

        let model = SiglipForImageClassification {
            vision_model: SiglipVisionModel {
                embeddings,
                encoder: SiglipEncoder { layers },
                post_layernorm: ckpt.layer_norm(names::POST_LAYERNORM, d, eps)?,
            },
            classifier: ckpt.linear(names::CLASSIFIER, d, num_labels, true)?,
        };
        if v.vision_use_head {
            let skipped = ckpt.skip_prefix(names::HEAD);
            tracing::debug!(
                tensors = skipped,
                "attention-pooling head not loaded: the classifier does not read it"
            );
        }
        Ok(model)
    }
}
