//! 1x1 convolutions of stride 1 (MobileNets' pointwise ones) run as one `gemm` call per image
//! by our own operator, with the batch norm and ReLU after them folded in.
//!
//! Why: tract's declutter turns such a convolution into a matrix product of its own, which packs
//! the activations into panels on every call (on InsightFace, 13 of them: that packing alone was
//! 9% of a run, its matrix kernels 30%); `gemm` reads them where they lie. The swap is made
//! before tract's declutter, which would otherwise have turned them into matrix products first.

use crate::conv::{
    batch_of_planes, channels_first, checked_geometry, output, parallelism, product,
};
use crate::fold::{Folded, replace_convolutions};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Replaces every 1x1 convolution of stride 1 without padding of `model` whose kernel and bias
/// are constants, with what follows it folded in; returns how many it replaced. For a typed
/// model before tract's declutter.
pub fn use_pointwise_convolutions(model: &mut TypedModel) -> TractResult<usize> {
    // Before the declutter a bias reaches its convolution through a cast, whose output tract
    // knows to be a constant only once computed (it does so early for fewer than 16 values).
    model.compute_const_facts()?;
    replace_convolutions(model, PointwiseConv::can_run, |pool_spec, consts| {
        PointwiseConv { pool_spec, consts }
    })
}

/// A 1x1 convolution of stride 1 without padding on f32 NCHW (or CHW) data, no groups; then,
/// where the graph had them after it, a per-channel scale and shift (folded into the kernel and
/// bias) and a ReLU. The only input is the data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PointwiseConv {
    pool_spec: PoolSpec,
    /// The kernel `[out, in]`, one bias per output channel.
    pub(crate) consts: Folded,
}

impl PointwiseConv {
    fn can_run(conv: &Conv, input: &TypedFact, kernel: &Tensor) -> bool {
        let spec = &conv.pool_spec;
        let [c, out_c] = [spec.input_channels, spec.output_channels];
        let Some(hw) = input
            .shape
            .as_concrete()
            .and_then(|s| s.get(s.len().saturating_sub(2)..))
        else {
            return false;
        };
        // The padding last: tract's arithmetic for it assumes two spatial axes (a 1-D
        // convolution would panic there).
        conv.group == 1
            && conv.q_params.is_none()
            && conv.kernel_fmt == KernelFormat::OIHW
            && channels_first(spec, input)
            && spec.kernel_shape.as_slice() == [1, 1]
            && spec.strides().iter().all(|s| *s == 1)
            && kernel.datum_type() == f32::datum_type()
            && kernel.shape() == [out_c, c, 1, 1]
            && spec
                .computed_padding(hw)
                .iter()
                .zip(hw)
                .all(|(p, h)| p.pad_before == 0 && p.convoluted == *h)
    }
}

impl Op for PointwiseConv {
    fn name(&self) -> StaticName {
        "PointwiseConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        let mut info = self.pool_spec.info();
        info.push(format!("relu: {}", self.consts.relu));
        Ok(info)
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for PointwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let data = args_1!(inputs);
        let [n, c, h, w] = batch_of_planes(&self.pool_spec, data.shape())?;
        let out_c = self.pool_spec.output_channels;
        ensure!(
            c == self.pool_spec.input_channels
                && self.consts.kernel.len() == out_c * c
                && self.consts.bias.len() == out_c,
            "{c} channels for a 1x1 convolution of {} channels",
            self.pool_spec.input_channels
        );
        let [y, x] = checked_geometry(&self.pool_spec, [c, h, w])?;
        let plane = y.output * x.output;
        let data = data.try_as_plain_ram()?.as_slice::<f32>()?;
        let parallelism = parallelism();
        let out = output(&self.pool_spec, [n, out_c, y.output, x.output], |out| {
            for (image, dst) in data
                .chunks_exact(c * plane)
                .zip(out.chunks_exact_mut(out_c * plane))
            {
                // Every value starts as its channel's bias, which the product is added to.
                for (values, bias) in dst.chunks_exact_mut(plane).zip(self.consts.bias.iter()) {
                    values.fill(*bias);
                }
                product(
                    dst,
                    &self.consts.kernel,
                    image,
                    [out_c, plane, c],
                    true,
                    parallelism,
                );
                self.consts.finish(dst);
            }
        })?;
        Ok(tvec!(out))
    }
}

