//! `--annotate`: a copy of a photo with each face's box and label drawn on it, written beside the
//! others without ever replacing a file.
//!
//! Text is drawn from the 8x8 bitmap glyphs of `font8x8`, scaled up: drawing with a vector font
//! (imageproc + ab_glyph) would mean shipping a font file for a dozen characters of label.

use crate::photos::{FacePrediction, Verdict};
use font8x8::UnicodeFonts;
use gc_core::Gender;
use image::{Rgb, RgbImage};
use std::path::{Path, PathBuf};

const FEMALE: Rgb<u8> = Rgb([214, 51, 132]);
const MALE: Rgb<u8> = Rgb([13, 110, 253]);
const INK: Rgb<u8> = Rgb([255, 255, 255]);

/// The colour of a class's boxes (also the web page's).
pub fn colour(gender: Gender) -> Rgb<u8> {
    match gender {
        Gender::Female => FEMALE,
        Gender::Male => MALE,
    }
}

/// Draws every face of `verdict` on `img`: a box, and `female 0.93` on a band above it (inside it
/// when the box touches the top). A whole-image verdict is labelled in the top-left corner.
pub fn draw(img: &mut RgbImage, verdict: &Verdict) {
    let (w, h) = (img.width(), img.height());
    // Lines and glyphs grow with the photo so that labels stay readable on a 4000px photo.
    let scale = (w.max(h) / 500).max(1);
    match verdict {
        Verdict::Whole(p) => {
            let text = format!("{} {:.2}", p.label, p.confidence());
            label(img, 0, 0, &text, colour(p.label), scale);
        }
        Verdict::Faces(faces) => {
            for f in faces {
                draw_face(img, f, scale);
            }
        }
    }
}

fn draw_face(img: &mut RgbImage, f: &FacePrediction, scale: u32) {
    let c = colour(f.prediction.label);
    let [x, y, bw, bh] = f.bbox;
    let x0 = x.max(0.0) as u32;
    let y0 = y.max(0.0) as u32;
    let x1 = ((x + bw).max(0.0) as u32).min(img.width().saturating_sub(1));
    let y1 = ((y + bh).max(0.0) as u32).min(img.height().saturating_sub(1));
    if x0 >= x1 || y0 >= y1 {
        return;
    }
    let t = 2 * scale;
    fill(img, x0, y0, x1 + 1, (y0 + t).min(y1 + 1), c);
    fill(img, x0, y1.saturating_sub(t - 1), x1 + 1, y1 + 1, c);
    fill(img, x0, y0, (x0 + t).min(x1 + 1), y1 + 1, c);
    fill(img, x1.saturating_sub(t - 1), y0, x1 + 1, y1 + 1, c);
    let text = format!("{} {:.2}", f.prediction.label, f.prediction.confidence());
    let band = 10 * scale;
    let ty = if y0 >= band { y0 - band } else { y0 + t };
    label(img, x0, ty, &text, c, scale);
}

/// Text on a band of `background`, clipped to the image.
fn label(img: &mut RgbImage, x: u32, y: u32, text: &str, background: Rgb<u8>, scale: u32) {
    let width = (text.chars().count() as u32 * 8 + 2) * scale;
    fill(img, x, y, x + width, y + 10 * scale, background);
    for (i, ch) in text.chars().enumerate() {
        let Some(glyph) = font8x8::BASIC_FONTS.get(ch) else {
            continue;
        };
        let gx = x + (1 + i as u32 * 8) * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..8u32 {
                // font8x8 stores the leftmost pixel in the lowest bit.
                if bits & (1 << col) != 0 {
                    let px = gx + col * scale;
                    let py = y + (1 + row as u32) * scale;
                    fill(img, px, py, px + scale, py + scale, INK);
                }
            }
        }
    }
}

/// Fills `[x0, x1) x [y0, y1)`, clipped to the image.
fn fill(img: &mut RgbImage, x0: u32, y0: u32, x1: u32, y1: u32, c: Rgb<u8>) {
    let (x1, y1) = (x1.min(img.width()), y1.min(img.height()));
    for y in y0..y1 {
        for x in x0..x1 {
            img.put_pixel(x, y, c);
        }
    }
}

/// Decodes `file`, the bytes of `photo` that were classified, draws `verdict` on it and writes it
/// into `out_dir` as a JPEG named after the photo (`IMG_1.jpg` becomes `IMG_1.jpg` there, then
/// `IMG_1 (2).jpg` if that name is taken). Returns the path written.
pub fn write_annotated(
    photo: &Path,
    file: &[u8],
    verdict: &Verdict,
    out_dir: &Path,
) -> Result<PathBuf, String> {
    let mut img = gc_pipeline::decode::decode_rgb_bytes(file, photo).map_err(|e| e.to_string())?;
    draw(&mut img, verdict);
    let stem = photo
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "photo".into());
    let mut bytes = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut bytes, 90)
        .encode_image(&img)
        .map_err(|e| format!("encoding the annotated copy: {e}"))?;
    crate::place::write_new(out_dir, &stem, "jpg", &bytes)
        .map_err(|e| format!("{}: {e}", out_dir.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::run::Prediction;

    fn face(bbox: [f32; 4], label: Gender) -> FacePrediction {
        let p = if label == Gender::Female { 0.9 } else { 0.1 };
        FacePrediction {
            bbox,
            score: 0.9,
            prediction: Prediction {
                label,
                probabilities: [p, 1.0 - p],
                model_labels: vec![],
            },
        }
    }

    #[test]
    fn boxes_are_drawn_in_the_class_colour() {
        let mut img = RgbImage::from_pixel(200, 100, Rgb([0, 0, 0]));
        let v = Verdict::Faces(vec![
            face([20.0, 30.0, 40.0, 40.0], Gender::Female),
            face([120.0, 30.0, 40.0, 40.0], Gender::Male),
        ]);
        draw(&mut img, &v);
        // The left edge of each box, half-way down.
        assert_eq!(*img.get_pixel(20, 50), FEMALE);
        assert_eq!(*img.get_pixel(120, 50), MALE);
        // Inside the boxes the photo is untouched.
        assert_eq!(*img.get_pixel(40, 55), Rgb([0, 0, 0]));
        // The label band above each box holds white glyph pixels.
        let band = (20..140).flat_map(|x| (20..30).map(move |y| (x, y)));
        assert!(band.into_iter().any(|(x, y)| *img.get_pixel(x, y) == INK));
    }

    #[test]
    fn boxes_outside_the_image_do_not_panic() {
        let mut img = RgbImage::new(50, 50);
        let v = Verdict::Faces(vec![
            face([-30.0, -30.0, 200.0, 200.0], Gender::Male),
            face([60.0, 60.0, 10.0, 10.0], Gender::Female),
            face([f32::NAN, 0.0, 10.0, 10.0], Gender::Female),
        ]);
        draw(&mut img, &v);
        assert_eq!(*img.get_pixel(0, 25), MALE);
    }
}
