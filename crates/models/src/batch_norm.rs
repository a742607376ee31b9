//! BatchNorm on the `flex` CPU backend with kernels of our own. In training: one pass over the
//! activation for the batch statistics and one for the output, forward and backward. In
//! inference: one pass, `x * scale + shift` per channel.
//!
//! Why: burn 0.22's `batch_norm_train` is a default body made of tensor operations (flex does not
//! override it). To reduce over the batch and spatial axes it swaps the batch and channel axes and
//! copies the whole activation, twice forward and twice backward, among about ten more passes each
//! way. At the notebook CNN's four shapes (batch 64, 128px, 2 threads) that took 577 ms forward and
//! 582 backward against PyTorch's 218 and 275 (`benches/layer_times.rs`, `docs/BENCHMARKS.md`);
//! these kernels take 102 and 106. The operation reaches burn through its backend extension
//! mechanism (`#[backend_extension]`): a kernel for `Flex`, and for `Autodiff` the same one-node
//! backward that burn records for its own batch norm. Other backends (the `gpu` build's wgpu) keep
//! burn's `BatchNorm::forward`.

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
use burn::nn::BatchNorm;
use burn::tensor::{Shape, Tensor};
use rayon::prelude::*;

#[backend_extension(Flex, Autodiff)]
pub trait BatchNormBackend: Backend {
    /// BatchNorm with the batch's own statistics: the output, then the per-channel mean and biased
    /// variance (what the running statistics are fed), as burn's `batch_norm_train`.
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// The gradients of [`fused_batch_norm_train`](Self::fused_batch_norm_train) with respect to
    /// `x`, `gamma` and `beta`, given the gradient of its output.
    fn fused_batch_norm_train_backward(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        mean: FloatTensor<Self>,
        variance: FloatTensor<Self>,
        epsilon: f64,
        output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>);

    /// BatchNorm with fixed statistics, folded into `x * scale + shift` per channel (`[channels]`
    /// each). The default body is differentiable tensor operations; flex's is one pass.
    fn batch_norm_scale_shift(
        x: FloatTensor<Self>,
        scale: FloatTensor<Self>,
        shift: FloatTensor<Self>,
    ) -> FloatTensor<Self> {
        scale_shift_by_ops::<Self>(x, scale, shift)
    }
}

/// `x * scale + shift` per channel, in tensor operations.
fn scale_shift_by_ops<B: Backend>(
    x: FloatTensor<B>,
    scale: FloatTensor<B>,
    shift: FloatTensor<B>,
) -> FloatTensor<B> {
    let shape = x.shape();
    let mut per_channel = vec![1; shape.num_dims()];
    per_channel[1] = shape[1];
    let scale = B::float_reshape(scale, Shape::from(per_channel.clone()));
    let shift = B::float_reshape(shift, Shape::from(per_channel));
    B::float_add(B::float_mul(x, scale), shift)
}

/// `bn.forward(x)`, through the fused kernels on `flex`. In training (an autodiff device, a layer
/// that is training), updates the running statistics as burn does.
pub fn batch_norm<const D: usize>(bn: &BatchNorm, x: Tensor<D>) -> Tensor<D> {
    let device = x.device();
    if !on_flex(&device) {
        return bn.forward(x);
    }
    if !(device.is_autodiff() && bn.training.is_enabled()) {
        let running_mean = bn.running_mean.value().to_device(&device);
        let running_var = bn.running_var.value().to_device(&device);
        let scale = bn.gamma.val() / running_var.add_scalar(bn.epsilon).sqrt();
        let shift = bn.beta.val() - running_mean * scale.clone();
        return Tensor::from_dispatch(<Dispatch as BatchNormBackend>::batch_norm_scale_shift(
            x.into_dispatch(),
            scale.into_dispatch(),
            shift.into_dispatch(),
        ));
    }
    let (output, mean, variance) = <Dispatch as BatchNormBackend>::fused_batch_norm_train(
        x.into_dispatch(),
        bn.gamma.val().into_dispatch(),
        bn.beta.val().into_dispatch(),
        bn.epsilon,
    );
    let mean = Tensor::<1>::from_dispatch(mean).detach();
    let variance = Tensor::<1>::from_dispatch(variance).detach();
    let keep = 1.0 - bn.momentum;
    let running_mean = bn.running_mean.value_sync().to_device(&device);
    let running_var = bn.running_var.value_sync().to_device(&device);
    bn.running_mean.update(
        running_mean
            .mul_scalar(keep)
            .add(mean.mul_scalar(bn.momentum))
            .detach(),
    );
    bn.running_var.update(
        running_var
            .mul_scalar(keep)
            .add(variance.mul_scalar(bn.momentum))
            .detach(),
    );
    Tensor::from_dispatch(output)
}

