//! What the tests of our kernels (`conv`, `batch_norm`, `max_pool`) share: running a layer under a
//! weighted loss, and comparing its results with burn's own layer.

use burn::tensor::{Gradients, Tensor};

/// Runs `layer` on `x` (made to require a gradient) and backpropagates `sum(y * weights)`, a loss
/// whose gradient differs from element to element. Returns the output, the input's gradient, and
/// the gradients, from which a caller reads its parameters'.
pub fn under_weighted_loss(
    x: &Tensor<4>,
    weights: &Tensor<4>,
    layer: impl FnOnce(Tensor<4>) -> Tensor<4>,
) -> (Tensor<4>, Tensor<4>, Gradients) {
    let x = x.clone().require_grad();
    let y = layer(x.clone());
    let grads = (y.clone() * weights.clone()).sum().backward();
    let x_grad = x.grad(&grads).unwrap();
    (y.inner(), x_grad, grads)
}

/// Asserts that `ours` has `burns`'s shape and each value within `tolerance` of it, relative to
/// the largest magnitude in `burns` (or 1, if that is smaller).
pub fn close<const D: usize>(ours: Tensor<D>, burns: Tensor<D>, tolerance: f32, what: &str) {
    assert_eq!(ours.dims(), burns.dims(), "{what}: shapes");
    let (a, b) = (ours.into_data(), burns.into_data());
    let (a, b) = (a.as_slice::<f32>().unwrap(), b.as_slice::<f32>().unwrap());
    let scale = b.iter().fold(1.0f32, |m, v| m.max(v.abs()));
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tolerance * scale,
            "{what}[{i}]: ours {x}, burn's {y}"
        );
    }
}
