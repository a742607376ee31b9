//! Convolutions of ONNX models run by our own operator, in place of tract's: im2col and one `gemm`
//! call per image, or Winograd's F(2x2, 3x3) (`winograd.rs`) for 3x3 kernels of stride 1.
//!
//! Why: tract 0.23 runs a plain convolution (no groups) as its lazy im2col feeding its own matrix
//! kernel, and that kernel is the slow part of the ONNX models we ship presets for: on the
//! yu4u WRN-16-8 (16 such convolutions, 12 GFLOP an image) a single-thread run took 260 ms on a
//! Xeon (AVX-512), of which about 150 ms in tract's 16x12 and 16x8 kernels and 50 ms gathering
//! patches, where unfolding the same convolutions and multiplying them with the `gemm` crate (the
//! kernel our burn models use, `gc_core::matmul`) took 100 + 45 ms. Against onnxruntime on 2
//! threads (`benches/onnx_vs_onnxruntime.rs`) yu4u went from 0.49 of its images/s to 0.77 with
//! im2col and 1.07 with Winograd, dlib's model from 0.84 to 1.25.
//!
//! [`use_gemm_convolutions`] swaps the operator in a decluttered graph (batch norms already
//! folded into the weights), so the rest of tract's optimisation runs around it unchanged. 1x1
//! convolutions of stride 1 without padding (which tract's declutter would make matrix products
//! of its own) and depthwise ones (InsightFace's) have operators of their own (`pointwise.rs`,
//! `depthwise.rs`); `model.rs::use_our_convolutions` applies all three.

use crate::winograd;
use gc_core::matmul::{Parallelism, gemm_f32};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::cnn::conv::{Conv, KernelFormat};
use tract_onnx::tract_core::ops::nn::DataFormat;
use tract_onnx::tract_core::{as_op, op_as_typed_op, op_out_of_plan};

/// Replaces every convolution of `model` that [`GemmConv`] can run; returns how many it replaced.
pub fn use_gemm_convolutions(model: &mut TypedModel) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let Some(conv) = node.op_as::<Conv>() else {
            continue;
        };
        let input = model.outlet_fact(node.inputs[0])?;
        let kernel = model.outlet_fact(node.inputs[1])?;
        if !GemmConv::can_run(conv, input, kernel) {
            continue;
        }
        let op = GemmConv::new(conv.pool_spec.clone(), kernel.konst.as_deref())?;
        let patch = TypedModelPatch::replace_single_op(model, node, &node.inputs, op)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// Input channels below which a 3x3 convolution stays im2col: with few channels the matrix
/// products are small beside Winograd's transforms (InsightFace's first layer, 3 channels, took
/// 4.7% of its run time that way).
const WINOGRAD_MIN_CHANNELS: usize = 16;

/// A 2-D convolution without groups on f32 NCHW (or CHW) data and an OIHW kernel: inputs are the data, the
/// kernel and the bias (a scalar or one value per output channel), as tract's `Conv` takes them.
#[derive(Debug, Clone)]
pub struct GemmConv {
    pool_spec: PoolSpec,
    /// For a 3x3 convolution of stride 1 whose kernel is a constant: the kernel transformed for
    /// [`winograd`], which then replaces im2col (the kernel input is not read).
    winograd: Option<Arc<winograd::Kernels>>,
}

// tract compares and hashes operators to merge identical nodes; the transformed kernel is
// compared by identity, since it is derived from the kernel input the node has anyway.
impl PartialEq for GemmConv {
    fn eq(&self, other: &Self) -> bool {
        self.pool_spec == other.pool_spec
            && match (&self.winograd, &other.winograd) {
                (Some(a), Some(b)) => Arc::ptr_eq(a, b),
                (a, b) => a.is_none() && b.is_none(),
            }
    }
}

impl Eq for GemmConv {}

impl std::hash::Hash for GemmConv {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.pool_spec.hash(state);
        self.winograd.as_ref().map(Arc::as_ptr).hash(state);
    }
}