impl BatchNormBackend for Flex {
    fn fused_batch_norm_train(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        epsilon: f64,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let Some(layout) = Layout::of(&x) else {
            let r = <Flex as ModuleOps<Flex>>::batch_norm_train(x, gamma, beta, epsilon);
            return (r.output, r.mean, r.variance);
        };
        let x = x.to_contiguous();
        let xs = values(&x);
        let gamma = f32s(&gamma);
        let beta = f32s(&beta);
        let stats = layout.per_channel(|c| {
            let shift = xs[c * layout.inner];
            let (s, s2) = layout.rows(c).fold((0.0, 0.0), |(s, s2), r| {
                let (a, a2) = sums(&xs[r], shift);
                (s + a, s2 + a2)
            });
            let m = layout.count() as f64;
            let shifted_mean = s / m;
            let variance = (s2 / m - shifted_mean * shifted_mean).max(0.0);
            (shift as f64 + shifted_mean, variance)
        });
        let (scale, offset): (Vec<f32>, Vec<f32>) = stats
            .iter()
            .enumerate()
            .map(|(c, &(mean, variance))| {
                let scale = gamma[c] as f64 / (variance + epsilon).sqrt();
                (scale as f32, (beta[c] as f64 - mean * scale) as f32)
            })
            .unzip();
        let mut out = vec![0.0f32; xs.len()];
        layout.map_rows(&mut out, |c, row, start| {
            let xr = &xs[start..start + row.len()];
            for (o, &v) in row.iter_mut().zip(xr) {
                *o = v * scale[c] + offset[c];
            }
        });
        let mean = stats.iter().map(|s| s.0 as f32).collect();
        let variance = stats.iter().map(|s| s.1 as f32).collect();
        (
            tensor(out, x.shape()),
            tensor(mean, [layout.channels]),
            tensor(variance, [layout.channels]),
        )
    }

    fn fused_batch_norm_train_backward(
        x: FlexTensor,
        gamma: FlexTensor,
        mean: FlexTensor,
        variance: FlexTensor,
        epsilon: f64,
        output_grad: FlexTensor,
    ) -> (FlexTensor, FlexTensor, FlexTensor) {
        let layout = match (Layout::of(&x), Layout::of(&output_grad)) {
            (Some(l), Some(_)) => l,
            _ => {
                let r = <Flex as ModuleOps<Flex>>::batch_norm_train_backward(
                    x,
                    gamma,
                    mean,
                    variance,
                    epsilon,
                    output_grad,
                );
                return (r.x_grad, r.gamma_grad, r.beta_grad);
            }
        };
        let x = x.to_contiguous();
        let xs = values(&x);
        let mut grad = contiguous(output_grad);
        let (gamma, mean, variance) = (f32s(&gamma), f32s(&mean), f32s(&variance));
        // Per channel: the sum of the gradient and of the gradient times the centred input.
        let sums = {
            let gs = values(&grad);
            layout.per_channel(|c| {
                layout.rows(c).fold((0.0, 0.0), |(s, sx), r| {
                    let (a, ax) = grad_sums(&gs[r.clone()], &xs[r], mean[c]);
                    (s + a, sx + ax)
                })
            })
        };
        let m = layout.count() as f64;
        // x_grad = gamma / std * (g - mean(g) - x_hat * mean(g * x_hat)), as k_g * g + k_x * x + k;
        // gamma_grad = sum(g * x_hat), beta_grad = sum(g).
        let mut coefficients = Vec::with_capacity(layout.channels);
        let mut gamma_grad = Vec::with_capacity(layout.channels);
        for (c, &(sum_g, sum_gx)) in sums.iter().enumerate() {
            let inv_std = 1.0 / (variance[c] as f64 + epsilon).sqrt();
            let k_g = gamma[c] as f64 * inv_std;
            let k_x = -k_g * inv_std * inv_std * sum_gx / m;
            let k = -k_g * sum_g / m - k_x * mean[c] as f64;
            coefficients.push([k_g as f32, k_x as f32, k as f32]);
            gamma_grad.push((sum_gx * inv_std) as f32);
        }
        let beta_grad = sums.iter().map(|&(sum_g, _)| sum_g as f32).collect();
        // The incoming gradient becomes x's: overwritten in place where it is ours alone (copied
        // first where it is shared), rather than a second activation-sized buffer.
        layout.map_rows(grad.storage_mut::<f32>(), |c, row, start| {
            let [k_g, k_x, k] = coefficients[c];
            let xr = &xs[start..start + row.len()];
            for (o, &v) in row.iter_mut().zip(xr) {
                *o = k_g * *o + k_x * v + k;
            }
        });
        (
            grad,
            tensor(gamma_grad, [layout.channels]),
            tensor(beta_grad, [layout.channels]),
        )
    }

