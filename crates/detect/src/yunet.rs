//! YuNet (libfacedetection.train's `yunet_n`), decoded as OpenCV's `FaceDetectorYN` does:
//! <https://github.com/opencv/opencv/blob/4.x/modules/objdetect/src/face_detect.cpp>.
//!
//! The graph takes [1, 3, H, W] BGR in raw 0..255, H and W multiples of 32. It gives, for each
//! stride s in 8, 16, 32, one row per cell of the (H/s) x (W/s) grid, row-major: `cls_s` and `obj_s`
//! (one value each), `bbox_s` (dx, dy, log w, log h, in cells) and `kps_s` (five landmark points, in
//! cells). Unlike OpenCV, which runs the image at its own size, large images are first shrunk so
//! that their long side is [`MAX_SIDE`]; then, as OpenCV does, the image is padded with black on the
//! right and bottom to the next multiple of 32.

use crate::nms::Candidate;
use gc_core::{ModelError, RgbView};
use gc_pipeline::transform::{Size, resize_rgb};

/// Images with a longer side are shrunk to it before detection: the cost grows with the area (6,300
/// anchors at 640x480), and YuNet still finds faces of about 10 pixels at that size. Smaller images
/// are not enlarged: UTKFace 200x200 crops enlarged to 640 gave two faces on 1 of 88, and at their
/// own size exactly one on each of the 500 UTK-500 crops.
pub const MAX_SIDE: u32 = 640;

/// YuNet's strides, and the multiple its input sides must be.
const STRIDES: [usize; 3] = [8, 16, 32];
const DIVISOR: u32 = 32;

/// Output names, in the order OpenCV reads them: the index of `cls_8` plus 3 per kind.
pub(crate) const OUTPUTS: [&str; 12] = [
    "cls_8", "cls_16", "cls_32", "obj_8", "obj_16", "obj_32", "bbox_8", "bbox_16", "bbox_32",
    "kps_8", "kps_16", "kps_32",
];

/// Where an image lies in the graph's input: scaled to `scaled`, padded to `padded`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub scaled: Size,
    pub padded: Size,
}

impl Layout {
    /// For a graph with a free input size, `fixed` is `None`: shrink to [`MAX_SIDE`] and pad to
    /// a multiple of 32. For one with a fixed input (`yunet-n-320.onnx`), fit the image inside it.
    pub fn new(width: u32, height: u32, fixed: Option<Size>) -> Layout {
        let long = width.max(height) as f32;
        let (limit_w, limit_h) = match fixed {
            Some(f) => (f.width as f32, f.height as f32),
            None => (MAX_SIDE as f32, MAX_SIDE as f32),
        };
        let scale = match fixed {
            Some(_) => (limit_w / width as f32)
                .min(limit_h / height as f32)
                .min(1.0),
            None => (limit_w / long).min(1.0),
        };
        let side = |v: u32| ((v as f32 * scale).round() as u32).max(1);
        let scaled = Size {
            width: side(width),
            height: side(height),
        };
        let padded = fixed.unwrap_or(Size {
            width: scaled.width.div_ceil(DIVISOR) * DIVISOR,
            height: scaled.height.div_ceil(DIVISOR) * DIVISOR,
        });
        Layout { scaled, padded }
    }
}

/// The image as the graph takes it: [1, 3, padded.h, padded.w], BGR planes, 0..255, black padding.
pub(crate) fn preprocess(image: &RgbView<'_>, layout: Layout) -> Result<Vec<f32>, ModelError> {
    let resized = resize_rgb(image.pixels, image.width, image.height, layout.scaled)
        .map_err(|e| ModelError::Input(e.to_string()))?;
    let (w, pw) = (layout.scaled.width as usize, layout.padded.width as usize);
    let plane = layout.padded.area();
    let mut out = vec![0.0; 3 * plane];
    for (y, row) in resized.chunks_exact(3 * w).enumerate() {
        for (x, px) in row.chunks_exact(3).enumerate() {
            let i = y * pw + x;
            out[i] = f32::from(px[2]);
            out[plane + i] = f32::from(px[1]);
            out[2 * plane + i] = f32::from(px[0]);
        }
    }
    Ok(out)
}

