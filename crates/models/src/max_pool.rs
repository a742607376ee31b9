//! MaxPool2d over non-overlapping windows (the stride is the kernel, no padding, no dilation: the
//! notebook CNN's 2 x 2 pooling) on the `flex` CPU backend, forward and backward.
//!
//! Why: flex 0.22 runs every max pooling through its 3-d pooling with indices, even in inference,
//! and computes each output value's window with three integer divisions and bounds checks: `perf`
//! on `gender-classifier eval` with the built-in model put 42% of the time there, more than in the
//! convolutions' `gemm`. Here a window is a few loads and comparisons, and training keeps no
//! indices: the backward finds each window's maximum again in the input it keeps anyway. Both pick
//! the value flex picks (the first maximum, or the last NaN, which propagates as in PyTorch), so a
//! model trains to the same weights with either. Other pooling settings, dtypes and backends keep
//! burn's `MaxPool2d::forward`.

use crate::flex::{on_flex, tensor, values};
use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::FlexTensor;
use burn::backend::ops::ModuleOps;
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, DType, Dispatch, Flex, TensorMetadata, backend_extension};
use burn::nn::PaddingConfig2d;
use burn::nn::pool::MaxPool2d;
use burn::tensor::{IntDType, Tensor};
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait MaxPoolBackend: Backend {
    /// The maximum of each `kernel` window of an NCHW tensor, windows side by side (stride =
    /// kernel, no padding); rows and columns that do not fill a window are left out.
    fn max_pool2d_tiled(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self>;

    /// The gradient of [`max_pool2d_tiled`](Self::max_pool2d_tiled) with respect to `x`, given
    /// the gradient of its output: each window's gradient goes to its maximum.
    fn max_pool2d_tiled_backward(
        x: FloatTensor<Self>,
        kernel: [usize; 2],
        output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self>;
}

/// `pool.forward(x)`, through [`MaxPoolBackend`] where it applies: on `flex` (training or not),
/// windows that neither overlap nor are padded or dilated.
pub fn max_pool2d(pool: &MaxPool2d, x: Tensor<4>) -> Tensor<4> {
    let tiled = pool.stride == pool.kernel_size
        && pool.dilation == [1, 1]
        && matches!(pool.padding, PaddingConfig2d::Valid)
        && !pool.ceil_mode;
    if !(tiled && on_flex(&x.device())) {
        return pool.forward(x);
    }
    Tensor::from_dispatch(<Dispatch as MaxPoolBackend>::max_pool2d_tiled(
        x.into_dispatch(),
        pool.kernel_size,
    ))
}

impl MaxPoolBackend for Flex {
    fn max_pool2d_tiled(x: FlexTensor, kernel: [usize; 2]) -> FlexTensor {
        let Some(tiling) = Tiling::of(&x, kernel) else {
            return <Flex as ModuleOps<Flex>>::max_pool2d(x, kernel, kernel, [0, 0], [1, 1], false);
        };
        let x = x.to_contiguous();
        let xs = values(&x);
        let mut out = vec![0.0f32; tiling.batch * tiling.channels * tiling.out_plane()];
        tiling.for_each_plane(&mut out, tiling.out_plane(), |plane, out| {
            let input = &xs[plane * tiling.in_plane()..][..tiling.in_plane()];
            tiling.pool_plane(input, out);
        });
        tensor(out, tiling.output_shape())
    }

    fn max_pool2d_tiled_backward(
        x: FlexTensor,
        kernel: [usize; 2],
        output_grad: FlexTensor,
    ) -> FlexTensor {
        let tiling = match Tiling::of(&x, kernel) {
            Some(t) if output_grad.dtype() == DType::F32 => t,
            _ => {
                // flex's backward takes the forward's indices.
                let indices = <Flex as ModuleOps<Flex>>::max_pool2d_with_indices(
                    x.clone(),
                    kernel,
                    kernel,
                    [0, 0],
                    [1, 1],
                    false,
                    IntDType::I64,
                )
                .indices;
                return <Flex as ModuleOps<Flex>>::max_pool2d_with_indices_backward(
                    x,
                    kernel,
                    kernel,
                    [0, 0],
                    [1, 1],
                    false,
                    output_grad,
                    indices,
                )
                .x_grad;
            }
        };
        let x = x.to_contiguous();
        let g = output_grad.to_contiguous();
        let (xs, gs) = (values(&x), values(&g));
        // Every value outside a window's maximum (and outside every window) gets no gradient.
        let mut x_grad = vec![0.0f32; xs.len()];
        tiling.for_each_plane(&mut x_grad, tiling.in_plane(), |plane, x_grad| {
            let input = &xs[plane * tiling.in_plane()..][..tiling.in_plane()];
            let grad = &gs[plane * tiling.out_plane()..][..tiling.out_plane()];
            tiling.unpool_plane(input, grad, x_grad);
        });
        tensor(x_grad, x.shape())
    }
}

impl<B: Backend + MaxPoolBackend, C: CheckpointStrategy> MaxPoolBackend for Autodiff<B, C> {
    fn max_pool2d_tiled(x: FloatTensor<Self>, kernel: [usize; 2]) -> FloatTensor<Self> {
        #[derive(Debug)]
        struct MaxPoolTiled;

        impl<B: Backend + MaxPoolBackend> Backward<B, 1> for MaxPoolTiled {
            // The input is checkpointed, as burn's own max pooling does (it also keeps indices).
            type State = (NodeId, [usize; 2]);

            fn backward(
                self,
                ops: Ops<Self::State, 1>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, kernel) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, B::max_pool2d_tiled_backward(x, kernel, grad));
                }
            }
        }

        match MaxPoolTiled
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let output = B::max_pool2d_tiled(x.into_primitive(), kernel);
                prep.finish((x_state, kernel), output)
            }
            OpsKind::UnTracked(prep) => {
                prep.finish(B::max_pool2d_tiled(x.into_primitive(), kernel))
            }
        }
    }

    fn max_pool2d_tiled_backward(
        _x: FloatTensor<Self>,
        _kernel: [usize; 2],
        _output_grad: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        // As burn's own max pooling: its backward is not itself differentiated.
        unreachable!("the max pooling's backward is not differentiated")
    }
}

