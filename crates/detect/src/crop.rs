//! The square around a detected face that a face classifier is given: framed like a UTKFace crop,
//! since that is what our classifiers are trained on.

#[cfg(doc)]
use crate::DetectorKind;
use crate::Face;
use gc_core::RgbView;

/// A rectangle of whole pixels of an image: columns `x0..x1`, rows `y0..y1` (ends excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CropRect {
    pub x0: u32,
    pub y0: u32,
    pub x1: u32,
    pub y1: u32,
}

impl CropRect {
    pub fn width(&self) -> u32 {
        self.x1 - self.x0
    }

    pub fn height(&self) -> u32 {
        self.y1 - self.y0
    }

    /// Copies the rectangle's pixels out of `image` (packed RGB, `width * height * 3` bytes). The
    /// rectangle must come from [`face_crop`] on the same image; outside parts are left out.
    pub fn pixels(&self, image: &RgbView<'_>) -> Vec<u8> {
        let (x0, x1) = (self.x0.min(image.width), self.x1.min(image.width));
        let (y0, y1) = (self.y0.min(image.height), self.y1.min(image.height));
        let stride = image.width as usize * 3;
        let mut out = Vec::with_capacity((x1 - x0) as usize * (y1 - y0) as usize * 3);
        for y in y0 as usize..y1 as usize {
            let row = &image.pixels[y * stride..(y + 1) * stride];
            out.extend_from_slice(&row[x0 as usize * 3..x1 as usize * 3]);
        }
        out
    }
}

/// The square crop of `image` around `face`: centred on the box, its side the box's longer side
/// times `1 + 2 * margin` (so `margin` is the fraction of that side added on each side, and with
/// `margin >= 0` the crop holds the whole box). [`DetectorKind::utkface_margin`] gives the margin
/// that frames faces as UTKFace does, for each detector.
///
/// A square that crosses the image border is moved inside it rather than cut, so it stays square
/// (and the face keeps its aspect ratio when the crop is resized) at the cost of the face being off
/// centre; only a square larger than the image is cut to it. Never empty on a non-empty image.
pub fn face_crop(image: &RgbView<'_>, face: &Face, margin: f32) -> CropRect {
    let [x, y, w, h] = face.bbox;
    // A margin of -0.5 or less would make the square vanish; NaN means none.
    let margin = if margin.is_nan() {
        0.0
    } else {
        margin.max(-0.45)
    };
    let side = w.max(h) * (1.0 + 2.0 * margin);
    let place = |centre: f32, limit: u32| -> (u32, u32) {
        let len = (side.round() as u32).max(1).min(limit);
        let start = (centre - len as f32 / 2.0).round().max(0.0) as u32;
        let start = start.min(limit - len);
        (start, start + len)
    };
    let (x0, x1) = place(x + w / 2.0, image.width);
    let (y0, y1) = place(y + h / 2.0, image.height);
    CropRect { x0, y0, x1, y1 }
}

/// The crop of [`face_crop`], turned about the face's centre so that the eyes are level, as
/// UTKFace's aligned crops are (it needs YuNet's landmarks; `None` without them, or when the eyes
/// are too close together to give an angle). Returns `(side, pixels)`: a square RGB image whose
/// pixels outside the photo are black.
///
/// Written here rather than taken from `imageproc`: one bilinear rotation of a small square is all
/// we need, and it avoids a dependency for it.
pub fn aligned_face_crop(image: &RgbView<'_>, face: &Face, margin: f32) -> Option<(u32, Vec<u8>)> {
    let marks = face.landmarks?;
    // Person's right eye first: in the image it is on the left for a frontal face.
    let ([rx, ry], [lx, ly]) = (marks[0], marks[1]);
    let (dx, dy) = (lx - rx, ly - ry);
    if !(dx.is_finite() && dy.is_finite()) || dx.hypot(dy) < 2.0 {
        return None;
    }
    let angle = dy.atan2(dx);
    let rect = face_crop(image, face, margin);
    let side = rect.width().min(rect.height()).max(1);
    let [x, y, w, h] = face.bbox;
    let (cx, cy) = (x + w / 2.0, y + h / 2.0);
    let (sin, cos) = angle.sin_cos();
    let half = side as f32 / 2.0;
    let mut out = vec![0u8; side as usize * side as usize * 3];
    for v in 0..side {
        for u in 0..side {
            // Output pixel centre relative to the crop centre, turned by the eyes' angle.
            let (ox, oy) = (u as f32 + 0.5 - half, v as f32 + 0.5 - half);
            let sx = cx + ox * cos - oy * sin - 0.5;
            let sy = cy + ox * sin + oy * cos - 0.5;
            let o = (v as usize * side as usize + u as usize) * 3;
            bilinear(image, sx, sy, &mut out[o..o + 3]);
        }
    }
    Some((side, out))
}