    fn batch_norm_scale_shift(x: FlexTensor, scale: FlexTensor, shift: FlexTensor) -> FlexTensor {
        let Some(layout) = Layout::of(&x) else {
            return scale_shift_by_ops::<Flex>(x, scale, shift);
        };
        let (scale, shift) = (f32s(&scale), f32s(&shift));
        // In place where the input is ours alone (a convolution's fresh output), copied first
        // where it is shared.
        let mut x = contiguous(x);
        layout.map_rows(x.storage_mut::<f32>(), |c, row, _| {
            for v in row {
                *v = *v * scale[c] + shift[c];
            }
        });
        x
    }
}

impl<B: Backend + BatchNormBackend, C: CheckpointStrategy> BatchNormBackend for Autodiff<B, C> {
    fn fused_batch_norm_train(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        epsilon: f64,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        /// One node for the whole operation, as burn's own `batch_norm_train` records.
        #[derive(Debug)]
        struct FusedBatchNorm;

        impl<B: Backend + BatchNormBackend> Backward<B, 3> for FusedBatchNorm {
            // The input and gamma are checkpointed; the statistics come as the forward made them.
            type State = (NodeId, NodeId, FloatTensor<B>, FloatTensor<B>, f64);

            fn backward(
                self,
                ops: Ops<Self::State, 3>,
                grads: &mut Gradients,
                checkpointer: &mut Checkpointer,
            ) {
                let [node_x, node_gamma, node_beta] = ops.parents;
                let grad = grads.consume::<B>(&ops.node);
                let (x_state, gamma_state, mean, variance, epsilon) = ops.state;
                let x = checkpointer.retrieve_node_output::<FloatTensor<B>>(x_state);
                let gamma = checkpointer.retrieve_node_output::<FloatTensor<B>>(gamma_state);
                let (x_grad, gamma_grad, beta_grad) =
                    B::fused_batch_norm_train_backward(x, gamma, mean, variance, epsilon, grad);
                if let Some(node) = node_x {
                    grads.register::<B>(node.id, x_grad);
                }
                if let Some(node) = node_gamma {
                    grads.register::<B>(node.id, gamma_grad);
                }
                if let Some(node) = node_beta {
                    grads.register::<B>(node.id, beta_grad);
                }
            }
        }

        match FusedBatchNorm
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let gamma_state = prep.checkpoint(&gamma);
                let (output, mean, variance) = B::fused_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                let state = (
                    x_state,
                    gamma_state,
                    mean.clone(),
                    variance.clone(),
                    epsilon,
                );
                (
                    prep.finish(state, output),
                    FloatTensor::<Self>::new(mean),
                    FloatTensor::<Self>::new(variance),
                )
            }
            OpsKind::UnTracked(prep) => {
                let (output, mean, variance) = B::fused_batch_norm_train(
                    x.into_primitive(),
                    gamma.into_primitive(),
                    beta.into_primitive(),
                    epsilon,
                );
                (
                    prep.finish(output),
                    FloatTensor::<Self>::new(mean),
                    FloatTensor::<Self>::new(variance),
                )
            }
        }
    }

    fn fused_batch_norm_train_backward(
        _x: FloatTensor<Self>,
        _gamma: FloatTensor<Self>,
        _mean: FloatTensor<Self>,
        _variance: FloatTensor<Self>,
        _epsilon: f64,
        _output_grad: FloatTensor<Self>,
    ) -> (FloatTensor<Self>, FloatTensor<Self>, FloatTensor<Self>) {
        // As burn's own batch norm: the backward is not itself differentiable.
        unreachable!("the fused batch norm's backward is not differentiated")
    }
}