impl GemmConv {
    /// `kernel`: the kernel's value where it is a constant (OIHW f32).
    fn new(pool_spec: PoolSpec, kernel: Option<&Tensor>) -> TractResult<GemmConv> {
        let winograd = match kernel {
            Some(k)
                if pool_spec.kernel_shape.as_slice() == [3, 3]
                    && pool_spec.input_channels >= WINOGRAD_MIN_CHANNELS
                    && pool_spec.strides().iter().all(|s| *s == 1)
                    && pool_spec.dilations().iter().all(|d| *d == 1)
                    && k.shape() == [pool_spec.output_channels, pool_spec.input_channels, 3, 3] =>
            {
                let values = k.try_as_plain_ram()?.as_slice::<f32>()?;
                Some(Arc::new(winograd::Kernels::new(
                    values,
                    pool_spec.output_channels,
                    pool_spec.input_channels,
                )))
            }
            _ => None,
        };
        Ok(GemmConv {
            pool_spec,
            winograd,
        })
    }

    fn can_run(conv: &Conv, input: &TypedFact, kernel: &TypedFact) -> bool {
        conv.group == 1
            && conv.q_params.is_none()
            && conv.kernel_fmt == KernelFormat::OIHW
            && channels_first(&conv.pool_spec, input)
            && kernel.datum_type == f32::datum_type()
    }
}

/// Whether the convolution's data is f32 planes, NCHW or CHW (tract's declutter takes the batch
/// axis away from a batch of one), of two spatial axes.
pub(crate) fn channels_first(spec: &PoolSpec, input: &TypedFact) -> bool {
    let rank = match spec.data_format {
        DataFormat::NCHW => 4,
        DataFormat::CHW => 3,
        _ => return false,
    };
    spec.rank() == 2 && input.rank() == rank && input.datum_type == f32::datum_type()
}

/// `[n, c, h, w]` of data laid out as [`channels_first`] accepts, `n` one for CHW.
pub(crate) fn batch_of_planes(spec: &PoolSpec, shape: &[usize]) -> TractResult<[usize; 4]> {
    match (spec.data_format.has_n(), shape) {
        (true, &[n, c, h, w]) => Ok([n, c, h, w]),
        (false, &[c, h, w]) => Ok([1, c, h, w]),
        _ => bail!("{:?} data of shape {shape:?}", spec.data_format),
    }
}

/// The output tensor, `[n, c, h, w]` in the data's layout (without `n` for CHW), its values
/// written by `fill` where they lie: tract copies a tensor made from a `Vec` or an array (a
/// tenth of InsightFace's run went to such copies).
pub(crate) fn output(
    spec: &PoolSpec,
    [n, c, h, w]: [usize; 4],
    fill: impl FnOnce(&mut [f32]),
) -> TractResult<TValue> {
    let shape: &[usize] = if spec.data_format.has_n() {
        &[n, c, h, w]
    } else {
        &[c, h, w]
    };
    let mut tensor = Tensor::zero::<f32>(shape)?;
    fill(tensor.try_as_plain_ram_mut()?.as_slice_mut::<f32>()?);
    Ok(tensor.into_tvalue())
}

/// [`geometry`] for `c x h x w` data, or an error where the convolution has no input or no output
/// position (a kernel wider than the padded input): tract's own convolution would give an empty
/// tensor, and zero-sized chunks would panic in ours. An empty input is refused before tract's
/// padding arithmetic sees it.
pub(crate) fn checked_geometry(spec: &PoolSpec, [c, h, w]: [usize; 3]) -> TractResult<[Axis2; 2]> {
    let no_output = || {
        format_err!(
            "a convolution with no output position or no input ({c}x{h}x{w} data, {:?} kernel)",
            spec.kernel_shape
        )
    };
    let kernel: usize = spec.kernel_shape.iter().product();
    if c * h * w == 0 || kernel == 0 || spec.output_channels == 0 {
        return Err(no_output());
    }
    let axes = geometry(spec, [h, w]);
    if axes.iter().any(|a| a.output == 0) {
        return Err(no_output());
    }
    Ok(axes)
}

