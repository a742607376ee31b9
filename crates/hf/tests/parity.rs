//! Parity with the reference implementation, Hugging Face transformers, on the tiny fixture models
//! of every architecture (`fixtures/make_tiny_vit.py`, `fixtures/make_tiny_siglip.py`): the
//! network's logits on real faces, the preprocessing (Pillow's resize, rescale, normalise), and the
//! whole pipeline's probabilities.

mod common;

use common::*;
use gc_core::{Classifier, Gender, RgbView};
use gc_hf::preprocess::resize_rgb;
use gc_hf::{HfClassifier, Resample};
use sha2::{Digest, Sha256};

/// The network's tolerance: float32 on both sides, different summation orders.
const LOGIT_TOLERANCE: f32 = 1e-4;

#[test]
fn logits_match_transformers_on_real_faces() {
    let faces = parity_faces();
    for (model, expected) in fixture_models() {
        let mut worst = 0f32;
        let clf = HfClassifier::from_dir(model_dir(model)).expect("load fixture");
        let [c, h, w] = clf.input_shape();
        let pixels = parity_input(&clf, &faces);
        let logits = clf
            .logits(&pixels, [faces.len(), c, h, w])
            .expect("forward");
        for ((name, ..), row) in faces.iter().zip(&logits) {
            let want = floats(&expected["parity_logits"][name]);
            assert_eq!(row.len(), want.len());
            for (a, b) in row.iter().zip(&want) {
                let d = (a - b).abs();
                worst = worst.max(d);
                assert!(
                    d < LOGIT_TOLERANCE,
                    "{model} {name}: ours {row:?}, transformers {want:?}"
                );
            }
        }
        println!("{model}: worst logit difference vs transformers {worst:e}");
    }
}

#[test]
fn resize_matches_pillow_exactly() {
    // expected-siglip.json adds the sizes that Pillow resizes vertically first.
    let (vit, siglip) = (expected(), expected_siglip());
    let cases: Vec<&serde_json::Value> = [&vit, &siglip]
        .iter()
        .flat_map(|e| e["resize"].as_array().expect("resize cases"))
        .collect();
    assert!(cases.len() > 24, "{} resize cases", cases.len());
    for case in cases {
        let n = |k: &str| case[k].as_u64().expect(k) as usize;
        let (w, h, seed) = (n("width"), n("height"), n("seed"));
        let (ow, oh) = (n("out_width"), n("out_height"));
        let filter = Resample::from_code(n("resample") as u32).expect("filter code");
        let out = resize_rgb(&synthetic(w, h, seed), w, h, ow, oh, filter);
        let what = format!("{w}x{h} -> {ow}x{oh} {filter:?}");
        if let Some(want) = case["hex"].as_str() {
            let got = hex(&out);
            if got != want {
                let diffs = (0..out.len())
                    .filter(|&i| got[2 * i..2 * i + 2] != want[2 * i..2 * i + 2])
                    .count();
                panic!("{what}: {diffs} of {} bytes differ from Pillow", out.len());
            }
        } else {
            let want = case["sha256"].as_str().expect("hex or sha256");
            assert_eq!(hex(&Sha256::digest(&out)), want, "{what}");
        }
    }
}

#[test]
fn preprocessing_matches_the_image_processor() {
    for (model, expected) in fixture_models() {
        let clf = HfClassifier::from_dir(model_dir(model)).expect("load fixture");
        let case = &expected["processor"];
        let n = |k: &str| case[k].as_u64().expect(k) as usize;
        let (w, h) = (n("width"), n("height"));
        let px = synthetic(w, h, n("seed"));
        let view = RgbView::new(w as u32, h as u32, &px).expect("view");
        let ours = clf.preprocess(&[view]).expect("preprocess");
        let want = floats(&case["pixel_values"]);
        assert_eq!(ours.len(), want.len());
        let worst = ours
            .iter()
            .zip(&want)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        // Same 8-bit resize, same f64/f32 arithmetic: equal up to the JSON round trip.
        assert!(worst < 1e-6, "{model}: worst pixel difference {worst}");
    }
}

