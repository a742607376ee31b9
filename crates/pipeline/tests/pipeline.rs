//! Integration tests of gc-pipeline: class folders, decoding of awkward files, and the batches an
//! epoch yields (shapes, ranges, crops, shuffles, caches, skipped files, early drop).
//!
//! Test images are generated here. Most are PNGs (lossless) whose pixels encode their own
//! coordinates (red = x, green = y) and an id (blue), at exactly the resize size, so that the resize
//! is the identity and every float in a batch says where it was cropped from.

use std::io::Cursor;
use std::path::Path;
use std::time::Duration;

use gc_pipeline::*;
use image::{DynamicImage, ImageBuffer, ImageFormat, Luma, Rgb, RgbImage, Rgba};

/// Crop 16 out of 20: offsets 0..=4, centre 2.
const CROP: u32 = 16;
const SIDE: u32 = 20;

fn coordinate_image(id: u8) -> RgbImage {
    RgbImage::from_fn(SIDE, SIDE, |x, y| Rgb([x as u8, y as u8, id]))
}

fn save(img: &DynamicImage, path: &Path, format: ImageFormat) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    img.save_with_format(path, format).unwrap();
}

/// `dir/female/` and `dir/male/` with `n` coordinate PNGs each; ids are 1, 2, ... in sample order.
fn dataset(dir: &Path, n: usize) -> ImageFolder {
    let mut id = 1u8;
    for class in ["female", "male"] {
        for i in 0..n {
            save(
                &coordinate_image(id).into(),
                &dir.join(class).join(format!("img{i:03}.png")),
                ImageFormat::Png,
            );
            id += 1;
        }
    }
    ImageFolder::open(dir).unwrap()
}

fn config() -> PipelineConfig {
    PipelineConfig {
        image_size: Size::square(CROP),
        resize_size: Size::square(SIDE),
        batch_size: 4,
        seed: 7,
        workers: 2,
        prefetch: 2,
        cache: Cache::None,
        ..PipelineConfig::train()
    }
}

fn collect(p: &Pipeline, epoch: u64) -> Vec<Batch> {
    p.epoch(epoch).collect()
}

/// Where a CHW crop of a coordinate image came from: (x0, y0, flipped, id).
fn crop_origin(image: &[f32]) -> (u32, u32, bool, u8) {
    let plane = (CROP * CROP) as usize;
    let px = |c: usize, x: u32, y: u32| {
        (image[c * plane + (y * CROP + x) as usize] * 255.0).round() as u32
    };
    let (left, right) = (px(0, 0, 0), px(0, CROP - 1, 0));
    let flipped = left > right;
    let x0 = left.min(right);
    let y0 = px(1, 0, 0);
    // Every pixel must be where a straight (or mirrored) window puts it.
    for y in 0..CROP {
        for x in 0..CROP {
            let want_x = if flipped { x0 + CROP - 1 - x } else { x0 + x };
            assert_eq!(px(0, x, y), want_x, "red at ({x}, {y})");
            assert_eq!(px(1, x, y), y0 + y, "green at ({x}, {y})");
        }
    }
    (x0, y0, flipped, px(2, 0, 0) as u8)
}

