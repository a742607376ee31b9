//! Accuracy sanity on real faces: each preset model, preprocessing included, on a fixed sample of
//! 118 adult faces from UTKFace `crop_part1` (every 50th adult in name order) scores well above
//! chance. The floors sit five faces under what was measured (see the constants at the end).

mod common;

use common::{Face, adult_sample, model_path};
use gc_core::{Classifier, Gender, RgbView};
use gc_onnx::OnnxClassifier;
use std::sync::OnceLock;

fn faces() -> &'static [Face] {
    static FACES: OnceLock<Vec<Face>> = OnceLock::new();
    FACES.get_or_init(|| adult_sample(50, 0))
}

fn accuracy(file: &str, preset: Option<&str>) -> f64 {
    let clf = OnnxClassifier::from_path(model_path(file), preset).expect("load model");
    let faces = faces();
    assert_eq!(
        faces.len(),
        118,
        "the sample changed: re-measure the floors"
    );
    let views: Vec<RgbView<'_>> = faces
        .iter()
        .map(|f| RgbView::new(f.width, f.height, &f.pixels).unwrap())
        .collect();
    let probs = clf.classify(&views).expect("classify");
    assert_eq!(probs.len(), faces.len());
    let labels = clf.labels();
    let correct = faces
        .iter()
        .zip(&probs)
        .filter(|(f, p)| {
            assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{p:?}");
            let best = if p[0] >= p[1] { 0 } else { 1 };
            Gender::from_utkface_code(f.gender) == Some(labels[best].gender)
        })
        .count();
    let acc = correct as f64 / faces.len() as f64;
    eprintln!(
        "{}: {correct}/{} = {:.1}%",
        clf.name(),
        faces.len(),
        100.0 * acc
    );
    acc
}

#[test]
fn dlib_cydral_is_accurate_on_adults() {
    // The preset is picked from the file name here.
    let acc = accuracy("gender/dlib-cydral-gender-v1.opset13.onnx", None);
    assert!(acc >= DLIB_MIN, "{acc}");
}

#[test]
fn insightface_is_accurate_on_adults() {
    let acc = accuracy(
        "gender/insightface-genderage-112.onnx",
        Some("insightface-genderage-112"),
    );
    assert!(acc >= INSIGHTFACE_MIN, "{acc}");
}

#[test]
fn yu4u_is_accurate_on_adults() {
    let acc = accuracy(
        "gender/yu4u-wrn16-8-agegender-64.onnx",
        Some("yu4u-wrn16-8-agegender-64"),
    );
    assert!(acc >= YU4U_MIN, "{acc}");
}

// Measured on this sample (tract 0.23.9, x86-64): dlib 115/118 = 97.5%, InsightFace 105/118 =
// 89.0%, yu4u 112/118 = 94.9%. The floors leave five faces of slack each, for float differences
// between machines that can flip borderline faces; a wrong channel order, normalisation or label
// order costs far more.
const DLIB_MIN: f64 = 110.0 / 118.0;
const INSIGHTFACE_MIN: f64 = 100.0 / 118.0;
const YU4U_MIN: f64 = 107.0 / 118.0;
