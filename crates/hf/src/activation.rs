//! The activations that `config.json`'s `hidden_act` names (transformers' `ACT2FN`), for the
//! architectures of this crate.

use burn::tensor::activation::{gelu, gelu_approximate, relu, sigmoid, silu};
use burn::tensor::{DType, Tensor};
use rayon::prelude::*;

/// An activation named by `hidden_act` / `hidden_activation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    /// `gelu`: the exact, erf-based GELU (`nn.GELU()`).
    Gelu,
    /// `gelu_new`, `gelu_pytorch_tanh`, `gelu_fast`: the tanh approximation (the three differ only
    /// in how they spell the same formula).
    GeluTanh,
    /// `quick_gelu`: `x * sigmoid(1.702 x)`, CLIP's.
    QuickGelu,
    Relu,
    /// `silu` / `swish`.
    Silu,
}

impl Activation {
    /// The names transformers accepts that we implement.
    pub const NAMES: [&'static str; 8] = [
        "gelu",
        "gelu_new",
        "gelu_pytorch_tanh",
        "gelu_fast",
        "quick_gelu",
        "relu",
        "silu",
        "swish",
    ];

    /// Parses a `hidden_act` value, naming the ones we have when it is not one of them.
    pub fn from_hf(name: &str) -> Result<Activation, String> {
        Ok(match name {
            "gelu" => Activation::Gelu,
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Activation::GeluTanh,
            "quick_gelu" => Activation::QuickGelu,
            "relu" => Activation::Relu,
            "silu" | "swish" => Activation::Silu,
            other => {
                return Err(format!(
                    "hidden_act {other:?} is not supported; supported: {}",
                    Activation::NAMES.join(", ")
                ));
            }
        })
    }

    pub fn forward<const D: usize>(&self, x: Tensor<D>) -> Tensor<D> {
        match self {
            Activation::Gelu => gelu_erf(x),
            Activation::GeluTanh => gelu_tanh(x),
            Activation::QuickGelu => x.clone() * sigmoid(x * 1.702),
            Activation::Relu => relu(x),
            Activation::Silu => silu(x),
        }
    }
}

/// The exact (erf) GELU, computed in place over the tensor's values with a vectorisable erf, on
/// all cores. flex's `gelu` calls libm's scalar `erff` per element on one thread: a tenth of
/// ViT-B/16's time, against about 2% for this.
pub fn gelu_erf<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    map_f32(x, gelu, |v| {
        0.5 * v * (1.0 + erf(v * std::f32::consts::FRAC_1_SQRT_2))
    })
}

/// The tanh GELU (`gelu_pytorch_tanh`, SigLIP's), in place with a vectorisable tanh on all cores.
/// flex's `gelu_approximate` goes through libm's scalar `powf`, `expm1f` and `tanhf`: 23% of
/// SigLIP-B/16's time (perf, batch 8), against about 2% for this.
pub fn gelu_tanh<const D: usize>(x: Tensor<D>) -> Tensor<D> {
    // sqrt(2 / pi)
    const K: f32 = 0.797_884_6;
    map_f32(x, gelu_approximate, |v| {
        0.5 * v * (1.0 + tanh(K * (v + 0.044_715 * v * v * v)))
    })
}

/// `f` applied to every value of an f32 tensor, in place, in parallel chunks; `fallback` (burn's
/// own op) for other dtypes.
fn map_f32<const D: usize>(
    x: Tensor<D>,
    fallback: fn(Tensor<D>) -> Tensor<D>,
    f: impl Fn(f32) -> f32 + Sync,
) -> Tensor<D> {
    if x.dtype() != DType::F32 {
        return fallback(x);
    }
    let device = x.device();
    let mut data = x.into_data();
    match data.as_mut_slice::<f32>() {
        Ok(values) => values.par_chunks_mut(1 << 14).for_each(|chunk| {
            for v in chunk {
                *v = f(*v);
            }
        }),
        Err(_) => return fallback(Tensor::from_data(data, &device)),
    }
    Tensor::from_data(data, &device)
}