#[test]
fn classes_are_sorted_and_files_filtered() {
    let dir = tempfile::tempdir().unwrap();
    let img: DynamicImage = coordinate_image(1).into();
    for (class, name) in [
        ("male", "b.png"),
        ("male", "a.JPG"),
        ("female", "z.webp"),
        ("female", "sub/c.bmp"),
        ("zeta", "x.tiff"),
    ] {
        let format = ImageFormat::from_path(name.to_lowercase()).unwrap();
        save(&img, &dir.path().join(class).join(name), format);
    }
    std::fs::write(dir.path().join("male/notes.txt"), "not an image").unwrap();
    std::fs::write(dir.path().join("male/.hidden.png"), "hidden").unwrap();
    std::fs::create_dir_all(dir.path().join(".git/objects")).unwrap();
    std::fs::write(
        dir.path().join("stray.png"),
        "files at the top are not a class",
    )
    .unwrap();

    let folder = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(folder.classes, ["female", "male", "zeta"]);
    let names: Vec<(String, usize)> = folder
        .samples
        .iter()
        .map(|s| {
            (
                s.path
                    .strip_prefix(dir.path())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/"),
                s.label,
            )
        })
        .collect();
    let want = [
        ("female/sub/c.bmp", 0),
        ("female/z.webp", 0),
        ("male/a.JPG", 1),
        ("male/b.png", 1),
        ("zeta/x.tiff", 2),
    ];
    assert_eq!(names, want.map(|(n, l)| (n.to_string(), l)));
    assert_eq!(folder.class_counts(), [2, 2, 1]);
    // gc-core's class indices agree with the folder order.
    assert_eq!(folder.classes[gc_core::Gender::Female.index()], "female");
    assert_eq!(folder.classes[gc_core::Gender::Male.index()], "male");
}

#[test]
fn missing_or_classless_folders_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = ImageFolder::open(dir.path().join("nope")).unwrap_err();
    assert!(matches!(err, FolderError::NotFound { .. }), "{err}");
    assert!(err.to_string().contains("nope"));
    std::fs::write(dir.path().join("a.png"), "x").unwrap();
    assert!(matches!(
        ImageFolder::open(dir.path()),
        Err(FolderError::NoClasses { .. })
    ));
    assert!(matches!(
        ImageFolder::open(dir.path().join("a.png")),
        Err(FolderError::NotADirectory { .. })
    ));
}

#[test]
fn batches_have_the_right_shape_labels_and_range() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 5);
    let p = Pipeline::new(folder.samples.clone(), config()).unwrap();
    let batches = collect(&p, 0);
    assert_eq!(
        batches.iter().map(Batch::len).collect::<Vec<_>>(),
        [4, 4, 2]
    );
    assert_eq!(p.batches_per_epoch(), 3);
    let mut seen: Vec<usize> = Vec::new();
    for b in &batches {
        assert_eq!(b.shape, [b.len(), 3, CROP as usize, CROP as usize]);
        assert_eq!(b.images.len(), b.len() * 3 * (CROP * CROP) as usize);
        assert!(b.images.iter().all(|v| (0.0..=1.0).contains(v)));
        for (k, &i) in b.indices.iter().enumerate() {
            assert_eq!(b.labels[k] as usize, folder.samples[i].label);
            // The pixels are those of sample i (its id is i + 1).
            assert_eq!(crop_origin(b.image(k)).3 as usize, i + 1);
        }
        seen.extend(&b.indices);
    }
    seen.sort();
    assert_eq!(
        seen,
        (0..10).collect::<Vec<_>>(),
        "every sample exactly once"
    );

    let dropping = Pipeline::new(
        folder.samples,
        PipelineConfig {
            drop_remainder: true,
            ..config()
        },
    )
    .unwrap();
    assert_eq!(
        collect(&dropping, 0)
            .iter()
            .map(Batch::len)
            .collect::<Vec<_>>(),
        [4, 4]
    );
    assert_eq!(dropping.batches_per_epoch(), 2);
}

#[test]
fn crops_stay_inside_flip_and_vary_in_training() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 8);
    let p = Pipeline::new(folder.samples, config()).unwrap();
    let (mut xs, mut ys, mut flips) = ([0; 5], [0; 5], [0; 2]);
    for epoch in 0..6 {
        for b in collect(&p, epoch) {
            for k in 0..b.len() {
                let (x0, y0, flipped, _) = crop_origin(b.image(k));
                assert!(
                    x0 + CROP <= SIDE && y0 + CROP <= SIDE,
                    "crop at ({x0}, {y0}) leaves the image"
                );
                xs[x0 as usize] += 1;
                ys[y0 as usize] += 1;
                flips[flipped as usize] += 1;
            }
        }
    }
    // 96 crops over 5 offsets and 2 flips: every value comes up.
    assert!(
        xs.iter().all(|&n| n > 0) && ys.iter().all(|&n| n > 0),
        "{xs:?} {ys:?}"
    );
    assert!(flips[0] > 0 && flips[1] > 0, "{flips:?}");
}