/// Output size, padding before, stride and dilation of each spatial axis of a convolution over
/// `hw` pixels.
pub(crate) fn geometry(pool_spec: &PoolSpec, hw: [usize; 2]) -> [Axis2; 2] {
    let padded = pool_spec.computed_padding(&hw);
    [0, 1].map(|a| Axis2 {
        input: hw[a],
        output: padded[a].convoluted,
        pad: padded[a].pad_before,
        stride: pool_spec.stride(a),
        dilation: pool_spec.dilation(a),
    })
}

/// One spatial axis of the convolution.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Axis2 {
    pub(crate) input: usize,
    pub(crate) output: usize,
    pub(crate) pad: usize,
    pub(crate) stride: usize,
    pub(crate) dilation: usize,
}

impl Axis2 {
    /// The output positions whose input position, `o * stride + tap * dilation - pad`, lies inside
    /// the input.
    fn valid(&self, tap: usize) -> std::ops::Range<usize> {
        let offset = tap * self.dilation;
        let first = self.pad.saturating_sub(offset).div_ceil(self.stride);
        // Largest o with o * stride + offset - pad <= input - 1.
        let end = if self.input + self.pad > offset {
            ((self.input + self.pad - offset - 1) / self.stride + 1).min(self.output)
        } else {
            0
        };
        first.min(end)..end
    }

    /// Padding none, stride and dilation one: the input itself is its im2col for a 1x1 kernel.
    fn is_identity(&self) -> bool {
        self.pad == 0 && self.stride == 1 && self.output == self.input
    }
}

impl Op for GemmConv {
    fn name(&self) -> StaticName {
        "GemmConv".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(self.pool_spec.info())
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    op_as_typed_op!();
}

impl EvalOp for GemmConv {
    op_out_of_plan!();

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        let (data, kernel, bias) = args_3!(inputs);
        let [n, c, h, w] = batch_of_planes(&self.pool_spec, data.shape())?;
        let &[out_c, kernel_c, kh, kw] = kernel.shape() else {
            bail!(
                "GemmConv takes an OIHW kernel, got shape {:?}",
                kernel.shape()
            );
        };
        ensure!(
            kernel_c == c
                && c == self.pool_spec.input_channels
                && out_c == self.pool_spec.output_channels
                && [kh, kw] == self.pool_spec.kernel_shape.as_slice(),
            "kernel of shape {:?} for a {:?} convolution of {c} channels",
            kernel.shape(),
            self.pool_spec.kernel_shape
        );
        let bias = bias.cast_to::<f32>()?;
        let bias = bias.try_as_plain_ram()?.as_slice::<f32>()?;
        ensure!(
            bias.len() == 1 || bias.len() == out_c,
            "bias of {} values",
            bias.len()
        );
        let [y, x] = checked_geometry(&self.pool_spec, [c, h, w])?;
        let (k, plane) = (c * kh * kw, y.output * x.output);
        let data = data.try_as_plain_ram()?.as_slice::<f32>()?;
        let kernel = kernel.try_as_plain_ram()?.as_slice::<f32>()?;
        let identity = kh == 1 && kw == 1 && y.is_identity() && x.is_identity();
        let parallelism = parallelism();
        let out = output(&self.pool_spec, [n, out_c, y.output, x.output], |out| {
            // Every value starts as its channel's bias, which the products are added to.
            for (row, values) in out.chunks_exact_mut(plane).enumerate() {
                values.fill(bias[row % out_c % bias.len()]);
            }
            for (image, dst) in data
                .chunks_exact(c * h * w)
                .zip(out.chunks_exact_mut(out_c * plane))
            {
                if let Some(kernels) = &self.winograd {
                    let frame = winograd::Frame {
                        input: [h, w],
                        pad: [y.pad, x.pad],
                        output: [y.output, x.output],
                    };
                    with_scratch(|scratch| {
                        winograd::convolve(kernels, image, frame, dst, scratch, parallelism)
                    });
                } else if identity {
                    product(dst, kernel, image, [out_c, plane, k], true, parallelism);
                } else {
                    // The im2col matrix of one image, [c * kh * kw, plane].
                    with_scratch(|col| {
                        if col.len() < k * plane {
                            col.resize(k * plane, 0.0);
                        }
                        let col = &mut col[..k * plane];
                        im2col(image, [c, kh, kw], [y, x], col);
                        product(dst, kernel, col, [out_c, plane, k], true, parallelism);
                    });
                }
            }
        })?;
        Ok(tvec!(out))
    }
}

