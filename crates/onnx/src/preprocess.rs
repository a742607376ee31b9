//! Turns face crops into an input tensor as a `PreprocessSpec` says: framing (whole, trim, margin),
//! resize to the input size, channel order, normalisation and layout. Pure CPU work on byte
//! buffers, one image per rayon task; knows nothing of tract.

use crate::spec::{Channels, Crop, Filter, Layout, PreprocessSpec};
use fast_image_resize::images::{Image, ImageRef};
use fast_image_resize::{FilterType, PixelType, ResizeAlg, ResizeOptions};
use gc_core::{ModelError, RgbView};
use gc_pipeline::transform::resize_with_thread_resizer;
use rayon::prelude::*;
use std::borrow::Cow;

impl PreprocessSpec {
    /// The input tensor's data for `images` (any sizes), in the spec's layout, image after image.
    pub fn preprocess(&self, images: &[RgbView<'_>]) -> Result<Vec<f32>, ModelError> {
        let len = self.image_len();
        let mut out = vec![0.0f32; len * images.len()];
        out.par_chunks_mut(len)
            .zip(images.par_iter())
            .enumerate()
            .try_for_each(|(i, (dst, img))| {
                check_view(img, i)?;
                let resized = self.frame_and_resize(img);
                self.normalize_into(&resized, dst);
                Ok(())
            })?;
        Ok(out)
    }

    /// The input tensor's data for images already at the input size: only channel order,
    /// normalisation and layout. For callers that resize by their own rule (the parity tests).
    pub fn normalize_sized(&self, images: &[RgbView<'_>]) -> Result<Vec<f32>, ModelError> {
        let len = self.image_len();
        let mut out = vec![0.0f32; len * images.len()];
        for (i, (dst, img)) in out.chunks_mut(len).zip(images).enumerate() {
            check_view(img, i)?;
            if (img.width, img.height) != (self.input.width, self.input.height) {
                return Err(ModelError::Input(format!(
                    "image {i} is {}x{}, the model takes {}x{}",
                    img.width, img.height, self.input.width, self.input.height
                )));
            }
            self.normalize_into(img.pixels, dst);
        }
        Ok(out)
    }

    /// The crop framed as the spec says and resized to the input size, as 8-bit RGB.
    pub fn frame_and_resize<'a>(&self, img: &RgbView<'a>) -> Cow<'a, [u8]> {
        self.frame_and_resize_within(img, MAX_WINDOW_PIXELS)
    }

    fn frame_and_resize_within<'a>(&self, img: &RgbView<'a>, max_window: u64) -> Cow<'a, [u8]> {
        let (w, h) = (self.input.width, self.input.height);
        let (x0, y0, fw, fh) = frame_rect(img, self.crop);
        if let Some((sw, sh)) = shrunk_size(img, (fw, fh), max_window) {
            let small = self.resize(img.pixels, (img.width, img.height), (sw, sh));
            let view = RgbView {
                width: sw,
                height: sh,
                pixels: &small,
            };
            return Cow::Owned(self.frame_and_resize_within(&view, u64::MAX).into_owned());
        }
        let framed: Cow<'a, [u8]> = if (x0, y0, fw, fh) == (0, 0, img.width, img.height) {
            Cow::Borrowed(img.pixels)
        } else {
            Cow::Owned(sample_clamped(img, x0, y0, fw, fh))
        };
        if (fw, fh) == (w, h) {
            return framed;
        }
        Cow::Owned(self.resize(&framed, (fw, fh), (w, h)))
    }

    /// `src` (`from` pixels, RGB) resized to `to` with the spec's filter.
    fn resize(&self, src: &[u8], from: (u32, u32), to: (u32, u32)) -> Vec<u8> {
        let ((fw, fh), (w, h)) = (from, to);
        // The same separable filters as `image::imageops::resize` (widened when shrinking, so
        // the result is antialiased), in fast_image_resize's SIMD code: image's took 9-15% of
        // the time to classify a face with the small ONNX models (measured with `perf`).
        let algorithm = match self.filter {
            Filter::Nearest => ResizeAlg::Nearest,
            Filter::Triangle => ResizeAlg::Convolution(FilterType::Bilinear),
            Filter::CatmullRom => ResizeAlg::Convolution(FilterType::CatmullRom),
            Filter::Lanczos3 => ResizeAlg::Convolution(FilterType::Lanczos3),
        };
        let options = ResizeOptions::new().resize_alg(algorithm);
        let mut dst = Image::new(w, h, PixelType::U8x3);
        // `src` always holds fw * fh * 3 bytes (checked or built so by the callers), so neither
        // call fails; a black image stands in if one ever did.
        let resized = ImageRef::new(fw, fh, src, PixelType::U8x3)
            .map_err(|e| e.to_string())
            .and_then(|src| {
                resize_with_thread_resizer(&src, &mut dst, &options).map_err(|e| e.to_string())
            });
        match resized {
            Ok(()) => dst.into_vec(),
            Err(_) => vec![0; w as usize * h as usize * 3],
        }
    }

    /// Writes one input-size RGB image into `out` (`image_len()` floats) in channel order, with
    /// the normalisation, in the layout. Float32 in the order `(p * scale - mean) / std`, so that it
    /// is bit-identical to numpy doing the same.
    pub fn normalize_into(&self, rgb: &[u8], out: &mut [f32]) {
        let n = &self.normalize;
        // Tensor channel c takes source channel order[c].
        let order = match self.input.channels {
            Channels::Rgb => [0, 1, 2],
            Channels::Bgr => [2, 1, 0],
        };
        let plane = self.input.width as usize * self.input.height as usize;
        let pixels = rgb.chunks_exact(3).take(plane);
        match self.input.layout {
            Layout::Nchw => {
                for (p, px) in pixels.enumerate() {
                    for c in 0..3 {
                        out[c * plane + p] =
                            (f32::from(px[order[c]]) * n.scale - n.mean[c]) / n.std[c];
                    }
                }
            }
            Layout::Nhwc => {
                for (px, dst) in pixels.zip(out.chunks_exact_mut(3)) {
                    for c in 0..3 {
                        dst[c] = (f32::from(px[order[c]]) * n.scale - n.mean[c]) / n.std[c];
                    }
                }
            }
        }
    }
}