#[test]
fn color_jitter_changes_training_pixels_only_and_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 8);
    let pixels = |config: PipelineConfig, epoch| -> (Vec<Vec<usize>>, Vec<Vec<f32>>) {
        let p = Pipeline::new(folder.samples.clone(), config).unwrap();
        collect(&p, epoch)
            .into_iter()
            .map(|b| (b.indices.clone(), b.images.clone()))
            .unzip()
    };
    let jittered = || PipelineConfig {
        color_jitter_percent: 30,
        ..config()
    };
    let (order, plain) = pixels(config(), 1);
    let (order_j, jitter) = pixels(jittered(), 1);
    assert_eq!(order, order_j, "jitter changed the shuffle");
    assert_ne!(plain, jitter, "jitter changed no pixel");
    assert!(jitter.iter().flatten().all(|v| (0.0..=1.0).contains(v)));
    assert_eq!(pixels(jittered(), 1).1, jitter, "not reproducible");

    let eval = |jitter| PipelineConfig {
        augment: Augment::Eval,
        shuffle: false,
        color_jitter_percent: jitter,
        ..config()
    };
    assert_eq!(
        pixels(eval(30), 1),
        pixels(eval(0), 1),
        "evaluation jittered"
    );

    let err = Pipeline::new(
        folder.samples.clone(),
        PipelineConfig {
            color_jitter_percent: 101,
            ..config()
        },
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("101%"), "{err}");
}

#[test]
fn evaluation_crops_are_centred_and_unflipped() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 3);
    let p = Pipeline::new(
        folder.samples,
        PipelineConfig {
            augment: Augment::Eval,
            shuffle: false,
            ..config()
        },
    )
    .unwrap();
    let batches = collect(&p, 0);
    let indices: Vec<usize> = batches.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(
        indices,
        (0..6).collect::<Vec<_>>(),
        "no shuffle keeps the order"
    );
    for b in batches {
        for k in 0..b.len() {
            let (x0, y0, flipped, _) = crop_origin(b.image(k));
            assert_eq!(
                (x0, y0, flipped),
                ((SIDE - CROP) / 2, (SIDE - CROP) / 2, false)
            );
        }
    }
}

#[test]
fn shuffles_differ_between_epochs_and_repeat_with_the_seed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 10);
    let p = Pipeline::new(folder.samples.clone(), config()).unwrap();
    let order = |p: &Pipeline, e| {
        collect(p, e)
            .iter()
            .flat_map(|b| b.indices.clone())
            .collect::<Vec<_>>()
    };
    let (e0, e1) = (order(&p, 0), order(&p, 1));
    assert_ne!(e0, e1);
    assert_ne!(e0, (0..20).collect::<Vec<_>>());
    assert_eq!(e0, p.order(0));
    assert_eq!(
        e0,
        order(&p, 0),
        "the same epoch again gives the same order"
    );
    let other_seed = Pipeline::new(
        folder.samples,
        PipelineConfig {
            seed: 8,
            ..config()
        },
    )
    .unwrap();
    assert_ne!(order(&other_seed, 0), e0);
}

#[test]
fn same_seed_gives_identical_batches_whatever_the_threads() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 10);
    let a = Pipeline::new(
        folder.samples.clone(),
        PipelineConfig {
            workers: 1,
            ..config()
        },
    )
    .unwrap();
    let b = Pipeline::new(
        folder.samples,
        PipelineConfig {
            workers: 4,
            prefetch: 1,
            cache: Cache::Memory,
            ..config()
        },
    )
    .unwrap();
    for epoch in 0..3 {
        assert_eq!(collect(&a, epoch), collect(&b, epoch), "epoch {epoch}");
    }
}

