//! What more than one architecture file uses: the image and patch sizes of `config.json`, and the
//! tensor code of a transformer encoder that does not depend on how upstream names its modules
//! (patches as tokens, a linear layer over every token, multi-head self-attention over a fused QKV
//! projection).

use burn::nn::Linear;
use burn::nn::conv::Conv2d;
use burn::tensor::{Tensor, TensorData};
use serde::Deserialize;

/// An image or patch size: transformers accepts an int (square) or `[height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Size2 {
    Square(usize),
    HeightWidth([usize; 2]),
}

impl Size2 {
    /// `[height, width]`.
    pub fn hw(self) -> [usize; 2] {
        match self {
            Size2::Square(s) => [s, s],
            Size2::HeightWidth(hw) => hw,
        }
    }
}

/// The patch embedding's conv (`Checkpoint::patch_conv`) as tokens:
/// `[batch, channels, height, width]` -> `[batch, patches, hidden]`, patches in row-major order.
pub fn patch_tokens(projection: &Conv2d, pixels: Tensor<4>) -> Tensor<3> {
    // [batch, hidden, grid_h, grid_w]
    let x = projection.forward(pixels);
    let [b, d, gh, gw] = x.dims();
    // [batch, hidden, patches] -> [batch, patches, hidden]
    x.reshape([b, d, gh * gw]).swap_dims(1, 2)
}

/// A [`Linear`] applied to every token of `[batch, tokens, d_in]`, as one `[batch * tokens, d_in]`
/// matmul.
///
/// Why not `Linear::forward` on the rank-3 tensor: the checkpoint's weights are PyTorch's
/// `[out, in]`, which burn holds as a transposed view (`weights.rs`); flex's 2-D matmul reads that
/// view in place, but for a batch of one image burn's linear takes flex's batched path, which first
/// copies the whole weight into a contiguous buffer, on every call (a fifth of the time to classify
/// one image with ViT-B/16, measured with `perf`).
pub fn token_linear(linear: &Linear, x: Tensor<3>) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let y = linear.forward(x.reshape([b * t, d]));
    let d_out = y.dims()[1];
    y.reshape([b, t, d_out])
}

/// Multi-head scaled dot-product attention over all tokens, no mask, of the first `queries`
/// tokens: `[batch, tokens, hidden]` -> `[batch, queries, hidden]` (heads concatenated, before the
/// output projection), computed by [`crate::attention::multi_head`] (why not burn's: there).
/// Inside an encoder `queries` is the token count.
///
/// `query_key_value` is upstream's three projections as one [`Linear`] of `hidden -> 3 * hidden`
/// (query, key, value side by side, built by `Checkpoint::linear_fused`): one wide matmul runs about
/// 1.4x faster on flex than three narrow ones, and the attention is a fifth of a ViT's time.
pub fn self_attention(
    query_key_value: &Linear,
    num_heads: usize,
    x: Tensor<3>,
    queries: usize,
) -> Tensor<3> {
    let [b, t, d] = x.dims();
    let device = x.device();
    // [batch, tokens, 3 * hidden]; f32, as `weights.rs` widens every checkpoint to it.
    let qkv = token_linear(query_key_value, x)
        .into_data()
        .convert::<f32>();
    let qkv = qkv.as_slice::<f32>().expect("converted to f32");
    let context = crate::attention::multi_head(qkv, b, t, queries, d, num_heads);
    Tensor::from_data(TensorData::new(context, [b, queries, d]), &device)
}

/// The first `n` tokens of `[batch, tokens, d]`; the tensor itself when that is all of them.
pub fn first_tokens(x: Tensor<3>, n: usize) -> Tensor<3> {
    if n == x.dims()[1] {
        x
    } else {
        x.narrow(1, 0, n)
    }
}
