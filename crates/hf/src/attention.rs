//! Multi-head self-attention computed on the fused QKV projection's values in place, with the
//! `gemm` crate that flex itself calls (through `gc_core::matmul`).
//!
//! Why not burn's `attention` (flex's `attention_naive`): it takes four-dimensional
//! `[batch, heads, tokens, head_dim]` inputs, so query, key and value are each sliced out of the
//! fused projection and copied into a contiguous buffer, and the result is copied back to
//! `[batch, tokens, hidden]`; its softmax calls libm's scalar `expf`. Together that was a sixth of
//! ViT-B/16's time at batch 8 (perf: `copy_2d_tiled` 7%, the softmax loop and `expf` 6%), against
//! PyTorch's fused attention. Here the two matmuls of each head read the projection and write
//! the output through strides, and the softmax vectorises.

use crate::activation::horner;
use rayon::prelude::*;

/// Softmax attention over all tokens, no mask, for `qkv` = `[batch, tokens, 3 * hidden]` (query,
/// key, value side by side, heads in order within each), of the first `queries` tokens of each
/// image: returns `[batch, queries, hidden]`, heads concatenated. Scores are scaled by
/// `1 / sqrt(head_dim)`, as ViT and SigLIP do.
///
/// `queries` is `tokens` inside an encoder; a last layer whose classifier reads only the CLS token
/// asks for 1 (the other rows of the scores would be computed and thrown away).
pub fn multi_head(
    qkv: &[f32],
    batch: usize,
    tokens: usize,
    queries: usize,
    hidden: usize,
    heads: usize,
) -> Vec<f32> {
    assert_eq!(
        qkv.len(),
        batch * tokens * 3 * hidden,
        "qkv has the wrong length"
    );
    assert!(queries <= tokens, "more queries than tokens");
    assert!(
        heads > 0 && hidden.is_multiple_of(heads),
        "hidden must split into heads"
    );
    let head_dim = hidden / heads;
    let scale = 1.0 / (head_dim as f32).sqrt();
    let mut out = vec![0f32; batch * queries * hidden];
    if out.is_empty() {
        return out;
    }
    let out_ptr = SharedOut(out.as_mut_ptr());
    let row = 3 * hidden;
    // One task per (image, head): at batch 1 there are still as many tasks as heads. Each task
    // writes only its head's columns of its image's rows, so the tasks never write the same value.
    (0..batch * heads).into_par_iter().for_each_init(
        || vec![0f32; queries * tokens],
        |scores, task| {
            let (image, head) = (task / heads, task % heads);
            let base = image * tokens * row + head * head_dim;
            let (q, k, v) = (
                &qkv[base..],
                &qkv[base + hidden..],
                &qkv[base + 2 * hidden..],
            );
            // SAFETY: `q`, `k`, `v` start inside `qkv` and every element read, at most
            // `(tokens - 1) * row + head_dim - 1` past the start, is inside it too (checked by the
            // length assertion above). `scores` holds `queries * tokens` values. The output block
            // of this (image, head), `queries` rows of `hidden` values from `image * queries *
            // hidden + head * head_dim`, lies inside `out`, which outlives the parallel loop, and
            // no other task writes it.
            #[allow(unsafe_code)]
            unsafe {
                // scores = q k^T: [queries, head_dim] x [head_dim, tokens], k read transposed (row
                // stride 1, column stride one token)
                matmul(
                    [queries, tokens, head_dim],
                    (scores.as_mut_ptr(), tokens),
                    (q.as_ptr(), row),
                    (k.as_ptr(), 1, row),
                );
                for r in scores.chunks_exact_mut(tokens) {
                    softmax_scaled(r, scale);
                }
                // out = softmax(scores) v: [queries, tokens] x [tokens, head_dim]
                matmul(
                    [queries, head_dim, tokens],
                    (
                        out_ptr.at(image * queries * hidden + head * head_dim),
                        hidden,
                    ),
                    (scores.as_ptr(), tokens),
                    (v.as_ptr(), row, 1),
                );
            }
        },
    );
    out
}

/// `dst = lhs x rhs` for `[m, n, k]`, on this thread: `dst` and `lhs` are row-major with the
/// given row strides, `rhs` has the given row and column strides.
///
/// # Safety
/// Every element addressed by those strides must be inside its buffer, and `dst` written by no one
/// else meanwhile.
#[allow(unsafe_code)]
unsafe fn matmul(
    [m, n, k]: [usize; 3],
    (dst, dst_row): (*mut f32, usize),
    (lhs, lhs_row): (*const f32, usize),
    (rhs, rhs_row, rhs_col): (*const f32, usize, usize),
) {
    // SAFETY: as the caller promises.
    unsafe {
        gc_core::matmul::gemm_f32(
            [m, n, k],
            (dst, dst_row, 1),
            (lhs, lhs_row, 1),
            (rhs, rhs_row, rhs_col),
            false,
            gc_core::matmul::Parallelism::None,
        );
    }
}

/// The output buffer, shared by the tasks that each write their own block of it.
#[derive(Clone, Copy)]
struct SharedOut(*mut f32);

// SAFETY: the tasks write disjoint blocks (see `multi_head`), and the buffer outlives them.
#[allow(unsafe_code)]
unsafe impl Send for SharedOut {}
#[allow(unsafe_code)]
unsafe impl Sync for SharedOut {}

impl SharedOut {
    /// A method rather than a field access, so that closures capture the whole (Sync) struct.
    fn at(self, offset: usize) -> *mut f32 {
        self.0.wrapping_add(offset)
    }
}