#[test]
fn caches_do_not_change_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    // Real resizing and JPEG decoding here, not identity PNGs, so cached pixels are non-trivial.
    for (class, n) in [("female", 5), ("male", 4)] {
        for i in 0..n {
            let img = RgbImage::from_fn(37 + i, 29, |x, y| {
                Rgb([(x * 7 + y) as u8, (y * 5) as u8, (i * 40) as u8])
            });
            save(
                &img.into(),
                &dir.path().join(class).join(format!("{i}.jpg")),
                ImageFormat::Jpeg,
            );
        }
    }
    let samples = ImageFolder::open(dir.path()).unwrap().samples;
    let eval = |cache| PipelineConfig {
        cache,
        batch_size: 4,
        workers: 2,
        ..PipelineConfig::eval()
    };
    let plain = Pipeline::new(samples.clone(), eval(Cache::None)).unwrap();
    let memory = Pipeline::new(samples.clone(), eval(Cache::Memory)).unwrap();
    let cache_dir = dir.path().join("cache");
    let disk = Pipeline::new(samples.clone(), eval(Cache::Disk(cache_dir.clone()))).unwrap();
    let want = collect(&plain, 0);
    assert_eq!(want.iter().map(Batch::len).sum::<usize>(), 9);
    for epoch in 0..2 {
        assert_eq!(collect(&memory, epoch), want, "memory cache, epoch {epoch}");
        assert_eq!(collect(&disk, epoch), want, "disk cache, epoch {epoch}");
    }
    assert!(disk.disk_cache_ready());
    // A second pipeline over the same files reads the cache from the start...
    let again = Pipeline::new(samples.clone(), eval(Cache::Disk(cache_dir.clone()))).unwrap();
    assert!(again.disk_cache_ready());
    assert_eq!(again.disk_cache_path(), disk.disk_cache_path());
    assert_eq!(collect(&again, 0), want);
    // ...and so does one with other augmentation settings, since the cache holds resized images.
    let train = Pipeline::new(
        samples.clone(),
        PipelineConfig {
            cache: Cache::Disk(cache_dir.clone()),
            ..config_for_real_images()
        },
    )
    .unwrap();
    assert!(train.disk_cache_ready());
    // A changed file changes the fingerprint: that cache is not used, a new one is built.
    let changed = &samples[0].path;
    let img = RgbImage::from_pixel(50, 50, Rgb([9, 9, 9]));
    save(&img.into(), changed, ImageFormat::Jpeg);
    let stale = Pipeline::new(samples.clone(), eval(Cache::Disk(cache_dir.clone()))).unwrap();
    assert!(!stale.disk_cache_ready());
    assert_ne!(stale.disk_cache_path(), disk.disk_cache_path());
    let fresh = collect(&stale, 0);
    assert!(stale.disk_cache_ready());
    assert!(
        fresh[0]
            .image(0)
            .iter()
            .all(|&v| (v - 9.0 / 255.0).abs() < 2.0 / 255.0),
        "the new content is used"
    );
}

fn config_for_real_images() -> PipelineConfig {
    PipelineConfig {
        batch_size: 4,
        workers: 2,
        ..PipelineConfig::train()
    }
}

/// A baseline JPEG, quality 90.
fn jpeg_bytes(img: &DynamicImage) -> Vec<u8> {
    let mut out = Vec::new();
    img.write_to(&mut Cursor::new(&mut out), ImageFormat::Jpeg)
        .unwrap();
    out
}

