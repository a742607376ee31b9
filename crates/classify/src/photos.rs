//! Classifying photos of people: find the faces first, frame each as a UTKFace crop, classify the
//! crops, and report one result per face. A photo with no face gets no class.
//!
//! Like [`crate::classify_inputs`], photos are decoded (and faces detected) in parallel while the
//! previous batch runs through the model, results come out in input order, and a bad file is a
//! result of its own.

use crate::inputs::Input;
use crate::run::Prediction;
use gc_core::{Classifier, RgbView};
use gc_detect::{Detector, aligned_face_crop, face_crop};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

/// When to look for faces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DetectMode {
    /// Detect, unless the image already looks like a face crop (see [`looks_like_face_crop`]).
    Auto,
    /// Always detect.
    Always,
    /// Classify the whole image as one face.
    Never,
}

/// The side at or under which a roughly square image is taken for a face crop in
/// [`DetectMode::Auto`]. Face datasets (UTKFace 200px, the aligned 64px set, FairFace 224px) are
/// small and square; photos of people are larger, and a face that fills a small square image would
/// be framed the same by the detector anyway.
pub const FACE_CROP_MAX_SIDE: u32 = 256;

/// A small, roughly square image: what face datasets hold, and what `--detect auto` classifies
/// whole.
pub fn looks_like_face_crop(width: u32, height: u32) -> bool {
    let (long, short) = (width.max(height), width.min(height));
    long <= FACE_CROP_MAX_SIDE && short > 0 && (long as f32) <= 1.34 * short as f32
}

/// One face of a photo and what the model says about it.
#[derive(Debug, Clone, PartialEq)]
pub struct FacePrediction {
    /// x, y, width, height in pixels of the (EXIF-rotated) photo.
    pub bbox: [f32; 4],
    /// The detector's confidence.
    pub score: f32,
    pub prediction: Prediction,
}

/// What a photo holds.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// The image was classified whole, as a face crop.
    Whole(Prediction),
    /// The faces found, in the detector's order; empty when there is none.
    Faces(Vec<FacePrediction>),
}

/// The result for one photo.
#[derive(Debug, Clone)]
pub struct PhotoOutcome {
    pub path: PathBuf,
    /// The photo's size after EXIF rotation, when it could be decoded.
    pub size: Option<(u32, u32)>,
    pub result: Result<Verdict, String>,
    /// The photo's file as it was read and classified, when the run was asked to keep it
    /// ([`classify_photos_keeping_files`]).
    pub file: Option<Vec<u8>>,
}

/// Classifies the faces of `inputs`, `batch` photos at a time, calling `emit` once per photo in
/// input order. Without a detector every image is classified whole.
pub fn classify_photos(
    model: &dyn Classifier,
    detector: Option<&Detector>,
    mode: DetectMode,
    inputs: &[Input],
    batch: usize,
    emit: impl FnMut(PhotoOutcome),
) {
    classify_photos_until(model, detector, mode, inputs, batch, &|| false, emit);
}

/// [`classify_photos`] that hands each photo's file bytes back in [`PhotoOutcome::file`], so that
/// what is done with the photo afterwards (`--annotate`) works on the very bytes classified: a
/// named pipe cannot be read twice, and a photo replaced meanwhile would be drawn on with another
/// photo's faces. A batch's files are held until it is emitted.
pub fn classify_photos_keeping_files(
    model: &dyn Classifier,
    detector: Option<&Detector>,
    mode: DetectMode,
    inputs: &[Input],
    batch: usize,
    mut emit: impl FnMut(PhotoOutcome),
) {
    let framing = Framing {
        detector,
        mode,
        keep_files: true,
    };
    run_photos(model, framing, inputs, batch, &|| false, &mut emit);
}

/// [`classify_photos`] that stops once `halted` says so: the batch in hand is finished and
/// emitted, and no other is started (a sort stopped by Ctrl-C places what it has classified).
pub fn classify_photos_until(
    model: &dyn Classifier,
    detector: Option<&Detector>,
    mode: DetectMode,
    inputs: &[Input],
    batch: usize,
    halted: &(dyn Fn() -> bool + Sync),
    mut emit: impl FnMut(PhotoOutcome),
) {
    let framing = Framing {
        detector,
        mode,
        keep_files: false,
    };
    run_photos(model, framing, inputs, batch, halted, &mut emit);
}

