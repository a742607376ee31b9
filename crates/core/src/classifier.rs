//! The interface every model backend implements (our burn models, Hugging Face checkpoints, ONNX files),
//! and the mapping from a model's own class names to our two classes.

use crate::Gender;

/// An 8-bit RGB image, row-major, 3 bytes a pixel, borrowed from whoever decoded it.
#[derive(Debug, Clone, Copy)]
pub struct RgbView<'a> {
    pub width: u32,
    pub height: u32,
    /// `width * height * 3` bytes.
    pub pixels: &'a [u8],
}

impl<'a> RgbView<'a> {
    /// Checks the buffer length against the dimensions.
    pub fn new(width: u32, height: u32, pixels: &'a [u8]) -> Result<Self, ModelError> {
        let want = width as usize * height as usize * 3;
        if pixels.len() != want || width == 0 || height == 0 {
            return Err(ModelError::Input(format!(
                "{width}x{height} RGB image needs {want} bytes, got {}",
                pixels.len()
            )));
        }
        Ok(RgbView {
            width,
            height,
            pixels,
        })
    }
}

/// One output class of a model: its own name, and which of our classes it means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassLabel {
    pub name: String,
    pub gender: Gender,
}

/// A face classifier. Implementations do their own preprocessing (size, crop, mean/std, channel
/// order), because that is part of the model, not of the caller.
pub trait Classifier: Send + Sync {
    /// A short name for reports (`builtin`, `dlib-cydral`, `hf:owner/name`...).
    fn name(&self) -> &str;

    /// The output classes in the model's order.
    fn labels(&self) -> &[ClassLabel];

    /// Probabilities for each image, one row per image, in `labels()` order; each row sums to 1.
    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError>;

    /// How many images a call should carry for good throughput.
    fn preferred_batch(&self) -> usize {
        16
    }
}

/// Why a model could not be loaded or run.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A model file is missing or unreadable.
    #[error("{path}: {reason}")]
    File { path: String, reason: String },
    /// The model's files are readable but describe something we cannot run (unknown architecture,
    /// wrong tensor shape, missing tensor, label we cannot map).
    #[error("{path}: {reason}")]
    Format { path: String, reason: String },
    /// The input images are not what the model takes.
    #[error("bad input: {0}")]
    Input(String),
    /// The backend failed while running.
    #[error("inference failed: {0}")]
    Run(String),
}

/// Maps a model's class name to one of our classes: Hub models say "female"/"male", "Female"/"Male",
/// "man"/"woman", "female portrait", "LABEL_0"... Returns `None` when the name says neither clearly.
pub fn gender_of_label(name: &str) -> Option<Gender> {
    let lower = name.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let female = words.iter().any(|w| {
        matches!(
            *w,
            "female" | "females" | "woman" | "women" | "girl" | "girls" | "feminine" | "f" | "lady"
        )
    });
    let male = words.iter().any(|w| {
        matches!(
            *w,
            "male" | "males" | "man" | "men" | "boy" | "boys" | "masculine" | "m" | "gentleman"
        )
    });
    match (female, male) {
        (true, false) => Some(Gender::Female),
        (false, true) => Some(Gender::Male),
        _ => None,
    }
}

/// Maps every label of a model, refusing a set that does not name each of our classes exactly once.
pub fn map_labels(names: &[String], model: &str) -> Result<Vec<ClassLabel>, ModelError> {
    let labels: Vec<ClassLabel> = names
        .iter()
        .map(|n| {
            gender_of_label(n)
                .map(|gender| ClassLabel {
                    name: n.clone(),
                    gender,
                })
                .ok_or_else(|| ModelError::Format {
                    path: model.to_string(),
                    reason: format!("class {n:?} names neither female nor male"),
                })
        })
        .collect::<Result<_, _>>()?;
    for g in Gender::ALL {
        let n = labels.iter().filter(|l| l.gender == g).count();
        if n != 1 {
            return Err(ModelError::Format {
                path: model.to_string(),
                reason: format!("expected one class meaning {g}, found {n} in {names:?}"),
            });
        }
    }
    Ok(labels)
}

/// The probability of each of our classes, `[female, male]`, from a row in a model's label order.
pub fn gender_probabilities(labels: &[ClassLabel], row: &[f32]) -> [f32; 2] {
    let mut p = [0.0; 2];
    for (l, v) in labels.iter().zip(row) {
        p[l.gender.index()] += v;
    }
    p
}

/// A numerically stable softmax, for backends whose models output logits.
pub fn softmax(logits: &[f32]) -> Vec<f32> {
    let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
    let exp: Vec<f32> = logits.iter().map(|x| (x - max).exp()).collect();
    let sum: f32 = exp.iter().sum();
    exp.into_iter().map(|e| e / sum).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hub_label_spellings_map() {
        for (name, g) in [
            ("female", Gender::Female),
            ("Female", Gender::Female),
            ("woman", Gender::Female),
            ("female portrait", Gender::Female),
            ("Women", Gender::Female),
            ("male", Gender::Male),
            ("Male", Gender::Male),
            ("man", Gender::Male),
            ("a photo of a man", Gender::Male),
        ] {
            assert_eq!(gender_of_label(name), Some(g), "{name}");
        }
        assert_eq!(gender_of_label("LABEL_0"), None);
        assert_eq!(gender_of_label("male or female"), None);
        assert_eq!(gender_of_label("cat"), None);
    }

    #[test]
    fn label_sets_must_name_each_class_once() {
        let ok = map_labels(&["man".into(), "woman".into()], "m").unwrap();
        assert_eq!(ok[0].gender, Gender::Male);
        assert_eq!(gender_probabilities(&ok, &[0.25, 0.75]), [0.75, 0.25]);
        assert!(map_labels(&["man".into(), "boy".into()], "m").is_err());
        assert!(map_labels(&["LABEL_0".into(), "LABEL_1".into()], "m").is_err());
    }

    #[test]
    fn softmax_is_stable_and_sums_to_one() {
        let p = softmax(&[1000.0, 1001.0]);
        assert!((p.iter().sum::<f32>() - 1.0).abs() < 1e-6);
        assert!(p[1] > p[0]);
    }

    #[test]
    fn rgb_view_checks_length() {
        assert!(RgbView::new(2, 2, &[0; 12]).is_ok());
        assert!(RgbView::new(2, 2, &[0; 11]).is_err());
        assert!(RgbView::new(0, 0, &[]).is_err());
    }
}