#[test]
fn unreadable_files_are_skipped_reported_once_and_batches_stay_full() {
    let dir = tempfile::tempdir().unwrap();
    dataset(dir.path(), 5);
    let good = jpeg_bytes(&RgbImage::from_pixel(40, 40, Rgb([200, 10, 10])).into());
    let bad: [(&str, Vec<u8>); 4] = [
        (
            "female/bad0_text.jpg",
            b"this is a text file, not a JPEG".to_vec(),
        ),
        ("female/bad1_truncated.jpg", good[..good.len() / 2].to_vec()),
        ("male/bad2_empty.jpg", Vec::new()),
        (
            "male/bad3_png_header_only.png",
            b"\x89PNG\r\n\x1a\n".to_vec(),
        ),
    ];
    for (name, bytes) in &bad {
        std::fs::write(dir.path().join(name), bytes).unwrap();
    }
    let folder = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(folder.samples.len(), 14);
    let p = Pipeline::new(
        folder.samples.clone(),
        PipelineConfig {
            shuffle: false,
            ..config()
        },
    )
    .unwrap();
    for epoch in 0..2 {
        let batches = collect(&p, epoch);
        // 10 good images in batches of 4: full batches despite the 4 failures among them.
        assert_eq!(
            batches.iter().map(Batch::len).collect::<Vec<_>>(),
            [4, 4, 2],
            "epoch {epoch}"
        );
        assert!(
            batches
                .iter()
                .flat_map(|b| &b.indices)
                .all(|&i| !folder.samples[i].path.to_string_lossy().contains("bad"))
        );
    }
    assert_eq!(
        p.batches_per_epoch(),
        3,
        "the bad files are known after an epoch"
    );
    // Before any decoding every file counts; the pass that finds the bad ones first makes the
    // count what an epoch yields (a learning-rate schedule is sized by it).
    let q = Pipeline::new(folder.samples.clone(), config()).unwrap();
    assert_eq!(q.batches_per_epoch(), 4);
    assert_eq!(q.load_all(), 10);
    assert_eq!(q.batches_per_epoch(), 3);
    assert_eq!(collect(&q, 0).len(), 3);
    assert_eq!(q.skipped().len(), 4);
    let skipped = p.skipped();
    assert_eq!(skipped.len(), 4, "each bad file reported once: {skipped:?}");
    let reason = |name: &str| {
        skipped
            .iter()
            .find(|s| s.path.ends_with(name))
            .map(|s| s.reason.clone())
            .unwrap()
    };
    assert!(
        reason("bad0_text.jpg").contains("not a JPEG, PNG"),
        "{}",
        reason("bad0_text.jpg")
    );
    assert!(
        reason("bad1_truncated.jpg").contains("truncated or corrupt JPEG"),
        "{}",
        reason("bad1_truncated.jpg")
    );
    assert!(reason("bad2_empty.jpg").contains("empty file"));
    assert!(reason("bad3_png_header_only.png").contains("PNG"));
    assert!(
        skipped.iter().all(|s| s
            .reason
            .contains(&*s.path.file_name().unwrap().to_string_lossy())),
        "reasons name the file"
    );
}

#[test]
fn dropping_an_epoch_early_does_not_hang() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 40);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let p = Pipeline::new(
            folder.samples,
            PipelineConfig {
                batch_size: 2,
                prefetch: 1,
                ..config()
            },
        )
        .unwrap();
        for _ in 0..3 {
            let mut epoch = p.epoch(0);
            let first = epoch.next().unwrap();
            drop(epoch);
            assert_eq!(first.len(), 2);
        }
        // The pipeline still works after early drops.
        let n: usize = p.epoch(1).map(|b| b.len()).sum();
        tx.send(n).unwrap();
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(60))
            .expect("dropping an epoch hung"),
        80
    );
}

// --- decoding -------------------------------------------------------------------------------------

/// Inserts an APP1 Exif segment with only an Orientation tag right after the JPEG's SOI marker.
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

fn near(a: [u8; 3], b: [u8; 3], tolerance: u8) -> bool {
    a.iter().zip(b).all(|(&x, y)| x.abs_diff(y) <= tolerance)
}

