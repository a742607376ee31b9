//! Conv2d on the `flex` CPU backend with kernels of our own: the forward pass and the weight
//! gradient, for training and inference.
//!
//! Why: burn 0.22 computes a convolution's weight gradient (flex does not override it) as another
//! convolution, with the batch and channel axes swapped and the output gradient as a kernel as
//! large as the image (128 x 128 in the notebook CNN's first block) giving a 3 x 3 output; flex
//! runs that shape at a fraction of its usual speed: 258/404/293/182 ms at the notebook CNN's four
//! shapes (batch 64, 128px, 2 threads) against PyTorch's 101/172/168/87 ms, the largest single gap
//! of the training step (`benches/layer_times.rs`, `docs/BENCHMARKS.md`). Here it is the textbook
//! form instead: per image, unfold the input (im2col) and multiply it by the output gradient with
//! one `gemm` call, accumulating over the batch. The forward pass is the same unfolding times the
//! weight, which beat flex's own (373 against 638 ms over the four shapes). The input gradient
//! stays flex's. The operation reaches burn through its backend extension mechanism, as in
//! [`crate::batch_norm`]; convolutions with a bias or groups (EfficientNet's depthwise ones) and
//! other backends keep burn's `Conv2d::forward`.

use crate::flex::{on_flex, tensor, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::{ConvOptions, ModuleOps};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2d;
use burn::tensor::Tensor;
use gc_core::matmul::Parallelism;
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait Conv2dBackend: Backend {
    /// A convolution without bias or groups, whose weight gradient is
    /// [`conv2d_weight_grad`](Self::conv2d_weight_grad).
    fn conv2d_no_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;

    /// The gradient of [`conv2d_no_bias`](Self::conv2d_no_bias) with respect to its weight, given
    /// the gradient of its output; `weight` gives the shape.
    fn conv2d_weight_grad(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        output_grad: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self>;
}

/// `conv.forward(x)`, through [`Conv2dBackend`] where it applies: on `flex` (training or not), a
/// convolution without bias or groups.
pub fn conv2d(conv: &Conv2d, x: Tensor<4>) -> Tensor<4> {
    if !(on_flex(&x.device()) && conv.bias.is_none() && conv.groups == 1) {
        return conv.forward(x);
    }
    let [_, _, height, width] = x.dims();
    let padding = [0, 1].map(|axis| {
        padding_pair(
            &conv.padding,
            axis,
            [height, width][axis],
            conv.kernel_size[axis],
            conv.stride[axis],
        )
    });
    let options = ConvOptions::new_with_padding(conv.stride, padding, conv.dilation, 1);
    Tensor::from_dispatch(<Dispatch as Conv2dBackend>::conv2d_no_bias(
        x.into_dispatch(),
        conv.weight.val().into_dispatch(),
        options,
    ))
}

/// The `(begin, end)` padding of one spatial axis, as `Conv2d::forward` computes it (burn keeps
/// that function to itself, so it is repeated here; the tests compare the two convolutions).
fn padding_pair(
    padding: &PaddingConfig2d,
    axis: usize,
    size: usize,
    kernel: usize,
    stride: usize,
) -> (usize, usize) {
    match *padding {
        PaddingConfig2d::Valid => (0, 0),
        PaddingConfig2d::Same => {
            // TensorFlow's "same": the output has ceil(size / stride) positions, the extra
            // padding (if odd) at the end.
            let out = size.div_ceil(stride);
            let total = match out {
                0 => 0,
                _ => ((out - 1) * stride + kernel).saturating_sub(size),
            };
            (total / 2, total - total / 2)
        }
        PaddingConfig2d::Explicit(top, left, bottom, right) => [(top, bottom), (left, right)][axis],
    }
}

impl Conv2dBackend for Flex {
    fn conv2d_no_bias(x: FlexTensor, weight: FlexTensor, options: ConvOptions<2>) -> FlexTensor {
        if x.dtype() != DType::F32 || weight.dtype() != DType::F32 || options.groups != 1 {
            return <Flex as ModuleOps<Flex>>::conv2d(x, weight, None, options);
        }
        let geometry = Geometry::new(&x, &weight, &options);
        let x = x.to_contiguous();
        let weight = weight.to_contiguous();
        let out = geometry.convolve(values(&x), values(&weight));
        let [height, width] = geometry.output;
        tensor(out, [geometry.batch, geometry.out_channels, height, width])
    }

    fn conv2d_weight_grad(
        x: FlexTensor,
        weight: FlexTensor,
        output_grad: FlexTensor,
        options: ConvOptions<2>,
    ) -> FlexTensor {
        if x.dtype() != DType::F32 || output_grad.dtype() != DType::F32 || options.groups != 1 {
            return <Flex as ModuleOps<Flex>>::conv2d_weight_backward(
                x,
                weight,
                output_grad,
                options,
            );
        }
        let output = output_grad.shape();
        let geometry = Geometry {
            // The gradient's own size, should it differ from what the options give.
            output: [output[2], output[3]],
            ..Geometry::new(&x, &weight, &options)
        };
        let x = x.to_contiguous();
        let g = output_grad.to_contiguous();
        tensor(geometry.weight_grad(values(&x), values(&g)), weight.shape())
    }
}

impl<B: Backend + Conv2dBackend, C: CheckpointStrategy> Conv2dBackend for Autodiff<B, C> {
    fn conv2d_no_bias(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct Conv2dNoBias;

        impl<B: Backend + Conv2dBackend> Backward<B, 2> for Conv2dNoBias {
            // The input and weight are checkpointed, as burn's own conv2d does.
            type State = (NodeId, NodeId, ConvOptions<2>);

            fn backward(
                self,
                ops: Ops<Self::State, 2>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_weight] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, weight_state, options) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let weight = checkpointer.retrieve_node_output::<FloatTensor<B>>(weight_state);
                if let Some(node) = node_x {
                    let x_grad = B::conv2d_x_backward(
                        x.clone(),
                        weight.clone(),
                        grad.clone(),
                        options.clone(),
                    );
                    grads.register::<B>(node.id, x_grad);
                }
                if let Some(node) = node_weight {
                    grads.register::<B>(node.id, B::conv2d_weight_grad(x, weight, grad, options));
                }
            }
        }

        match Conv2dNoBias
            .prepare::<C>([x.node(), weight.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let output =
                    B::conv2d_no_bias(x.into_primitive(), weight.into_primitive(), options.clone());
                prep.finish((x_state, weight_state, options), output)
            }
            OpsKind::UnTracked(prep) => prep.finish(B::conv2d_no_bias(
                x.into_primitive(),
                weight.into_primitive(),
                options,
            )),
        }
    }

    fn conv2d_weight_grad(
        _x: FloatTensor<Self>,
        _weight: FloatTensor<Self>,
        _output_grad: FloatTensor<Self>,
        _options: ConvOptions<2>,
    ) -> FloatTensor<Self> {
        // As burn's own conv2d: its backward is not itself differentiated.
        unreachable!("the convolution's weight gradient is not differentiated")
    }
}