/// An `[batch, channels, ...]` f32 activation, seen as `batch * channels` rows of `inner` values.
#[derive(Clone, Copy)]
struct Layout {
    batch: usize,
    channels: usize,
    inner: usize,
}

impl Layout {
    /// `None` where the fused kernel does not apply (not f32, fewer than two axes, empty).
    fn of(x: &FlexTensor) -> Option<Layout> {
        let shape = x.shape();
        let dims = shape.as_slice();
        if x.dtype() != DType::F32 || dims.len() < 2 || shape.num_elements() == 0 {
            return None;
        }
        Some(Layout {
            batch: dims[0],
            channels: dims[1],
            inner: dims[2..].iter().product(),
        })
    }

    /// The values a channel's statistics are taken over.
    fn count(&self) -> usize {
        self.batch * self.inner
    }

    /// The index ranges of channel `c`'s rows.
    fn rows(&self, c: usize) -> impl Iterator<Item = std::ops::Range<usize>> + '_ {
        (0..self.batch).map(move |b| {
            let start = (b * self.channels + c) * self.inner;
            start..start + self.inner
        })
    }

    /// `f(c)` for every channel, in parallel.
    fn per_channel<T: Send>(&self, f: impl Fn(usize) -> T + Sync + Send) -> Vec<T> {
        (0..self.channels).into_par_iter().map(f).collect()
    }

    /// `f(channel, row, row's start)` over the rows of `out`, in parallel.
    fn map_rows(&self, out: &mut [f32], f: impl Fn(usize, &mut [f32], usize) + Sync + Send) {
        // Rows of a few values (late EfficientNet stages: 7 x 7) would drown in rayon's overhead
        // one by one.
        let min_rows = (4096 / self.inner).max(1);
        out.par_chunks_mut(self.inner)
            .with_min_len(min_rows)
            .enumerate()
            .for_each(|(i, row)| f(i % self.channels, row, i * self.inner));
    }
}

/// `t` laid out contiguously, its buffer still ours alone where it was (`to_contiguous` takes a
/// reference, so the caller's handle would otherwise keep the buffer shared, and writing to it
/// would copy it).
fn contiguous(t: FlexTensor) -> FlexTensor {
    t.to_contiguous()
}

/// The values of a small `[channels]` tensor.
fn f32s(t: &FlexTensor) -> Vec<f32> {
    t.clone()
        .into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 values")
}

/// Values summed per block in f32 (8 lanes, so that they vectorise), blocks summed in f64: the
/// rounding of a block of 512 stays far below what the statistics need.
const BLOCK: usize = 512;

/// The sum of `row - shift` and of its square. Shifting by a value of the channel keeps
/// `E[x^2] - E[x]^2` from cancelling when the mean is large against the spread.
fn sums(row: &[f32], shift: f32) -> (f64, f64) {
    let (mut s, mut s2) = (0.0f64, 0.0f64);
    for block in row.chunks(BLOCK) {
        let mut a = [0.0f32; 8];
        let mut a2 = [0.0f32; 8];
        let chunks = block.chunks_exact(8);
        let tail = chunks.remainder();
        for ch in chunks {
            for i in 0..8 {
                let v = ch[i] - shift;
                a[i] += v;
                a2[i] += v * v;
            }
        }
        for &v in tail {
            let v = v - shift;
            a[0] += v;
            a2[0] += v * v;
        }
        s += a.iter().map(|&v| v as f64).sum::<f64>();
        s2 += a2.iter().map(|&v| v as f64).sum::<f64>();
    }
    (s, s2)
}

