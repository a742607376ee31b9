//! Depthwise convolutions (one kernel per channel, as in MobileNets) run by our own operator, in
//! place of tract's.
//!
//! Why: on InsightFace's genderage model (a MobileNet: 13 depthwise 3x3 convolutions, 4 of them
//! of stride 2) tract's depthwise kernel and the zone scanner that feeds it took 28% of a
//! single-thread run on a Xeon (AVX-512), and its images/s were 0.72-0.80 of onnxruntime's on 2
//! threads (`benches/onnx_vs_onnxruntime.rs`). With this operator (the batch norm and ReLU that
//! follow each folded in, `fold.rs`) one thread ran it at 278-299 images/s instead of 167-178;
//! on 2 threads, with the pointwise operator too, it runs at 1.27-1.39 of onnxruntime's images/s
//! (medians of 3 and 5 alternate runs).
//!
//! How: each channel's plane is first copied into a zero-padded plane, its columns split by phase
//! of the stride (even and odd columns for stride 2), so that every tap of the kernel reads a
//! contiguous run of that copy and no tap checks a bound. An output row of a 3x3 kernel is then
//! one pass of nine multiply-adds over nine such runs, written once; other kernels add one tap at
//! a time. The loops are vectorised by the compiler for the instruction set `pulp` finds at run
//! time.

use crate::conv::{Axis2, batch_of_planes, channels_first, checked_geometry, output, with_scratch};
use crate::fold::{Folded, replace_convolutions};
use pulp::{Arch, Simd, WithSimd};
use rayon::prelude::*;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Replaces every depthwise convolution of `model` that [`DepthwiseConv`] can run (a constant
/// kernel and bias), with what follows it folded in; returns how many it replaced.
pub fn use_depthwise_convolutions(model: &mut TypedModel) -> TractResult<usize> {
    replace_convolutions(model, DepthwiseConv::can_run, |pool_spec, consts| {
        DepthwiseConv { pool_spec, consts }
    })
}

/// A 2-D depthwise convolution on f32 NCHW (or CHW) data: as many groups as channels, one kernel
/// of `kh x kw` per channel, as many output channels as input ones; then, where the graph had
/// them after it, a per-channel scale and shift (a batch norm, folded into the kernel and bias)
/// and a ReLU. The only input is the data.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DepthwiseConv {
    pool_spec: PoolSpec,
    /// The kernel `[c, kh, kw]`, one bias per channel.
    pub(crate) consts: Folded,
}

impl DepthwiseConv {
    fn can_run(conv: &Conv, input: &TypedFact, kernel: &Tensor) -> bool {
        let spec = &conv.pool_spec;
        let c = spec.input_channels;
        c > 1
            && conv.group == c
            && spec.output_channels == c
            && conv.q_params.is_none()
            && conv.kernel_fmt == KernelFormat::OIHW
            && channels_first(spec, input)
            && kernel.datum_type() == f32::datum_type()
            && kernel.shape() == [c, 1, spec.kernel_shape[0], spec.kernel_shape[1]]
    }
}

