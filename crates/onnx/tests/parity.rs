//! Parity with onnxruntime: every preset model, run by tract on the same input tensors as
//! `fixtures/make_onnx_fixtures.py` fed onnxruntime, gives the same outputs within 1e-4. The inputs
//! are rebuilt from the shared UTKFace archive by the fixture's rule (see the script: the images are
//! decoded by our own JPEG decoder on both sides, since decoders are not bit-exact); their hashes are
//! checked first, so a decoder or normalisation drift is reported as such, not as a model bug.

mod common;

use common::{archive_path, decode_rgb, model_path, nearest, read_archive};
use gc_core::{Classifier, RgbView, softmax};
use gc_onnx::{Crop, OnnxClassifier, Scores};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::collections::HashMap;

const TOLERANCE: f32 = 1e-4;

#[derive(Deserialize)]
struct Fixture {
    archive: String,
    images: Vec<FixtureImage>,
    models: Vec<FixtureModel>,
}

#[derive(Deserialize)]
struct FixtureImage {
    name: String,
    rgb_sha256: String,
}

#[derive(Deserialize)]
struct FixtureModel {
    preset: String,
    file: String,
    input_shape: Vec<usize>,
    input_sha256: String,
    outputs: HashMap<String, Vec<Vec<f32>>>,
}

fn fixture() -> Fixture {
    let path =
        gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx_parity.json");
    let text = std::fs::read_to_string(path).expect("read the parity fixture");
    serde_json::from_str(&text).expect("parse the parity fixture")
}

fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn tract_matches_onnxruntime_on_every_preset() {
    let fx = fixture();
    let names: Vec<&str> = fx.images.iter().map(|i| i.name.as_str()).collect();
    let mut found: HashMap<String, Vec<u8>> =
        read_archive(&archive_path(&fx.archive), |n| names.contains(&n))
            .into_iter()
            .collect();
    let images: Vec<(u32, u32, Vec<u8>)> = fx
        .images
        .iter()
        .map(|img| {
            let bytes = found
                .remove(&img.name)
                .unwrap_or_else(|| panic!("{} not in {}", img.name, fx.archive));
            let (w, h, px) = decode_rgb(&bytes);
            assert_eq!(
                sha256_hex(&px),
                img.rgb_sha256,
                "{}: the decoded pixels differ from those the fixture was made from (did the \
                 `image` crate's JPEG decoder change?): rerun tests/fixtures/make_onnx_fixtures.py",
                img.name
            );
            (w, h, px)
        })
        .collect();

    for m in &fx.models {
        let clf = OnnxClassifier::from_path(model_path(&m.file), Some(&m.preset))
            .unwrap_or_else(|e| panic!("{}: {e}", m.file));
        let spec = clf.spec();
        let (w, h) = (spec.input.width, spec.input.height);
        let sampled: Vec<Vec<u8>> = images
            .iter()
            .map(|(iw, ih, px)| nearest(*iw, *ih, px, w, h))
            .collect();
        let views: Vec<RgbView<'_>> = sampled
            .iter()
            .map(|px| RgbView::new(w, h, px).unwrap())
            .collect();
        let tensor = spec.normalize_sized(&views).unwrap();
        assert_eq!(spec.input_shape(views.len()).to_vec(), m.input_shape);
        let bytes: Vec<u8> = tensor.iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(
            sha256_hex(&bytes),
            m.input_sha256,
            "{}: our input tensor differs from the fixture's: the preset and the script disagree",
            m.preset
        );

        let outputs = clf.run_tensor(views.len(), &tensor).unwrap();
        for (name, want) in &m.outputs {
            let got = outputs
                .iter()
                .find(|o| &o.name == name)
                .unwrap_or_else(|| panic!("{}: no output {name}", m.file));
            let want_flat: Vec<f32> = want.iter().flatten().copied().collect();
            let diff = max_abs_diff(&got.data, &want_flat);
            eprintln!("{} {name}: max |tract - onnxruntime| = {diff:.2e}", m.file);
            assert!(diff < TOLERANCE, "{} {name}: differs by {diff}", m.file);
        }

        // The classify path on the same pixels gives the fixture's scores turned into
        // probabilities, once the preset's framing is off (the pixels are at the input size, so
        // nothing is resized).
        let mut whole = spec.clone();
        whole.crop = Crop::Whole;
        let probs = OnnxClassifier::with_spec(model_path(&m.file), whole)
            .unwrap()
            .classify(&views)
            .unwrap();
        let out = &m.outputs[clf.output_name()];
        let k = clf.labels().len();
        for (row, want) in probs.iter().zip(out) {
            let slice = &want[spec.output.offset..spec.output.offset + k];
            let expect = match spec.output.scores {
                Scores::Logits => softmax(slice),
                Scores::Probabilities => {
                    let s: f32 = slice.iter().sum();
                    slice.iter().map(|v| v / s).collect()
                }
            };
            let diff = max_abs_diff(row, &expect);
            assert!(diff < TOLERANCE, "{}: classify differs by {diff}", m.file);
        }
    }
}
