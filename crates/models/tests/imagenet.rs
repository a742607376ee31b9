//! EfficientNet-Lite0 against the real ImageNet checkpoint in `../shared/models/backbone/`: the
//! weights land where they belong, and the network computes what the PyTorch original computes.
//!
//! The reference numbers come from the PyTorch port (`efficientnet_lite_pytorch` 0.1.0,
//! `EfficientNet.from_name('efficientnet-lite0')`, the same safetensors file loaded with
//! `strict=True`, `eval()`, 1 thread) on the synthetic image below; see
//! `crates/models/tests/efficientnet_reference.py`.

use burn::tensor::{Tensor, TensorData};
use gc_core::ModelError;
use gc_models::efficientnet_lite0::{EfficientNetLite0Config, IMAGENET_CLASSES};
use gc_models::{ImageClassifier, cpu_device};
use std::path::{Path, PathBuf};

fn checkpoint() -> PathBuf {
    gc_testdata::shared("models/backbone/efficientnet-lite0-imagenet.safetensors")
}

/// A smooth synthetic image in [0, 1], `[1, 3, side, side]`, as the Python reference builds it.
fn sine_image(side: usize) -> Tensor<4> {
    let mut data = Vec::with_capacity(3 * side * side);
    for c in 0..3 {
        for h in 0..side {
            for w in 0..side {
                let v = 0.5 + 0.5 * (0.05 * h as f64 + 0.11 * w as f64 + 1.3 * c as f64).sin();
                data.push(v as f32);
            }
        }
    }
    Tensor::from_data(TensorData::new(data, [1, 3, side, side]), &cpu_device())
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_into_vec().unwrap()
}

#[test]
fn imagenet_weights_load_and_match_pytorch() {
    let device = cpu_device();
    let config = EfficientNetLite0Config::new().with_num_classes(IMAGENET_CLASSES);
    let model = config.init_imagenet(&checkpoint(), &device).unwrap();

    // A known weight and a BatchNorm running mean, read from the file with Python.
    let stem: Vec<f32> = values(model.stem.conv.weight.val())[..3].to_vec();
    for (got, want) in stem
        .iter()
        .zip([-1.110_336_1, -1.308_770_4, -0.010_156_915])
    {
        assert!((got - want).abs() < 1e-6, "stem weight {stem:?}");
    }
    let mean: Vec<f32> = values(model.stem.bn.running_mean.value())[..3].to_vec();
    for (got, want) in mean.iter().zip([-0.001_974_928, 1.130_856_2, -0.508_353_6]) {
        assert!((got - want).abs() < 1e-6, "running mean {mean:?}");
    }

    let logits = values(model.forward(sine_image(224)));
    assert_eq!(logits.len(), IMAGENET_CLASSES);
    assert!(logits.iter().all(|v| v.is_finite()));
    let want = [-0.37107, 1.49986, 0.4072, -0.26893, -1.69141];
    for (i, (got, want)) in logits.iter().zip(want).enumerate() {
        assert!(
            (got - want).abs() < 2e-3,
            "logit {i}: {got} vs PyTorch {want}"
        );
    }
    let mut order: Vec<usize> = (0..logits.len()).collect();
    order.sort_by(|&a, &b| logits[b].total_cmp(&logits[a]));
    assert_eq!(
        &order[..5],
        &[767, 418, 807, 769, 709],
        "top-5 differs from PyTorch"
    );
    assert!(
        (logits[767] - 9.2098).abs() < 5e-3,
        "top logit {}",
        logits[767]
    );
}

#[test]
fn two_class_model_keeps_the_backbone_and_gets_a_new_head() {
    let device = cpu_device();
    let model = EfficientNetLite0Config::new()
        .init_imagenet(&checkpoint(), &device)
        .unwrap();
    assert_eq!(model.classifier.weight.dims(), [1280, 2]);
    let mean: Vec<f32> = values(model.stem.bn.running_mean.value())[..1].to_vec();
    assert!((mean[0] + 0.001_974_928).abs() < 1e-6);
    let logits = values(model.forward(sine_image(128)));
    assert_eq!(logits.len(), 2);
    assert!(logits.iter().all(|v| v.is_finite()), "{logits:?}");
}

#[test]
fn a_missing_or_foreign_checkpoint_is_refused_with_its_name() {
    let device = cpu_device();
    let config = EfficientNetLite0Config::new();
    match config.init_imagenet(Path::new("/nonexistent/lite0.safetensors"), &device) {
        Err(ModelError::File { path, .. }) => assert!(path.contains("lite0.safetensors")),
        other => panic!("expected a file error, got {other:?}"),
    }
    // A safetensors file of another architecture: every name is wrong.
    let dir = tempfile::tempdir().unwrap();
    let other = dir.path().join("cnn.safetensors");
    let cnn = gc_models::CnnConfig::tiny().init(&device);
    gc_models::weights::save_safetensors(&cnn, &other).unwrap();
    let err = config.init_imagenet(&other, &device).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("cnn.safetensors") && msg.contains("missing"),
        "{msg}"
    );
}