impl TypedOp for PointwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "PointwiseConv takes the data only");
        self.pool_spec.output_facts(inputs)
    }

    as_op!();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::{plain, values};
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::cast::cast;
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;
    use tract_onnx::tract_core::ops::math::{add, max, mul};
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// A 1x1 convolution of `c` to `o` channels over `h x w` (stride `stride`, padding `pad`),
    /// followed by a batch norm (a scale and a shift per channel) and a ReLU; and its input:
    /// two images (NCHW) or one without the batch axis (CHW).
    fn graph(chw: bool, stride: usize, pad: usize) -> (TypedModel, Tensor) {
        // 16 output channels: a bias of 16 values or more goes through the cast tract-onnx puts
        // before it without being known as a constant until computed.
        let (c, o, h, w) = (3, 16, 4, 6);
        let shape: &[usize] = if chw { &[c, h, w] } else { &[2, c, h, w] };
        let per_channel: &[usize] = if chw { &[o, 1, 1] } else { &[1, o, 1, 1] };
        let one: &[usize] = &[1, 1, 1, 1][usize::from(chw)..];
        let mut model = TypedModel::default();
        let source = model.add_source("data", f32::fact(shape)).unwrap();
        let kernel = Tensor::from_shape(&[o, c, 1, 1], &values(o * c, 7)).unwrap();
        let kernel = model.add_const("kernel", kernel).unwrap();
        let bias = model.add_const("bias", tensor1(&values(o, 3))).unwrap();
        let bias = model
            .wire_node("bias.cast", cast(f32::datum_type()), &[bias])
            .unwrap()[0];
        assert!(model.outlet_fact(bias).unwrap().konst.is_none());
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: if chw {
                    DataFormat::CHW
                } else {
                    DataFormat::NCHW
                },
                kernel_shape: tvec![1, 1],
                padding: PaddingSpec::Explicit(tvec![pad, pad], tvec![pad, pad]),
                dilations: None,
                strides: Some(tvec![stride, stride]),
                input_channels: c,
                output_channels: o,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let mut wire = model
            .wire_node("conv", conv, &[source, kernel, bias])
            .unwrap()[0];
        for (i, (op, operand)) in [
            (
                mul(),
                Tensor::from_shape(per_channel, &values(o, 11)).unwrap(),
            ),
            (
                add(),
                Tensor::from_shape(per_channel, &values(o, 13)).unwrap(),
            ),
            (max(), Tensor::from_shape(one, &[0f32]).unwrap()),
        ]
        .into_iter()
        .enumerate()
        {
            let operand = model.add_const(format!("operand{i}"), operand).unwrap();
            wire = model
                .wire_node(format!("op{i}"), op, &[wire, operand])
                .unwrap()[0];
        }
        model.select_output_outlets(&[wire]).unwrap();
        let input = Tensor::from_shape(shape, &values(shape.iter().product(), 1)).unwrap();
        (model, input)
    }

    #[test]
    fn matches_tract_with_the_batch_norm_and_relu_folded_in() {
        for chw in [false, true] {
            let (model, input) = graph(chw, 1, 0);
            let want = model
                .clone()
                .into_runnable()
                .unwrap()
                .run(tvec![input.clone().into_tvalue()])
                .unwrap();
            let mut swapped = model.clone();
            assert_eq!(use_pointwise_convolutions(&mut swapped).unwrap(), 1);
            let swapped = swapped.into_decluttered().unwrap();
            let ours: Vec<&PointwiseConv> = swapped
                .nodes
                .iter()
                .filter_map(|n| n.op_as::<PointwiseConv>())
                .collect();
            assert_eq!(ours.len(), 1);
            assert!(ours[0].consts.relu);
            assert!(!swapped.nodes.iter().any(|n| n.op_is::<TypedBinOp>()));
            // From a plain thread (gemm spread over rayon's) and from inside rayon.
            let outside = swapped
                .clone()
                .into_runnable()
                .unwrap()
                .run(tvec![input.clone().into_tvalue()])
                .unwrap();
            let inside = rayon::join(
                || {
                    swapped
                        .into_runnable()
                        .unwrap()
                        .run(tvec![input.into_tvalue()])
                        .unwrap()
                },
                || (),
            )
            .0;
            for got in [outside, inside] {
                assert_eq!(got[0].shape(), want[0].shape());
                for (g, w) in plain(&got[0]).iter().zip(plain(&want[0])) {
                    assert!((g - w).abs() < 1e-5, "chw {chw}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn leaves_strided_padded_and_one_dimensional_ones_to_tract() {
        for (stride, pad) in [(2, 0), (1, 1)] {
            let (mut model, _) = graph(false, stride, pad);
            assert_eq!(use_pointwise_convolutions(&mut model).unwrap(), 0);
        }
        // A 1x1 convolution over one spatial axis (as in ECA channel attention): not ours, and
        // no panic on the way.
        let mut model = TypedModel::default();
        let source = model.add_source("data", f32::fact([1, 3, 7])).unwrap();
        let kernel = Tensor::from_shape(&[2, 3, 1], &values(6, 7)).unwrap();
        let kernel = model.add_const("kernel", kernel).unwrap();
        let bias = model.add_const("bias", tensor0(0f32)).unwrap();
        let conv = Conv {
            pool_spec: PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![1],
                padding: PaddingSpec::Valid,
                dilations: None,
                strides: None,
                input_channels: 3,
                output_channels: 2,
            },
            kernel_fmt: KernelFormat::OIHW,
            group: 1,
            q_params: None,
        };
        let out = model
            .wire_node("conv", conv, &[source, kernel, bias])
            .unwrap();
        model.select_output_outlets(&out).unwrap();
        assert_eq!(use_pointwise_convolutions(&mut model).unwrap(), 0);
    }
}
