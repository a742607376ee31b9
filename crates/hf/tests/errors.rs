//! Broken model directories give a `ModelError` that says which file and what is wrong, never a
//! panic: missing files, unknown architectures, wrong or missing tensors, labels we cannot map.

mod common;

use common::*;
use gc_core::{ModelError, RgbView};
use gc_hf::HfClassifier;
use safetensors::Dtype;
use std::path::Path;

#[test]
fn missing_files_are_named() {
    for (file, says) in [
        ("config.json", "missing model config (config.json)"),
        (
            "preprocessor_config.json",
            "missing preprocessing config (preprocessor_config.json)",
        ),
        ("model.safetensors", "no weights"),
    ] {
        let dir = copy_model("tiny-vit-female-male");
        std::fs::remove_file(dir.path().join(file)).expect("remove");
        let e = load_err(dir.path());
        assert!(e.contains(says), "{file}: {e}");
        if file != "model.safetensors" {
            assert!(e.contains(file), "{e}");
        }
    }
    let e = load_err(Path::new("/nonexistent/model"));
    assert!(e.contains("not a directory"), "{e}");
}

#[test]
fn pytorch_pickles_are_refused_with_a_reason() {
    let dir = copy_model("tiny-vit-female-male");
    std::fs::rename(
        dir.path().join("model.safetensors"),
        dir.path().join("pytorch_model.bin"),
    )
    .expect("rename");
    let e = load_err(dir.path());
    assert!(
        e.contains("pytorch_model.bin") && e.contains("safetensors"),
        "{e}"
    );
}

#[test]
fn unknown_architecture_is_named_with_the_supported_ones() {
    let dir = copy_model("tiny-vit-female-male");
    edit_config(dir.path(), |c| {
        c["architectures"] = serde_json::json!(["ConvNextForImageClassification"])
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("ConvNextForImageClassification") && e.contains("ViTForImageClassification"),
        "{e}"
    );
    assert!(e.contains("config.json"), "{e}");
    // Without a preprocessor_config.json too, the architecture is still what is named (the
    // missing file was, which sent the user to write it for a model that cannot run).
    std::fs::remove_file(dir.path().join("preprocessor_config.json")).expect("remove");
    let e = load_err(dir.path());
    assert!(e.contains("ConvNextForImageClassification"), "{e}");
    std::fs::write(dir.path().join("config.json"), "{").expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("config.json: not JSON"), "{e}");
}