impl Op for DepthwiseConv {
    fn name(&self) -> StaticName {
        "DepthwiseConv".into()
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

impl EvalOp for DepthwiseConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let data = args_1!(inputs);
        let [n, c, h, w] = batch_of_planes(&self.pool_spec, data.shape())?;
        let [kh, kw] = [0, 1].map(|a| self.pool_spec.kernel_shape[a]);
        ensure!(
            c == self.pool_spec.input_channels
                && self.consts.kernel.len() == c * kh * kw
                && self.consts.bias.len() == c,
            "{c} channels for a depthwise convolution of {} channels",
            self.pool_spec.input_channels
        );
        let [y, x] = checked_geometry(&self.pool_spec, [c, h, w])?;
        let plane = y.output * x.output;
        let data = data.try_as_plain_ram()?.as_slice::<f32>()?;
        let frame = Frame { y, x, kh, kw };
        let one = |(i, (src, dst)): (usize, (&[f32], &mut [f32]))| {
            let channel = i % c;
            with_scratch(|padded| {
                frame.convolve(
                    src,
                    &self.consts.kernel[channel * kh * kw..][..kh * kw],
                    self.consts.bias[channel],
                    padded,
                    dst,
                )
            });
            self.consts.finish(dst);
        };
        let out = output(&self.pool_spec, [n, c, y.output, x.output], |out| {
            // Inside a rayon task the caller already spreads images over the threads
            // (gc-classify's batches); a plan run from a plain thread (one image, a cold start)
            // spreads the channels.
            if rayon::current_thread_index().is_some() {
                let planes = data.chunks_exact(h * w).zip(out.chunks_exact_mut(plane));
                planes.enumerate().for_each(one);
            } else {
                let planes = data
                    .par_chunks_exact(h * w)
                    .zip(out.par_chunks_exact_mut(plane));
                planes.enumerate().for_each(one);
            }
        })?;
        Ok(tvec!(out))
    }
}

impl TypedOp for DepthwiseConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 1, "DepthwiseConv takes the data only");
        self.pool_spec.output_facts(inputs)
    }

    as_op!();
}

/// The geometry of one channel's convolution.
#[derive(Debug, Clone, Copy)]
struct Frame {
    y: Axis2,
    x: Axis2,
    kh: usize,
    kw: usize,
}

impl Frame {
    /// Padded rows or columns the taps reach along `axis`: `(out - 1) * stride + (k - 1) *
    /// dilation + 1` (what padding lies past them is never read).
    fn span(axis: Axis2, k: usize) -> usize {
        (axis.output - 1) * axis.stride + (k - 1) * axis.dilation + 1
    }

    /// Convolves one channel's `src` plane into `dst` (every value written), with `scratch` for
    /// its padded copy.
    fn convolve(
        &self,
        src: &[f32],
        taps: &[f32],
        bias: f32,
        scratch: &mut Vec<f32>,
        dst: &mut [f32],
    ) {
        let layout = Layout::new(self);
        // The padded copy, a row being built, and the output computed in one pass (stride 1).
        let need = layout.len() + layout.stride * layout.width + layout.rows * layout.width;
        if scratch.len() < need {
            scratch.resize(need, 0.0);
        }
        Arch::new().dispatch(Plane {
            frame: *self,
            layout,
            src,
            scratch: &mut scratch[..need],
            taps,
            bias,
            dst,
        });
    }
}

/// The padded copy of a channel, its columns split by phase of the stride: phase `p` of padded
/// row `r` holds the row's columns `p, p + stride, p + 2 * stride...`, `width` of them, so that
/// every tap reads a contiguous run (`Layout::run`) and no tap checks a bound.
#[derive(Debug, Clone, Copy)]
struct Layout {
    rows: usize,
    cols: usize,
    stride: usize,
    width: usize,
}

impl Layout {
    fn new(frame: &Frame) -> Layout {
        let cols = Frame::span(frame.x, frame.kw);
        let stride = frame.x.stride;
        Layout {
            rows: Frame::span(frame.y, frame.kh),
            cols,
            stride,
            width: cols.div_ceil(stride),
        }
    }

    fn len(&self) -> usize {
        self.stride * self.rows * self.width
    }

    /// Where the values of padded row `row` from column `col` on, every `stride`-th, start.
    fn run(&self, row: usize, col: usize) -> usize {
        ((col % self.stride) * self.rows + row) * self.width + col / self.stride
    }
}

/// One channel's convolution (see [`Frame::convolve`]).
struct Plane<'a> {
    frame: Frame,
    layout: Layout,
    src: &'a [f32],
    scratch: &'a mut [f32],
    taps: &'a [f32],
    bias: f32,
    dst: &'a mut [f32],
}

