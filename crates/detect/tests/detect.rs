//! The detectors on real photos, UTKFace crops and faceless images, read from `../shared/` (never
//! copied into the repository), plus loading errors.

use flate2::read::GzDecoder;
use gc_core::{ModelError, RgbView};
use gc_detect::{Detector, DetectorKind, Face, face_crop};
use gc_pipeline::decode::{decode_rgb, decode_rgb_bytes};
use gc_testdata::shared;
use image::{DynamicImage, ImageFormat, RgbImage};
use std::io::{Cursor, Read};
use std::path::PathBuf;
use std::sync::OnceLock;
use std::time::Instant;

fn model_path(kind: DetectorKind) -> PathBuf {
    shared("models/detect").join(kind.file_name())
}

/// One detector per kind for the whole test binary: loading YuNet builds a tract plan.
fn detector(kind: DetectorKind) -> &'static Detector {
    static DETECTORS: [OnceLock<Detector>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    let i = DetectorKind::ALL.iter().position(|k| *k == kind).unwrap();
    DETECTORS[i].get_or_init(|| Detector::from_path(&model_path(kind), kind).unwrap())
}

fn view(image: &RgbImage) -> RgbView<'_> {
    RgbView::new(image.width(), image.height(), image.as_raw()).unwrap()
}

fn photo(name: &str) -> RgbImage {
    decode_rgb(shared("photos").join(name)).unwrap()
}

/// Checks what every detection must satisfy, and returns the faces.
fn detect(kind: DetectorKind, image: &RgbImage) -> Vec<Face> {
    let faces = detector(kind).detect(&view(image)).unwrap();
    let (w, h) = (image.width() as f32, image.height() as f32);
    for f in &faces {
        let [x, y, bw, bh] = f.bbox;
        assert!(
            x >= 0.0 && y >= 0.0 && bw > 0.0 && bh > 0.0,
            "{kind}: {f:?}"
        );
        assert!(x + bw <= w && y + bh <= h, "{kind}: {f:?} outside {w}x{h}");
        assert!(f.score > 0.0 && f.score <= 1.0, "{kind}: {f:?}");
        assert!(f.score >= detector(kind).score_threshold(), "{kind}: {f:?}");
        assert_eq!(
            f.landmarks.is_some(),
            kind == DetectorKind::YuNet,
            "{kind}: {f:?}"
        );
    }
    assert!(
        faces.windows(2).all(|p| p[0].bbox[0] <= p[1].bbox[0]),
        "{kind}: not left to right: {faces:?}"
    );
    faces
}

fn iou(a: &Face, b: &Face) -> f32 {
    let [ax, ay, aw, ah] = a.bbox;
    let [bx, by, bw, bh] = b.bbox;
    let w = ((ax + aw).min(bx + bw) - ax.max(bx)).max(0.0);
    let h = ((ay + ah).min(by + bh) - ay.max(by)).max(0.0);
    w * h / (aw * ah + bw * bh - w * h)
}

#[test]
fn group_photo_has_six_faces_with_every_detector() {
    let image = photo("group-6-people.jpg");
    let yunet = detect(DetectorKind::YuNet, &image);
    assert_eq!(yunet.len(), 6, "{yunet:?}");
    for kind in [
        DetectorKind::UltraFaceRfb320,
        DetectorKind::UltraFaceSlim320,
    ] {
        let faces = detect(kind, &image);
        assert_eq!(faces.len(), 6, "{kind}: {faces:?}");
        // The same six people, in the same left-to-right order.
        for (a, b) in faces.iter().zip(&yunet) {
            assert!(iou(a, b) > 0.5, "{kind} {a:?} vs yunet {b:?}");
        }
    }
}

#[test]
fn yunet_landmarks_lie_on_the_face_in_opencv_order() {
    let image = photo("group-6-people.jpg");
    for f in detect(DetectorKind::YuNet, &image) {
        let [x, y, w, h] = f.bbox;
        let points = f.landmarks.unwrap();
        for [px, py] in points {
            assert!(px > x && px < x + w && py > y && py < y + h, "{f:?}");
        }
        let [right_eye, left_eye, nose, right_mouth, left_mouth] = points;
        // The person's right is the image's left; eyes above the nose, the nose above the mouth.
        assert!(
            right_eye[0] < left_eye[0] && right_mouth[0] < left_mouth[0],
            "{f:?}"
        );
        assert!(right_eye[1].max(left_eye[1]) < nose[1], "{f:?}");
        assert!(nose[1] < right_mouth[1].min(left_mouth[1]), "{f:?}");
    }
}