#[test]
fn exif_orientation_is_applied() {
    // 32x16, left half red, right half blue.
    let img = RgbImage::from_fn(32, 16, |x, _| {
        if x < 16 {
            Rgb([255, 0, 0])
        } else {
            Rgb([0, 0, 255])
        }
    });
    let plain = jpeg_bytes(&img.into());
    let upright = decode_rgb_bytes(&plain, "plain.jpg").unwrap();
    assert_eq!(upright.dimensions(), (32, 16));
    // Orientation 6: stored rotated, shown after a quarter turn clockwise: the left half goes on top.
    let rotated = decode_rgb_bytes(&with_exif_orientation(&plain, 6), "rotated.jpg").unwrap();
    assert_eq!(rotated.dimensions(), (16, 32));
    assert!(
        near(rotated.get_pixel(8, 4).0, [255, 0, 0], 40),
        "{:?}",
        rotated.get_pixel(8, 4)
    );
    assert!(
        near(rotated.get_pixel(8, 28).0, [0, 0, 255], 40),
        "{:?}",
        rotated.get_pixel(8, 28)
    );
    // Orientation 2: mirrored left-right.
    let mirrored = decode_rgb_bytes(&with_exif_orientation(&plain, 2), "mirrored.jpg").unwrap();
    assert_eq!(mirrored.dimensions(), (32, 16));
    assert!(near(mirrored.get_pixel(4, 8).0, [0, 0, 255], 40));
}

#[test]
fn every_colour_model_decodes_to_rgb8() {
    let dir = tempfile::tempdir().unwrap();
    let cases: Vec<(&str, DynamicImage, ImageFormat, [u8; 3])> = vec![
        (
            "gray.png",
            ImageBuffer::from_pixel(5, 4, Luma([77u8])).into(),
            ImageFormat::Png,
            [77, 77, 77],
        ),
        (
            "gray16.png",
            ImageBuffer::from_pixel(5, 4, Luma([0xFFFFu16])).into(),
            ImageFormat::Png,
            [255, 255, 255],
        ),
        (
            "rgb16.png",
            ImageBuffer::from_pixel(5, 4, Rgb([0x8080u16, 0, 0xFFFF])).into(),
            ImageFormat::Png,
            [128, 0, 255],
        ),
        (
            "rgba.png",
            ImageBuffer::from_pixel(5, 4, Rgba([10u8, 20, 30, 0])).into(),
            ImageFormat::Png,
            [10, 20, 30],
        ),
        (
            "gray.jpg",
            ImageBuffer::from_pixel(16, 16, Luma([100u8])).into(),
            ImageFormat::Jpeg,
            [100, 100, 100],
        ),
        (
            "rgb.webp",
            RgbImage::from_pixel(5, 4, Rgb([1, 2, 3])).into(),
            ImageFormat::WebP,
            [1, 2, 3],
        ),
        (
            "rgb.bmp",
            RgbImage::from_pixel(5, 4, Rgb([4, 5, 6])).into(),
            ImageFormat::Bmp,
            [4, 5, 6],
        ),
        (
            "rgb.gif",
            RgbImage::from_pixel(5, 4, Rgb([0, 0, 0])).into(),
            ImageFormat::Gif,
            [0, 0, 0],
        ),
        (
            "rgb.tiff",
            RgbImage::from_pixel(5, 4, Rgb([7, 8, 9])).into(),
            ImageFormat::Tiff,
            [7, 8, 9],
        ),
        // The format comes from the content: a PNG named .jpg is a PNG.
        (
            "png_named.jpg",
            RgbImage::from_pixel(5, 4, Rgb([11, 12, 13])).into(),
            ImageFormat::Png,
            [11, 12, 13],
        ),
    ];
    for (name, img, format, want) in cases {
        let path = dir.path().join(name);
        save(&img, &path, format);
        let got = decode_rgb(&path).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(got.dimensions(), img.to_rgb8().dimensions(), "{name}");
        let tolerance = if format == ImageFormat::Jpeg { 2 } else { 0 };
        assert!(
            got.pixels().all(|p| near(p.0, want, tolerance)),
            "{name}: {:?}",
            got.get_pixel(0, 0)
        );
    }
}