impl WithSimd for Plane<'_> {
    type Output = ();

    // Inlined into pulp's function for the instruction set found at run time, so that the loops
    // are vectorised for it (the crate's baseline is SSE2).
    #[inline(always)]
    fn with_simd<S: Simd>(self, _simd: S) {
        let Plane {
            frame: Frame { y, x, kh, kw },
            layout,
            src,
            scratch,
            taps,
            bias,
            dst,
        } = self;
        let Layout {
            rows,
            cols,
            stride,
            width,
        } = layout;
        let (padded, rest) = scratch.split_at_mut(layout.len());
        let (line, flat) = rest.split_at_mut(stride * width);
        // Each padded row is built in `line` (zeros, then the input's row between the padding's
        // columns, `stride * width` values), then dealt out to its phases; with stride 1 the
        // row is built in place.
        let inside = x.pad.min(cols)..(x.pad + x.input).min(cols);
        for r in 0..rows {
            let built = if stride == 1 {
                &mut padded[r * width..][..width]
            } else {
                &mut *line
            };
            match r.checked_sub(y.pad).filter(|iy| *iy < y.input) {
                Some(iy) => {
                    built[..inside.start].fill(0.0);
                    built[inside.clone()].copy_from_slice(&src[iy * x.input..][..inside.len()]);
                    built[inside.end..].fill(0.0);
                }
                None => built.fill(0.0),
            }
            if stride == 2 {
                let (even, odd) = padded.split_at_mut(rows * width);
                let even = &mut even[r * width..][..width];
                let odd = &mut odd[r * width..][..width];
                for ((e, o), pair) in even.iter_mut().zip(odd).zip(line.chunks_exact(2)) {
                    *e = pair[0];
                    *o = pair[1];
                }
            } else if stride > 2 {
                for phase in 0..stride {
                    let to = &mut padded[layout.run(r, phase)..][..width];
                    for (t, v) in to.iter_mut().zip(line[phase..].iter().step_by(stride)) {
                        *t = *v;
                    }
                }
            }
        }
        let padded = &*padded;
        let n = x.output;
        let taps_at = |oy: usize, len: usize| {
            move |ky: usize, kx: usize| {
                let start = layout.run(oy * y.stride + ky * y.dilation, kx * x.dilation);
                &padded[start..][..len]
            }
        };
        if y.stride == 1 {
            // Output row oy + 1 reads `width` values past row oy in every phase, so all rows are
            // one pass over `flat`, row after row `width` apart (what lies past each row's `n`
            // values is computed and dropped): one long loop where the rows are short
            // (InsightFace's last layers: 14 and 7 values).
            let len = (y.output - 1) * width + n;
            let flat = &mut flat[..len];
            taps_into(flat, kh, kw, taps, bias, taps_at(0, len));
            for (out, computed) in dst.chunks_exact_mut(n).zip(flat.chunks(width)) {
                out.copy_from_slice(&computed[..n]);
            }
        } else {
            for (oy, out) in dst.chunks_exact_mut(n).enumerate() {
                taps_into(out, kh, kw, taps, bias, taps_at(oy, n));
            }
        }
    }
}

