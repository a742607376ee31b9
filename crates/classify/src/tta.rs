//! Test-time augmentation: any model run on each face and on its mirror image, the two
//! probability rows averaged. A face's gender does not change in a mirror, but a model's errors
//! partly do (lighting from one side, a turned head, hair over one eye), so the average is a
//! little more accurate and better calibrated, for twice the inference work. Named on the command
//! line as `flip:MODEL` (`flip:builtin`, `flip:model.onnx`, `flip:hf:owner/name`).

use gc_core::{ClassLabel, Classifier, ModelError, RgbView};
use image::{ImageBuffer, Rgb, imageops};
use rayon::prelude::*;

/// A model whose every prediction is the mean of its predictions on the image and on the image
/// mirrored left to right.
pub struct FlipAveraged {
    inner: Box<dyn Classifier>,
    name: String,
}

impl FlipAveraged {
    pub fn new(inner: Box<dyn Classifier>) -> FlipAveraged {
        let name = format!("{}+flip", inner.name());
        FlipAveraged { inner, name }
    }
}

/// The image mirrored left to right, as a new buffer.
fn mirrored(view: &RgbView<'_>) -> Result<Vec<u8>, ModelError> {
    let buf: ImageBuffer<Rgb<u8>, &[u8]> =
        ImageBuffer::from_raw(view.width, view.height, view.pixels).ok_or_else(|| {
            ModelError::Input(format!(
                "{}x{} RGB image with {} bytes",
                view.width,
                view.height,
                view.pixels.len()
            ))
        })?;
    Ok(imageops::flip_horizontal(&buf).into_raw())
}

impl Classifier for FlipAveraged {
    fn name(&self) -> &str {
        &self.name
    }

    fn labels(&self) -> &[ClassLabel] {
        self.inner.labels()
    }

    fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
        let mirrors: Vec<Vec<u8>> = images.par_iter().map(mirrored).collect::<Result<_, _>>()?;
        // One call with both halves, so the inner model batches them together.
        let mut all: Vec<RgbView<'_>> = images.to_vec();
        for (view, pixels) in images.iter().zip(&mirrors) {
            all.push(RgbView::new(view.width, view.height, pixels)?);
        }
        let rows = self.inner.classify(&all)?;
        if rows.len() != all.len() {
            return Err(ModelError::Run(format!(
                "{} returned {} rows for {} images",
                self.inner.name(),
                rows.len(),
                all.len()
            )));
        }
        let (plain, flipped) = rows.split_at(images.len());
        Ok(plain
            .iter()
            .zip(flipped)
            .map(|(a, b)| a.iter().zip(b).map(|(x, y)| 0.5 * (x + y)).collect())
            .collect())
    }

    fn preferred_batch(&self) -> usize {
        // Each image becomes two in the inner call.
        (self.inner.preferred_batch() / 2).max(1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gc_core::Gender;
    use std::sync::{Arc, Mutex};

    /// Answers "female" with a probability read off the image's leftmost red value, and records
    /// what it was given.
    struct LeftPixel {
        labels: Vec<ClassLabel>,
        calls: Arc<Mutex<Vec<usize>>>,
    }

    impl LeftPixel {
        fn new() -> LeftPixel {
            LeftPixel {
                labels: vec![
                    ClassLabel {
                        name: "woman".into(),
                        gender: Gender::Female,
                    },
                    ClassLabel {
                        name: "man".into(),
                        gender: Gender::Male,
                    },
                ],
                calls: Arc::default(),
            }
        }
    }

    impl Classifier for LeftPixel {
        fn name(&self) -> &str {
            "left-pixel"
        }
        fn labels(&self) -> &[ClassLabel] {
            &self.labels
        }
        fn classify(&self, images: &[RgbView<'_>]) -> Result<Vec<Vec<f32>>, ModelError> {
            self.calls.lock().unwrap().push(images.len());
            Ok(images
                .iter()
                .map(|v| {
                    let p = v.pixels[0] as f32 / 255.0;
                    vec![p, 1.0 - p]
                })
                .collect())
        }
        fn preferred_batch(&self) -> usize {
            16
        }
    }

    #[test]
    fn averages_the_image_and_its_mirror() {
        // 3x2 image; red of the left column 255 then 51, of the right column 0 then 204.
        #[rustfmt::skip]
        let a = [
            255, 0, 0,   7, 7, 7,   0, 0, 0,
             51, 0, 0,   7, 7, 7, 204, 0, 0,
        ];
        // 1x1: its own mirror.
        let b = [102, 1, 2];
        let model = FlipAveraged::new(Box::new(LeftPixel::new()));
        assert_eq!(model.name(), "left-pixel+flip");
        assert_eq!(model.preferred_batch(), 8);
        let rows = model
            .classify(&[
                RgbView::new(3, 2, &a).unwrap(),
                RgbView::new(1, 1, &b).unwrap(),
            ])
            .unwrap();
        // Image a: 1.0 as given, 0.0 mirrored (the right column's red comes first).
        assert_eq!(rows[0], vec![0.5, 0.5]);
        assert!((rows[1][0] - 0.4).abs() < 1e-6, "{:?}", rows[1]);
        assert!((rows[1].iter().sum::<f32>() - 1.0).abs() < 1e-6);
    }

    #[test]
    fn mirror_reverses_each_row_of_pixels() {
        let px = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12];
        let m = mirrored(&RgbView::new(2, 2, &px).unwrap()).unwrap();
        assert_eq!(m, vec![4, 5, 6, 1, 2, 3, 10, 11, 12, 7, 8, 9]);
    }

    #[test]
    fn one_inner_call_carries_both_halves() {
        let inner = LeftPixel::new();
        let calls = Arc::clone(&inner.calls);
        let px = [9u8; 12];
        let model = FlipAveraged::new(Box::new(inner));
        let views = vec![RgbView::new(2, 2, &px).unwrap(); 3];
        assert_eq!(model.classify(&views).unwrap().len(), 3);
        assert_eq!(model.classify(&[]).unwrap().len(), 0);
        assert_eq!(*calls.lock().unwrap(), vec![6, 0]);
    }
}
