//! UltraFace ("Ultra-Light-Fast-Generic-Face-Detector-1MB", version-RFB and version-slim), as its
//! reference `detect_imgs_onnx.py` runs it:
//! <https://github.com/Linzaer/Ultra-Light-Fast-Generic-Face-Detector-1MB>.
//!
//! The whole image is stretched to the input size (320x240 for the `-320` files), RGB, normalised
//! as (x - 127) / 128. The graph decodes its priors itself: `scores` [1, N, 2] holds (background,
//! face) softmax pairs and `boxes` [1, N, 4] corners normalised to 0..1, so what is left here is the
//! threshold, NMS (in `nms`) and scaling back to the image.

use crate::nms::Candidate;
use gc_core::{ModelError, RgbView};
use gc_pipeline::transform::{Size, resize_rgb};

/// The input size of the published `-320` files, used when a graph does not declare its own.
pub(crate) const DEFAULT_INPUT: Size = Size {
    width: 320,
    height: 240,
};

/// Output names in the published ONNX files.
pub(crate) const OUTPUTS: [&str; 2] = ["scores", "boxes"];

/// The image as the graph takes it: [1, 3, h, w], RGB planes, (x - 127) / 128.
pub(crate) fn preprocess(image: &RgbView<'_>, input: Size) -> Result<Vec<f32>, ModelError> {
    let resized = resize_rgb(image.pixels, image.width, image.height, input)
        .map_err(|e| ModelError::Input(e.to_string()))?;
    let plane = input.area();
    let mut out = vec![0.0; 3 * plane];
    for (i, px) in resized.chunks_exact(3).enumerate() {
        for c in 0..3 {
            out[c * plane + i] = (f32::from(px[c]) - 127.0) / 128.0;
        }
    }
    Ok(out)
}

/// Faces above `threshold` from the two outputs, in pixels of a `width` x `height` image (the
/// boxes are fractions of the stretched input, so of the image too).
pub(crate) fn decode(
    scores: &[f32],
    boxes: &[f32],
    threshold: f32,
    width: u32,
    height: u32,
) -> Result<Vec<Candidate>, String> {
    if !scores.len().is_multiple_of(2) || boxes.len() != scores.len() * 2 {
        return Err(format!(
            "`scores` and `boxes` should hold 2 and 4 values per prior, got {} and {} values",
            scores.len(),
            boxes.len()
        ));
    }
    let (w, h) = (width as f32, height as f32);
    Ok(scores
        .chunks_exact(2)
        .zip(boxes.chunks_exact(4))
        .filter(|(s, _)| s[1] > threshold)
        .map(|(s, b)| Candidate {
            corners: [b[0] * w, b[1] * h, b[2] * w, b[3] * h],
            score: s[1],
            landmarks: None,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn preprocess_normalises_rgb_planes() {
        let pixels = [255, 127, 0, 255, 127, 0];
        let image = RgbView::new(2, 1, &pixels).unwrap();
        let out = preprocess(
            &image,
            Size {
                width: 2,
                height: 1,
            },
        )
        .unwrap();
        assert_eq!(out, [1.0, 1.0, 0.0, 0.0, -127.0 / 128.0, -127.0 / 128.0]);
    }

    #[test]
    fn decode_scales_corners_to_the_image() {
        let scores = [0.9, 0.1, 0.2, 0.8];
        let boxes = [0.0, 0.0, 0.1, 0.1, 0.25, 0.5, 0.75, 1.0];
        let faces = decode(&scores, &boxes, 0.7, 200, 100).unwrap();
        assert_eq!(faces.len(), 1);
        assert_eq!(faces[0].corners, [50.0, 50.0, 150.0, 100.0]);
        assert_eq!(faces[0].score, 0.8);
        assert!(decode(&scores, &boxes[..4], 0.7, 200, 100).is_err());
    }
}