/// `out = bias + sum over taps (ky, kx) of taps[ky * kw + kx] * run(ky, kx)`, element-wise, with
/// `run` giving slices as long as `out`.
#[inline(always)]
fn taps_into<'a>(
    out: &mut [f32],
    kh: usize,
    kw: usize,
    taps: &[f32],
    bias: f32,
    run: impl Fn(usize, usize) -> &'a [f32],
) {
    let n = out.len();
    if let ([3, 3], &[w0, w1, w2, w3, w4, w5, w6, w7, w8]) = ([kh, kw], taps) {
        // Slices of length n, named one by one, so that the compiler sees every index in bounds
        // and vectorises the loop.
        let (r0, r1, r2) = (&run(0, 0)[..n], &run(0, 1)[..n], &run(0, 2)[..n]);
        let (r3, r4, r5) = (&run(1, 0)[..n], &run(1, 1)[..n], &run(1, 2)[..n]);
        let (r6, r7, r8) = (&run(2, 0)[..n], &run(2, 1)[..n], &run(2, 2)[..n]);
        for i in 0..n {
            // Summed tap by tap in the definition's order, so that every instruction set gives
            // the same result.
            let mut s = bias;
            s += w0 * r0[i];
            s += w1 * r1[i];
            s += w2 * r2[i];
            s += w3 * r3[i];
            s += w4 * r4[i];
            s += w5 * r5[i];
            s += w6 * r6[i];
            s += w7 * r7[i];
            s += w8 * r8[i];
            out[i] = s;
        }
    } else {
        out.fill(bias);
        for ky in 0..kh {
            for kx in 0..kw {
                let weight = taps[ky * kw + kx];
                for (o, v) in out.iter_mut().zip(run(ky, kx)) {
                    *o += weight * v;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::tests::{plain, values};
    use tract_onnx::tract_core::ops::binary::TypedBinOp;
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;
    use tract_onnx::tract_core::ops::nn::DataFormat;

    /// The depthwise convolution written as its definition, for one image.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        data: &[f32],
        [c, h, w]: [usize; 3],
        kernel: &[f32],
        [kh, kw]: [usize; 2],
        bias: &[f32],
        [sy, sx]: [usize; 2],
        [py, px]: [usize; 2],
        [dy, dx]: [usize; 2],
        [oh, ow]: [usize; 2],
    ) -> Vec<f32> {
        let mut out = Vec::with_capacity(c * oh * ow);
        for ch in 0..c {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = bias[ch % bias.len()];
                    for ky in 0..kh {
                        for kx in 0..kw {
                            let iy = (oy * sy + ky * dy) as isize - py as isize;
                            let ix = (ox * sx + kx * dx) as isize - px as isize;
                            if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                continue;
                            }
                            sum += data[(ch * h + iy as usize) * w + ix as usize]
                                * kernel[(ch * kh + ky) * kw + kx];
                        }
                    }
                    out.push(sum);
                }
            }
        }
        out
    }

    fn spec(
        c: usize,
        k: [usize; 2],
        s: [usize; 2],
        pad: [[usize; 2]; 2],
        d: [usize; 2],
    ) -> PoolSpec {
        PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![k[0], k[1]],
            padding: PaddingSpec::Explicit(
                tvec![pad[0][0], pad[0][1]],
                tvec![pad[1][0], pad[1][1]],
            ),
            dilations: Some(tvec![d[0], d[1]]),
            strides: Some(tvec![s[0], s[1]]),
            input_channels: c,
            output_channels: c,
        }
    }

    #[test]
    fn matches_the_definition_for_strides_paddings_dilations_and_kernels() {
        // (channels, height, width, kernel [h, w], stride [y, x], padding before and after as
        // [y, x], dilation [y, x])
        let same = |p: usize| ([p, p], [p, p]);
        for (c, h, w, k, s, (before, after), d) in [
            // InsightFace's: 3x3, padding 1, strides 1 and 2, even and odd sizes.
            (8, 12, 12, [3, 3], [1, 1], same(1), [1, 1]),
            (16, 12, 12, [3, 3], [2, 2], same(1), [1, 1]),
            (5, 7, 7, [3, 3], [2, 2], same(1), [1, 1]),
            (3, 1, 1, [3, 3], [1, 1], same(1), [1, 1]),
            (4, 9, 5, [3, 3], [1, 1], same(0), [1, 1]),
            // SAME_UPPER and other asymmetric paddings, padding wider than the kernel.
            (3, 8, 8, [3, 3], [2, 2], ([0, 0], [1, 1]), [1, 1]),
            (3, 7, 6, [3, 3], [1, 1], ([0, 1], [2, 0]), [1, 1]),
            (2, 4, 5, [3, 3], [1, 1], same(4), [1, 1]),
            // Strides 3 and mixed, dilations, and kernels other than 3x3.
            (2, 10, 11, [3, 3], [3, 1], same(1), [1, 1]),
            (2, 10, 11, [3, 3], [1, 3], same(1), [1, 1]),
            (3, 11, 13, [3, 3], [3, 3], same(2), [2, 2]),
            (2, 10, 11, [3, 3], [1, 2], same(2), [2, 1]),
            (3, 9, 9, [3, 3], [2, 2], same(3), [3, 2]),
            (4, 11, 9, [5, 5], [1, 1], same(2), [1, 1]),
            (4, 11, 9, [5, 5], [2, 2], same(2), [1, 1]),
            (3, 6, 7, [1, 3], [1, 2], ([0, 1], [0, 1]), [1, 1]),
            (3, 6, 7, [7, 1], [2, 1], ([3, 0], [3, 0]), [1, 1]),
            (2, 5, 5, [1, 1], [2, 2], same(0), [1, 1]),
        ] {
            let reach = |a: usize| d[a] * (k[a] - 1) + 1;
            let out_h = (h + before[0] + after[0] - reach(0)) / s[0] + 1;
            let out_w = (w + before[1] + after[1] - reach(1)) / s[1] + 1;
            let data = values(2 * c * h * w, 1);
            let kernel = values(c * k[0] * k[1], 7);
            let bias = values(c, 3);
            for relu in [false, true] {
                let op = DepthwiseConv {
                    pool_spec: spec(c, k, s, [before, after], d),
                    consts: Folded {
                        kernel: Arc::new(kernel.clone()),
                        bias: Arc::new(bias.clone()),
                        relu,
                    },
                };
                let batch = || {
                    tvec![
                        Tensor::from_shape(&[2, c, h, w], &data)
                            .unwrap()
                            .into_tvalue()
                    ]
                };
                // From a plain thread (channels spread over rayon's) and from inside rayon.
                let outside = op.eval(&EvalContext::out_of_plan(), batch()).unwrap();
                let inside = rayon::join(
                    || {
                        assert!(rayon::current_thread_index().is_some());
                        op.eval(&EvalContext::out_of_plan(), batch()).unwrap()
                    },
                    || (),
                )
                .0;
                // A batch of one without its axis (CHW), as tract's declutter leaves it.
                let mut chw = op.clone();
                chw.pool_spec.data_format = DataFormat::CHW;
                let first = Tensor::from_shape(&[c, h, w], &data[..c * h * w]).unwrap();
                let single = chw
                    .eval(&EvalContext::out_of_plan(), tvec![first.into_tvalue()])
                    .unwrap();
                for (got, images) in [(outside, 2), (inside, 2), (single, 1)] {
                    let shape = [2, c, out_h, out_w];
                    assert_eq!(got[0].shape(), &shape[usize::from(images == 1)..]);
                    let got = plain(&got[0]);
                    for image in 0..images {
                        let mut want = naive(
                            &data[image * c * h * w..][..c * h * w],
                            [c, h, w],
                            &kernel,
                            k,
                            &bias,
                            s,
                            before,
                            d,
                            [out_h, out_w],
                        );
                        if relu {
                            want.iter_mut().for_each(|v| *v = v.max(0.0));
                        }
                        let got = &got[image * want.len()..][..want.len()];
                        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                            assert!(
                                (g - w).abs() < 1e-5,
                                "{c}x{h}x{w} k{k:?} s{s:?} pad {before:?} {after:?} d{d:?} \
                                 relu {relu}, value {i}: {g} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    /// A graph of a depthwise convolution followed by `after` (each an operator, `<` after its
    /// name for the constant on the left, and the shape of its constant operand; "fork" for a
    /// second consumer of the value so far, given out too), and its input: two images (NCHW),
    /// or one without the batch axis (CHW, the shapes without their first axis).
    fn graph(after: &[(&str, Vec<usize>)], chw: bool) -> (TypedModel, Tensor) {
        use tract_onnx::tract_core::ops::math::{add, max, mul, sub};
        let (c, h, w) = (4, 6, 5);
        let shape: &[usize] = if chw { &[c, h, w] } else { &[2, c, h, w] };
        let mut model = TypedModel::default();
        let source = model.add_source("data", f32::fact(shape)).unwrap();
        let kernel = Tensor::from_shape(&[c, 1, 3, 3], &values(c * 9, 7)).unwrap();
        let kernel = model.add_const("kernel", kernel).unwrap();
        let bias = model.add_const("bias", tensor1(&values(c, 3))).unwrap();
        let mut pool_spec = spec(c, [3, 3], [1, 1], [[1, 1], [1, 1]], [1, 1]);
        if chw {
            pool_spec.data_format = DataFormat::CHW;
        }
        let conv = Conv {
            pool_spec,
            kernel_fmt: KernelFormat::OIHW,
            group: c,
            q_params: None,
        };
        let mut wire = model
            .wire_node("conv", conv, &[source, kernel, bias])
            .unwrap()[0];
        let mut outputs = vec![];
        for (i, (name, operand_shape)) in after.iter().enumerate() {
            let operand_shape = &operand_shape[usize::from(chw)..];
            let len = operand_shape.iter().product();
            let operand = if name.starts_with("relu") {
                vec![0.0; len]
            } else {
                values(len, 11 + i as u32)
            };
            let operand = Tensor::from_shape(operand_shape, &operand).unwrap();
            let operand = model.add_const(format!("operand{i}"), operand).unwrap();
            let op = match name.trim_end_matches('<') {
                "mul" => mul(),
                "add" | "fork" => add(),
                "sub" => sub(),
                _ => max(),
            };
            let inputs = if name.ends_with('<') {
                [operand, wire]
            } else {
                [wire, operand]
            };
            let out = model.wire_node(format!("op{i}"), op, &inputs).unwrap()[0];
            if *name == "fork" {
                outputs.push(out);
            } else {
                wire = out;
            }
        }
        outputs.push(wire);
        model.select_output_outlets(&outputs).unwrap();
        let input = Tensor::from_shape(shape, &values(shape.iter().product(), 1)).unwrap();
        (model, input)
    }

    #[test]
    fn folds_the_batch_norm_and_relu_that_follow_and_nothing_else() {
        // (what follows the convolution, how many of those nodes are folded, whether a ReLU is)
        let per_channel = vec![1, 4, 1, 1];
        let one = vec![1, 1, 1, 1];
        let cases = [
            // InsightFace's: batch norm as a scale and a shift per channel, then ReLU.
            (
                vec![
                    ("mul", per_channel.clone()),
                    ("add", per_channel.clone()),
                    ("relu", one.clone()),
                ],
                3,
                true,
            ),
            // A constant of one value for all channels; constants on the left.
            (
                vec![
                    ("mul<", one.clone()),
                    ("add<", per_channel.clone()),
                    ("relu<", one.clone()),
                ],
                3,
                true,
            ),
            // Nothing after a ReLU, nor a subtraction, nor a constant along another axis, nor a
            // max with something other than zero, nor past a value used twice.
            (
                vec![("relu", one.clone()), ("mul", per_channel.clone())],
                1,
                true,
            ),
            (
                vec![("add", per_channel.clone()), ("sub", per_channel.clone())],
                1,
                false,
            ),
            (
                vec![("mul", vec![1, 1, 1, 5]), ("add", per_channel.clone())],
                0,
                false,
            ),
            (vec![("max", per_channel.clone())], 0, false),
            (
                vec![
                    ("mul", per_channel.clone()),
                    ("fork", one.clone()),
                    ("relu", one.clone()),
                ],
                1,
                false,
            ),
        ];
        for ((after, folded, relu), chw) in cases
            .iter()
            .flat_map(|case| [(case.clone(), false), (case.clone(), true)])
        {
            let (model, input) = graph(&after, chw);
            let want = model
                .clone()
                .into_runnable()
                .unwrap()
                .run(tvec![input.clone().into_tvalue()])
                .unwrap();
            let mut swapped = model.clone();
            assert_eq!(
                use_depthwise_convolutions(&mut swapped).unwrap(),
                1,
                "{after:?}"
            );
            let swapped = swapped.into_decluttered().unwrap();
            let ours: Vec<&DepthwiseConv> = swapped
                .nodes
                .iter()
                .filter_map(|n| n.op_as::<DepthwiseConv>())
                .collect();
            assert_eq!(ours.len(), 1);
            assert_eq!(ours[0].consts.relu, relu, "{after:?} chw {chw}");
            let left = swapped
                .nodes
                .iter()
                .filter(|n| n.op_is::<TypedBinOp>())
                .count();
            assert_eq!(left, after.len() - folded, "{after:?} chw {chw}");
            let got = swapped
                .into_runnable()
                .unwrap()
                .run(tvec![input.into_tvalue()])
                .unwrap();
            assert_eq!(got.len(), want.len());
            for (got, want) in got.iter().zip(&want) {
                assert_eq!(got.shape(), want.shape());
                for (g, w) in plain(got).iter().zip(plain(want)) {
                    assert!((g - w).abs() < 1e-5, "{after:?} chw {chw}: {g} vs {w}");
                }
            }
        }
    }

    #[test]
    fn insightfaces_batch_norms_and_relus_are_folded() {
        // A batch of one is what `predict` runs; without our 1x1 operator before the declutter
        // (which keeps the batch axis), tract's declutter drops it (CHW).
        for batch in [1, 4] {
            insightfaces_are_folded(batch);
        }
    }

    fn insightfaces_are_folded(batch: usize) {
        let path = gc_testdata::shared("models/gender/insightface-genderage-112.onnx");
        let model = crate::read::read_model(&path).expect("read the shared model");
        let mut model = model
            .with_input_fact(0, f32::fact([batch, 3, 112, 112]).into())
            .and_then(|m| m.into_typed())
            .and_then(|m| m.into_decluttered())
            .unwrap();
        assert_eq!(use_depthwise_convolutions(&mut model).unwrap(), 13);
        let model = model.into_decluttered().unwrap();
        let ours: Vec<&TypedNode> = model
            .nodes
            .iter()
            .filter(|n| n.op_is::<DepthwiseConv>())
            .collect();
        assert_eq!(ours.len(), 13);
        for node in ours {
            assert!(
                node.op_as::<DepthwiseConv>().unwrap().consts.relu,
                "{}",
                node.name
            );
            for next in &node.outputs[0].successors {
                let next = model.node(next.node);
                assert!(
                    !next.op_is::<TypedBinOp>(),
                    "{} after {}",
                    next.name,
                    node.name
                );
            }
        }
    }

    #[test]
    fn an_empty_output_is_an_error_not_a_panic() {
        // A 3x3 kernel over 2x2 pixels without padding has no output position.
        let mut spec = spec(4, [3, 3], [1, 1], [[0, 0], [0, 0]], [1, 1]);
        spec.padding = PaddingSpec::Valid;
        let op = DepthwiseConv {
            pool_spec: spec,
            consts: Folded {
                kernel: Arc::new(values(36, 3)),
                bias: Arc::new(vec![0.0; 4]),
                relu: false,
            },
        };
        let data = Tensor::from_shape(&[1, 4, 2, 2], &values(16, 1)).unwrap();
        let result = op.eval(&EvalContext::out_of_plan(), tvec![data.into_tvalue()]);
        let err = result.expect_err("no output position");
        assert!(format!("{err:#}").contains("no output"), "{err:#}");
    }
}