#[test]
fn wrong_tensor_shape_names_tensor_and_shapes() {
    let dir = copy_model("tiny-vit-female-male");
    rewrite_weights(dir.path(), |t| {
        let q = t
            .iter_mut()
            .find(|(n, ..)| n == "vit.encoder.layer.1.attention.attention.query.weight")
            .expect("query weight");
        // [32, 32] -> [16, 64], same bytes.
        q.2 = vec![16, 64];
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("vit.encoder.layer.1.attention.attention.query.weight")
            && e.contains("[16, 64]")
            && e.contains("[32, 32]"),
        "{e}"
    );
    assert!(e.contains("model.safetensors"), "{e}");
}

#[test]
fn config_that_disagrees_with_the_weights_is_a_shape_error() {
    let dir = copy_model("tiny-vit-female-male");
    edit_config(dir.path(), |c| {
        c["intermediate_size"] = serde_json::json!(128)
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("intermediate.dense.weight")
            && e.contains("[64, 32]")
            && e.contains("[128, 32]"),
        "{e}"
    );
}

#[test]
fn absurd_sizes_in_the_config_are_shape_errors_not_aborts() {
    // Every tensor is checked against the file before its buffer is allocated: a hidden size of
    // 4e9 aborted the process allocating 12 TB.
    for (key, value) in [
        ("hidden_size", 4_000_000_000u64),
        ("intermediate_size", 1 << 40),
    ] {
        let dir = copy_model("tiny-vit-female-male");
        edit_config(dir.path(), |c| c[key] = serde_json::json!(value));
        let e = load_err(dir.path());
        assert!(
            e.contains("has shape") && e.contains("expected"),
            "{key}: {e}"
        );
    }
}

#[test]
fn missing_tensor_is_named() {
    let dir = copy_model("tiny-vit-female-male");
    rewrite_weights(dir.path(), |t| {
        t.retain(|(n, ..)| n != "vit.layernorm.bias")
    });
    let e = load_err(dir.path());
    assert!(e.contains("missing tensor vit.layernorm.bias"), "{e}");
}

#[test]
fn unsupported_dtype_is_named() {
    let dir = copy_model("tiny-vit-female-male");
    rewrite_weights(dir.path(), |t| {
        let b = t
            .iter_mut()
            .find(|(n, ..)| n == "classifier.bias")
            .expect("bias");
        b.1 = Dtype::I32;
    });
    let e = load_err(dir.path());
    assert!(e.contains("classifier.bias") && e.contains("I32"), "{e}");
}

#[test]
fn half_precision_weights_load() {
    let dir = copy_model("tiny-vit-female-male");
    rewrite_weights(dir.path(), |t| {
        for (_, dtype, _, bytes) in t.iter_mut() {
            let halves: Vec<u8> = bytes
                .chunks_exact(4)
                .flat_map(|b| {
                    let v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                    burn::tensor::f16::from_f32(v).to_bits().to_le_bytes()
                })
                .collect();
            *bytes = halves;
            *dtype = Dtype::F16;
        }
    });
    let full = HfClassifier::from_dir(model_dir("tiny-vit-female-male")).expect("f32");
    let half = HfClassifier::from_dir(dir.path()).expect("f16 weights load");
    let px = synthetic(32, 32, 3);
    let view = [RgbView::new(32, 32, &px).expect("view")];
    let a = gc_core::Classifier::classify(&full, &view).expect("classify");
    let b = gc_core::Classifier::classify(&half, &view).expect("classify");
    assert!((a[0][0] - b[0][0]).abs() < 0.05, "{a:?} vs {b:?}");
}

#[test]
fn labels_that_do_not_say_the_gender_are_refused() {
    for (id2label, says) in [
        (
            serde_json::json!({"0": "LABEL_0", "1": "LABEL_1"}),
            "LABEL_0",
        ),
        (serde_json::json!({"0": "man", "1": "boy"}), "female"),
        (serde_json::json!({"0": "female", "2": "male"}), "id2label"),
        (serde_json::json!({}), "id2label"),
    ] {
        let dir = copy_model("tiny-vit-female-male");
        edit_config(dir.path(), |c| c["id2label"] = id2label.clone());
        let e = load_err(dir.path());
        assert!(e.contains(says), "{id2label}: {e}");
        assert!(e.contains("config.json"), "{e}");
    }
}

#[test]
fn classifier_with_more_rows_than_labels_is_a_shape_error() {
    let dir = copy_model("tiny-vit-female-male");
    rewrite_weights(dir.path(), |t| {
        for (name, _, shape, bytes) in t.iter_mut() {
            if name.starts_with("classifier.") {
                // One more class: repeat the first row.
                let row = bytes.len() / shape[0];
                let first = bytes[..row].to_vec();
                bytes.extend(first);
                shape[0] += 1;
            }
        }
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("classifier.weight") && e.contains("[3, 32]") && e.contains("[2, 32]"),
        "{e}"
    );
}

#[test]
fn broken_json_and_bad_settings_are_format_errors() {
    let dir = copy_model("tiny-vit-female-male");
    std::fs::write(dir.path().join("config.json"), "{ not json").expect("write");
    let e = HfClassifier::from_dir(dir.path()).expect_err("broken config");
    assert!(matches!(e, ModelError::Format { .. }), "{e}");
    assert!(e.to_string().contains("not JSON"), "{e}");

    let dir = copy_model("tiny-vit-female-male");
    edit_config(dir.path(), |c| c["hidden_act"] = serde_json::json!("mish"));
    let e = load_err(dir.path());
    assert!(e.contains("mish") && e.contains("gelu"), "{e}");

    let dir = copy_model("tiny-vit-female-male");
    edit_config(dir.path(), |c| {
        c["num_attention_heads"] = serde_json::json!(5)
    });
    let e = load_err(dir.path());
    assert!(e.contains("num_attention_heads"), "{e}");

    let dir = copy_model("tiny-vit-female-male");
    std::fs::write(
        dir.path().join("preprocessor_config.json"),
        r#"{"size": {"height": 48, "width": 48}}"#,
    )
    .expect("write");
    let e = load_err(dir.path());
    assert!(
        e.contains("preprocessor_config.json") && e.contains("48x48"),
        "{e}"
    );

    let dir = copy_model("tiny-vit-female-male");
    std::fs::write(dir.path().join("model.safetensors"), b"garbage").expect("write");
    let e = load_err(dir.path());
    assert!(e.contains("not a safetensors file"), "{e}");
}

#[test]
fn wrong_input_shapes_are_input_errors() {
    let clf = HfClassifier::from_dir(model_dir("tiny-vit-female-male")).expect("load");
    let e = clf
        .logits(&[0.0; 3 * 16 * 16], [1, 3, 16, 16])
        .expect_err("wrong size");
    assert!(matches!(e, ModelError::Input(_)), "{e}");
    let e = clf
        .logits(&[0.0; 10], [1, 3, 32, 32])
        .expect_err("short buffer");
    assert!(matches!(e, ModelError::Input(_)), "{e}");
}

#[test]
fn siglip_unsupported_settings_are_named() {
    for (key, value, says) in [
        (
            "hidden_act",
            serde_json::json!("mish"),
            "vision_config.hidden_act \"mish\" is not supported",
        ),
        (
            "num_attention_heads",
            serde_json::json!(5),
            "vision_config.num_attention_heads 5",
        ),
        (
            "image_size",
            serde_json::json!(3),
            "vision_config.image_size 3x3 is smaller than one 4x4 patch",
        ),
        (
            "patch_size",
            serde_json::json!(0),
            "patch_size must be positive",
        ),
    ] {
        let dir = copy_model("tiny-siglip-female-male");
        edit_config(dir.path(), |c| c["vision_config"][key] = value.clone());
        let e = load_err(dir.path());
        assert!(e.contains(says), "{key}: {e}");
        assert!(e.contains("config.json"), "{e}");
    }
    let dir = copy_model("tiny-siglip-female-male");
    edit_config(dir.path(), |c| {
        c["vision_config"] = serde_json::json!("base")
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("config.json") && e.contains("not a SiglipForImageClassification config"),
        "{e}"
    );
}

#[test]
fn siglip_missing_or_misshapen_tensor_is_named() {
    for name in [
        "vision_model.post_layernorm.bias",
        "vision_model.encoder.layers.1.self_attn.k_proj.weight",
        "vision_model.embeddings.position_embedding.weight",
    ] {
        let dir = copy_model("tiny-siglip-female-male");
        rewrite_weights(dir.path(), |t| t.retain(|(n, ..)| n != name));
        let e = load_err(dir.path());
        assert!(e.contains(&format!("missing tensor {name}")), "{e}");
        assert!(e.contains("model.safetensors"), "{e}");
    }
    // A config that disagrees with the weights: 8 px patches make 4 positions, the file has 16.
    let dir = copy_model("tiny-siglip-female-male");
    edit_config(dir.path(), |c| {
        c["vision_config"]["patch_size"] = serde_json::json!(8)
    });
    let e = load_err(dir.path());
    assert!(
        e.contains("vision_model.embeddings.position_embedding.weight")
            && e.contains("[16, 32]")
            && e.contains("[4, 32]"),
        "{e}"
    );
}

#[test]
fn siglip_head_tensors_are_not_needed() {
    // transformers runs the attention-pooling head but the logits never read it.
    let dir = copy_model("tiny-siglip-female-male");
    rewrite_weights(dir.path(), |t| {
        t.retain(|(n, ..)| !n.starts_with("vision_model.head."))
    });
    let full = HfClassifier::from_dir(model_dir("tiny-siglip-female-male")).expect("load");
    let headless = HfClassifier::from_dir(dir.path()).expect("loads without the head");
    let px = synthetic(16, 16, 3);
    let view = [RgbView::new(16, 16, &px).expect("view")];
    let a = gc_core::Classifier::classify(&full, &view).expect("classify");
    let b = gc_core::Classifier::classify(&headless, &view).expect("classify");
    assert_eq!(a, b);
}