#[test]
fn sample_photos_have_their_people() {
    // The crowd (`ultraface-imgs-1.jpg`, about 50 people, many small or turned) is only printed.
    let photos = [
        ("ultraface-imgs-2.jpg", 4),
        ("ultraface-imgs-13.jpg", 2),
        ("ultraface-imgs-19.jpg", 5),
        ("ultraface-mnn-4.jpg", 1),
        ("group-6-people.jpg", 6),
        ("ultraface-imgs-1.jpg", 0),
    ];
    for (name, people) in photos {
        let image = photo(name);
        for kind in DetectorKind::ALL {
            // The first call on a new size builds YuNet's plan for it; the second shows the rest.
            let started = Instant::now();
            let faces = detect(kind, &image);
            let first = started.elapsed().as_secs_f64() * 1000.0;
            let started = Instant::now();
            detect(kind, &image);
            let again = started.elapsed().as_secs_f64() * 1000.0;
            println!(
                "{name} ({}x{}) {kind}: {} faces, {first:.0} ms, then {again:.0} ms",
                image.width(),
                image.height(),
                faces.len()
            );
            if people > 0 {
                assert_eq!(faces.len(), people, "{name} {kind}: {faces:?}");
            }
        }
    }
}

/// The first `n` images of the 200x200 UTKFace `crop_part1` archive, with their names.
fn utkface_crops(n: usize) -> Vec<(String, RgbImage)> {
    let file = std::fs::File::open(shared("data/utkface-crop_part1-200px.tar.gz")).unwrap();
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry.path().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".jpg") {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        out.push((name.clone(), decode_rgb_bytes(&bytes, &name).unwrap()));
        if out.len() == n {
            break;
        }
    }
    out
}

#[test]
fn a_utkface_crop_is_one_face_whose_crop_is_most_of_the_image() {
    // YuNet finds exactly one face on each of the 500 UTK-500 crops; UltraFace misses about 6%
    // of them (the very first crop of the archive among them), so it is not held to it here.
    let kind = DetectorKind::YuNet;
    for (name, image) in utkface_crops(10) {
        let faces = detect(kind, &image);
        assert_eq!(faces.len(), 1, "{name}: {faces:?}");
        // With the UTKFace margin the crop of a UTKFace crop is about the crop itself.
        let crop = face_crop(&view(&image), &faces[0], kind.utkface_margin());
        assert_eq!(crop.width(), crop.height(), "{name}: {crop:?}");
        assert!(crop.width() >= 160, "{name}: {crop:?} from {faces:?}");
    }
}

#[test]
fn images_without_faces_give_none() {
    let (w, h) = (640, 480);
    let gradient = RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 255 / w) as u8, (y * 255 / h) as u8, 128])
    });
    // xorshift: reproducible noise without a random-number crate.
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let noise = RgbImage::from_fn(w, h, |_, _| {
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 56) as u8
        };
        image::Rgb([next(), next(), next()])
    });
    let grey = RgbImage::from_pixel(w, h, image::Rgb([128, 128, 128]));
    for (name, image) in [("gradient", gradient), ("noise", noise), ("grey", grey)] {
        for kind in DetectorKind::ALL {
            let faces = detect(kind, &image);
            assert!(faces.is_empty(), "{name} {kind}: {faces:?}");
        }
    }
}

#[test]
fn tiny_images_run() {
    // Smaller than one YuNet cell and than UltraFace's input: resized or padded, never an error.
    for (w, h) in [(1, 1), (3, 50), (50, 3)] {
        let image = RgbImage::from_pixel(w, h, image::Rgb([90, 60, 40]));
        for kind in DetectorKind::ALL {
            assert!(detect(kind, &image).is_empty(), "{w}x{h} {kind}");
        }
    }
}