/// An NCHW f32 tensor cut into `kernel` windows, `batch * channels` planes of them.
#[derive(Clone, Copy)]
struct Tiling {
    channels: usize,
    batch: usize,
    input: [usize; 2],
    kernel: [usize; 2],
    output: [usize; 2],
}

impl Tiling {
    /// `None` where the kernel does not apply (not f32 or not 4-d, an empty kernel).
    fn of(x: &FlexTensor, kernel: [usize; 2]) -> Option<Tiling> {
        let shape = x.shape();
        let &[batch, channels, height, width] = shape.as_slice() else {
            return None;
        };
        if x.dtype() != DType::F32 || kernel.contains(&0) {
            return None;
        }
        Some(Tiling {
            channels,
            batch,
            input: [height, width],
            kernel,
            output: [height / kernel[0], width / kernel[1]],
        })
    }

    fn in_plane(&self) -> usize {
        self.input[0] * self.input[1]
    }

    fn out_plane(&self) -> usize {
        self.output[0] * self.output[1]
    }

    fn output_shape(&self) -> [usize; 4] {
        [self.batch, self.channels, self.output[0], self.output[1]]
    }

    /// Where in `plane` the window of output `(oh, ow)` has its maximum: the first, or the last
    /// NaN, as flex's kernel picks (windows scanned row by row).
    fn argmax(&self, plane: &[f32], oh: usize, ow: usize) -> usize {
        let width = self.input[1];
        let first = oh * self.kernel[0] * width + ow * self.kernel[1];
        let mut best = first;
        for kh in 0..self.kernel[0] {
            let row = first + kh * width;
            for i in row..row + self.kernel[1] {
                if wins(plane[i], plane[best]) {
                    best = i;
                }
            }
        }
        best
    }