/// An 8x8 Adobe CMYK JPEG of pure red (C=0 M=255 Y=255 K=0), made with Pillow 11:
/// `Image.new('CMYK', (8, 8), (0, 255, 255, 0)).save(f, 'JPEG', quality=100)`.
const CMYK_RED_JPEG: &str = "ffd8ffee000e41646f626500640000000000ffdb00430001010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101010101ffc000140800080008044311004d11005911004b1100ffc4001f0000010501010101010100000000000000000102030405060708090a0bffc400b5100002010303020403050504040000017d01020300041105122131410613516107227114328191a1082342b1c11552d1f02433627282090a161718191a25262728292a3435363738393a434445464748494a535455565758595a636465666768696a737475767778797a838485868788898a92939495969798999aa2a3a4a5a6a7a8a9aab2b3b4b5b6b7b8b9bac2c3c4c5c6c7c8c9cad2d3d4d5d6d7d8d9dae1e2e3e4e5e6e7e8e9eaf1f2f3f4f5f6f7f8f9faffda000e0443004d0059004b00003f00fefe2bfcff00ebfcff00ebfbf8afffd9";

#[test]
fn cmyk_jpeg_decodes_to_rgb() {
    let bytes: Vec<u8> = (0..CMYK_RED_JPEG.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&CMYK_RED_JPEG[i..i + 2], 16).unwrap())
        .collect();
    let img = decode_rgb_bytes(&bytes, "cmyk.jpg").unwrap();
    assert_eq!(img.dimensions(), (8, 8));
    assert!(
        img.pixels().all(|p| near(p.0, [255, 0, 0], 8)),
        "{:?}",
        img.get_pixel(3, 3)
    );
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

fn png_chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

#[test]
fn huge_declared_dimensions_are_refused_before_decoding() {
    // A valid PNG header claiming 100000x100000 RGB8 (30 GB decoded), with a few bytes of data.
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit, RGB, deflate, no filter, no interlace
    png_chunk(&mut png, b"IHDR", &ihdr);
    png_chunk(
        &mut png,
        b"IDAT",
        &[
            0x78, 0x01, 0x01, 0x00, 0x00, 0xFF, 0xFF, 0x00, 0x00, 0x00, 0x01,
        ],
    );
    png_chunk(&mut png, b"IEND", &[]);
    match decode_rgb_bytes(&png, "huge.png") {
        Err(DecodeError::TooLarge {
            width: 100_000,
            height: 100_000,
            ..
        }) => {}
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // The same for a JPEG whose frame header claims 60000x60000: patch a real JPEG's SOF0.
    let mut jpeg = jpeg_bytes(&RgbImage::new(8, 8).into());
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC0]).unwrap();
    jpeg[sof + 5..sof + 9].copy_from_slice(&[0xEA, 0x60, 0xEA, 0x60]);
    match decode_rgb_bytes(&jpeg, "huge.jpg") {
        Err(
            e @ DecodeError::TooLarge {
                width: 60_000,
                height: 60_000,
                ..
            },
        ) => assert!(e.to_string().contains("huge.jpg")),
        other => panic!("expected TooLarge, got {other:?}"),
    }
    // And configurable: a small limit refuses a normal image.
    let small = DecodeLimits {
        max_width: 4,
        max_height: 4,
        max_alloc: 1 << 20,
        max_pixels: 16,
    };
    assert!(matches!(
        decode_rgb_bytes_with_limits(&jpeg_bytes(&RgbImage::new(8, 8).into()), "x.jpg", &small),
        Err(DecodeError::TooLarge { .. })
    ));
}

