//! Classifying a list of inputs in batches: the next batch is decoded (in parallel) while the current one
//! runs through the model, results come out in input order, and a file that fails becomes a result of
//! its own instead of stopping the run.

use crate::inputs::Input;
use gc_core::{Classifier, Gender, RgbView, gender_probabilities};
use rayon::prelude::*;
use std::path::PathBuf;

/// What the model says about one image.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Prediction {
    /// Our class with the highest probability.
    pub label: Gender,
    /// `[female, male]`.
    pub probabilities: [f32; 2],
    /// The model's own class names with their probabilities, highest first.
    pub model_labels: Vec<(String, f32)>,
}

impl Prediction {
    pub fn from_row(model: &dyn Classifier, row: &[f32]) -> Prediction {
        let probabilities = gender_probabilities(model.labels(), row);
        let label = if probabilities[Gender::Female.index()] >= probabilities[Gender::Male.index()]
        {
            Gender::Female
        } else {
            Gender::Male
        };
        let mut model_labels: Vec<(String, f32)> = model
            .labels()
            .iter()
            .zip(row)
            .map(|(l, &p)| (l.name.clone(), p))
            .collect();
        model_labels.sort_by(|a, b| b.1.total_cmp(&a.1));
        Prediction {
            label,
            probabilities,
            model_labels,
        }
    }

    /// The probability of the predicted class.
    pub fn confidence(&self) -> f32 {
        self.probabilities[self.label.index()]
    }
}

/// The result for one input.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub path: PathBuf,
    pub result: Result<Prediction, String>,
}

/// Classifies `inputs` with `model`, `batch` images a model call, calling `emit` once per input in
/// input order.
pub fn classify_inputs(
    model: &dyn Classifier,
    inputs: &[Input],
    batch: usize,
    mut emit: impl FnMut(Outcome),
) {
    overlapped(
        inputs,
        batch,
        decode_chunk,
        |decoded| classify_decoded(model, decoded),
        &|| false,
        &mut emit,
    );
}

/// Splits `inputs` into chunks of `batch`, runs `prepare` on the next chunk (decoding, on rayon's
/// threads) while `consume` runs the current one through the model, and emits the results in
/// input order. Once `halted` says so, the batch in hand is emitted and nothing more is started.
pub(crate) fn overlapped<P: Send, O: Send>(
    inputs: &[Input],
    batch: usize,
    prepare: impl Fn(&[Input]) -> P + Sync,
    consume: impl Fn(P) -> Vec<O> + Sync,
    halted: &(dyn Fn() -> bool + Sync),
    mut emit: impl FnMut(O),
) {
    let mut chunks = inputs.chunks(batch.max(1));
    let mut current = chunks.next().filter(|_| !halted()).map(&prepare);
    while let Some(prepared) = current {
        let next = chunks.next();
        let (results, next_prepared) = rayon::join(
            || consume(prepared),
            || next.filter(|_| !halted()).map(&prepare),
        );
        for o in results {
            emit(o);
        }
        if halted() {
            return;
        }
        current = next_prepared;
    }
}

type Decoded = (PathBuf, Result<image::RgbImage, String>);

fn decode_chunk(chunk: &[Input]) -> Vec<Decoded> {
    chunk
        .par_iter()
        .map(|input| {
            let result = match &input.problem {
                Some(p) => Err(p.clone()),
                None => gc_pipeline::decode::decode_rgb(&input.path)
                    .map_err(|e| reason(&input.path, &e)),
            };
            (input.path.clone(), result)
        })
        .collect()
}

/// The error's message without the leading path, which the caller prints first.
/// Trimmed: a decoder's message can end with a newline, which reached report.json.
pub(crate) fn reason(path: &std::path::Path, e: &dyn std::fmt::Display) -> String {
    let msg = e.to_string();
    let prefix = format!("{}: ", path.display());
    msg.strip_prefix(&prefix)
        .unwrap_or(&msg)
        .trim_end()
        .to_string()
}

