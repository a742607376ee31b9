//! The notebook's image geometry: resize to a slightly larger square (144 for 128), then a random
//! crop and a random horizontal flip for training or a centre crop for evaluation, written as f32 in
//! [0, 1] into a channel-planar (CHW) buffer.

use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions, Resizer};
use rand::Rng;
use std::cell::RefCell;

/// Width and height in pixels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Size {
    pub width: u32,
    pub height: u32,
}

impl Size {
    pub const fn square(side: u32) -> Size {
        Size {
            width: side,
            height: side,
        }
    }

    /// Pixels in the image.
    pub fn area(self) -> usize {
        self.width as usize * self.height as usize
    }
}

/// Resize then crop, as in the notebook: the crop leaves room for translation augmentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub struct Geometry {
    /// What the model sees (the crop).
    pub image_size: Size,
    /// What the decoded image is resized to before cropping; at least `image_size` on each side.
    pub resize_size: Size,
}

impl Default for Geometry {
    fn default() -> Self {
        Geometry::from_image_size(Size::square(128))
    }
}

impl Geometry {
    /// The notebook's ratio: resize to 1.125 times the crop (128 -> 144), rounded to whole pixels.
    pub fn from_image_size(image_size: Size) -> Geometry {
        let grow = |side: u32| (u64::from(side) * 9).div_ceil(8).min(u64::from(u32::MAX)) as u32;
        Geometry {
            image_size,
            resize_size: Size {
                width: grow(image_size.width),
                height: grow(image_size.height),
            },
        }
    }

    /// Floats in one CHW image.
    pub fn chw_len(&self) -> usize {
        3 * self.image_size.area()
    }

    /// Bytes in one resized RGB image (what the caches hold).
    pub fn resized_len(&self) -> usize {
        3 * self.resize_size.area()
    }

    /// True when the crop fits inside the resized image and no side is zero.
    pub fn is_valid(&self) -> bool {
        let (i, r) = (self.image_size, self.resize_size);
        i.width > 0 && i.height > 0 && i.width <= r.width && i.height <= r.height
    }
}

/// Where the crop is taken in the resized image, and whether it is mirrored left-right.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Crop {
    pub x: u32,
    pub y: u32,
    pub flip: bool,
}

impl Crop {
    /// The centre crop (Keras `CenterCrop`: the odd pixel goes to the right and bottom).
    pub fn center(geometry: &Geometry) -> Crop {
        let (i, r) = (geometry.image_size, geometry.resize_size);
        Crop {
            x: (r.width - i.width) / 2,
            y: (r.height - i.height) / 2,
            flip: false,
        }
    }

    /// A uniformly random crop position (every offset, both edges included, as `tf.image.random_crop`)
    /// and a fair coin for the flip.
    pub fn random(geometry: &Geometry, rng: &mut impl Rng) -> Crop {
        let (i, r) = (geometry.image_size, geometry.resize_size);
        Crop {
            x: rng.random_range(0..=r.width - i.width),
            y: rng.random_range(0..=r.height - i.height),
            flip: rng.random_bool(0.5),
        }
    }
}

/// Random brightness, contrast and saturation factors for one training image, as torchvision's
/// `ColorJitter(s, s, s)` draws them (each uniform in [1 - s, 1 + s]), applied in a fixed order.
/// Against the failures under odd lighting and colour casts that the analysis names.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ColorJitter {
    pub brightness: f32,
    pub contrast: f32,
    pub saturation: f32,
}

impl ColorJitter {
    /// Factors drawn uniformly in [1 - strength, 1 + strength]; `strength` in [0, 1].
    pub fn random(strength: f32, rng: &mut impl Rng) -> ColorJitter {
        let mut factor = || 1.0 + strength * rng.random_range(-1.0f32..=1.0);
        ColorJitter {
            brightness: factor(),
            contrast: factor(),
            saturation: factor(),
        }
    }