/// The shapes of one convolution, all `usize` (the inputs are NCHW, the weight OIHW).
struct Geometry {
    batch: usize,
    in_channels: usize,
    out_channels: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    output: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
}

impl Geometry {
    /// The geometry of a convolution, its output size computed as burn does.
    fn new(x: &FlexTensor, weight: &FlexTensor, options: &ConvOptions<2>) -> Self {
        let (x, w) = (x.shape(), weight.shape());
        let output = [0, 1].map(|axis| {
            let (begin, end) = options.padding[axis];
            let span = options.dilation[axis] * (w[2 + axis] - 1) + 1;
            (x[2 + axis] + begin + end).saturating_sub(span) / options.stride[axis] + 1
        });
        Geometry {
            batch: x[0],
            in_channels: x[1],
            out_channels: w[0],
            input: [x[2], x[3]],
            kernel: [w[2], w[3]],
            output,
            stride: options.stride,
            // The end padding needs no reading: output positions past the input read zeros.
            padding: [options.padding[0].0, options.padding[1].0],
            dilation: options.dilation,
        }
    }

    /// `Y[n, o, p] = sum over taps of W[o, tap] * unfold(X[n])[tap, p]`, one image per task.
    fn convolve(&self, x: &[f32], weight: &[f32]) -> Vec<f32> {
        let (taps, positions) = (self.taps(), self.positions());
        let image = self.in_channels * self.input[0] * self.input[1];
        let mut out = vec![0.0f32; self.batch * self.out_channels * positions];
        let shape = [self.out_channels, positions, taps];
        if self.batch < rayon::current_num_threads() {
            // Fewer images than threads (one photo's faces): one image at a time, its product
            // split across the threads.
            let mut columns = vec![0.0f32; self.columns_len()];
            for (out, x) in out
                .chunks_exact_mut(self.out_channels * positions)
                .zip(x.chunks_exact(image))
            {
                let columns = self.unfolded(x, &mut columns);
                product(out, weight, columns, shape, Parallelism::Rayon(0));
            }
            return out;
        }
        out.par_chunks_mut(self.out_channels * positions)
            .zip(x.par_chunks(image))
            .for_each_init(
                || vec![0.0f32; self.columns_len()],
                |columns, (out, x)| {
                    let columns = self.unfolded(x, columns);
                    product(out, weight, columns, shape, Parallelism::None);
                },
            );
        out
    }

