//! The built-in model: the notebook CNN trained on UTKFace by `gender-classifier train`, compiled
//! into the binary so that `gender-classifier photo.jpg` works with nothing else installed.
//!
//! Its files live in `models/builtin/` at the root of the repository, beside the command that
//! reproduces them; `MODEL_CARD.md` says what it was trained on, how well it does and for whom, and
//! where it must not be used.

use gc_core::ModelError;
use gc_train::BurnClassifier;

/// The name the built-in model goes by in output and reports.
pub const NAME: &str = "built-in";

const INFO: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/builtin/model.json"
));

static WEIGHTS: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../models/builtin/model.safetensors"
));

/// Loads the built-in model (about 1.5 MB of weights; a few milliseconds).
pub fn load() -> Result<BurnClassifier, ModelError> {
    gc_train::load_model_bytes(NAME, INFO, WEIGHTS.to_vec())
}

/// The `model.json` of the built-in model: architecture, image size, labels, training data
/// fingerprint and final metrics.
pub fn info_json() -> &'static str {
    INFO
}

#[cfg(test)]
mod tests {
    use super::*;
    use gc_core::{Classifier, Gender, RgbView};

    #[test]
    fn loads_and_gives_two_probabilities_per_image() {
        let model = load().expect("the embedded model loads");
        let genders: Vec<Gender> = model.labels().iter().map(|l| l.gender).collect();
        assert_eq!(genders, vec![Gender::Female, Gender::Male]);
        let gray = vec![128u8; 64 * 64 * 3];
        let black = vec![0u8; 50 * 80 * 3];
        let rows = model
            .classify(&[
                RgbView::new(64, 64, &gray).unwrap(),
                RgbView::new(50, 80, &black).unwrap(),
            ])
            .unwrap();
        assert_eq!(rows.len(), 2);
        for row in rows {
            assert_eq!(row.len(), 2);
            assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-5, "{row:?}");
            assert!(row.iter().all(|p| p.is_finite() && *p >= 0.0));
        }
    }
}