fn classify_decoded(model: &dyn Classifier, decoded: Vec<Decoded>) -> Vec<Outcome> {
    let views: Vec<RgbView<'_>> = decoded
        .iter()
        .filter_map(|(_, r)| r.as_ref().ok())
        .map(|img| RgbView {
            width: img.width(),
            height: img.height(),
            pixels: img.as_raw(),
        })
        .collect();
    let rows = if views.is_empty() {
        Ok(Vec::new())
    } else {
        model.classify(&views).map_err(|e| e.to_string())
    };
    let n = views.len();
    drop(views);
    let mut rows = match rows {
        Ok(rows) if rows.len() == n => rows.into_iter(),
        Ok(rows) => {
            let msg = format!("model returned {} results for {n} images", rows.len());
            return fail_all(decoded, &msg);
        }
        // One image can fail a run of many (scores that are not numbers for it alone): each is
        // classified alone then, so that only the images that fail are reported as failed.
        Err(_) if n > 1 => {
            return decoded
                .into_iter()
                .flat_map(|d| classify_decoded(model, vec![d]))
                .collect();
        }
        Err(msg) => return fail_all(decoded, &msg),
    };
    decoded
        .into_iter()
        .map(|(path, r)| Outcome {
            path,
            result: r.and_then(|_| match rows.next() {
                // A broken model (or weights) can give NaN for one image; it would be counted
                // as a confident "male" by whatever compares it with 0.5.
                Some(row) if row.iter().any(|p| !p.is_finite()) => {
                    Err(format!("the model's output is not a number ({row:?})"))
                }
                Some(row) => Ok(Prediction::from_row(model, &row)),
                None => Err("model returned too few results".to_string()),
            }),
        })
        .collect()
}

fn fail_all(decoded: Vec<Decoded>, msg: &str) -> Vec<Outcome> {
    decoded
        .into_iter()
        .map(|(path, r)| Outcome {
            path,
            result: r.and_then(|_| Err(msg.to_string())),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Scripted;
    use gc_core::Gender;

    #[test]
    fn an_image_that_fails_its_run_fails_alone() {
        // A run holding an image 3 pixels wide fails.
        let model = Scripted(|v| (v.width != 3).then(|| vec![0.75, 0.25]));
        let image = |w| Ok(image::RgbImage::new(w, 2));
        let decoded: Vec<Decoded> = vec![
            ("a.jpg".into(), image(2)),
            ("b.jpg".into(), image(3)),
            ("c.jpg".into(), Err("truncated".to_string())),
            ("d.jpg".into(), image(4)),
        ];
        let out = classify_decoded(&model, decoded);
        let results: Vec<_> = out
            .iter()
            .map(|o| o.result.as_ref().map(|p| p.label))
            .collect();
        assert_eq!(results[0], Ok(Gender::Female));
        assert_eq!(
            results[1],
            Err(&"inference failed: scores [NaN, NaN]".to_string())
        );
        assert_eq!(results[2], Err(&"truncated".to_string()));
        assert_eq!(results[3], Ok(Gender::Female));
        // Alone, the failing image still fails with the model's message.
        let out = classify_decoded(&model, vec![("b.jpg".into(), image(3))]);
        assert_eq!(
            out[0].result.as_ref().unwrap_err(),
            "inference failed: scores [NaN, NaN]"
        );
    }

    #[test]
    fn a_row_that_is_not_numbers_fails_its_image_alone() {
        // A model that returns NaN for an image instead of failing the run.
        let model = Scripted(|v| {
            Some(if v.width == 3 {
                vec![f32::NAN, f32::NAN]
            } else {
                vec![0.25, 0.75]
            })
        });
        let image = |w| Ok(image::RgbImage::new(w, 2));
        let decoded: Vec<Decoded> = vec![("a.jpg".into(), image(2)), ("b.jpg".into(), image(3))];
        let out = classify_decoded(&model, decoded);
        assert_eq!(out[0].result.as_ref().map(|p| p.label), Ok(Gender::Male));
        let err = out[1].result.as_ref().unwrap_err();
        assert!(err.contains("not a number"), "{err}");
    }

    #[test]
    fn reasons_lose_the_path_and_trailing_space() {
        let path = std::path::Path::new("a.jpg");
        assert_eq!(
            reason(path, &"a.jpg: corrupt: expected 162\n"),
            "corrupt: expected 162"
        );
        assert_eq!(reason(path, &"other.jpg: x "), "other.jpg: x");
    }
}