/// `RgbView`'s fields are public, so a view may not have been built by its checking constructor.
fn check_view(img: &RgbView<'_>, i: usize) -> Result<(), ModelError> {
    let want = img.width as usize * img.height as usize * 3;
    if img.width == 0 || img.height == 0 || img.pixels.len() != want {
        return Err(ModelError::Input(format!(
            "image {i}: {}x{} RGB needs {want} bytes, got {}",
            img.width,
            img.height,
            img.pixels.len()
        )));
    }
    Ok(())
}

/// The most pixels a framed window is sampled at: 48 MB of RGB, 17 times a 1000x1000 face's.
const MAX_WINDOW_PIXELS: u64 = 16 << 20;

/// The size to shrink `img` to before framing a `window` larger than both the image and
/// `max_window` pixels, if it is: a margin of up to 2 makes the window 25 times the image, and
/// sampled whole, a 50-megapixel photo classified whole took 3.75 GB a thread. Shrunk, its window
/// holds about `max_window` pixels, far more than any model's input (the resize down to the input
/// then averages the same pixels, to within rounding).
fn shrunk_size(img: &RgbView<'_>, window: (u32, u32), max_window: u64) -> Option<(u32, u32)> {
    let pixels = u64::from(window.0) * u64::from(window.1);
    if pixels <= max_window || pixels <= u64::from(img.width) * u64::from(img.height) {
        return None;
    }
    let scale = (max_window as f64 / pixels as f64).sqrt();
    let side = |s: u32| ((f64::from(s) * scale).round() as u32).max(1);
    Some((side(img.width), side(img.height)))
}

/// The window of the image that the crop policy frames: top-left corner (outside the image for a
/// margin) and size, never empty.
fn frame_rect(img: &RgbView<'_>, crop: Crop) -> (i64, i64, u32, u32) {
    let (w, h) = (img.width, img.height);
    let px = |side: u32, fraction: f32| (side as f32 * fraction).round() as u32;
    match crop {
        Crop::Whole => (0, 0, w, h),
        Crop::Trim { fraction } => {
            // At least one pixel stays, however small the image.
            let dx = px(w, fraction).min((w - 1) / 2);
            let dy = px(h, fraction).min((h - 1) / 2);
            (i64::from(dx), i64::from(dy), w - 2 * dx, h - 2 * dy)
        }
        Crop::Margin { fraction } => {
            let (dx, dy) = (px(w, fraction), px(h, fraction));
            (-i64::from(dx), -i64::from(dy), w + 2 * dx, h + 2 * dy)
        }
    }
}

