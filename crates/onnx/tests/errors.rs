//! Loading failures: each bad model file or spec gives the right `ModelError` variant, naming the
//! file and the reason, and never panics. Models are copied into temporary folders (never into the
//! repository) to be paired with specs.

mod common;

use common::model_path;
use gc_core::{Classifier, ModelError};
use gc_onnx::{OnnxClassifier, SpecSource};
use std::path::{Path, PathBuf};
use tract_onnx::pb;

const DLIB: &str = "gender/dlib-cydral-gender-v1.opset13.onnx";

/// A spec for the dlib model, with `extra` spliced into its JSON object.
fn dlib_spec(labels: &str, offset: usize, width: u32) -> String {
    format!(
        r#"{{
            "name": "custom",
            "input": {{"width": {width}, "height": 32, "channels": "rgb"}},
            "normalize": {{"mean": [122.782, 117.001, 104.298], "std": [256, 256, 256]}},
            "output": {{"tensor": "probabilities", "offset": {offset}, "scores": "probabilities"}},
            "labels": {labels}
        }}"#
    )
}

/// The dlib model copied into `dir` as `name`, with `spec` as its sidecar when given.
fn staged(dir: &Path, name: &str, spec: Option<&str>) -> PathBuf {
    let model = dir.join(name);
    std::fs::copy(model_path(DLIB), &model).expect("copy model");
    if let Some(spec) = spec {
        std::fs::write(gc_onnx::PreprocessSpec::sidecar_path(&model), spec).expect("write spec");
    }
    model
}

fn format_reason(r: Result<OnnxClassifier, ModelError>, file: &Path) -> String {
    match r {
        Err(ModelError::Format { path, reason }) => {
            assert_eq!(path, file.display().to_string());
            reason
        }
        other => panic!(
            "expected a format error for {}, got {other:?}",
            file.display()
        ),
    }
}

#[test]
fn missing_file_is_a_file_error() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.onnx");
    match OnnxClassifier::from_path(&missing, Some("dlib-cydral-gender-v1")) {
        Err(ModelError::File { path, reason }) => {
            assert_eq!(path, missing.display().to_string());
            assert!(reason.contains("cannot read"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        OnnxClassifier::from_path(dir.path(), Some("dlib-cydral-gender-v1")),
        Err(ModelError::File { .. })
    ));
}

#[test]
fn text_file_named_onnx_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let fake = dir.path().join("dlib-cydral-gender-v1.onnx");
    std::fs::write(&fake, "this is not a model\n").unwrap();
    let reason = format_reason(OnnxClassifier::from_path(&fake, None), &fake);
    assert!(reason.contains("not an ONNX model"), "{reason}");
    let empty = dir.path().join("empty.onnx");
    std::fs::write(&empty, "").unwrap();
    format_reason(
        OnnxClassifier::from_path(&empty, Some("insightface-genderage-112")),
        &empty,
    );
}

#[test]
fn model_without_spec_or_preset_asks_for_the_json() {
    let dir = tempfile::tempdir().unwrap();
    let model = staged(dir.path(), "my-model.onnx", None);
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &model);
    assert!(reason.contains("my-model.preprocess.json"), "{reason}");
    assert!(
        reason.contains("\"labels\""),
        "the schema is shown: {reason}"
    );
    assert!(
        reason.contains("dlib-cydral-gender-v1"),
        "presets are listed: {reason}"
    );

    let reason = format_reason(OnnxClassifier::from_path(&model, Some("resnet")), &model);
    assert!(reason.contains("unknown preset"), "{reason}");
}

#[test]
fn a_spec_beside_the_model_wins_over_every_preset() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dlib_spec(r#"["female", "male"]"#, 0, 32);
    let model = staged(
        dir.path(),
        "dlib-cydral-gender-v1.opset13.onnx",
        Some(&spec),
    );
    let clf = OnnxClassifier::from_path(&model, None).unwrap();
    assert_eq!(clf.name(), "custom");
    assert!(matches!(clf.spec_source(), SpecSource::File(_)));
    // A preset asked for is for models without a spec of their own: the spec beside the model
    // wins (the preset won, and `compare --preset` could not mix such a model with one that
    // needed the preset); an unknown preset is still refused.
    let clf = OnnxClassifier::from_path(&model, Some("insightface-genderage-112")).unwrap();
    assert_eq!(clf.name(), "custom");
    assert!(matches!(clf.spec_source(), SpecSource::File(_)));
    let reason = format_reason(OnnxClassifier::from_path(&model, Some("resnet")), &model);
    assert!(reason.contains("unknown preset"), "{reason}");
    // Without a spec, the preset asked for wins over the one the file name is recognised by:
    // dlib's graph under a yu4u name runs with the dlib preset asked for.
    let renamed = staged(dir.path(), "yu4u-wrn16-8-agegender-64-copy.onnx", None);
    let clf = OnnxClassifier::from_path(&renamed, Some("dlib-cydral-gender-v1")).unwrap();
    assert_eq!(
        clf.spec_source(),
        &SpecSource::Preset("dlib-cydral-gender-v1")
    );
}