impl TypedOp for GemmConv {
    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3, "GemmConv takes data, kernel and bias");
        self.pool_spec.output_facts(inputs)
    }

    as_op!();
}

/// How a convolution's matrix products use the threads: inside a rayon task the caller already
/// spreads images over them (gc-classify's batches), so one thread; a plan run from a plain
/// thread (one image, a cold start) spreads the matrix over rayon's.
pub(crate) fn parallelism() -> Parallelism {
    match rayon::current_thread_index() {
        Some(_) => Parallelism::None,
        None => Parallelism::Rayon(rayon::current_num_threads()),
    }
}

/// `dst[m, n] (+)= lhs[m, k] x rhs[k, n]`, all row-major, with `accumulate` adding to `dst`. For
/// convolutions `n` counts pixels or tiles (many) and `m` output channels; gemm is given the
/// transposed product (`n` as its rows), which it ran a third faster on yu4u's shapes.
pub(crate) fn product(
    dst: &mut [f32],
    lhs: &[f32],
    rhs: &[f32],
    [m, n, k]: [usize; 3],
    accumulate: bool,
    parallelism: Parallelism,
) {
    assert!(dst.len() == m * n && lhs.len() == m * k && rhs.len() == k * n);
    // SAFETY: the assertion puts every element the strides address inside its slice, and `dst`
    // is borrowed mutably, so no one else writes it meanwhile.
    #[allow(unsafe_code)]
    unsafe {
        gemm_f32(
            [n, m, k],
            (dst.as_mut_ptr(), 1, n),
            (rhs.as_ptr(), 1, n),
            (lhs.as_ptr(), 1, k),
            accumulate,
            parallelism,
        );
    }
}

/// Floats of scratch a thread keeps between convolutions (32 MB): yu4u's largest im2col matrix
/// is 4.7M floats and its largest Winograd buffers 4.2M.
const KEPT_SCRATCH: usize = 8 << 20;

thread_local! {
    static SCRATCH: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Runs `f` with this thread's scratch buffer (its contents unspecified; `f` grows it as needed).
/// Why kept: the large layers need tens of MB a call, and allocating and faulting them in per
/// image and layer was a tenth of yu4u's run time; a buffer past [`KEPT_SCRATCH`] is freed after
/// use, so a thread keeps at most that much, whatever the model.
pub(crate) fn with_scratch(f: impl FnOnce(&mut Vec<f32>)) {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut buf) => {
            f(&mut buf);
            if buf.capacity() > KEPT_SCRATCH {
                *buf = Vec::new();
            }
        }
        // Borrowed only if this thread began a convolution inside another. While gemm spreads
        // a product over rayon's pool from outside it, this thread only waits; a worker thread
        // runs its products itself (Parallelism::None). A buffer of its own keeps it right anyway.
        Err(_) => f(&mut Vec::new()),
    })
}