    /// One plane's maxima into `out`. The 2 x 2 windows of the notebook CNN get a loop of their
    /// own, with no index kept, that the compiler vectorises.
    fn pool_plane(&self, input: &[f32], out: &mut [f32]) {
        let [out_h, out_w] = self.output;
        let width = self.input[1];
        if self.kernel == [2, 2] {
            for (oh, out) in out.chunks_exact_mut(out_w).enumerate() {
                let top = &input[2 * oh * width..][..2 * out_w];
                let bottom = &input[(2 * oh + 1) * width..][..2 * out_w];
                for ((v, a), b) in out
                    .iter_mut()
                    .zip(top.chunks_exact(2))
                    .zip(bottom.chunks_exact(2))
                {
                    *v = pick(pick(pick(a[0], a[1]), b[0]), b[1]);
                }
            }
            return;
        }
        for oh in 0..out_h {
            for ow in 0..out_w {
                out[oh * out_w + ow] = input[self.argmax(input, oh, ow)];
            }
        }
    }

    /// One plane's gradient: each window's into `x_grad` (zeroed) where its maximum is. The 2 x 2
    /// windows get a loop of their own, with one store per window and no branch to mispredict
    /// (the general loop took 172 ms at the first block's shape, flex's scatter of saved indices
    /// 32).
    fn unpool_plane(&self, input: &[f32], grad: &[f32], x_grad: &mut [f32]) {
        let [out_h, out_w] = self.output;
        let width = self.input[1];
        if grad.is_empty() {
            // No window fits (a side shorter than the kernel): no gradient anywhere.
            return;
        }
        if self.kernel == [2, 2] {
            for (oh, grad) in grad.chunks_exact(out_w).enumerate() {
                let top = &input[2 * oh * width..][..2 * out_w];
                let bottom = &input[(2 * oh + 1) * width..][..2 * out_w];
                for (ow, &g) in grad.iter().enumerate() {
                    let (a, b) = (top[2 * ow], top[2 * ow + 1]);
                    let (c, d) = (bottom[2 * ow], bottom[2 * ow + 1]);
                    let (mut best, mut at) = (a, 0);
                    if wins(b, best) {
                        (best, at) = (b, 1);
                    }
                    if wins(c, best) {
                        (best, at) = (c, width);
                    }
                    if wins(d, best) {
                        at = width + 1;
                    }
                    x_grad[2 * oh * width + 2 * ow + at] = g;
                }
            }
            return;
        }
        for oh in 0..out_h {
            for ow in 0..out_w {
                x_grad[self.argmax(input, oh, ow)] = grad[oh * out_w + ow];
            }
        }
    }

    /// `f(p, plane p of data)` over `data` cut into planes of `plane` values (the output's or
    /// the input's), in parallel.
    fn for_each_plane(
        &self,
        data: &mut [f32],
        plane: usize,
        f: impl Fn(usize, &mut [f32]) + Sync + Send,
    ) {
        if plane == 0 {
            return;
        }
        // Small planes (the last blocks: 8 x 8 and less) would drown in rayon's overhead one by
        // one; each task reads one input plane, whichever side it writes.
        let min_planes = (4096 / self.in_plane().max(1)).max(1);
        data.par_chunks_mut(plane)
            .with_min_len(min_planes)
            .enumerate()
            .for_each(|(p, chunk)| f(p, chunk));
    }
}

/// Whether `v`, met after `best` in a window, replaces it: flex's rule (a NaN always does).
fn wins(v: f32, best: f32) -> bool {
    v > best || v.is_nan()
}