fn bilinear(image: &RgbView<'_>, x: f32, y: f32, out: &mut [u8]) {
    let (x0, y0) = (x.floor(), y.floor());
    let (fx, fy) = (x - x0, y - y0);
    let mut acc = [0f32; 3];
    for (dy, wy) in [(0, 1.0 - fy), (1, fy)] {
        for (dx, wx) in [(0, 1.0 - fx), (1, fx)] {
            let (px, py) = (x0 as i64 + dx, y0 as i64 + dy);
            if px < 0 || py < 0 || px >= image.width as i64 || py >= image.height as i64 {
                continue;
            }
            let i = (py as usize * image.width as usize + px as usize) * 3;
            for (a, &p) in acc.iter_mut().zip(&image.pixels[i..i + 3]) {
                *a += wx * wy * f32::from(p);
            }
        }
    }
    for (o, a) in out.iter_mut().zip(acc) {
        *o = a.round().clamp(0.0, 255.0) as u8;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(bbox: [f32; 4]) -> Face {
        Face {
            bbox,
            score: 1.0,
            landmarks: None,
        }
    }

    #[test]
    fn crop_is_a_centred_square_with_the_margin() {
        let pixels = vec![0; 100 * 80 * 3];
        let image = RgbView::new(100, 80, &pixels).unwrap();
        // Box 20 x 30 centred on (50, 40): longer side 30, with 10% each side 36.
        let c = face_crop(&image, &face([40.0, 25.0, 20.0, 30.0]), 0.1);
        assert_eq!(
            c,
            CropRect {
                x0: 32,
                y0: 22,
                x1: 68,
                y1: 58
            }
        );
        assert_eq!(c.pixels(&image).len(), 36 * 36 * 3);
    }

    #[test]
    fn aligned_crop_levels_the_eyes() {
        // A 40x40 image, left half dark, right half bright: a vertical edge at x = 20.
        let pixels: Vec<u8> = (0..40 * 40)
            .flat_map(|i| {
                let v = if i % 40 < 20 { 0 } else { 200 };
                [v, v, v]
            })
            .collect();
        let image = RgbView::new(40, 40, &pixels).unwrap();
        let mut f = face([10.0, 10.0, 20.0, 20.0]);
        assert!(aligned_face_crop(&image, &f, 0.0).is_none(), "no landmarks");
        // Level eyes: the crop is the plain square, the edge in the middle of each row.
        f.landmarks = Some([
            [15.0, 18.0],
            [25.0, 18.0],
            [20.0, 22.0],
            [16.0, 26.0],
            [24.0, 26.0],
        ]);
        let (side, out) = aligned_face_crop(&image, &f, 0.0).unwrap();
        assert_eq!(side, 20);
        let row =
            |out: &[u8], v: usize| -> Vec<u8> { (0..20).map(|u| out[(v * 20 + u) * 3]).collect() };
        assert_eq!(row(&out, 10)[..10], [0; 10]);
        assert_eq!(row(&out, 10)[10..], [200; 10]);
        // Eyes on a line at 90 degrees (the face lies on its side): the vertical edge of the photo
        // becomes horizontal in the crop, dark above and bright below.
        f.landmarks = Some([
            [20.0, 15.0],
            [20.0, 25.0],
            [22.0, 20.0],
            [26.0, 16.0],
            [26.0, 24.0],
        ]);
        let (_, out) = aligned_face_crop(&image, &f, 0.0).unwrap();
        assert!(row(&out, 2).iter().all(|&p| p > 150), "{:?}", row(&out, 2));
        assert!(row(&out, 17).iter().all(|&p| p < 50), "{:?}", row(&out, 17));
    }

    #[test]
    fn crop_moves_inside_the_image_and_shrinks_only_past_its_size() {
        let pixels = vec![0; 100 * 80 * 3];
        let image = RgbView::new(100, 80, &pixels).unwrap();
        let c = face_crop(&image, &face([90.0, 0.0, 10.0, 10.0]), 0.5);
        assert_eq!((c.x0, c.y0, c.x1, c.y1), (80, 0, 100, 20));
        let c = face_crop(&image, &face([0.0, 0.0, 100.0, 80.0]), 0.5);
        assert_eq!((c.x0, c.y0, c.x1, c.y1), (0, 0, 100, 80));
        let c = face_crop(&image, &face([10.0, 10.0, 0.0, 0.0]), f32::NAN);
        assert_eq!((c.width(), c.height()), (1, 1));
    }
}
