//! A classifier for unit tests: classes female and male, each image's row given by a function.
//! A run holding an image the function gives no row for fails as a whole, as a model's run does
//! when its scores for one image are not numbers.

use gc_core::{ClassLabel, Classifier, Gender, ModelError, RgbView};
use std::sync::OnceLock;

pub(crate) struct Scripted(pub fn(&RgbView<'_>) -> Option<Vec<f32>>);

impl Classifier for Scripted {
    fn name(&self) -> &str {
        "scripted"
    }

    fn labels(&self) -> &[ClassLabel] {
        static LABELS: OnceLock<Vec<ClassLabel>> = OnceLock::new();
        LABELS.get_or_init(|| {
            [("female", Gender::Female), ("male", Gender::Male)]
                .map(|(name, gender)| ClassLabel {
                    name: name.into(),
                    gender,
                })
                .to_vec()
        })
    }

    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        images
            .iter()
            .map(|v| (self.0)(v).ok_or_else(|| ModelError::Run("scores [NaN, NaN]".into())))
            .collect()
    }
}