    /// Applies the factors to a `[3, h, w]` image in [0, 1], clamping to [0, 1] after each step as
    /// torchvision does: brightness scales every value, contrast blends with the image's mean grey,
    /// saturation blends each pixel with its own grey (ITU-R 601 luma, torchvision's weights).
    pub fn apply(&self, chw: &mut [f32]) {
        let plane = chw.len() / 3;
        if plane == 0 {
            return;
        }
        let blend = |v: f32, grey: f32, f: f32| (f * v + (1.0 - f) * grey).clamp(0.0, 1.0);
        for v in chw.iter_mut() {
            *v = (*v * self.brightness).clamp(0.0, 1.0);
        }
        let luma = |chw: &[f32], i: usize| {
            0.299 * chw[i] + 0.587 * chw[plane + i] + 0.114 * chw[2 * plane + i]
        };
        let mean = (0..plane).map(|i| luma(chw, i) as f64).sum::<f64>() / plane as f64;
        for v in chw.iter_mut() {
            *v = blend(*v, mean as f32, self.contrast);
        }
        for i in 0..plane {
            let grey = luma(chw, i);
            for c in 0..3 {
                let v = &mut chw[c * plane + i];
                *v = blend(*v, grey, self.saturation);
            }
        }
    }
}

/// Errors of the resize step. They come from inconsistent sizes, which callers check beforehand;
/// kept as an error rather than a panic because the sizes come from configuration.
#[derive(Debug, thiserror::Error)]
#[error("cannot resize {from_width}x{from_height} to {to_width}x{to_height}: {reason}")]
pub struct ResizeError {
    pub from_width: u32,
    pub from_height: u32,
    pub to_width: u32,
    pub to_height: u32,
    pub reason: String,
}

thread_local! {
    // A resizer keeps its scratch buffers and filter coefficients between calls; one per worker
    // thread avoids reallocating them for every image.
    static RESIZER: RefCell<Resizer> = RefCell::new(Resizer::new());
}

/// Resizes packed RGB8 pixels (`width * height * 3` bytes) to `to`, bilinearly.
///
/// Up to a 2x shrink this is `tf.image.resize`'s bilinear (two taps, half-pixel centres), so the
/// notebook's 200 -> 144 resize is reproduced up to rounding to 8 bits (Keras keeps f32); it is
/// also the cheaper filter. Past 2x, plain bilinear skips pixels and aliases, so the filter widens
/// with the scale (antialiasing), which is what a large photo resized for `predict` needs.
pub fn resize_rgb(
    pixels: &[u8],
    width: u32,
    height: u32,
    to: Size,
) -> Result<Vec<u8>, ResizeError> {
    let err = |reason: String| ResizeError {
        from_width: width,
        from_height: height,
        to_width: to.width,
        to_height: to.height,
        reason,
    };
    if width == to.width && height == to.height {
        return if pixels.len() == 3 * to.area() {
            Ok(pixels.to_vec())
        } else {
            Err(err("buffer size does not match".into()))
        };
    }
    let src =
        ImageRef::new(width, height, pixels, PixelType::U8x3).map_err(|e| err(e.to_string()))?;
    let mut dst = Image::new(to.width, to.height, PixelType::U8x3);
    let shrink = f64::max(
        f64::from(width) / f64::from(to.width),
        f64::from(height) / f64::from(to.height),
    );
    let algorithm = if shrink > 2.0 {
        ResizeAlg::Convolution(FilterType::Bilinear)
    } else {
        ResizeAlg::Interpolation(FilterType::Bilinear)
    };
    let options = ResizeOptions::new().resize_alg(algorithm);
    resize_with_thread_resizer(&src, &mut dst, &options).map_err(|e| err(e.to_string()))?;
    Ok(dst.into_vec())
}

/// `fast_image_resize`'s resize with this thread's `Resizer`, which keeps its scratch buffers and
/// filter coefficients from one image to the next. For every crate that resizes (gc-onnx's
/// preprocessing too), so that the rule below lives in one place.
pub fn resize_with_thread_resizer(
    src: &ImageRef<'_>,
    dst: &mut Image<'_>,
    options: &ResizeOptions,
) -> Result<(), fast_image_resize::ResizeError> {
    RESIZER.with(|r| match r.try_borrow_mut() {
        Ok(mut resizer) => resizer.resize(src, dst, options),
        // fast_image_resize runs a large resize on rayon, and a worker waiting inside it may be
        // handed another image's resize: that one gets a resizer of its own.
        Err(_) => Resizer::new().resize(src, dst, options),
    })
}

