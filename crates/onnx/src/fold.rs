//! What follows a convolution of our own (a batch norm, a ReLU), folded into its constants.

use pulp::Arch;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cnn::PoolSpec;
use tract_onnx::tract_core::ops::cnn::conv::Conv;
use tract_onnx::tract_core::ops::math::{Add, Max, Mul};

/// A convolution's constants: its kernel (one row per output channel) and bias (one value per
/// output channel), what followed it in the graph folded in, and whether a ReLU ends it.
#[derive(Debug, Clone)]
pub struct Folded {
    pub(crate) kernel: Arc<Vec<f32>>,
    pub(crate) bias: Arc<Vec<f32>>,
    pub(crate) relu: bool,
}

impl Folded {
    /// Applies the ReLU, where one was folded in, to `values` the convolution computed.
    pub(crate) fn finish(&self, values: &mut [f32]) {
        if self.relu {
            // f32::max, as tract's Max computes the ReLU it replaces (a NaN becomes zero).
            Arch::new().dispatch(|| values.iter_mut().for_each(|v| *v = v.max(0.0)));
        }
    }
}

// tract compares and hashes operators to merge identical nodes; the constants are compared by
// identity (each node has its own).
impl PartialEq for Folded {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.kernel, &other.kernel)
            && Arc::ptr_eq(&self.bias, &other.bias)
            && self.relu == other.relu
    }
}

impl Eq for Folded {}

impl std::hash::Hash for Folded {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        Arc::as_ptr(&self.kernel).hash(state);
        Arc::as_ptr(&self.bias).hash(state);
        self.relu.hash(state);
    }
}

/// Replaces every convolution of `model` whose kernel and bias are constants and that `accepts`
/// (given the node's operator, its data's fact and its kernel) with the operator `make` builds
/// from its pool spec and constants, what follows it folded in; returns how many it replaced.
pub(crate) fn replace_convolutions<O: TypedOp>(
    model: &mut TypedModel,
    accepts: impl Fn(&Conv, &TypedFact, &Tensor) -> bool,
    make: impl Fn(PoolSpec, Folded) -> O,
) -> TractResult<usize> {
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = &model.nodes[id];
        let (Some(conv), &[input, kernel, bias]) = (node.op_as::<Conv>(), &*node.inputs) else {
            continue;
        };
        let [input, kernel, bias] = [input, kernel, bias].map(|i| model.outlet_fact(i));
        let (input, kernel, bias) = (input?, kernel?, bias?);
        let (Some(kernel), Some(bias)) = (&kernel.konst, &bias.konst) else {
            continue;
        };
        let out_c = conv.pool_spec.output_channels;
        if !accepts(conv, input, kernel) || ![1, out_c].contains(&bias.len()) {
            continue;
        }
        let bias = bias.cast_to::<f32>()?;
        let bias = bias.try_as_plain_ram()?.as_slice::<f32>()?;
        let mut bias: Vec<f32> = (0..out_c).map(|ch| bias[ch % bias.len()]).collect();
        let mut kernel = kernel.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let mut relu = false;
        let last = fold_successors(
            model,
            node,
            &conv.pool_spec,
            &mut kernel,
            &mut bias,
            &mut relu,
        )?;
        let consts = Folded {
            kernel: Arc::new(kernel),
            bias: Arc::new(bias),
            relu,
        };
        let op = make(conv.pool_spec.clone(), consts);
        let mut patch = TypedModelPatch::default();
        let data = patch.tap_model(model, node.inputs[0])?;
        let out = patch.wire_node(&node.name, op, &[data])?[0];
        patch.shunt_outside(model, OutletId::new(last, 0), out)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// Folds what follows `conv` (a tract `Conv` node of `model`, `spec` its pool spec) into its `kernel` (`[out, ...]`,
/// one row per output channel), `bias` (one value per output channel) and `relu`, one node at a
/// time while each is the only consumer of the last and not an output of the model:
/// multiplications and additions by a constant per channel (a batch norm), then a ReLU (`max`
/// with zero). Returns the last node folded (`conv` itself if none), whose output the folded
/// operator gives.
///
/// Why: tract folds a batch norm into a plain convolution (not a grouped one) and fuses it into
/// the matrix product a 1x1 convolution becomes, but our operators replace both; left alone, a
/// batch norm and a ReLU are one more operator after each, a pass over its output. Folding them
/// took InsightFace from 200-215 to 278-299 images/s on one thread.
fn fold_successors(
    model: &TypedModel,
    conv: &TypedNode,
    spec: &PoolSpec,
    kernel: &mut [f32],
    bias: &mut [f32],
    relu: &mut bool,
) -> TractResult<usize> {
    let c = spec.output_channels;
    ensure!(
        c > 0 && bias.len() == c && kernel.len().is_multiple_of(c),
        "{c} output channels"
    );
    let row = kernel.len() / c;
    let rank = model.outlet_fact(OutletId::new(conv.id, 0))?.rank();
    let channel_axis = usize::from(spec.data_format.has_n());
    let outputs = model.output_outlets()?;
    let mut last = conv;
    while !*relu {
        // A value the model gives out is not folded past (the node would stay to give it).
        let &[next] = &*last.outputs[0].successors else {
            break;
        };
        if outputs.contains(&OutletId::new(last.id, 0)) {
            break;
        }
        let succ = model.node(next.node);
        let Some(bin) = succ.op_as::<TypedBinOp>() else {
            break;
        };
        let Some(operand) = &model.outlet_fact(succ.inputs[1 - next.slot])?.konst else {
            break;
        };
        // One value for all channels or one per channel, and no other axis: the result keeps
        // the convolution's shape.
        let shape = operand.shape();
        let per_channel =
            operand.datum_type() == f32::datum_type()
                && shape.len() <= rank
                && shape.iter().rev().enumerate().all(|(from_end, d)| {
                    *d == 1 || (rank - 1 - from_end == channel_axis && *d == c)
                });
        if !per_channel {
            break;
        }
        let values = operand.try_as_plain_ram()?.as_slice::<f32>()?.to_vec();
        let value = |ch: usize| values[ch % values.len()];
        if bin.0.is::<Mul>() {
            for (ch, weights) in kernel.chunks_exact_mut(row).enumerate() {
                weights.iter_mut().for_each(|k| *k *= value(ch));
                bias[ch] *= value(ch);
            }
        } else if bin.0.is::<Add>() {
            (0..c).for_each(|ch| bias[ch] += value(ch));
        } else if bin.0.is::<Max>() && values.iter().all(|v| *v == 0.0) {
            *relu = true;
        } else {
            break;
        }
        last = succ;
    }
    Ok(last.id)
}