/// The sum of `g` and of `g * (x - mean)`.
fn grad_sums(g: &[f32], x: &[f32], mean: f32) -> (f64, f64) {
    let (mut s, mut sx) = (0.0f64, 0.0f64);
    for (gb, xb) in g.chunks(BLOCK).zip(x.chunks(BLOCK)) {
        let mut a = [0.0f32; 8];
        let mut ax = [0.0f32; 8];
        let gc = gb.chunks_exact(8);
        let xc = xb.chunks_exact(8);
        let (gt, xt) = (gc.remainder(), xc.remainder());
        for (g8, x8) in gc.zip(xc) {
            for i in 0..8 {
                a[i] += g8[i];
                ax[i] += g8[i] * (x8[i] - mean);
            }
        }
        for (&g, &v) in gt.iter().zip(xt) {
            a[0] += g;
            ax[0] += g * (v - mean);
        }
        s += a.iter().map(|&v| v as f64).sum::<f64>();
        sx += ax.iter().map(|&v| v as f64).sum::<f64>();
    }
    (s, sx)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::{close, under_weighted_loss};
    use burn::module::{Param, RunningState};
    use burn::nn::BatchNormConfig;
    use burn::tensor::{Device, Distribution};

    /// Forward, backward and running statistics against burn's own `BatchNorm::forward`, on an
    /// input with a large mean (where a naive E[x^2] - E[x]^2 cancels) and a weighted loss (so
    /// that the gradient differs from element to element).
    fn matches_burn(shape: [usize; 4], offset: f32) {
        let device = Device::flex().autodiff();
        device.seed(7);
        let channels = shape[1];
        // Non-trivial gamma and beta; two layers, each with running statistics of its own.
        let gamma = Tensor::<1>::random([channels], Distribution::Uniform(0.5, 1.5), &device);
        let beta = Tensor::<1>::random([channels], Distribution::Uniform(-0.5, 0.5), &device);
        let layer = || {
            let mut bn = BatchNormConfig::new(channels).init(&device);
            bn.gamma = Param::from_tensor(gamma.clone());
            bn.beta = Param::from_tensor(beta.clone());
            bn
        };
        let (bn, reference) = (layer(), layer());
        let x = Tensor::<4>::random(shape, Distribution::Normal(offset as f64, 2.0), &device);
        let weights = Tensor::<4>::random(shape, Distribution::Uniform(-1.0, 1.0), &device);

        let run = |bn: &BatchNorm, fused: bool| {
            let (y, x_grad, grads) = under_weighted_loss(&x, &weights, |x| {
                if fused {
                    batch_norm(bn, x)
                } else {
                    bn.forward(x)
                }
            });
            let g = bn.gamma.val().grad(&grads).unwrap();
            let b = bn.beta.val().grad(&grads).unwrap();
            (y, x_grad, g, b)
        };
        let ours = run(&bn, true);
        let burns = run(&reference, false);
        close(ours.0, burns.0, 1e-5, "output");
        close(ours.1, burns.1, 1e-4, "x grad");
        close(ours.2, burns.2, 1e-4, "gamma grad");
        close(ours.3, burns.3, 1e-4, "beta grad");
        close(
            bn.running_mean.value(),
            reference.running_mean.value(),
            1e-5,
            "running mean",
        );
        close(
            bn.running_var.value(),
            reference.running_var.value(),
            1e-4,
            "running var",
        );
    }

    #[test]
    fn fused_training_batch_norm_matches_burns() {
        matches_burn([4, 3, 9, 7], 0.0);
        matches_burn([3, 5, 17, 17], 100.0);
        // One value per row (as after a global pool), and rows shorter than the 8 lanes.
        matches_burn([6, 4, 1, 1], -3.0);
        matches_burn([2, 8, 3, 2], 1.0);
    }

    #[test]
    fn inference_matches_burns() {
        let device = Device::flex();
        device.seed(11);
        let mut bn = BatchNormConfig::new(3).init(&device);
        let random =
            |low, high| Tensor::<1>::random([3], Distribution::Uniform(low, high), &device);
        bn.gamma = Param::from_tensor(random(0.5, 1.5));
        bn.beta = Param::from_tensor(random(-1.0, 1.0));
        bn.running_mean = RunningState::new(random(-2.0, 2.0));
        bn.running_var = RunningState::new(random(0.1, 3.0));
        for shape in [[2, 3, 4, 5], [1, 3, 1, 1], [3, 3, 7, 7]] {
            let x = Tensor::<4>::random(shape, Distribution::Default, &device);
            let ours = batch_norm(&bn, x.clone()).flatten::<1>(0, 3);
            close(ours, bn.forward(x).flatten::<1>(0, 3), 1e-6, "inference");
        }
    }
}