/// Writes the `crop` of a resized RGB8 image (`geometry.resize_size`, packed) into `out`, channel
/// planes one after another (`[3, h, w]`), values in [0, 1]. `out` must hold `geometry.chw_len()`
/// floats and `crop` must fit; both are guaranteed by the pipeline, so a mismatch is a bug here.
pub fn crop_to_chw(resized: &[u8], geometry: &Geometry, crop: Crop, out: &mut [f32]) {
    let (i, r) = (geometry.image_size, geometry.resize_size);
    let (w, h, rw) = (i.width as usize, i.height as usize, r.width as usize);
    debug_assert_eq!(resized.len(), geometry.resized_len());
    debug_assert_eq!(out.len(), geometry.chw_len());
    debug_assert!(crop.x + i.width <= r.width && crop.y + i.height <= r.height);
    let plane = w * h;
    let (red, rest) = out.split_at_mut(plane);
    let (green, blue) = rest.split_at_mut(plane);
    // Scale a whole row first (contiguous, so it vectorises), then scatter it into the planes: done
    // in one pass, the stride-3 reads keep the conversion scalar and cost twice as much.
    let mut scaled = vec![0f32; w * 3];
    for y in 0..h {
        let start = ((crop.y as usize + y) * rw + crop.x as usize) * 3;
        for (s, &v) in scaled.iter_mut().zip(&resized[start..start + w * 3]) {
            // A product, not a quotient: it vectorises at a fraction of the cost, at most one ulp
            // from `v / 255`.
            *s = f32::from(v) * (1.0 / 255.0);
        }
        let o = y * w..(y + 1) * w;
        let planes = red[o.clone()]
            .iter_mut()
            .zip(&mut green[o.clone()])
            .zip(&mut blue[o]);
        let put = |(px, ((r, g), b)): (&[f32], ((&mut f32, &mut f32), &mut f32))| {
            (*r, *g, *b) = (px[0], px[1], px[2]);
        };
        if crop.flip {
            scaled.chunks_exact(3).rev().zip(planes).for_each(put);
        } else {
            scaled.chunks_exact(3).zip(planes).for_each(put);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;

    fn geometry(image: u32, resize: u32) -> Geometry {
        Geometry {
            image_size: Size::square(image),
            resize_size: Size::square(resize),
        }
    }

    /// A resized image whose every pixel encodes its own coordinates.
    fn coordinate_image(g: &Geometry) -> Vec<u8> {
        let r = g.resize_size;
        let mut v = Vec::with_capacity(g.resized_len());
        for y in 0..r.height {
            for x in 0..r.width {
                v.extend_from_slice(&[x as u8, y as u8, 200]);
            }
        }
        v
    }

    #[test]
    fn default_geometry_is_the_notebooks() {
        let g = Geometry::default();
        assert_eq!(g.image_size, Size::square(128));
        assert_eq!(g.resize_size, Size::square(144));
        assert_eq!(
            Geometry::from_image_size(Size::square(224)).resize_size,
            Size::square(252)
        );
        assert!(g.is_valid());
        assert!(!geometry(150, 144).is_valid());
    }

    #[test]
    fn center_crop_is_centred_and_not_flipped() {
        let g = geometry(4, 10);
        let src = coordinate_image(&g);
        let mut out = vec![0.0; g.chw_len()];
        crop_to_chw(&src, &g, Crop::center(&g), &mut out);
        // x in the red plane, y in the green plane: the window starts at (3, 3).
        let at = |i: usize| (out[i] * 255.0).round();
        assert_eq!((at(0), at(3), at(16), at(16 + 15)), (3.0, 6.0, 3.0, 6.0));
        assert!((out[32] - 200.0 / 255.0).abs() < 1e-7);
    }

    #[test]
    fn flip_is_an_exact_mirror() {
        let g = geometry(5, 9);
        let src = coordinate_image(&g);
        let (mut a, mut b) = (vec![0.0; g.chw_len()], vec![0.0; g.chw_len()]);
        crop_to_chw(
            &src,
            &g,
            Crop {
                x: 3,
                y: 1,
                flip: false,
            },
            &mut a,
        );
        crop_to_chw(
            &src,
            &g,
            Crop {
                x: 3,
                y: 1,
                flip: true,
            },
            &mut b,
        );
        for c in 0..3 {
            for y in 0..5 {
                for x in 0..5 {
                    assert_eq!(a[c * 25 + y * 5 + x], b[c * 25 + y * 5 + (4 - x)]);
                }
            }
        }
        assert_ne!(a, b);
    }

    #[test]
    fn random_crops_cover_every_offset_and_both_flips() {
        let g = geometry(128, 144);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let (mut xs, mut ys, mut flips) = ([false; 17], [false; 17], [0usize; 2]);
        for _ in 0..2000 {
            let c = Crop::random(&g, &mut rng);
            xs[c.x as usize] = true;
            ys[c.y as usize] = true;
            flips[c.flip as usize] += 1;
        }
        assert!(xs.iter().all(|&s| s) && ys.iter().all(|&s| s));
        assert!(flips[0] > 800 && flips[1] > 800);
    }

    #[test]
    fn color_jitter_matches_hand_computed_values() {
        // Two pixels, planes r, g, b: (0.5, 0.2, 0.1) and (0.1, 0.4, 0.3).
        let image = [0.5, 0.1, 0.2, 0.4, 0.1, 0.3];
        let run = |b, c, s| {
            let mut px = image;
            ColorJitter {
                brightness: b,
                contrast: c,
                saturation: s,
            }
            .apply(&mut px);
            px
        };
        let close = |a: [f32; 6], b: [f32; 6]| a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-6);
        assert!(close(run(1.0, 1.0, 1.0), image));
        // Brightness 1.5 scales, clamped at 1 (0.5 * 1.5 = 0.75 stays; none reach 1 here).
        assert!(close(run(1.5, 1.0, 1.0), image.map(|v| v * 1.5)));
        assert!(close(run(3.0, 1.0, 1.0), [1.0, 0.3, 0.6, 1.0, 0.3, 0.9]));
        // Contrast 0: every value becomes the mean luma, (0.2783 + 0.2989) / 2 = 0.2886.
        let l1 = 0.299 * 0.5 + 0.587 * 0.2 + 0.114 * 0.1;
        let l2 = 0.299 * 0.1 + 0.587 * 0.4 + 0.114 * 0.3;
        let mean = (l1 + l2) / 2.0;
        assert!(close(run(1.0, 0.0, 1.0), [mean; 6]));
        // Saturation 0: each pixel becomes its own luma.
        assert!(close(run(1.0, 1.0, 0.0), [l1, l2, l1, l2, l1, l2]));
        // Factors stay within the strength.
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        for _ in 0..100 {
            let j = ColorJitter::random(0.2, &mut rng);
            for f in [j.brightness, j.contrast, j.saturation] {
                assert!((0.8..=1.2).contains(&f), "{j:?}");
            }
        }
        assert_eq!(
            ColorJitter::random(0.0, &mut rng),
            ColorJitter {
                brightness: 1.0,
                contrast: 1.0,
                saturation: 1.0
            }
        );
    }

    #[test]
    fn resize_keeps_a_flat_colour_and_the_size() {
        let src: Vec<u8> = [10u8, 120, 250].repeat(200 * 200);
        let out = resize_rgb(&src, 200, 200, Size::square(144)).unwrap();
        assert_eq!(out.len(), 144 * 144 * 3);
        assert!(out.chunks_exact(3).all(|p| p == [10, 120, 250]));
        assert!(resize_rgb(&src[1..], 200, 200, Size::square(144)).is_err());
    }

    /// fast_image_resize splits a large resize over rayon; a worker that waits inside one may
    /// take another caller's resize from rayon's queue, on the same thread (the sort tests, whose
    /// photos are classified side by side, hit this).
    #[test]
    fn resizes_nested_on_one_rayon_thread_succeed() {
        let src: Vec<u8> = [10u8, 120, 250].repeat(1200 * 1200);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        std::thread::scope(|s| {
            for _ in 0..6 {
                s.spawn(|| {
                    for _ in 0..40 {
                        let out = pool
                            .install(|| resize_rgb(&src, 1200, 1200, Size::square(500)))
                            .unwrap();
                        assert!(out.chunks_exact(3).all(|p| p == [10, 120, 250]));
                    }
                });
            }
        });
    }
}