/// A `w` x `h` window whose top-left is at (`x0`, `y0`) in the image; pixels outside the image
/// repeat the nearest edge pixel, which keeps a margin's statistics close to the face's.
fn sample_clamped(img: &RgbView<'_>, x0: i64, y0: i64, w: u32, h: u32) -> Vec<u8> {
    let (iw, ih) = (i64::from(img.width), i64::from(img.height));
    let mut out = Vec::with_capacity(w as usize * h as usize * 3);
    for y in 0..i64::from(h) {
        let sy = (y0 + y).clamp(0, ih - 1) as usize;
        let row = &img.pixels[sy * iw as usize * 3..(sy + 1) * iw as usize * 3];
        for x in 0..i64::from(w) {
            let sx = (x0 + x).clamp(0, iw - 1) as usize;
            out.extend_from_slice(&row[sx * 3..sx * 3 + 3]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::InputSpec;
    use crate::spec::{Normalize, OutputSpec, OutputTensor, Scores};

    fn spec(
        w: u32,
        h: u32,
        channels: Channels,
        layout: Layout,
        normalize: Normalize,
    ) -> PreprocessSpec {
        PreprocessSpec {
            name: None,
            input: InputSpec {
                width: w,
                height: h,
                channels,
                layout,
            },
            normalize,
            crop: Crop::Whole,
            filter: Filter::Triangle,
            output: OutputSpec {
                tensor: OutputTensor::Index(0),
                offset: 0,
                scores: Scores::Logits,
            },
            labels: vec!["female".into(), "male".into()],
            batch: None,
        }
    }

    // A 2x1 image: a (10, 20, 30) pixel then a (40, 50, 60) pixel.
    const PIXELS: [u8; 6] = [10, 20, 30, 40, 50, 60];

    #[test]
    fn rgb_nchw_raw_is_planar() {
        let s = spec(2, 1, Channels::Rgb, Layout::Nchw, Normalize::default());
        let t = s
            .normalize_sized(&[RgbView::new(2, 1, &PIXELS).unwrap()])
            .unwrap();
        assert_eq!(t, [10.0, 40.0, 20.0, 50.0, 30.0, 60.0]);
    }

    #[test]
    fn bgr_nhwc_swaps_channels_and_interleaves() {
        let s = spec(2, 1, Channels::Bgr, Layout::Nhwc, Normalize::default());
        let t = s
            .normalize_sized(&[RgbView::new(2, 1, &PIXELS).unwrap()])
            .unwrap();
        assert_eq!(t, [30.0, 20.0, 10.0, 60.0, 50.0, 40.0]);
    }

    #[test]
    fn mean_std_and_scale_apply_per_tensor_channel() {
        // (x - 127) / 128
        let s = spec(
            2,
            1,
            Channels::Rgb,
            Layout::Nchw,
            Normalize {
                scale: 1.0,
                mean: [127.0; 3],
                std: [128.0; 3],
            },
        );
        let t = s
            .normalize_sized(&[RgbView::new(2, 1, &PIXELS).unwrap()])
            .unwrap();
        let want = [-117.0, -87.0, -107.0, -77.0, -97.0, -67.0].map(|v: f32| v / 128.0);
        assert_eq!(t, want);

        // BGR with a per-channel mean listed in tensor order (blue first) and a 0..1 scale.
        let s = spec(
            1,
            1,
            Channels::Bgr,
            Layout::Nchw,
            Normalize {
                scale: 0.5,
                mean: [1.0, 2.0, 3.0],
                std: [2.0, 4.0, 8.0],
            },
        );
        let t = s
            .normalize_sized(&[RgbView::new(1, 1, &PIXELS[..3]).unwrap()])
            .unwrap();
        // blue 30 -> (15 - 1) / 2; green 20 -> (10 - 2) / 4; red 10 -> (5 - 3) / 8
        assert_eq!(t, [7.0, 2.0, 0.25]);
    }

    #[test]
    fn batches_are_image_after_image() {
        let s = spec(1, 1, Channels::Rgb, Layout::Nchw, Normalize::default());
        let a = RgbView::new(1, 1, &PIXELS[..3]).unwrap();
        let b = RgbView::new(1, 1, &PIXELS[3..]).unwrap();
        assert_eq!(
            s.normalize_sized(&[a, b]).unwrap(),
            [10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
        );
    }

    #[test]
    fn wrong_sizes_are_input_errors() {
        let s = spec(2, 2, Channels::Rgb, Layout::Nchw, Normalize::default());
        let small = RgbView::new(2, 1, &PIXELS).unwrap();
        assert!(matches!(
            s.normalize_sized(&[small]),
            Err(ModelError::Input(_))
        ));
        let lying = RgbView {
            width: 5,
            height: 5,
            pixels: &PIXELS,
        };
        assert!(matches!(s.preprocess(&[lying]), Err(ModelError::Input(_))));
    }

    #[test]
    fn uniform_image_stays_uniform_through_resize() {
        let s = spec(3, 5, Channels::Rgb, Layout::Nchw, Normalize::default());
        let px: Vec<u8> = [7u8, 8, 9].repeat(17 * 11);
        let t = s.preprocess(&[RgbView::new(17, 11, &px).unwrap()]).unwrap();
        assert_eq!(t.len(), 45);
        assert!(t[..15].iter().all(|v| *v == 7.0));
        assert!(t[30..].iter().all(|v| *v == 9.0));
    }

    #[test]
    fn a_wide_margin_on_a_large_image_is_framed_from_the_image_shrunk() {
        // 600x400 with smooth gradients and a margin of 2: a 3000x2000 window, sampled whole
        // and through a 1-megapixel window, gives the same 64x64 input to within rounding.
        let (w, h) = (600u32, 400u32);
        let px: Vec<u8> = (0..h)
            .flat_map(|y| (0..w).flat_map(move |x| [(x * 255 / w) as u8, (y * 255 / h) as u8, 90]))
            .collect();
        let img = RgbView::new(w, h, &px).unwrap();
        let mut s = spec(64, 64, Channels::Rgb, Layout::Nchw, Normalize::default());
        s.crop = Crop::Margin { fraction: 2.0 };
        let whole = s.frame_and_resize_within(&img, u64::MAX);
        let bounded = s.frame_and_resize_within(&img, 1 << 20);
        assert_eq!(whole.len(), bounded.len());
        let worst = whole
            .iter()
            .zip(bounded.iter())
            .map(|(a, b)| a.abs_diff(*b))
            .max()
            .unwrap();
        assert!(worst <= 2, "differs by up to {worst} levels");
        // The edges are repeated in both: the corners take the image's corner colours.
        assert_eq!(&bounded[..3], &[0, 0, 90]);
        // The bounded path did shrink: 600x400 to 251x167, whose window is 1 MP.
        let (x0, y0, fw, fh) = frame_rect(&img, s.crop);
        assert_eq!((x0, y0, fw, fh), (-1200, -800, 3000, 2000));
        assert_eq!(shrunk_size(&img, (fw, fh), 1 << 20), Some((251, 167)));
        assert_eq!(shrunk_size(&img, (fw, fh), u64::MAX), None);
        // A 50 MP photo with the same margin is framed in a window of at most 16 MP.
        let photo = RgbView {
            width: 8660,
            height: 5774,
            pixels: &[],
        };
        let (sw, sh) = shrunk_size(&photo, (5 * 8660, 5 * 5774), MAX_WINDOW_PIXELS).unwrap();
        assert!(u64::from(5 * sw) * u64::from(5 * sh) <= MAX_WINDOW_PIXELS + 20_000);
    }

    #[test]
    fn trim_cuts_and_margin_repeats_edges() {
        // 4x4 image whose pixel (x, y) has red = 10 * x + y.
        let px: Vec<u8> = (0..4u8)
            .flat_map(|y| (0..4u8).flat_map(move |x| [10 * x + y, 0, 0]))
            .collect();
        let img = RgbView::new(4, 4, &px).unwrap();
        let mut s = spec(2, 2, Channels::Rgb, Layout::Nchw, Normalize::default());
        s.crop = Crop::Trim { fraction: 0.25 };
        // One pixel off each side leaves the 2x2 centre, already at the input size.
        assert_eq!(
            &*s.frame_and_resize(&img),
            &[11, 0, 0, 21, 0, 0, 12, 0, 0, 22, 0, 0]
        );

        let mut s = spec(6, 6, Channels::Rgb, Layout::Nchw, Normalize::default());
        s.crop = Crop::Margin { fraction: 0.25 };
        let framed = s.frame_and_resize(&img);
        let red = |x: usize, y: usize| framed[(y * 6 + x) * 3];
        assert_eq!(red(0, 0), 0);
        assert_eq!(red(1, 1), 0);
        assert_eq!(red(5, 0), 30);
        assert_eq!(red(2, 3), 12);
        assert_eq!(red(5, 5), 33);
    }

    /// fast_image_resize splits a large resize over rayon; a worker that waits inside one may
    /// take another caller's resize from rayon's queue, on the same thread.
    #[test]
    fn resizes_nested_on_one_rayon_thread_succeed() {
        let s = spec(500, 500, Channels::Rgb, Layout::Nchw, Normalize::default());
        let pixels: Vec<u8> = [10u8, 120, 250].repeat(1200 * 1200);
        let img = RgbView::new(1200, 1200, &pixels).unwrap();
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(2)
            .build()
            .unwrap();
        std::thread::scope(|scope| {
            for _ in 0..6 {
                scope.spawn(|| {
                    for _ in 0..40 {
                        let out = pool.install(|| s.frame_and_resize(&img));
                        assert!(out.chunks_exact(3).all(|p| p == [10, 120, 250]));
                    }
                });
            }
        });
    }
}