/// How photos are read and framed.
#[derive(Clone, Copy)]
struct Framing<'a> {
    detector: Option<&'a Detector>,
    mode: DetectMode,
    keep_files: bool,
}

fn run_photos(
    model: &dyn Classifier,
    framing: Framing<'_>,
    inputs: &[Input],
    batch: usize,
    halted: &(dyn Fn() -> bool + Sync),
    emit: &mut impl FnMut(PhotoOutcome),
) {
    crate::run::overlapped(
        inputs,
        batch,
        |chunk| prepare_chunk(framing, chunk),
        |prepared| classify_prepared(model, prepared),
        halted,
        emit,
    );
}

/// A decoded photo cut into the images the model will see.
struct Prepared {
    path: PathBuf,
    size: Option<(u32, u32)>,
    /// `Ok((whole, crops))`: `whole` when the image is classified as one face, else the faces.
    result: Result<(bool, Vec<Crop>), String>,
    file: Option<Vec<u8>>,
}

struct Crop {
    bbox: [f32; 4],
    score: f32,
    width: u32,
    height: u32,
    pixels: Vec<u8>,
}

fn prepare_chunk(framing: Framing<'_>, chunk: &[Input]) -> Vec<Prepared> {
    chunk
        .par_iter()
        .map(|input| {
            let (decoded, file) = match &input.problem {
                Some(p) => (Err(p.clone()), None),
                None => read_and_decode(&input.path, framing.keep_files),
            };
            let (size, result) = match decoded {
                Err(e) => (None, Err(e)),
                Ok(img) => (
                    Some((img.width(), img.height())),
                    frame(framing.detector, framing.mode, img),
                ),
            };
            Prepared {
                path: input.path.clone(),
                size,
                result,
                file,
            }
        })
        .collect()
}

/// The decoded photo, and its file's bytes when `keep_file` (those that could be read).
fn read_and_decode(
    path: &Path,
    keep_file: bool,
) -> (Result<image::RgbImage, String>, Option<Vec<u8>>) {
    use gc_pipeline::decode::{DecodeLimits, decode_rgb, decode_rgb_bytes, read_image_file};
    let reason = |e| crate::run::reason(path, &e);
    if !keep_file {
        return (decode_rgb(path).map_err(reason), None);
    }
    match read_image_file(path, &DecodeLimits::default()) {
        Ok(bytes) => (decode_rgb_bytes(&bytes, path).map_err(reason), Some(bytes)),
        Err(e) => (Err(reason(e)), None),
    }
}

fn frame(
    detector: Option<&Detector>,
    mode: DetectMode,
    img: image::RgbImage,
) -> Result<(bool, Vec<Crop>), String> {
    let (width, height) = (img.width(), img.height());
    let detector = match (detector, mode) {
        (None, _) | (_, DetectMode::Never) => None,
        (Some(_), DetectMode::Auto) if looks_like_face_crop(width, height) => None,
        (Some(d), _) => Some(d),
    };
    let Some(detector) = detector else {
        let crop = Crop {
            bbox: [0.0, 0.0, width as f32, height as f32],
            score: 1.0,
            width,
            height,
            pixels: img.into_raw(),
        };
        return Ok((true, vec![crop]));
    };
    let view = RgbView::new(width, height, img.as_raw()).map_err(|e| e.to_string())?;
    let faces = detector
        .detect(&view)
        .map_err(|e| format!("face detection: {e}"))?;
    let margin = detector.kind().utkface_margin();
    let crops = faces
        .iter()
        .map(|face| {
            // With eye landmarks (YuNet), level the eyes as UTKFace's aligned crops do.
            if let Some((side, pixels)) = aligned_face_crop(&view, face, margin) {
                return Crop {
                    bbox: face.bbox,
                    score: face.score,
                    width: side,
                    height: side,
                    pixels,
                };
            }
            let rect = face_crop(&view, face, margin);
            Crop {
                bbox: face.bbox,
                score: face.score,
                width: rect.width(),
                height: rect.height(),
                pixels: rect.pixels(&view),
            }
        })
        .collect();
    Ok((false, crops))
}

/// Classifies one decoded photo (what the server receives): its faces, or the whole image when
/// there is no detector or `mode` says so.
pub fn classify_image(
    model: &dyn Classifier,
    detector: Option<&Detector>,
    mode: DetectMode,
    img: image::RgbImage,
) -> Result<Verdict, String> {
    let prepared = Prepared {
        path: PathBuf::new(),
        size: Some((img.width(), img.height())),
        result: frame(detector, mode, img),
        file: None,
    };
    classify_prepared(model, vec![prepared])
        .pop()
        .map(|o| o.result)
        .unwrap_or_else(|| Err("no result".to_string()))
}

