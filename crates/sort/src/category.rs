//! Which folder a photo goes to, from what was found in it.

use gc_classify::photos::Verdict;
use gc_core::Gender;

/// The folder a photo is sorted into (or `Error` when it could not be read).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Category {
    Female,
    Male,
    /// Several people, of both classes.
    Mixed,
    NoFace,
    /// At least one face whose prediction is below the confidence asked for.
    Uncertain,
    /// Not an image we can read; listed in the index, not copied.
    Error,
}

impl Category {
    pub const ALL: [Category; 6] = [
        Category::Female,
        Category::Male,
        Category::Mixed,
        Category::NoFace,
        Category::Uncertain,
        Category::Error,
    ];

    /// The folder name, also the `category` column of index.csv.
    pub fn name(self) -> &'static str {
        match self {
            Category::Female => "female",
            Category::Male => "male",
            Category::Mixed => "mixed",
            Category::NoFace => "no-face",
            Category::Uncertain => "uncertain",
            Category::Error => "error",
        }
    }

    pub fn from_name(name: &str) -> Option<Category> {
        Category::ALL.into_iter().find(|c| c.name() == name)
    }

    /// The category of a classified photo: `uncertain` as soon as one face is below
    /// `min_confidence`, so that a confident face never hides a doubtful one.
    pub fn of(verdict: &Verdict, min_confidence: f32) -> Category {
        let predictions: Vec<_> = match verdict {
            Verdict::Whole(p) => vec![p],
            Verdict::Faces(faces) => faces.iter().map(|f| &f.prediction).collect(),
        };
        if predictions.is_empty() {
            return Category::NoFace;
        }
        if predictions
            .iter()
            .any(|p| p.confidence() < min_confidence || p.confidence().is_nan())
        {
            return Category::Uncertain;
        }
        let female = predictions.iter().any(|p| p.label == Gender::Female);
        let male = predictions.iter().any(|p| p.label == Gender::Male);
        match (female, male) {
            (true, true) => Category::Mixed,
            (true, false) => Category::Female,
            _ => Category::Male,
        }
    }
}

impl std::fmt::Display for Category {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gc_classify::Prediction;
    use gc_classify::photos::FacePrediction;

    fn face(female: f32) -> FacePrediction {
        FacePrediction {
            bbox: [0.0; 4],
            score: 1.0,
            prediction: Prediction {
                label: if female >= 0.5 {
                    Gender::Female
                } else {
                    Gender::Male
                },
                probabilities: [female, 1.0 - female],
                model_labels: vec![],
            },
        }
    }

    #[test]
    fn categories() {
        let of =
            |f: &[f32]| Category::of(&Verdict::Faces(f.iter().map(|&p| face(p)).collect()), 0.8);
        assert_eq!(of(&[]), Category::NoFace);
        assert_eq!(of(&[0.9]), Category::Female);
        assert_eq!(of(&[0.1, 0.05]), Category::Male);
        assert_eq!(of(&[0.9, 0.1]), Category::Mixed);
        assert_eq!(of(&[0.9, 0.7]), Category::Uncertain);
        assert_eq!(of(&[0.6]), Category::Uncertain);
        assert_eq!(of(&[f32::NAN]), Category::Uncertain);
        let whole = Verdict::Whole(face(0.95).prediction);
        assert_eq!(Category::of(&whole, 0.8), Category::Female);
        for c in Category::ALL {
            assert_eq!(Category::from_name(c.name()), Some(c));
        }
    }
}