/// A large file is judged by its first bytes and its size before it is read: a 20 GB sparse file
/// named `.jpg` was read whole (7.5 GB of memory and growing) before being refused.
#[test]
fn large_files_are_refused_before_they_are_read() {
    let dir = tempfile::tempdir().unwrap();
    let zeros = dir.path().join("video.jpg");
    let file = std::fs::File::create(&zeros).unwrap();
    file.set_len(20 << 30).unwrap(); // sparse: no disk space used
    match decode_rgb(&zeros) {
        Err(e @ DecodeError::UnknownFormat { .. }) => {
            assert!(e.to_string().contains("video.jpg"), "{e}")
        }
        other => panic!("expected UnknownFormat, got {other:?}"),
    }

    // A JPEG start followed by more bytes than the limits allow for any image.
    let limits = DecodeLimits {
        max_alloc: 1000,
        ..DecodeLimits::default()
    };
    let big = dir.path().join("big.jpg");
    let mut bytes = jpeg_bytes(&RgbImage::new(8, 8).into());
    bytes.resize(limits.max_file_bytes() as usize + 1, 0);
    std::fs::write(&big, &bytes).unwrap();
    match decode_rgb_with_limits(&big, &limits) {
        Err(
            e @ DecodeError::FileTooLarge {
                size: 2001,
                max: 2000,
                ..
            },
        ) => {
            assert!(e.to_string().contains("big.jpg"), "{e}")
        }
        other => panic!("expected FileTooLarge, got {other:?}"),
    }
    // One byte less is read and decoded (the JPEG ends before the padding).
    bytes.truncate(limits.max_file_bytes() as usize);
    std::fs::write(&big, &bytes).unwrap();
    assert!(decode_rgb_with_limits(&big, &limits).is_ok());

    // A device whose size says nothing is refused by its first bytes, not read forever.
    #[cfg(unix)]
    assert!(matches!(
        decode_rgb("/dev/zero"),
        Err(DecodeError::UnknownFormat { .. })
    ));
}

/// A link back up the tree took the images again on every lap (until the path grew too long),
/// the male ones reached through `female/up/male` labelled female.
#[cfg(unix)]
#[test]
fn links_to_folders_above_or_already_read_are_not_followed() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 2);
    let (female, male) = (dir.path().join("female"), dir.path().join("male"));
    std::os::unix::fs::symlink("..", female.join("up")).unwrap();
    std::os::unix::fs::symlink(&male, female.join("males")).unwrap();
    std::os::unix::fs::symlink(".", male.join("again")).unwrap();
    // A link to a folder outside the dataset is still followed, once.
    let outside = tempfile::tempdir().unwrap();
    save(
        &coordinate_image(9).into(),
        &outside.path().join("more/x.png"),
        ImageFormat::Png,
    );
    std::os::unix::fs::symlink(outside.path().join("more"), female.join("more")).unwrap();
    std::os::unix::fs::symlink(outside.path().join("more"), female.join("same")).unwrap();
    let linked = ImageFolder::open(dir.path()).unwrap();
    assert_eq!(linked.class_counts(), [3, 2], "{:#?}", linked.samples);
    let extra: Vec<&Sample> = linked
        .samples
        .iter()
        .filter(|s| !folder.samples.contains(s))
        .collect();
    assert_eq!(extra.len(), 1, "{extra:?}");
    assert_eq!(extra[0].path, female.join("more/x.png"));
}

/// The buffers of a batch were sized by the batch size, not by the images there are: 4 images
/// with a batch size of 4096 at 1024x1024 asked for 48 GiB and aborted.
#[test]
fn a_batch_larger_than_the_data_is_sized_by_the_data() {
    let dir = tempfile::tempdir().unwrap();
    let folder = dataset(dir.path(), 2);
    let config = PipelineConfig {
        image_size: Size::square(1024),
        resize_size: Size::square(1152),
        batch_size: 4096,
        ..config()
    };
    let p = Pipeline::new(folder.samples, config).unwrap();
    let batches = collect(&p, 0);
    assert_eq!(batches.len(), 1);
    assert_eq!(batches[0].shape, [4, 3, 1024, 1024]);
}