#[test]
fn unmappable_labels_are_a_format_error_naming_the_model() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dlib_spec(r#"["LABEL_0", "LABEL_1"]"#, 0, 32);
    let model = staged(dir.path(), "m.onnx", Some(&spec));
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &model);
    assert!(reason.contains("LABEL_0"), "{reason}");
}

#[test]
fn out_of_range_output_slice_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dlib_spec(r#"["female", "male"]"#, 1, 32);
    let model = staged(dir.path(), "m.onnx", Some(&spec));
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &model);
    assert!(reason.contains("reads 1..3"), "{reason}");
    // An offset so large that offset + 2 wrapped around: it passed this check, then panicked.
    let spec = dlib_spec(r#"["female", "male"]"#, usize::MAX, 32);
    std::fs::write(gc_onnx::PreprocessSpec::sidecar_path(&model), spec).unwrap();
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &model);
    assert!(reason.contains("values per image"), "{reason}");

    let spec = dlib_spec(r#"["female", "male"]"#, 0, 32).replace("\"probabilities\",", "\"prob\",");
    std::fs::write(gc_onnx::PreprocessSpec::sidecar_path(&model), spec).unwrap();
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &model);
    assert!(reason.contains("\"prob\""), "{reason}");
}

#[test]
fn input_size_that_disagrees_with_the_graph_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let spec = dlib_spec(r#"["female", "male"]"#, 0, 64);
    let model = staged(dir.path(), "m.onnx", Some(&spec));
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &model);
    assert!(reason.contains("spec describes [1, 3, 32, 64]"), "{reason}");
}

#[test]
fn broken_sidecar_is_a_format_error_naming_the_sidecar() {
    let dir = tempfile::tempdir().unwrap();
    let model = staged(dir.path(), "m.onnx", Some("{\"input\": 3}"));
    let sidecar = gc_onnx::PreprocessSpec::sidecar_path(&model);
    let reason = format_reason(OnnxClassifier::from_path(&model, None), &sidecar);
    assert!(
        reason.contains("not a valid preprocessing spec"),
        "{reason}"
    );
}

/// A one-node ONNX graph, `y = Identity(x)`, with `x` of the given shape.
fn identity_model(shape: &[i64]) -> Vec<u8> {
    use prost::Message;
    let value = |name: &str| pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: shape
                        .iter()
                        .map(|d| pb::tensor_shape_proto::Dimension {
                            value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(*d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    };
    pb::ModelProto {
        ir_version: 7,
        opset_import: vec![pb::OperatorSetIdProto {
            domain: String::new(),
            version: 13,
        }],
        graph: Some(pb::GraphProto {
            name: "g".into(),
            node: vec![pb::NodeProto {
                op_type: "Identity".into(),
                input: vec!["x".into()],
                output: vec!["y".into()],
                ..Default::default()
            }],
            input: vec![value("x")],
            output: vec![value("y")],
            ..Default::default()
        }),
        ..Default::default()
    }
    .encode_to_vec()
}

#[test]
fn wrong_input_rank_is_a_format_error() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("flat.onnx");
    std::fs::write(&model, identity_model(&[1, 3072])).unwrap();
    let reason = format_reason(
        OnnxClassifier::from_path(&model, Some("dlib-cydral-gender-v1")),
        &model,
    );
    assert!(reason.contains("rank 2"), "{reason}");
}

#[test]
fn a_tiny_valid_graph_runs_and_reads_its_slice() {
    // Identity on [1, 3, 2, 2]: with offset 0 the "logits" are the first two input values.
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("id.onnx");
    std::fs::write(&model, identity_model(&[1, 3, 2, 2])).unwrap();
    std::fs::write(
        gc_onnx::PreprocessSpec::sidecar_path(&model),
        r#"{"input": {"width": 2, "height": 2, "channels": "rgb"},
            "output": {"scores": "logits"}, "labels": ["man", "woman"]}"#,
    )
    .unwrap();
    let clf = OnnxClassifier::from_path(&model, None).unwrap();
    assert_eq!(clf.name(), "id");
    // Red plane of a 2x2 image: pixels 0 and 1 give logits 10 and 10 -> 50/50.
    let px = [10u8, 0, 0, 10, 0, 0, 0, 0, 0, 0, 0, 0];
    let view = gc_core::RgbView::new(2, 2, &px).unwrap();
    let p = clf.classify(&[view; 3]).unwrap();
    assert_eq!(p.len(), 3);
    for row in p {
        assert!(
            (row[0] - 0.5).abs() < 1e-6 && (row[1] - 0.5).abs() < 1e-6,
            "{row:?}"
        );
    }
    assert!(matches!(
        clf.run_tensor(2, &[0.0; 5]),
        Err(ModelError::Input(_))
    ));
}