/// Faces scoring at least `threshold` from the 12 outputs (in [`OUTPUTS`] order), in pixels of a
/// `width` x `height` image laid out as `layout`.
pub(crate) fn decode(
    outputs: &[Vec<f32>],
    threshold: f32,
    layout: Layout,
    width: u32,
    height: u32,
) -> Result<Vec<Candidate>, String> {
    if outputs.len() != OUTPUTS.len() {
        return Err(format!("expected 12 outputs, got {}", outputs.len()));
    }
    // Back from the scaled image to the original, per axis: rounding made the two scales differ.
    let sx = width as f32 / layout.scaled.width as f32;
    let sy = height as f32 / layout.scaled.height as f32;
    let mut faces = Vec::new();
    for (i, &stride) in STRIDES.iter().enumerate() {
        let cols = layout.padded.width as usize / stride;
        let rows = layout.padded.height as usize / stride;
        let cells = rows * cols;
        let [cls, obj, bbox, kps] = [0, 1, 2, 3].map(|k| &outputs[i + 3 * k]);
        for (k, (values, per_cell)) in [(cls, 1), (obj, 1), (bbox, 4), (kps, 10)]
            .into_iter()
            .enumerate()
        {
            if values.len() != cells * per_cell {
                return Err(format!(
                    "output {:?} has {} values, expected {cells} cells x {per_cell} for a {}x{} input",
                    OUTPUTS[i + 3 * k],
                    values.len(),
                    layout.padded.width,
                    layout.padded.height
                ));
            }
        }
        let s = stride as f32;
        for idx in 0..cells {
            // The outputs are sigmoids already; OpenCV clamps them anyway.
            let score = (cls[idx].clamp(0.0, 1.0) * obj[idx].clamp(0.0, 1.0)).sqrt();
            // A zero score is no face, whatever the threshold.
            if score < threshold || score <= 0.0 {
                continue;
            }
            let (r, c) = ((idx / cols) as f32, (idx % cols) as f32);
            let b = &bbox[idx * 4..idx * 4 + 4];
            let cx = (c + b[0]) * s;
            let cy = (r + b[1]) * s;
            let w = b[2].exp() * s;
            let h = b[3].exp() * s;
            let p = &kps[idx * 10..idx * 10 + 10];
            let landmarks =
                std::array::from_fn(|n| [(p[2 * n] + c) * s * sx, (p[2 * n + 1] + r) * s * sy]);
            faces.push(Candidate {
                corners: [
                    (cx - w / 2.0) * sx,
                    (cy - h / 2.0) * sy,
                    (cx + w / 2.0) * sx,
                    (cy + h / 2.0) * sy,
                ],
                score,
                landmarks: Some(landmarks),
            });
        }
    }
    Ok(faces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn size(width: u32, height: u32) -> Size {
        Size { width, height }
    }

    #[test]
    fn layout_shrinks_large_images_only_and_pads_to_32() {
        let big = Layout::new(1280, 886, None);
        assert_eq!(big.scaled, size(640, 443));
        assert_eq!(big.padded, size(640, 448));
        let small = Layout::new(200, 200, None);
        assert_eq!(small.scaled, size(200, 200));
        assert_eq!(small.padded, size(224, 224));
        let fixed = Layout::new(1280, 886, Some(size(320, 320)));
        assert_eq!(fixed.scaled, size(320, 222));
        assert_eq!(fixed.padded, size(320, 320));
    }

    #[test]
    fn preprocess_writes_bgr_planes_and_black_padding() {
        let pixels = [10, 20, 30];
        let image = RgbView::new(1, 1, &pixels).unwrap();
        let layout = Layout::new(1, 1, None);
        let out = preprocess(&image, layout).unwrap();
        let plane = 32 * 32;
        assert_eq!(out.len(), 3 * plane);
        assert_eq!([out[0], out[plane], out[2 * plane]], [30.0, 20.0, 10.0]);
        assert!(out[1..plane].iter().all(|&v| v == 0.0));
    }

    #[test]
    fn decode_follows_opencv() {
        // A 32x32 input: 16, 4 and 1 cells. One face in cell (row 1, col 2) of stride 8.
        let layout = Layout::new(32, 32, None);
        let cells = [16, 4, 1];
        let mut outputs: Vec<Vec<f32>> = Vec::new();
        for per_cell in [1, 1, 4, 10] {
            for n in cells {
                outputs.push(vec![0.0; n * per_cell]);
            }
        }
        let idx = 4 + 2;
        outputs[0][idx] = 0.81; // cls_8
        outputs[3][idx] = 1.0; // obj_8
        outputs[6][idx * 4..idx * 4 + 4].copy_from_slice(&[0.5, 0.5, 0.0, 2f32.ln()]);
        outputs[9][idx * 10] = 0.25;
        let faces = decode(&outputs, 0.6, layout, 32, 32).unwrap();
        assert_eq!(faces.len(), 1);
        let f = &faces[0];
        assert!((f.score - 0.9).abs() < 1e-6);
        // Centre ((2 + 0.5) * 8, (1 + 0.5) * 8) = (20, 12), size 8 x 16.
        let want = [16.0, 4.0, 24.0, 20.0];
        assert!(
            f.corners
                .iter()
                .zip(want)
                .all(|(a, b)| (a - b).abs() < 1e-4),
            "{f:?}"
        );
        assert_eq!(f.landmarks.unwrap()[0], [18.0, 8.0]);
        assert!(decode(&outputs[..11], 0.6, layout, 32, 32).is_err());
        outputs[0].pop();
        assert!(decode(&outputs, 0.6, layout, 32, 32).is_err());
    }
}