/// Inserts an APP1 Exif segment with only an Orientation tag right after the JPEG's SOI marker
/// (as gc-pipeline's tests do).
fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, first IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // one value
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]); // value padding
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut segment = b"Exif\0\0".to_vec();
    segment.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xFF, 0xE1]);
    out.extend_from_slice(&((segment.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&segment);
    out.extend_from_slice(&jpeg[2..]);
    out
}

#[test]
fn exif_orientation_is_undone_before_detection() {
    let upright = photo("group-6-people.jpg");
    // Stored a quarter turn anticlockwise, as a camera held sideways writes it; Orientation 6 says
    // to turn it clockwise for display.
    let stored = DynamicImage::ImageRgb8(image::imageops::rotate270(&upright));
    let mut jpeg = Vec::new();
    stored
        .write_to(&mut Cursor::new(&mut jpeg), ImageFormat::Jpeg)
        .unwrap();
    let sideways = decode_rgb_bytes(&jpeg, "sideways.jpg").unwrap();
    assert_eq!(sideways.dimensions(), (upright.height(), upright.width()));
    let tagged = with_exif_orientation(&jpeg, 6);
    let decoded = decode_rgb_bytes(&tagged, "tagged.jpg").unwrap();
    assert_eq!(decoded.dimensions(), upright.dimensions());
    for kind in DetectorKind::ALL {
        let faces = detect(kind, &decoded);
        assert_eq!(faces.len(), 6, "{kind}: {faces:?}");
        let on_sideways = detect(kind, &sideways).len();
        println!("{kind}: 6 faces upright, {on_sideways} on the image turned sideways");
    }
}

#[test]
fn faces_are_cropped_inside_the_photo() {
    let image = photo("group-6-people.jpg");
    let v = view(&image);
    for kind in DetectorKind::ALL {
        for f in detect(kind, &image) {
            let crop = face_crop(&v, &f, kind.utkface_margin());
            assert_eq!(crop.width(), crop.height(), "{kind}: {crop:?}");
            assert!(
                crop.x1 <= image.width() && crop.y1 <= image.height(),
                "{crop:?}"
            );
            // It holds the whole box.
            let [x, y, w, h] = f.bbox;
            assert!(
                crop.x0 as f32 <= x + 1.0 && crop.y0 as f32 <= y + 1.0,
                "{f:?} {crop:?}"
            );
            assert!(crop.x1 as f32 >= x + w - 1.0, "{f:?} {crop:?}");
            assert!(crop.y1 as f32 >= y + h - 1.0, "{f:?} {crop:?}");
            let pixels = crop.pixels(&v);
            assert_eq!(pixels.len(), (crop.width() * crop.height() * 3) as usize);
        }
    }
}

#[test]
fn thresholds_are_checked_and_change_the_result() {
    let image = photo("ultraface-imgs-1.jpg");
    let kind = DetectorKind::YuNet;
    let strict = Detector::from_path(&model_path(kind), kind)
        .unwrap()
        .with_score_threshold(0.95)
        .unwrap();
    let strict_faces = strict.detect(&view(&image)).unwrap();
    assert!(strict_faces.len() < detect(kind, &image).len());
    assert!(strict_faces.iter().all(|f| f.score >= 0.95));
    let d = Detector::from_path(&model_path(kind), kind).unwrap();
    assert!(matches!(
        d.with_score_threshold(1.5),
        Err(ModelError::Input(_))
    ));
    let d = Detector::from_path(&model_path(kind), kind).unwrap();
    assert!(matches!(
        d.with_nms_threshold(0.0),
        Err(ModelError::Input(_))
    ));
}

#[test]
fn bad_model_files_are_errors_that_name_them() {
    let missing = gc_testdata::shared_dir().join("models/detect/no-such-detector.onnx");
    let err = Detector::from_path(&missing, DetectorKind::YuNet).unwrap_err();
    assert!(matches!(err, ModelError::File { .. }), "{err:?}");
    assert!(err.to_string().contains("no-such-detector.onnx"), "{err}");

    // Real files that are not ONNX, then a directory.
    for path in [
        shared("photos/group-6-people.jpg"),
        shared("models/README.md"),
    ] {
        let err = Detector::from_path(&path, DetectorKind::UltraFaceRfb320).unwrap_err();
        assert!(matches!(err, ModelError::Format { .. }), "{err:?}");
        assert!(err.to_string().contains(&*path.to_string_lossy()), "{err}");
    }
    let err = Detector::from_path(&shared("models/detect"), DetectorKind::YuNet).unwrap_err();
    assert!(err.to_string().contains("not a file"), "{err}");

    // An ONNX model of the other family: its outputs are not the ones this kind decodes.
    let err = Detector::from_path(
        &model_path(DetectorKind::YuNet),
        DetectorKind::UltraFaceRfb320,
    )
    .unwrap_err();
    assert!(err.to_string().contains("yunet-n-dynamic.onnx"), "{err}");
    assert!(err.to_string().contains("cls_8"), "{err}");
}

#[test]
fn fixed_size_yunet_works_too() {
    let kind = DetectorKind::YuNet;
    let d = Detector::from_path(&shared("models/detect/yunet-n-320.onnx"), kind).unwrap();
    let image = photo("ultraface-imgs-2.jpg");
    let faces = d.detect(&view(&image)).unwrap();
    assert_eq!(faces.len(), 4, "{faces:?}");
}

#[test]
fn a_wrong_buffer_is_an_input_error() {
    let pixels = [0u8; 10];
    let image = RgbView {
        width: 2,
        height: 2,
        pixels: &pixels,
    };
    let err = detector(DetectorKind::UltraFaceRfb320)
        .detect(&image)
        .unwrap_err();
    assert!(matches!(err, ModelError::Input(_)), "{err:?}");
}