#[test]
fn probabilities_match_the_pipeline() {
    for (model, expected) in fixture_models() {
        let clf = HfClassifier::from_dir(model_dir(model)).expect("load fixture");
        let cases = expected["pipeline"].as_array().expect("pipeline cases");
        let images: Vec<Vec<u8>> = cases
            .iter()
            .map(|c| {
                let n = |k: &str| c[k].as_u64().expect(k) as usize;
                synthetic(n("width"), n("height"), n("seed"))
            })
            .collect();
        let views: Vec<RgbView<'_>> = cases
            .iter()
            .zip(&images)
            .map(|(c, px)| {
                let n = |k: &str| c[k].as_u64().expect(k) as u32;
                RgbView::new(n("width"), n("height"), px).expect("view")
            })
            .collect();
        // Batched (all images in one call) and in the model's label order.
        let probs = clf.classify(&views).expect("classify");
        for (case, row) in cases.iter().zip(&probs) {
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            for (label, p) in clf.labels().iter().zip(row) {
                let want = case["scores"][&label.name].as_f64().expect("score") as f32;
                assert!(
                    (p - want).abs() < 1e-4,
                    "{model} {}: {} ours {p}, pipeline {want}",
                    case["seed"],
                    label.name
                );
            }
        }
    }
}

/// The model's own class names, in its order, with the class each maps to.
fn label_names(clf: &HfClassifier) -> Vec<(&str, Gender)> {
    clf.labels()
        .iter()
        .map(|l| (l.name.as_str(), l.gender))
        .collect()
}

#[test]
fn labels_come_from_id2label_in_model_order() {
    let fm = HfClassifier::from_dir(model_dir("tiny-vit-female-male")).expect("load");
    let names = label_names(&fm);
    assert_eq!(
        names,
        vec![("female", Gender::Female), ("male", Gender::Male)]
    );
    let mw = HfClassifier::from_dir(model_dir("tiny-vit-man-woman")).expect("load");
    let names = label_names(&mw);
    assert_eq!(
        names,
        vec![("man", Gender::Male), ("woman", Gender::Female)]
    );
    assert_eq!(mw.architecture(), "ViTForImageClassification");
    assert_eq!(mw.preprocessor().resample, Resample::Bicubic);
    assert!(mw.name().starts_with("hf:"));
}

#[test]
fn batch_size_does_not_change_results() {
    let px: Vec<Vec<u8>> = (0..5).map(|s| synthetic(40, 30, s)).collect();
    let views: Vec<RgbView<'_>> = px
        .iter()
        .map(|p| RgbView::new(40, 30, p).expect("view"))
        .collect();
    let one = HfClassifier::from_dir(model_dir("tiny-vit-female-male"))
        .expect("load")
        .with_batch(1);
    let three = HfClassifier::from_dir(model_dir("tiny-vit-female-male"))
        .expect("load")
        .with_batch(3);
    let a = one.classify(&views).expect("classify");
    let b = three.classify(&views).expect("classify");
    for (x, y) in a.iter().zip(&b) {
        for (p, q) in x.iter().zip(y) {
            assert!((p - q).abs() < 1e-6);
        }
    }
}

#[test]
fn siglip_fixtures_read_as_saved() {
    let hub = HfClassifier::from_dir(model_dir("tiny-siglip-hub-labels")).expect("load");
    assert_eq!(hub.architecture(), "SiglipForImageClassification");
    let names = label_names(&hub);
    assert_eq!(
        names,
        vec![("Female ♀", Gender::Female), ("Male ♂", Gender::Male)]
    );
    // 23 px of 5 px patches: the input keeps its size, the conv drops the last 3 pixels.
    assert_eq!(hub.input_shape(), [3, 23, 23]);
    assert_eq!(hub.preprocessor().resample, Resample::Bilinear);
    let fm = HfClassifier::from_dir(model_dir("tiny-siglip-female-male")).expect("load");
    assert_eq!(fm.input_shape(), [3, 16, 16]);
    assert_eq!(fm.preprocessor().resample, Resample::Bicubic);
    assert_eq!(fm.preprocessor().crop, None);
}

#[test]
fn siglip_head_is_skipped_and_nothing_else_is_left() {
    use gc_hf::siglip::{Config, SiglipForImageClassification};
    use gc_hf::weights::Checkpoint;
    let dir = model_dir("tiny-siglip-female-male");
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config");
    let config: Config = serde_json::from_str(&text).expect("siglip config");
    assert!(config.vision_config.vision_use_head);
    let mut ckpt = Checkpoint::open_dir(&dir, &burn::tensor::Device::flex()).expect("open");
    assert!(ckpt.contains("vision_model.head.probe"));
    SiglipForImageClassification::load(&config, 2, &mut ckpt).expect("load");
    assert_eq!(ckpt.unused(), Vec::<String>::new());
}