/// The running maximum after meeting `v`, by [`wins`].
fn pick(best: f32, v: f32) -> f32 {
    if wins(v, best) { v } else { best }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::under_weighted_loss;
    use burn::nn::pool::MaxPool2dConfig;
    use burn::tensor::{Device, Distribution};

    fn same(ours: Tensor<4>, burns: Tensor<4>, what: &str) {
        assert_eq!(ours.dims(), burns.dims(), "{what}: shapes");
        let (a, b) = (ours.into_data(), burns.into_data());
        let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
        for (i, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()),
                "{what}[{i}]: ours {x}, burn's {y}"
            );
        }
    }

    /// Output and input gradient against burn's `MaxPool2d::forward`, under a weighted loss:
    /// both exactly, since both pick the same value of each window.
    fn matches_burn(kernel: [usize; 2], x: Tensor<4>) {
        let device = x.device();
        let pool = MaxPool2dConfig::new(kernel).init();
        let out_dims = pool.forward(x.clone()).dims();
        let weights = Tensor::<4>::random(out_dims, Distribution::Uniform(-1.0, 1.0), &device);
        let run = |ours: bool| {
            let (y, x_grad, _) = under_weighted_loss(&x, &weights, |x| {
                if ours {
                    max_pool2d(&pool, x)
                } else {
                    pool.forward(x)
                }
            });
            (y, x_grad)
        };
        let (ours, burns) = (run(true), run(false));
        let what = format!("kernel {kernel:?} on {:?}", x.dims());
        same(ours.0, burns.0, &format!("output, {what}"));
        same(ours.1, burns.1, &format!("x grad, {what}"));
    }

    #[test]
    fn forward_and_gradient_match_burns() {
        let device = Device::flex().autodiff();
        device.seed(5);
        let random =
            |dims: [usize; 4]| Tensor::random(dims, Distribution::Normal(0.0, 1.0), &device);
        matches_burn([2, 2], random([3, 4, 8, 6]));
        // Odd sizes: the last row and column fill no window, get no gradient.
        matches_burn([2, 2], random([2, 3, 9, 7]));
        matches_burn([3, 2], random([1, 2, 10, 9]));
        matches_burn([1, 1], random([2, 2, 3, 5]));
        // Ties, as after a ReLU: the first of the window's equal values takes the gradient.
        matches_burn([2, 2], random([2, 3, 8, 8]).clamp_min(0.5));
        // Large planes, split across threads.
        matches_burn([2, 2], random([2, 3, 70, 66]));
    }

    #[test]
    fn nan_propagates_as_in_burn() {
        let device = Device::flex();
        let values = vec![1.0, f32::NAN, 3.0, 2.0, 5.0, 4.0, 0.0, 0.0];
        let x =
            Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [1, 1, 2, 4]), &device);
        let pool = MaxPool2dConfig::new([2, 2]).init();
        let ours: Vec<f32> = max_pool2d(&pool, x.clone())
            .into_data()
            .try_into_vec()
            .unwrap();
        let burns: Vec<f32> = pool.forward(x).into_data().try_into_vec().unwrap();
        assert!(ours[0].is_nan() && burns[0].is_nan(), "{ours:?} {burns:?}");
        assert_eq!(ours[1], 3.0);
        assert_eq!(burns[1], 3.0);
    }

    #[test]
    fn other_settings_keep_burns_pooling() {
        let device = Device::flex();
        device.seed(2);
        let x = Tensor::<4>::random([1, 2, 7, 7], Distribution::Normal(0.0, 1.0), &device);
        // Overlapping windows and padding are not tiled: the result is burn's.
        let pool = MaxPool2dConfig::new([3, 3])
            .with_strides([2, 2])
            .with_padding(PaddingConfig2d::Explicit(1, 1, 1, 1))
            .init();
        same(
            max_pool2d(&pool, x.clone()),
            pool.forward(x),
            "3x3 stride 2",
        );
    }
}