/// tanh for f32 as a rational function (odd degree 13 over even degree 6) on [-7.9, 7.9], beyond
/// which tanh is +/-1 in f32: Eigen's `ptanh_float` (TensorFlow's and XLA's too), within 4e-7 of
/// the exact value, branch-free (a select for tiny inputs) so that the loop vectorises.
fn tanh(x: f32) -> f32 {
    const ALPHA: [f64; 7] = [
        -2.76076847742355e-16,
        2.00018790482477e-13,
        -8.60467152213735e-11,
        5.12229709037114e-08,
        1.48572235717979e-05,
        6.37261928875436e-04,
        4.89352455891786e-03,
    ];
    const BETA: [f64; 4] = [
        1.19825839466702e-06,
        1.18534705686654e-04,
        2.26843463243900e-03,
        4.89352518554385e-03,
    ];
    let c = x.clamp(-7.905_311, 7.905_311);
    let x2 = c * c;
    let p = horner(x2, &ALPHA);
    let q = horner(x2, &BETA);
    // Below 4e-4, tanh(x) is x in f32, and the rational function loses relative accuracy.
    if x.abs() < 4e-4 { x } else { c * p / q }
}

/// erf for f32 as a rational function of x on [-4, 4] (beyond, erf is +/-1 in f32), plain
/// multiply-adds (`mul_add` would be a libm call per step on baseline x86-64): the
/// approximation of Eigen's `generic_fast_erf_float` (also TensorFlow's and XLA's), within a few
/// ulp of the exact value, and branch-free so that the compiler vectorises the loop.
fn erf(x: f32) -> f32 {
    // Numerator (odd powers) and denominator (even powers) coefficients, highest power first.
    const ALPHA: [f64; 7] = [
        -2.72614225801306e-10,
        2.77068142495902e-08,
        -2.10102402082508e-06,
        -5.69250639462346e-05,
        -7.34990630326855e-04,
        -2.95459980854025e-03,
        -1.60960333262415e-02,
    ];
    const BETA: [f64; 5] = [
        -1.45660718464996e-05,
        -2.13374055278905e-04,
        -1.68282697438203e-03,
        -7.37332916720468e-03,
        -1.42647390514189e-02,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let p = horner(x2, &ALPHA);
    let q = horner(x2, &BETA);
    x * p / q
}

/// The polynomial with `coefficients` (highest power first) at `x`, in f32 (the coefficients are
/// kept as published, in f64): plain multiply-adds, which vectorise where `mul_add` would be a
/// libm call per step on baseline x86-64.
pub(crate) fn horner(x: f32, coefficients: &[f64]) -> f32 {
    coefficients.iter().fold(0.0, |acc, &c| x * acc + c as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::{Device, TensorData};

    /// The largest difference between `ours` and burn's `reference` over [-10, 10].
    fn worst_difference(
        ours: fn(Tensor<1>) -> Tensor<1>,
        reference: fn(Tensor<1>) -> Tensor<1>,
    ) -> f32 {
        let xs: Vec<f32> = (-4000..=4000).map(|i| i as f32 * 0.0025).collect();
        let device = Device::flex();
        let t = || Tensor::<1>::from_data(TensorData::new(xs.clone(), [xs.len()]), &device);
        let values = |y: Tensor<1>| y.into_data().try_to_vec::<f32>().unwrap();
        let (a, b) = (values(ours(t())), values(reference(t())));
        a.iter()
            .zip(&b)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max)
    }

    #[test]
    fn fast_gelu_matches_burns_exact_gelu() {
        let worst = worst_difference(gelu_erf, gelu);
        assert!(worst < 2e-6, "worst difference {worst}");
        assert_eq!(erf(0.0), 0.0);
        assert!((erf(10.0) - 1.0).abs() < 1e-6 && (erf(-10.0) + 1.0).abs() < 1e-6);
    }

    #[test]
    fn fast_tanh_gelu_matches_burns() {
        let worst = worst_difference(gelu_tanh, gelu_approximate);
        assert!(worst < 2e-6, "worst difference {worst}");
        for x in [-20.0f32, -3.0, -0.5, -1e-5, 0.0, 1e-5, 0.3, 2.0, 9.0, 50.0] {
            assert!((tanh(x) - x.tanh()).abs() < 1e-6, "tanh({x})");
        }
    }
}