    /// Rows of the unfolded input: one per input channel and kernel position.
    fn taps(&self) -> usize {
        self.in_channels * self.kernel[0] * self.kernel[1]
    }

    fn positions(&self) -> usize {
        self.output[0] * self.output[1]
    }

    /// `dW[o, tap] = sum over images and positions of G[n, o, p] * unfold(X[n])[tap, p]`.
    fn weight_grad(&self, x: &[f32], g: &[f32]) -> Vec<f32> {
        let (taps, positions) = (self.taps(), self.positions());
        let image = self.in_channels * self.input[0] * self.input[1];
        let grad_image = self.out_channels * positions;
        // Images in as many contiguous runs as threads, each summed in order and the runs summed
        // in order: the same threads give the same bits, as training with a seed promises (rayon's
        // own splitting would not).
        let runs = rayon::current_num_threads().clamp(1, self.batch);
        let partial: Vec<Vec<f32>> = (0..runs)
            .into_par_iter()
            .map(|run| {
                let mut acc = vec![0.0f32; self.out_channels * taps];
                let mut columns = vec![0.0f32; self.columns_len()];
                for n in run * self.batch / runs..(run + 1) * self.batch / runs {
                    let unfolded = self.unfolded(&x[n * image..(n + 1) * image], &mut columns);
                    let gn = &g[n * grad_image..(n + 1) * grad_image];
                    accumulate_product_transposed(
                        &mut acc,
                        gn,
                        unfolded,
                        [self.out_channels, taps, positions],
                    );
                }
                acc
            })
            .collect();
        let mut sum = partial[0].clone();
        for p in &partial[1..] {
            for (s, v) in sum.iter_mut().zip(p) {
                *s += v;
            }
        }
        sum
    }

    /// A pointwise convolution (1 x 1, stride 1, no padding: EfficientNet's expansions and
    /// projections), whose unfolded image is the image itself.
    fn is_pointwise(&self) -> bool {
        self.kernel == [1, 1]
            && self.stride == [1, 1]
            && self.padding == [0, 0]
            && self.output == self.input
    }

    /// The length of the buffer [`unfolded`](Self::unfolded) writes into: none for a pointwise
    /// convolution, which needs no copy.
    fn columns_len(&self) -> usize {
        if self.is_pointwise() {
            0
        } else {
            self.taps() * self.positions()
        }
    }

    /// The unfolded image: the image itself for a pointwise convolution, else written into
    /// `columns` (of [`columns_len`](Self::columns_len)).
    fn unfolded<'a>(&self, x: &'a [f32], columns: &'a mut [f32]) -> &'a [f32] {
        if self.is_pointwise() {
            x
        } else {
            self.unfold(x, columns);
            columns
        }
    }

