//! Weights stored in another dtype than the models' f32: half precision is widened on load (the
//! model then computes what it computed from its f32 weights, up to f16 rounding), and a dtype
//! that cannot stand for a float weight is refused with the tensor's name, never a panic.

use burn::tensor::{Tensor, TensorData};
use gc_core::ModelError;
use gc_models::weights::{WeightsSpec, load_safetensors_bytes, save_safetensors};
use gc_models::{CnnConfig, ImageClassifier, cpu_device};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};

/// A smooth made-up image in [0, 1], `[2, 3, side, side]`.
fn images(side: usize) -> Tensor<4> {
    let mut data = Vec::with_capacity(2 * 3 * side * side);
    for n in 0..2 {
        for c in 0..3 {
            for h in 0..side {
                for w in 0..side {
                    let v = 0.5
                        + 0.5 * (0.07 * (h * (n + 1)) as f64 + 0.13 * w as f64 + c as f64).sin();
                    data.push(v as f32);
                }
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [2, 3, side, side]), &cpu_device())
}

/// The file's f32 tensors converted by `convert`, the others as they are.
fn rewrite(bytes: &[u8], dtype: Dtype, convert: impl Fn(f32) -> Vec<u8>) -> Vec<u8> {
    let file = SafeTensors::deserialize(bytes).unwrap();
    let mut tensors = Vec::new();
    for (name, t) in file.tensors() {
        if t.dtype() == Dtype::F32 {
            let data: Vec<u8> = t
                .data()
                .chunks_exact(4)
                .flat_map(|b| convert(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))
                .collect();
            tensors.push((name, dtype, t.shape().to_vec(), data));
        } else {
            tensors.push((name, t.dtype(), t.shape().to_vec(), t.data().to_vec()));
        }
    }
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).unwrap()))
        .collect();
    safetensors::serialize(views, None).unwrap()
}

fn logits(model: &gc_models::Cnn) -> Vec<f32> {
    model
        .forward(images(32))
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()
}

#[test]
fn half_precision_weights_are_widened_and_odd_dtypes_refused() {
    let device = cpu_device();
    let config = CnnConfig::tiny();
    let trained = config.init(&device);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.safetensors");
    save_safetensors(&trained, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let want = logits(&trained);

    for (dtype, convert) in [
        (
            Dtype::F16,
            Box::new(|v: f32| burn::tensor::f16::from_f32(v).to_le_bytes().to_vec())
                as Box<dyn Fn(f32) -> Vec<u8>>,
        ),
        (
            Dtype::BF16,
            Box::new(|v: f32| burn::tensor::bf16::from_f32(v).to_le_bytes().to_vec()),
        ),
        (
            Dtype::F64,
            Box::new(|v: f32| f64::from(v).to_le_bytes().to_vec()),
        ),
    ] {
        let narrow = rewrite(&bytes, dtype, convert);
        let loaded = load_safetensors_bytes(
            config.init(&device),
            narrow,
            "model.safetensors",
            &WeightsSpec::NATIVE,
        )
        .unwrap_or_else(|e| panic!("{dtype:?}: {e}"));
        let got = logits(&loaded);
        let tolerance = if dtype == Dtype::F64 { 1e-5 } else { 0.05 };
        for (g, w) in got.iter().zip(&want) {
            assert!(
                (g - w).abs() <= tolerance * (1.0 + w.abs()),
                "{dtype:?}: {got:?} vs {want:?}"
            );
        }
    }

    // Integers cannot stand for the weights: refused, naming a tensor and the dtypes.
    let ints = rewrite(&bytes, Dtype::I32, |v| (v as i32).to_le_bytes().to_vec());
    match load_safetensors_bytes(
        config.init(&device),
        ints,
        "model.safetensors",
        &WeightsSpec::NATIVE,
    ) {
        Err(ModelError::Format { path, reason }) => {
            assert_eq!(path, "model.safetensors");
            assert!(
                reason.contains("I32") && reason.contains("weight"),
                "{reason}"
            );
        }
        Err(other) => panic!("expected a format error, got {other}"),
        Ok(_) => panic!("an I32 checkpoint was accepted"),
    }
}

/// The trainer writes `safetensors_bytes` itself; they are the bytes `save_safetensors` writes,
/// so a model trained either way is the same file.
#[test]
fn weights_in_memory_are_the_bytes_of_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let cnn = CnnConfig::tiny().init(&cpu_device());
    let path = dir.path().join("model.safetensors");
    save_safetensors(&cnn, &path).unwrap();
    let bytes = gc_models::weights::safetensors_bytes(&cnn).unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
}
