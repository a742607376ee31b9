//! The JSON shape of a result, one place for `predict --json`, `sort`'s index and the server, so that
//! a consumer parses the same objects everywhere:
//!
//! - an image classified whole: `{"label", "probabilities": {"female", "male"}, "model_labels"}`;
//! - a photo: `{"faces": [{"box": [x, y, w, h], "score", "label", "probabilities", "model_labels"}]}`.

use crate::photos::{FacePrediction, Verdict};
use crate::run::Prediction;
use serde_json::{Map, Value, json};

/// `label`, `probabilities` and `model_labels` of one prediction.
pub fn prediction(p: &Prediction) -> Map<String, Value> {
    let model_labels: Map<String, Value> = p
        .model_labels
        .iter()
        .map(|(n, v)| (n.clone(), json!(v)))
        .collect();
    let mut m = Map::new();
    m.insert("label".into(), json!(p.label));
    m.insert(
        "probabilities".into(),
        json!({ "female": p.probabilities[0], "male": p.probabilities[1] }),
    );
    m.insert("model_labels".into(), Value::Object(model_labels));
    m
}

/// One face: its box and detector score, then the prediction.
pub fn face(f: &FacePrediction) -> Value {
    let mut m = Map::new();
    m.insert("box".into(), json!(f.bbox));
    m.insert("score".into(), json!(f.score));
    m.extend(prediction(&f.prediction));
    Value::Object(m)
}

/// A photo's verdict: the prediction's fields for a whole image, `faces` for a photo.
pub fn verdict(v: &Verdict) -> Map<String, Value> {
    match v {
        Verdict::Whole(p) => prediction(p),
        Verdict::Faces(faces) => {
            let mut m = Map::new();
            m.insert("faces".into(), faces.iter().map(face).collect());
            m
        }
    }
}

/// `fields` with the `path` they are about.
pub fn with_path(path: &str, fields: Map<String, Value>) -> Value {
    let mut m = Map::new();
    m.insert("path".into(), json!(path));
    m.extend(fields);
    Value::Object(m)
}