    /// im2col of one image: `columns[(c, a, b), (y, x)] = X[c, y*s + a*d - p, x*s + b*d - p]`, zero
    /// outside the image.
    fn unfold(&self, x: &[f32], columns: &mut [f32]) {
        let [height, width] = self.input;
        let out_w = self.output[1];
        let ([sy, sx], [py, px], [dy, dx]) = (self.stride, self.padding, self.dilation);
        let mut rows = columns.chunks_exact_mut(self.positions());
        for c in 0..self.in_channels {
            let plane = &x[c * height * width..(c + 1) * height * width];
            for a in 0..self.kernel[0] {
                for b in 0..self.kernel[1] {
                    let row = rows.next().expect("one row per tap");
                    // The output columns whose input column is inside the image.
                    let offset = (b * dx) as isize - px as isize;
                    let lo = first_inside(offset, sx).min(out_w);
                    let hi = first_outside(offset, sx, width).clamp(lo, out_w);
                    for (y, out) in row.chunks_exact_mut(out_w).enumerate() {
                        let iy = (y * sy + a * dy) as isize - py as isize;
                        if iy < 0 || iy >= height as isize {
                            out.fill(0.0);
                            continue;
                        }
                        let line = &plane[iy as usize * width..(iy as usize + 1) * width];
                        out[..lo].fill(0.0);
                        out[hi..].fill(0.0);
                        let start = (lo * sx) as isize + offset;
                        if sx == 1 {
                            let start = start as usize;
                            out[lo..hi].copy_from_slice(&line[start..start + hi - lo]);
                        } else {
                            for (i, o) in out[lo..hi].iter_mut().enumerate() {
                                *o = line[(start + (i * sx) as isize) as usize];
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The first output column `x` with `x * stride + offset >= 0`.
fn first_inside(offset: isize, stride: usize) -> usize {
    if offset >= 0 {
        0
    } else {
        (-offset as usize).div_ceil(stride)
    }
}

/// The first output column `x` with `x * stride + offset >= width`.
fn first_outside(offset: isize, stride: usize, width: usize) -> usize {
    let limit = width as isize - offset;
    if limit <= 0 {
        0
    } else {
        (limit as usize).div_ceil(stride)
    }
}

/// `acc[m, n] += sum over k of lhs[m, k] * rhs[n, k]`: `acc` `[m, n]`, `lhs` `[m, k]` and `rhs`
/// `[n, k]`, all row-major, on this thread.
fn accumulate_product_transposed(acc: &mut [f32], lhs: &[f32], rhs: &[f32], [m, n, k]: [usize; 3]) {
    gemm_f32(acc, lhs, rhs, [m, n, k], [k, 1], true, Parallelism::None);
}

/// `out[m, n] = sum over k of lhs[m, k] * rhs[k, n]`: all row-major.
fn product(
    out: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    [m, n, k]: [usize; 3],
    parallelism: Parallelism,
) {
    gemm_f32(out, lhs, rhs, [m, n, k], [1, n], false, parallelism);
}

/// `dst[m, n] (+)= lhs[m, k] x rhs`, `dst` and `lhs` row-major, `rhs` element `(k, n)` at
/// `k * rhs_row + n * rhs_column`, `[rhs_column, rhs_row]` given.
fn gemm_f32(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    [m, n, k]: [usize; 3],
    [rhs_column, rhs_row]: [usize; 2],
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == n * k);
    // SAFETY: the assertion above puts every element the strides address inside its slice (`rhs`
    // holds `n * k` values either way round), and `dst` is borrowed mutably, so no one else writes it meanwhile.
    #[allow(unsafe_code)]
    unsafe {
        gc_core::matmul::gemm_f32(
            [m, n, k],
            (dst.as_mut_ptr(), n, 1),
            (lhs.as_ptr(), k, 1),
            (rhs.as_ptr(), rhs_row, rhs_column),
            accumulate,
            parallelism,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{close, under_weighted_loss};
    use burn::nn::conv::Conv2dConfig;
    use burn::tensor::{Device, Distribution};

    /// Output, input gradient and weight gradient against burn's `Conv2d::forward`, under a
    /// weighted loss.
    fn matches_burn(config: Conv2dConfig, input: [usize; 4]) {
        let device = Device::flex().autodiff();
        device.seed(3);
        let conv = config.clone().with_bias(false).init(&device);
        let x = Tensor::<4>::random(input, Distribution::Uniform(-1.0, 1.0), &device);
        let out_dims = conv.forward(x.clone()).dims();
        let weights = Tensor::<4>::random(out_dims, Distribution::Uniform(-1.0, 1.0), &device);
        let run = |fused: bool| {
            let (y, x_grad, grads) = under_weighted_loss(&x, &weights, |x| {
                if fused {
                    conv2d(&conv, x)
                } else {
                    conv.forward(x)
                }
            });
            (y, x_grad, conv.weight.val().grad(&grads).unwrap())
        };
        let ours = run(true);
        let burns = run(false);
        let what = format!("{config:?} on {input:?}");
        close(ours.0, burns.0, 1e-6, &format!("output, {what}"));
        close(ours.1, burns.1, 1e-5, &format!("x grad, {what}"));
        close(ours.2, burns.2, 1e-5, &format!("weight grad, {what}"));
    }

    #[test]
    fn forward_and_gradients_match_burns() {
        let same = PaddingConfig2d::Same;
        matches_burn(
            Conv2dConfig::new([3, 4], [3, 3]).with_padding(same.clone()),
            [5, 3, 9, 7],
        );
        // Stride 2 with "same" padding pads more at the end than at the start.
        matches_burn(
            Conv2dConfig::new([2, 3], [3, 3])
                .with_stride([2, 2])
                .with_padding(same.clone()),
            [3, 2, 8, 10],
        );
        matches_burn(
            Conv2dConfig::new([2, 3], [5, 3])
                .with_stride([1, 3])
                .with_padding(same),
            [2, 2, 11, 13],
        );
        matches_burn(Conv2dConfig::new([3, 2], [3, 3]), [2, 3, 6, 6]);
        matches_burn(
            Conv2dConfig::new([2, 2], [3, 2])
                .with_dilation([2, 3])
                .with_padding(PaddingConfig2d::Explicit(1, 2, 3, 0)),
            [3, 2, 9, 8],
        );
        matches_burn(Conv2dConfig::new([4, 5], [1, 1]), [7, 4, 3, 5]);
        // One image: fewer images than threads, the product split across them.
        matches_burn(
            Conv2dConfig::new([3, 6], [3, 3]).with_padding(PaddingConfig2d::Same),
            [1, 3, 12, 10],
        );
    }
}