/// Unfolds one CHW image into `col`, `[c * kh * kw, out_h * out_w]` row-major, zeros where a tap
/// falls in the padding. Every value of `col` is written.
fn im2col(image: &[f32], [c, kh, kw]: [usize; 3], [y, x]: [Axis2; 2], col: &mut [f32]) {
    let plane = y.output * x.output;
    let mut rows = col.chunks_exact_mut(plane);
    for channel in image.chunks_exact(y.input * x.input) {
        for ky in 0..kh {
            let (ys, dy) = (y.valid(ky), (ky * y.dilation) as isize - y.pad as isize);
            for kx in 0..kw {
                let (xs, dx) = (x.valid(kx), (kx * x.dilation) as isize - x.pad as isize);
                let Some(row) = rows.next() else { return };
                for (oy, dst) in row.chunks_exact_mut(x.output).enumerate() {
                    if xs.is_empty() || !ys.contains(&oy) {
                        dst.fill(0.0);
                        continue;
                    }
                    dst[..xs.start].fill(0.0);
                    dst[xs.end..].fill(0.0);
                    let iy = (oy * y.stride) as isize + dy;
                    let src = &channel[iy as usize * x.input..][..x.input];
                    let first = (xs.start * x.stride) as isize + dx;
                    if x.stride == 1 {
                        dst[xs.clone()].copy_from_slice(&src[first as usize..][..xs.len()]);
                    } else {
                        for (i, ox) in xs.clone().enumerate() {
                            dst[ox] = src[first as usize + i * x.stride];
                        }
                    }
                }
            }
        }
    }
    debug_assert!(rows.next().is_none(), "{c} channels filled");
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use tract_onnx::tract_core::ops::cnn::PaddingSpec;

    /// The convolution written as its definition, for comparison.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        data: &[f32],
        [c, h, w]: [usize; 3],
        kernel: &[f32],
        [o, kh, kw]: [usize; 3],
        bias: f32,
        [sy, sx]: [usize; 2],
        [py, px]: [usize; 2],
        d: usize,
        [oh, ow]: [usize; 2],
    ) -> Vec<f32> {
        let mut out = vec![bias; o * oh * ow];
        for oc in 0..o {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut sum = 0.0;
                    for ic in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * sy + ky * d) as isize - py as isize;
                                let ix = (ox * sx + kx * d) as isize - px as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                                    continue;
                                }
                                sum += data[(ic * h + iy as usize) * w + ix as usize]
                                    * kernel[((oc * c + ic) * kh + ky) * kw + kx];
                            }
                        }
                    }
                    out[(oc * oh + oy) * ow + ox] += sum;
                }
            }
        }
        out
    }

    /// What a shared model's convolutions became, as [`crate::model::use_our_convolutions`]
    /// leaves them: (tract's group-1 ones, tract's grouped ones, ours: plain, of them by
    /// Winograd, depthwise, 1x1, and of ours those with a ReLU folded in).
    fn counts_after_swap(file: &str) -> [usize; 7] {
        use crate::depthwise::DepthwiseConv;
        use crate::pointwise::PointwiseConv;
        let path = gc_testdata::shared_dir().join("models").join(file);
        let model = crate::read::read_model(&path).expect("read the shared model");
        let name = file.rsplit('/').next().unwrap_or(file);
        let [h, w] = match name.split('-').next() {
            Some("insightface") => [112, 112],
            Some("dlib") => [32, 32],
            Some("ultraface") => [240, 320],
            Some("yunet") => [320, 320],
            _ => [64, 64],
        };
        let model = model
            .with_input_fact(0, f32::fact([1, 3, h, w]).into())
            .and_then(|m| m.into_typed())
            .unwrap();
        let (model, [pointwise, plain, depthwise]) =
            crate::model::use_our_convolutions(model).unwrap();
        let count =
            |keep: &dyn Fn(&TypedNode) -> bool| model.nodes.iter().filter(|n| keep(n)).count();
        let counts = [
            count(&|n| n.op_as::<Conv>().is_some_and(|c| c.group == 1)),
            count(&|n| n.op_as::<Conv>().is_some_and(|c| c.group != 1)),
            count(&|n| n.op_is::<GemmConv>()),
            count(&|n| n.op_as::<GemmConv>().is_some_and(|c| c.winograd.is_some())),
            count(&|n| n.op_is::<DepthwiseConv>()),
            count(&|n| n.op_is::<PointwiseConv>()),
            count(&|n| {
                n.op_as::<DepthwiseConv>().is_some_and(|c| c.consts.relu)
                    || n.op_as::<PointwiseConv>().is_some_and(|c| c.consts.relu)
            }),
        ];
        assert_eq!(
            [plain, depthwise, pointwise],
            [counts[2], counts[4], counts[5]]
        );
        counts
    }

    #[test]
    fn every_convolution_of_the_preset_models_and_detectors_is_ours() {
        // yu4u: 16 convolutions, one of them 1x1 of stride 1 (followed by an addition of the
        // residual, not folded), 11 3x3 of stride 1 (the first on 3 channels: not Winograd), its
        // ReLUs before the convolutions (pre-activation); dlib: 4 of 3x3 of stride 1, the first
        // on 3 channels; InsightFace: a 3x3 one on 3 channels, 13 depthwise and 13 pointwise,
        // each followed by a batch norm and a ReLU.
        assert_eq!(
            counts_after_swap("gender/yu4u-wrn16-8-agegender-64.onnx"),
            [0, 0, 15, 10, 0, 1, 0]
        );
        assert_eq!(
            counts_after_swap("gender/dlib-cydral-gender-v1.opset13.onnx"),
            [0, 0, 4, 3, 0, 0, 0]
        );
        assert_eq!(
            counts_after_swap("gender/insightface-genderage-112.onnx"),
            [0, 0, 1, 0, 13, 13, 26]
        );
        // The face detectors, which gc-detect runs the same way: YuNet, 7 plain, 23 depthwise
        // and 29 1x1 convolutions; UltraFace RFB 52 and slim 42, all ours too.
        assert_eq!(
            counts_after_swap("detect/yunet-n-dynamic.onnx"),
            [0, 0, 7, 0, 23, 29, 17]
        );
        assert_eq!(
            counts_after_swap("detect/ultraface-rfb-320.onnx"),
            [0, 0, 10, 2, 18, 24, 31]
        );
        assert_eq!(
            counts_after_swap("detect/ultraface-slim-320.onnx"),
            [0, 0, 3, 2, 19, 20, 33]
        );
    }

    /// Test values in [-1, 1), spread by a multiplicative hash of the index, different for each
    /// `seed`; shared by the operators' tests (`depthwise.rs`, `pointwise.rs`).
    pub(crate) fn values(n: usize, seed: u32) -> Vec<f32> {
        (0..n as u32)
            .map(|i| {
                ((i.wrapping_mul(2654435761).wrapping_add(seed) >> 16) % 200) as f32 / 100.0 - 1.0
            })
            .collect()
    }

    /// An operator's f32 output as a plain vector.
    pub(crate) fn plain(values: &TValue) -> Vec<f32> {
        values
            .try_as_plain_ram()
            .unwrap()
            .as_slice::<f32>()
            .unwrap()
            .to_vec()
    }

    #[test]
    fn matches_the_definition_for_strides_paddings_and_odd_sizes() {
        // (channels, height, width, out channels, kernel, stride, padding before and after as
        // [y, x], dilation)
        let same = |p: usize| ([p, p], [p, p]);
        for (c, h, w, o, k, s, (before, after), d) in [
            (3, 7, 9, 4, 3, 1, same(1), 1),
            (2, 8, 8, 5, 3, 2, same(1), 1),
            (3, 9, 6, 2, 3, 2, same(0), 1),
            (4, 5, 5, 3, 1, 1, same(0), 1),
            (4, 6, 7, 3, 1, 2, same(0), 1),
            (1, 4, 4, 2, 5, 1, same(2), 1),
            (2, 3, 3, 2, 3, 3, same(2), 1),
            (2, 9, 8, 3, 3, 1, same(2), 2),
            (2, 9, 10, 3, 3, 2, same(1), 3),
            (5, 6, 5, 3, 3, 1, same(0), 1),
            // yu4u's stride-2 layers: SAME_UPPER, nothing before and one after.
            (3, 8, 8, 4, 3, 2, ([0, 0], [1, 1]), 1),
            (3, 7, 6, 2, 3, 1, ([0, 1], [2, 0]), 1),
            (16, 7, 9, 5, 3, 1, same(1), 1),
            (16, 6, 5, 3, 3, 1, same(0), 1),
            (17, 8, 8, 6, 3, 1, same(2), 1),
            (16, 7, 6, 2, 3, 1, ([0, 1], [2, 0]), 1),
            (16, 5, 8, 3, 3, 1, ([2, 0], [0, 3]), 1),
        ] {
            let data = values(2 * c * h * w, 1);
            let kernel = values(o * c * k * k, 7);
            let reach = d * (k - 1) + 1;
            let out_h = (h + before[0] + after[0] - reach) / s + 1;
            let out_w = (w + before[1] + after[1] - reach) / s + 1;
            let spec = PoolSpec {
                data_format: DataFormat::NCHW,
                kernel_shape: tvec![k, k],
                padding: PaddingSpec::Explicit(
                    tvec![before[0], before[1]],
                    tvec![after[0], after[1]],
                ),
                dilations: Some(tvec![d, d]),
                strides: Some(tvec![s, s]),
                input_channels: c,
                output_channels: o,
            };
            let kernel_tensor = Tensor::from_shape(&[o, c, k, k], &kernel).unwrap();
            // Through im2col, and through Winograd where it applies (3x3, stride 1, enough channels).
            let winograd = k == 3 && s == 1 && d == 1 && c >= WINOGRAD_MIN_CHANNELS;
            let ops = [
                GemmConv::new(spec.clone(), None).unwrap(),
                GemmConv::new(spec, Some(&kernel_tensor)).unwrap(),
            ];
            assert!(ops[0].winograd.is_none());
            assert_eq!(ops[1].winograd.is_some(), winograd);
            // Each also on a batch of one without its axis (CHW), as tract's declutter leaves it.
            let chw = ops.clone().map(|mut op| {
                op.pool_spec.data_format = DataFormat::CHW;
                op
            });
            for (op, images) in ops
                .into_iter()
                .map(|op| (op, 2))
                .chain(chw.map(|op| (op, 1)))
            {
                let shape = [2, c, h, w];
                let got = op
                    .eval(
                        &EvalContext::out_of_plan(),
                        tvec![
                            Tensor::from_shape(
                                &shape[usize::from(images == 1)..],
                                &data[..images * c * h * w]
                            )
                            .unwrap()
                            .into_tvalue(),
                            kernel_tensor.clone().into_tvalue(),
                            tensor0(0.25f32).into_tvalue(),
                        ],
                    )
                    .unwrap()
                    .remove(0);
                let shape = [2, o, out_h, out_w];
                assert_eq!(got.shape(), &shape[usize::from(images == 1)..]);
                let got = got.try_as_plain_ram().unwrap();
                let got = got.as_slice::<f32>().unwrap();
                for image in 0..images {
                    let want = naive(
                        &data[image * c * h * w..][..c * h * w],
                        [c, h, w],
                        &kernel,
                        [o, k, k],
                        0.25,
                        [s, s],
                        before,
                        d,
                        [out_h, out_w],
                    );
                    let got = &got[image * want.len()..][..want.len()];
                    for (g, w) in got.iter().zip(&want) {
                        assert!(
                            (g - w).abs() < 1e-4,
                            "{c}x{h}x{w} k{k} s{s} pad {before:?} {after:?} d{d} winograd {}: {g} vs {w}",
                            op.winograd.is_some()
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn an_empty_output_is_an_error_not_a_panic() {
        // A 3x3 kernel over 2x2 pixels without padding has no output position.
        let spec = PoolSpec {
            data_format: DataFormat::NCHW,
            kernel_shape: tvec![3, 3],
            padding: PaddingSpec::Valid,
            dilations: None,
            strides: None,
            input_channels: 16,
            output_channels: 2,
        };
        let kernel = Tensor::from_shape(&[2, 16, 3, 3], &values(2 * 16 * 9, 3)).unwrap();
        for op in [
            GemmConv::new(spec.clone(), None).unwrap(),
            GemmConv::new(spec, Some(&kernel)).unwrap(),
        ] {
            let result = op.eval(
                &EvalContext::out_of_plan(),
                tvec![
                    Tensor::from_shape(&[1, 16, 2, 2], &values(64, 1))
                        .unwrap()
                        .into_tvalue(),
                    kernel.clone().into_tvalue(),
                    tensor0(0f32).into_tvalue(),
                ],
            );
            let err = result.expect_err("no output position");
            assert!(format!("{err:#}").contains("no output"), "{err:#}");
        }
    }
}
