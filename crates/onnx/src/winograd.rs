//! 3x3 convolutions of stride 1 by Winograd's minimal filtering, F(2x2, 3x3): each 2x2 block of
//! output from a 4x4 block of input with 16 multiplications per input and output channel pair
//! instead of 36, as 16 matrix products (one per position in the transformed 4x4 block).
//!
//! Why: such convolutions are most of the arithmetic of the yu4u WRN-16-8 (11 of its 16
//! convolutions, 10 of them with 16 input channels or more and 11 of its 12 GFLOP an image), and
//! after [`crate::conv`] moved them to `gemm` the matrix products were still over half its run
//! time. With 2.25 times fewer multiplications, one thread went from 6.7 to 9.0 images/s
//! (`examples/onnx_eval.rs`, RAYON_NUM_THREADS=1). The transforms are those of Lavin and Gray,
//! "Fast Algorithms for Convolutional Neural Networks" (2016); they round differently from a
//! direct sum, within the 1e-4 of the parity test against onnxruntime (`tests/parity.rs`) and of
//! the unit test against the definition (`conv.rs`).

use crate::conv::product;
use gc_core::matmul::Parallelism;

/// The 16 transformed 4x4 kernels of every (output, input) channel pair, `[16][out][in]`.
#[derive(Debug)]
pub struct Kernels {
    u: Vec<f32>,
    out_c: usize,
    in_c: usize,
}

impl Kernels {
    /// From an OIHW 3x3 kernel: `U = G g Gᵀ` for each pair.
    pub fn new(kernel: &[f32], out_c: usize, in_c: usize) -> Kernels {
        assert_eq!(kernel.len(), out_c * in_c * 9, "an OIHW 3x3 kernel");
        let pairs = out_c * in_c;
        let mut u = vec![0f32; 16 * pairs];
        for (pair, g) in kernel.chunks_exact(9).enumerate() {
            // G g: 4x3, then (G g) Gᵀ: 4x4, with G = [1 0 0; ½ ½ ½; ½ -½ ½; 0 0 1].
            let mut gg = [[0f32; 3]; 4];
            for col in 0..3 {
                let (a, b, c) = (g[col], g[3 + col], g[6 + col]);
                gg[0][col] = a;
                gg[1][col] = 0.5 * (a + b + c);
                gg[2][col] = 0.5 * (a - b + c);
                gg[3][col] = c;
            }
            for (row, r) in gg.iter().enumerate() {
                let t = [
                    r[0],
                    0.5 * (r[0] + r[1] + r[2]),
                    0.5 * (r[0] - r[1] + r[2]),
                    r[2],
                ];
                for (col, v) in t.into_iter().enumerate() {
                    u[(row * 4 + col) * pairs + pair] = v;
                }
            }
        }
        Kernels { u, out_c, in_c }
    }
}

/// Where the output sits over the input: padding before each axis and the output's size.
#[derive(Debug, Clone, Copy)]
pub struct Frame {
    pub input: [usize; 2],
    pub pad: [usize; 2],
    pub output: [usize; 2],
}

