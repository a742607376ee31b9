//! Face detection for gender-classifier: finds the faces in an RGB photo with a pretrained ONNX
//! detector run with tract, and frames each as the classifiers expect (a UTKFace-like square crop).
//!
//! | kind | file (`models/detect/`) | input | gives |
//! | --- | --- | --- | --- |
//! | [`DetectorKind::UltraFaceRfb320`] (`ultraface`) | `ultraface-rfb-320.onnx` | whole image stretched to 320x240 | boxes, scores |
//! | [`DetectorKind::UltraFaceSlim320`] (`ultraface-slim`) | `ultraface-slim-320.onnx` | same | same |
//! | [`DetectorKind::YuNet`] (`yunet`) | `yunet-n-dynamic.onnx` | long side at most 640, padded to a multiple of 32 | boxes, scores, 5 landmarks |
//!
//! UltraFace sees every photo at 320x240 whatever its size, and its smallest anchor is 10 pixels of
//! that, so faces narrower than about 1/32 of the photo escape it; YuNet keeps the aspect ratio and
//! up to 640 pixels, and finds more of a crowd (52 faces against 44 in `photos/ultraface-imgs-1.jpg`).
//! Both are decoded as their upstream references do (see the `ultraface` and `yunet` modules),
//! then go through the same NMS and clipping. Plans: UltraFace has one, built at load; YuNet one
//! per padded input size (photos shrunk to a long side of 640 share a few), built on first use in
//! about one detection's time.
//!
//! A [`Detector`] is `Send + Sync`: one can serve every thread of a rayon pool.
//!
//! ```no_run
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use gc_detect::{Detector, DetectorKind, face_crop};
//! let kind = DetectorKind::YuNet;
//! let detector = Detector::from_path("models/detect/yunet-n-dynamic.onnx".as_ref(), kind)?;
//! let photo = gc_pipeline::decode::decode_rgb("photo.jpg")?;
//! let image = gc_core::RgbView::new(photo.width(), photo.height(), photo.as_raw())?;
//! for face in detector.detect(&image)? {
//!     let crop = face_crop(&image, &face, kind.utkface_margin());
//!     let pixels = crop.pixels(&image); // crop.width() x crop.height() RGB, for a classifier
//! #   let _ = pixels;
//! }
//! # Ok(())
//! # }
//! ```

mod crop;
mod detector;
mod nms;
mod ultraface;
mod yunet;

pub use crop::{CropRect, aligned_face_crop, face_crop};
pub use detector::{DEFAULT_NMS_THRESHOLD, Detector, DetectorKind, Face, UnknownDetector};
pub use yunet::MAX_SIDE as YUNET_MAX_SIDE;