/// `row` replaced by `softmax(row * scale)` (`scale` > 0), in separate passes that each vectorise.
fn softmax_scaled(row: &mut [f32], scale: f32) {
    const LANES: usize = 8;
    // Lane-wise maxima and sums: a single running value would keep the loops scalar.
    let mut lanes = [f32::NEG_INFINITY; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail = chunks.remainder();
    for c in chunks {
        for (m, &v) in lanes.iter_mut().zip(c) {
            *m = if v > *m { v } else { *m };
        }
    }
    let max = tail
        .iter()
        .chain(&lanes)
        .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
    for v in row.iter_mut() {
        *v = exp((*v - max) * scale);
    }
    let mut sums = [0f32; LANES];
    let chunks = row.chunks_exact(LANES);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for (s, &v) in sums.iter_mut().zip(c) {
            *s += v;
        }
    }
    let inv = 1.0 / (sums.iter().sum::<f32>() + tail);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// e^x for f32, branch-free so that loops over it vectorise: Cephes' `expf` (2^n times a degree-5
/// polynomial on [-ln 2 / 2, ln 2 / 2]), within 2 ulp, for inputs clamped to [-87.3, 88] (a
/// softmax's are at most 0; below -87.3 it gives about 1e-38 instead of a smaller number or 0,
/// which a softmax cannot tell apart).
fn exp(x: f32) -> f32 {
    // 1.5 * 2^23: adding it rounds to an integer held in the low bits of the result.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_359_4;
    const LN2_LO: f32 = -2.121_944_4e-4;
    let x = x.clamp(-87.336_54, 88.0);
    let k = x * std::f32::consts::LOG2_E + ROUND;
    let n = k - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = horner(
        r,
        &[
            1.987_569_2e-4,
            1.398_2e-3,
            8.333_452e-3,
            4.166_579_6e-2,
            0.166_666_65,
            0.5,
        ],
    );
    // 2^n from n's bits in `k`: exponent field n + 127.
    let two_n = f32::from_bits(k.to_bits().wrapping_sub(0x4B40_0000).wrapping_add(127) << 23);
    (p * r * r + r + 1.0) * two_n
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook computation in f64, for comparison.
    fn reference(
        qkv: &[f32],
        batch: usize,
        tokens: usize,
        hidden: usize,
        heads: usize,
    ) -> Vec<f32> {
        let hd = hidden / heads;
        let at = |b: usize, t: usize, part: usize, h: usize, i: usize| {
            f64::from(qkv[(b * tokens + t) * 3 * hidden + part * hidden + h * hd + i])
        };
        let mut out = vec![0f32; batch * tokens * hidden];
        for b in 0..batch {
            for h in 0..heads {
                for tq in 0..tokens {
                    let s: Vec<f64> = (0..tokens)
                        .map(|tk| {
                            (0..hd)
                                .map(|i| at(b, tq, 0, h, i) * at(b, tk, 1, h, i))
                                .sum::<f64>()
                                / (hd as f64).sqrt()
                        })
                        .collect();
                    let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                    let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
                    let sum: f64 = e.iter().sum();
                    for i in 0..hd {
                        let v: f64 = (0..tokens).map(|tk| e[tk] / sum * at(b, tk, 2, h, i)).sum();
                        out[(b * tokens + tq) * hidden + h * hd + i] = v as f32;
                    }
                }
            }
        }
        out
    }

    /// Deterministic values in [-range, range].
    fn values(n: usize, range: f32) -> Vec<f32> {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        (0..n)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                ((state >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * range
            })
            .collect()
    }

    #[test]
    fn matches_the_textbook_attention() {
        // Token counts around the lane width, a head_dim that is not a power of two, batch > 1.
        for (batch, tokens, hidden, heads) in [(2, 13, 24, 3), (1, 8, 16, 2), (3, 1, 10, 5)] {
            // Wide enough that some softmax rows are dominated by one token.
            let qkv = values(batch * tokens * 3 * hidden, 3.0);
            let want = reference(&qkv, batch, tokens, hidden, heads);
            // All tokens (an encoder layer), the CLS token alone (ViT's last layer), and between.
            for queries in [tokens, 1, tokens.div_ceil(2)] {
                let ours = multi_head(&qkv, batch, tokens, queries, hidden, heads);
                assert_eq!(ours.len(), batch * queries * hidden);
                // The reference's first `queries` rows of each image.
                let want: Vec<f32> = want
                    .chunks_exact(tokens * hidden)
                    .flat_map(|image| &image[..queries * hidden])
                    .copied()
                    .collect();
                let worst = ours
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    worst < 2e-6,
                    "{batch}x{tokens}x{hidden}/{heads}, {queries} queries: worst {worst}"
                );
            }
        }
        assert!(multi_head(&[], 0, 5, 5, 8, 2).is_empty());
    }

    #[test]
    fn exp_is_within_two_ulp_and_softmax_sums_to_one() {
        for i in -87_000..=87_900 {
            let x = i as f32 * 1e-3;
            let (ours, want) = (exp(x), x.exp());
            assert!(
                (ours - want).abs() <= 2.0 * f32::EPSILON * want,
                "exp({x}): {ours} vs {want}"
            );
        }
        assert!(exp(-1000.0) < 1e-37 && exp(f32::NEG_INFINITY) < 1e-37);
        let mut row = vec![1000.0f32, -1000.0, 0.0, 999.0, 5.0, 1000.0, 3.0, 2.0, 1.0];
        softmax_scaled(&mut row, 1.0);
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!((row[0] - row[5]).abs() < 1e-7 && row[0] > row[3] && row[1] < 1e-30);
    }
}