fn classify_prepared(model: &dyn Classifier, prepared: Vec<Prepared>) -> Vec<PhotoOutcome> {
    let views: Vec<RgbView<'_>> = prepared
        .iter()
        .filter_map(|p| p.result.as_ref().ok())
        .flat_map(|(_, crops)| crops)
        .map(|c| RgbView {
            width: c.width,
            height: c.height,
            pixels: &c.pixels,
        })
        .collect();
    let rows = if views.is_empty() {
        Ok(Vec::new())
    } else {
        model.classify(&views).map_err(|e| e.to_string())
    };
    let n = views.len();
    drop(views);
    let rows = match rows {
        Ok(rows) if rows.len() == n => rows,
        Ok(rows) => {
            let msg = format!("model returned {} results for {n} images", rows.len());
            return fail_all(prepared, &msg);
        }
        // One face can fail a run of many (scores that are not numbers for it alone): each photo
        // is classified alone then, so that only the photos holding such a face fail.
        Err(_) if prepared.iter().filter(|p| p.result.is_ok()).count() > 1 => {
            return prepared
                .into_iter()
                .flat_map(|p| classify_prepared(model, vec![p]))
                .collect();
        }
        Err(msg) => return fail_all(prepared, &msg),
    };
    let mut rows = rows.into_iter();
    prepared
        .into_iter()
        .map(|p| {
            let result = p.result.and_then(|(whole, crops)| {
                let mut faces = Vec::with_capacity(crops.len());
                for c in crops {
                    let row = rows
                        .next()
                        .ok_or_else(|| "model returned too few results".to_string())?;
                    faces.push(FacePrediction {
                        bbox: c.bbox,
                        score: c.score,
                        prediction: Prediction::from_row(model, &row),
                    });
                }
                Ok(match (whole, faces.pop()) {
                    (true, Some(face)) => Verdict::Whole(face.prediction),
                    (_, last) => {
                        faces.extend(last);
                        Verdict::Faces(faces)
                    }
                })
            });
            PhotoOutcome {
                path: p.path,
                size: p.size,
                result,
                file: p.file,
            }
        })
        .collect()
}

fn fail_all(prepared: Vec<Prepared>, msg: &str) -> Vec<PhotoOutcome> {
    prepared
        .into_iter()
        .map(|p| PhotoOutcome {
            path: p.path,
            size: p.size,
            result: p.result.and_then(|_| Err(msg.to_string())),
            file: p.file,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn small_square_images_are_face_crops() {
        assert!(looks_like_face_crop(64, 64));
        assert!(looks_like_face_crop(200, 200));
        assert!(looks_like_face_crop(200, 160));
        assert!(!looks_like_face_crop(257, 257));
        assert!(!looks_like_face_crop(200, 100));
        assert!(!looks_like_face_crop(1024, 768));
        assert!(!looks_like_face_crop(0, 0));
    }

    #[test]
    fn a_face_that_fails_its_run_fails_only_its_photo() {
        // A run holding a crop 3 pixels wide fails.
        let model = crate::testing::Scripted(|v| (v.width != 3).then(|| vec![0.25, 0.75]));
        let crop = |width: u32| Crop {
            bbox: [0.0; 4],
            score: 1.0,
            width,
            height: 2,
            pixels: vec![0; width as usize * 6],
        };
        let photo = |name: &str, widths: &[u32]| Prepared {
            path: name.into(),
            size: Some((100, 100)),
            result: Ok((false, widths.iter().map(|w| crop(*w)).collect())),
            file: None,
        };
        let out = classify_prepared(
            &model,
            vec![
                photo("a.jpg", &[2, 4]),
                photo("b.jpg", &[2, 3]),
                photo("c.jpg", &[5]),
            ],
        );
        let faces = |o: &PhotoOutcome| match &o.result {
            Ok(Verdict::Faces(f)) => Ok(f.len()),
            Ok(Verdict::Whole(_)) => Err("whole".to_string()),
            Err(e) => Err(e.clone()),
        };
        assert_eq!(faces(&out[0]), Ok(2));
        assert_eq!(
            faces(&out[1]),
            Err("inference failed: scores [NaN, NaN]".to_string())
        );
        assert_eq!(faces(&out[2]), Ok(1));
    }
}