/// Adds the convolution of one CHW `image` to `out` (`[out_c, out_h, out_w]`, holding the bias),
/// with `scratch` for the transformed input and products (grown as needed, contents ignored).
pub fn convolve(
    kernels: &Kernels,
    image: &[f32],
    frame: Frame,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
    parallelism: Parallelism,
) {
    let (in_c, out_c) = (kernels.in_c, kernels.out_c);
    let [h, w] = frame.input;
    let [oh, ow] = frame.output;
    let (th, tw) = (oh.div_ceil(2), ow.div_ceil(2));
    let tiles = th * tw;
    let (v_len, m_len) = (16 * in_c * tiles, 16 * out_c * tiles);
    if scratch.len() < v_len + m_len {
        scratch.resize(v_len + m_len, 0.0);
    }
    let (v, rest) = scratch.split_at_mut(v_len);
    let m = &mut rest[..m_len];

    // V = Bᵀ d B for each channel and tile, `[16][in_c][tiles]`, d the 4x4 input block (zeros
    // outside the image), Bᵀ = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1]. Written a row of tiles
    // at a time, Bᵀ over whole input rows first, so that the loops run along contiguous memory
    // (a tile at a time, the transforms took as long as the products).
    let width = 2 * tw + 2;
    let mut rows = vec![0f32; 8 * width];
    let (padded, combined) = rows.split_at_mut(4 * width);
    for (c, channel) in image.chunks_exact(h * w).enumerate() {
        for ty in 0..th {
            for (i, row) in padded.chunks_exact_mut(width).enumerate() {
                row.fill(0.0);
                let iy = (2 * ty + i) as isize - frame.pad[0] as isize;
                if iy < 0 || iy >= h as isize {
                    continue;
                }
                let src = &channel[iy as usize * w..][..w];
                // Input column ix sits at ix + pad in the padded row.
                let start = frame.pad[1].min(width);
                let len = w.min(width - start);
                row[start..start + len].copy_from_slice(&src[..len]);
            }
            let (d0, rest) = padded.split_at(width);
            let (d1, rest) = rest.split_at(width);
            let (d2, d3) = rest.split_at(width);
            let (b0, rest) = combined.split_at_mut(width);
            let (b1, rest) = rest.split_at_mut(width);
            let (b2, b3) = rest.split_at_mut(width);
            for x in 0..width {
                b0[x] = d0[x] - d2[x];
                b1[x] = d1[x] + d2[x];
                b2[x] = d2[x] - d1[x];
                b3[x] = d1[x] - d3[x];
            }
            for (i, r) in [&*b0, &*b1, &*b2, &*b3].into_iter().enumerate() {
                let at = |j: usize| ((i * 4 + j) * in_c + c) * tiles + ty * tw;
                let (s0, s1, s2, s3) = (at(0), at(1), at(2), at(3));
                for tx in 0..tw {
                    let q = &r[2 * tx..2 * tx + 4];
                    v[s0 + tx] = q[0] - q[2];
                    v[s1 + tx] = q[1] + q[2];
                    v[s2 + tx] = q[2] - q[1];
                    v[s3 + tx] = q[1] - q[3];
                }
            }
        }
    }

    // M[ξ] = U[ξ] V[ξ]: [out_c, tiles] each.
    let pairs = out_c * in_c;
    for xi in 0..16 {
        product(
            &mut m[xi * out_c * tiles..][..out_c * tiles],
            &kernels.u[xi * pairs..][..pairs],
            &v[xi * in_c * tiles..][..in_c * tiles],
            [out_c, tiles, in_c],
            false,
            parallelism,
        );
    }

    // Y = Aᵀ m A for each output channel and tile, Aᵀ = [1 1 1 0; 0 1 -1 -1], added to `out`
    // where the 2x2 block lies inside the output; a row of tiles at a time, as above.
    let mut sums = vec![0f32; 8 * tw];
    for (o, plane) in out.chunks_exact_mut(oh * ow).enumerate() {
        for ty in 0..th {
            let m_at = |i: usize, j: usize| &m[((i * 4 + j) * out_c + o) * tiles + ty * tw..][..tw];
            // Aᵀ m: two rows of four values per tile, `[r][j][tile]`.
            for j in 0..4 {
                let (m0, m1, m2, m3) = (m_at(0, j), m_at(1, j), m_at(2, j), m_at(3, j));
                let (top, bottom) = sums.split_at_mut(4 * tw);
                let (top, bottom) = (&mut top[j * tw..][..tw], &mut bottom[j * tw..][..tw]);
                for tx in 0..tw {
                    top[tx] = m0[tx] + m1[tx] + m2[tx];
                    bottom[tx] = m1[tx] - m2[tx] - m3[tx];
                }
            }
            for r in 0..2 {
                let y = 2 * ty + r;
                if y >= oh {
                    break;
                }
                let a = &sums[r * 4 * tw..][..4 * tw];
                let (a0, a1, a2, a3) = (&a[..tw], &a[tw..2 * tw], &a[2 * tw..3 * tw], &a[3 * tw..]);
                let row = &mut plane[y * ow..][..ow];
                for tx in 0..ow / 2 {
                    row[2 * tx] += a0[tx] + a1[tx] + a2[tx];
                    row[2 * tx + 1] += a1[tx] - a2[tx] - a3[tx];
                }
                if ow % 2 == 1 {
                    let tx = tw - 1;
                    row[2 * tx] += a0[tx] + a1[tx] + a2[tx];
                }
            }
        }
    }
}
