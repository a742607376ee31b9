//! The image preprocessing a Hub model ships in `preprocessor_config.json`: resize (with the
//! named resampling filter), optional centre crop, rescale, normalise, to CHW `f32`.
//!
//! What transformers does, and so what this replicates: its image processors (the PIL backend,
//! `ViTImageProcessorPil` and kin, which transformers uses when torchvision is not installed and
//! which every processor used before transformers 5) resize the 8-bit image with Pillow's
//! `Image.resize`, then compute `(x * rescale_factor)` in f64, cast to f32, then `(x - mean) / std`
//! in f32. [`resize_rgb`] is a port of Pillow's `libImaging/Resample.c` (separable convolution with
//! the filter's support widened by the downscale factor, coefficients in 22-bit fixed point,
//! two passes in Pillow 13's order, each rounded and clamped to 8 bits), so our input tensor equals
//! transformers' bit for bit; the fixture tests check it against Pillow. With torchvision
//! installed, transformers 5 resizes with torchvision's antialiased kernels instead, which differ
//! from Pillow by about one grey level here and there.

use gc_core::{ModelError, RgbView};
use serde::Deserialize;

/// Pillow's resampling filters, with `resample`'s integer codes in `preprocessor_config.json`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resample {
    Nearest = 0,
    Lanczos = 1,
    Bilinear = 2,
    Bicubic = 3,
    Box = 4,
    Hamming = 5,
}

impl Resample {
    pub fn from_code(code: u32) -> Option<Resample> {
        Some(match code {
            0 => Resample::Nearest,
            1 => Resample::Lanczos,
            2 => Resample::Bilinear,
            3 => Resample::Bicubic,
            4 => Resample::Box,
            5 => Resample::Hamming,
            _ => return None,
        })
    }

    /// The filter's support (radius) at scale 1, as Pillow defines it.
    fn support(self) -> f64 {
        match self {
            Resample::Nearest => 0.0,
            Resample::Box => 0.5,
            Resample::Bilinear | Resample::Hamming => 1.0,
            Resample::Bicubic => 2.0,
            Resample::Lanczos => 3.0,
        }
    }

    fn weight(self, x: f64) -> f64 {
        match self {
            Resample::Nearest => 0.0,
            Resample::Box => {
                if x > -0.5 && x <= 0.5 {
                    1.0
                } else {
                    0.0
                }
            }
            Resample::Bilinear => {
                let x = x.abs();
                if x < 1.0 { 1.0 - x } else { 0.0 }
            }
            Resample::Hamming => {
                let x = x.abs();
                if x == 0.0 {
                    1.0
                } else if x >= 1.0 {
                    0.0
                } else {
                    let x = x * std::f64::consts::PI;
                    x.sin() / x * (0.54 + 0.46 * x.cos())
                }
            }
            Resample::Bicubic => {
                // Pillow's a = -0.5 (Keys' cubic convolution, like Catmull-Rom).
                const A: f64 = -0.5;
                let x = x.abs();
                if x < 1.0 {
                    ((A + 2.0) * x - (A + 3.0)) * x * x + 1.0
                } else if x < 2.0 {
                    (((x - 5.0) * x + 8.0) * x - 4.0) * A
                } else {
                    0.0
                }
            }
            Resample::Lanczos => {
                if (-3.0..3.0).contains(&x) {
                    sinc(x) * sinc(x / 3.0)
                } else {
                    0.0
                }
            }
        }
    }
}

fn sinc(x: f64) -> f64 {
    if x == 0.0 {
        1.0
    } else {
        let x = x * std::f64::consts::PI;
        x.sin() / x
    }
}

/// Fixed-point precision of Pillow's 8-bit resampling coefficients (`PRECISION_BITS`).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Per output pixel: the first input pixel and the fixed-point weights from there.
struct Coefficients {
    bounds: Vec<(usize, usize)>,
    /// `ksize` weights per output pixel.
    weights: Vec<i32>,
    ksize: usize,
}

/// Pillow's `precompute_coeffs` + `normalize_coeffs_8bpc` for a full-image resize of one axis.
fn coefficients(in_size: usize, out_size: usize, filter: Resample) -> Coefficients {
    let scale = in_size as f64 / out_size as f64;
    let filterscale = scale.max(1.0);
    let support = filter.support() * filterscale;
    let ksize = support.ceil() as usize * 2 + 1;
    let mut bounds = Vec::with_capacity(out_size);
    let mut weights = vec![0i32; out_size * ksize];
    let mut k = vec![0f64; ksize];
    for xx in 0..out_size {
        let center = (xx as f64 + 0.5) * scale;
        let ss = 1.0 / filterscale;
        // `(int)` truncates toward zero, which is what `as` does.
        let xmin = ((center - support + 0.5) as i64).max(0) as usize;
        let xmax = ((center + support + 0.5) as i64).min(in_size as i64) as usize;
        let n = xmax.saturating_sub(xmin);
        let mut ww = 0.0;
        for (x, kx) in k.iter_mut().enumerate().take(n) {
            let w = filter.weight((x as f64 + xmin as f64 - center + 0.5) * ss);
            *kx = w;
            ww += w;
        }
        for x in 0..ksize {
            let v = if x < n && ww != 0.0 { k[x] / ww } else { 0.0 };
            let fixed = v * f64::from(1u32 << PRECISION_BITS);
            // Round half away from zero, as Pillow's `(int)(x +/- 0.5)` does.
            weights[xx * ksize + x] = if v < 0.0 {
                (fixed - 0.5) as i32
            } else {
                (fixed + 0.5) as i32
            };
        }
        bounds.push((xmin, n));
    }
    Coefficients {
        bounds,
        weights,
        ksize,
    }
}

/// Pillow's `clip8`: the fixed-point sum back to a byte.
fn clip8(ss: i64) -> u8 {
    (ss >> PRECISION_BITS).clamp(0, 255) as u8
}

/// Resizes packed 8-bit RGB as Pillow's `Image.resize((dw, dh), resample)` does, exactly.
///
/// Two passes, each rounded to 8 bits, so their order shows in the result: horizontal first, except
/// where the height shrinks by more than twice as many pixels as the width, which Pillow 13 resizes
/// vertically first (python-pillow/Pillow#9549; the rule here was measured against Pillow 13.0 on
/// about 3,000 random sizes and filters, all equal). Pillow before 13 always went horizontal
/// first, so for those sizes it differs from this by a grey level here and there.
pub fn resize_rgb(
    src: &[u8],
    sw: usize,
    sh: usize,
    dw: usize,
    dh: usize,
    filter: Resample,
) -> Vec<u8> {
    if (sw, sh) == (dw, dh) {
        return src.to_vec();
    }
    if filter == Resample::Nearest {
        return resize_nearest(src, sw, sh, dw, dh);
    }
    let vertical_first = dh < sh && (sh - dh) as i64 > 2 * (sw as i64 - dw as i64);
    if vertical_first {
        let tmp = resize_vertical(src, sw, sh, dh, filter);
        resize_horizontal(&tmp, sw, dh, dw, filter)
    } else {
        let tmp = resize_horizontal(src, sw, sh, dw, filter);
        resize_vertical(&tmp, dw, sh, dh, filter)
    }
}

/// Pillow's horizontal pass: `sw x h` -> `dw x h` (a copy when the width does not change).
fn resize_horizontal(src: &[u8], sw: usize, h: usize, dw: usize, filter: Resample) -> Vec<u8> {
    if dw == sw {
        return src.to_vec();
    }
    let half = 1i64 << (PRECISION_BITS - 1);
    let c = coefficients(sw, dw, filter);
    let mut out = vec![0u8; dw * h * 3];
    for y in 0..h {
        let row = &src[y * sw * 3..(y + 1) * sw * 3];
        for (xx, &(xmin, n)) in c.bounds.iter().enumerate() {
            let k = &c.weights[xx * c.ksize..xx * c.ksize + n];
            let mut ss = [half; 3];
            for (x, &w) in k.iter().enumerate() {
                let p = &row[(xmin + x) * 3..(xmin + x) * 3 + 3];
                for ch in 0..3 {
                    ss[ch] += i64::from(p[ch]) * i64::from(w);
                }
            }
            let o = (y * dw + xx) * 3;
            for ch in 0..3 {
                out[o + ch] = clip8(ss[ch]);
            }
        }
    }
    out
}

/// Pillow's vertical pass: `w x sh` -> `w x dh` (a copy when the height does not change).
fn resize_vertical(src: &[u8], w: usize, sh: usize, dh: usize, filter: Resample) -> Vec<u8> {
    if dh == sh {
        return src.to_vec();
    }
    let half = 1i64 << (PRECISION_BITS - 1);
    let c = coefficients(sh, dh, filter);
    let mut out = vec![0u8; w * dh * 3];
    for (yy, &(ymin, n)) in c.bounds.iter().enumerate() {
        let k = &c.weights[yy * c.ksize..yy * c.ksize + n];
        for x in 0..w * 3 {
            let mut ss = half;
            for (y, &wt) in k.iter().enumerate() {
                ss += i64::from(src[(ymin + y) * w * 3 + x]) * i64::from(wt);
            }
            out[yy * w * 3 + x] = clip8(ss);
        }
    }
    out
}

/// Pillow's nearest-neighbour resize (an affine scale sampling pixel centres): source index
/// `trunc((x + 0.5) * scale)`, with the position accumulated as Pillow accumulates it.
fn resize_nearest(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
    let table = |s: usize, d: usize| -> Vec<usize> {
        let a = s as f64 / d as f64;
        let mut pos = a * 0.5;
        (0..d)
            .map(|_| {
                let i = (pos as usize).min(s - 1);
                pos += a;
                i
            })
            .collect()
    };
    let xs = table(sw, dw);
    let ys = table(sh, dh);
    let mut out = Vec::with_capacity(dw * dh * 3);
    for &y in &ys {
        for &x in &xs {
            let i = (y * sw + x) * 3;
            out.extend_from_slice(&src[i..i + 3]);
        }
    }
    out
}

/// Where the resize step takes an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResizeTo {
    /// `size: {"height": h, "width": w}` (or a bare int, square): exactly that size.
    Exact { height: usize, width: usize },
    /// `size: {"shortest_edge": n}`: the shorter side to `n`, the aspect ratio kept.
    ShortestEdge(usize),
}

/// A model's preprocessing, read from `preprocessor_config.json`.
#[derive(Debug, Clone, PartialEq)]
pub struct Preprocessor {
    pub resize: Option<ResizeTo>,
    pub resample: Resample,
    /// Centre crop to `[height, width]` after the resize.
    pub crop: Option<[usize; 2]>,
    pub rescale_factor: Option<f64>,
    /// Per-channel `(mean, std)`.
    pub normalize: Option<([f32; 3], [f32; 3])>,
}

/// `preprocessor_config.json` as transformers writes it (image processors and the older feature
/// extractors). Absent keys take the defaults of the processor class the file names.
#[derive(Debug, Deserialize)]
struct PreprocessorFile {
    image_processor_type: Option<String>,
    feature_extractor_type: Option<String>,
    do_resize: Option<bool>,
    size: Option<SizeSpec>,
    resample: Option<u32>,
    do_center_crop: Option<bool>,
    crop_size: Option<SizeSpec>,
    do_rescale: Option<bool>,
    rescale_factor: Option<f64>,
    do_normalize: Option<bool>,
    image_mean: Option<Channels>,
    image_std: Option<Channels>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeSpec {
    Int(usize),
    Dict {
        height: Option<usize>,
        width: Option<usize>,
        shortest_edge: Option<usize>,
    },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum Channels {
    One(f64),
    Many(Vec<f64>),
}

const IMAGENET_STANDARD: [f32; 3] = [0.5, 0.5, 0.5];
const OPENAI_CLIP_MEAN: [f32; 3] = [0.481_454_66, 0.457_827_5, 0.408_210_73];
const OPENAI_CLIP_STD: [f32; 3] = [0.268_629_54, 0.261_302_6, 0.275_777_1];

/// The class defaults transformers applies to keys a file leaves out.
struct ClassDefaults {
    size: ResizeTo,
    /// transformers' `default_to_square`: whether a bare int `size` means a square of that side
    /// (else the shortest edge, the aspect ratio kept).
    default_to_square: bool,
    resample: Resample,
    crop: Option<[usize; 2]>,
    mean: [f32; 3],
    std: [f32; 3],
}

fn class_defaults(class: &str) -> ClassDefaults {
    if class.starts_with("CLIP") {
        ClassDefaults {
            size: ResizeTo::ShortestEdge(224),
            default_to_square: false,
            resample: Resample::Bicubic,
            crop: Some([224, 224]),
            mean: OPENAI_CLIP_MEAN,
            std: OPENAI_CLIP_STD,
        }
    } else if class.starts_with("Siglip") {
        // `SiglipImageProcessor` and its Pil variant: no crop, bicubic, mean/std 0.5, and
        // `default_to_square = False`, so that `size: 384` is a shortest edge (transformers 5).
        ClassDefaults {
            size: ResizeTo::Exact {
                height: 224,
                width: 224,
            },
            default_to_square: false,
            resample: Resample::Bicubic,
            crop: None,
            mean: IMAGENET_STANDARD,
            std: IMAGENET_STANDARD,
        }
    } else {
        if !class.starts_with("ViT") && !class.is_empty() {
            tracing::warn!(
                class,
                "unknown image processor class: keys missing from preprocessor_config.json take ViT's defaults"
            );
        }
        ClassDefaults {
            size: ResizeTo::Exact {
                height: 224,
                width: 224,
            },
            default_to_square: true,
            resample: Resample::Bilinear,
            crop: None,
            mean: IMAGENET_STANDARD,
            std: IMAGENET_STANDARD,
        }
    }
}

impl Preprocessor {
    /// Parses the text of a `preprocessor_config.json`; `path` is for messages.
    pub fn from_json(text: &str, path: &str) -> Result<Preprocessor, ModelError> {
        let format = |reason: String| ModelError::Format {
            path: path.to_string(),
            reason,
        };
        let file: PreprocessorFile = serde_json::from_str(text)
            .map_err(|e| format(format!("not a preprocessor config: {e}")))?;
        let class = file
            .image_processor_type
            .as_deref()
            .or(file.feature_extractor_type.as_deref())
            .unwrap_or("");
        let defaults = class_defaults(class);

        let resize = if file.do_resize.unwrap_or(true) {
            Some(match file.size {
                None => defaults.size,
                Some(SizeSpec::Int(n)) if !defaults.default_to_square => ResizeTo::ShortestEdge(n),
                Some(SizeSpec::Int(n)) => ResizeTo::Exact {
                    height: n,
                    width: n,
                },
                Some(SizeSpec::Dict {
                    height: Some(height),
                    width: Some(width),
                    ..
                }) => ResizeTo::Exact { height, width },
                Some(SizeSpec::Dict {
                    shortest_edge: Some(n),
                    ..
                }) => ResizeTo::ShortestEdge(n),
                Some(other) => {
                    return Err(format(format!(
                        "size {other:?}: expected an int, {{height, width}} or {{shortest_edge}}"
                    )));
                }
            })
        } else {
            None
        };
        let resample = match file.resample {
            None => defaults.resample,
            Some(code) => Resample::from_code(code).ok_or_else(|| {
                format(format!(
                    "resample {code} is not a Pillow filter (0 nearest, 1 lanczos, 2 bilinear, 3 bicubic, 4 box, 5 hamming)"
                ))
            })?,
        };
        let crop = if file.do_center_crop.unwrap_or(defaults.crop.is_some()) {
            Some(match file.crop_size {
                None => defaults.crop.unwrap_or([224, 224]),
                Some(SizeSpec::Int(n)) => [n, n],
                Some(SizeSpec::Dict {
                    height: Some(h),
                    width: Some(w),
                    ..
                }) => [h, w],
                Some(other) => {
                    return Err(format(format!(
                        "crop_size {other:?}: expected an int or {{height, width}}"
                    )));
                }
            })
        } else {
            None
        };
        let rescale_factor = if file.do_rescale.unwrap_or(true) {
            Some(file.rescale_factor.unwrap_or(1.0 / 255.0))
        } else {
            None
        };
        let channels = |c: Option<Channels>, default: [f32; 3], key: &str| match c {
            None => Ok(default),
            Some(Channels::One(v)) => Ok([v as f32; 3]),
            Some(Channels::Many(v)) if v.len() == 3 => Ok([v[0] as f32, v[1] as f32, v[2] as f32]),
            Some(Channels::Many(v)) if v.len() == 1 => Ok([v[0] as f32; 3]),
            Some(Channels::Many(v)) => Err(format(format!(
                "{key} has {} values, expected 3 (RGB)",
                v.len()
            ))),
        };
        let normalize = if file.do_normalize.unwrap_or(true) {
            let mean = channels(file.image_mean, defaults.mean, "image_mean")?;
            let std = channels(file.image_std, defaults.std, "image_std")?;
            if std.iter().any(|s| *s == 0.0 || !s.is_finite()) {
                return Err(format(format!(
                    "image_std {std:?} has a zero or non-finite value"
                )));
            }
            Some((mean, std))
        } else {
            None
        };
        Ok(Preprocessor {
            resize,
            resample,
            crop,
            rescale_factor,
            normalize,
        })
    }

    /// The `[height, width]` this preprocessing always produces, when it does not depend on the
    /// input (an exact resize or a crop).
    pub fn fixed_output(&self) -> Option<[usize; 2]> {
        if let Some(c) = self.crop {
            return Some(c);
        }
        match self.resize {
            Some(ResizeTo::Exact { height, width }) => Some([height, width]),
            _ => None,
        }
    }

    /// One image -> CHW `f32` of `[3, height, width]`, plus that size.
    pub fn apply(&self, image: &RgbView<'_>) -> (Vec<f32>, [usize; 2]) {
        let (mut w, mut h) = (image.width as usize, image.height as usize);
        let mut pixels = std::borrow::Cow::Borrowed(image.pixels);
        if let Some(to) = self.resize {
            let [nh, nw] = match to {
                ResizeTo::Exact { height, width } => [height, width],
                ResizeTo::ShortestEdge(n) => shortest_edge_size(h, w, n),
            };
            pixels = std::borrow::Cow::Owned(resize_rgb(&pixels, w, h, nw, nh, self.resample));
            (w, h) = (nw, nh);
        }
        if let Some([ch, cw]) = self.crop {
            pixels = std::borrow::Cow::Owned(center_crop(&pixels, w, h, cw, ch));
            (w, h) = (cw, ch);
        }
        let n = w * h;
        let mut out = vec![0f32; 3 * n];
        for (i, px) in pixels.chunks_exact(3).enumerate() {
            for c in 0..3 {
                out[c * n + i] = self.value(px[c], c);
            }
        }
        (out, [h, w])
    }

    /// One 8-bit channel value as transformers computes it: `(v * factor)` in f64 cast to f32,
    /// then `(x - mean) / std` in f32.
    pub fn value(&self, v: u8, channel: usize) -> f32 {
        let x = match self.rescale_factor {
            Some(f) => (f64::from(v) * f) as f32,
            None => f32::from(v),
        };
        match self.normalize {
            Some((mean, std)) => (x - mean[channel]) / std[channel],
            None => x,
        }
    }
}

/// transformers' `get_resize_output_image_size(default_to_square=False)`: `[height, width]`.
fn shortest_edge_size(h: usize, w: usize, n: usize) -> [usize; 2] {
    if h <= w {
        [n, n * w / h]
    } else {
        [n * h / w, n]
    }
}

/// transformers' numpy `center_crop`, zero-padding an image smaller than the crop as it does.
fn center_crop(src: &[u8], w: usize, h: usize, cw: usize, ch: usize) -> Vec<u8> {
    let mut out = vec![0u8; cw * ch * 3];
    // Offsets of the crop window in the (conceptually padded) source; may be negative.
    let top = (h as i64 - ch as i64).div_euclid(2);
    let left = (w as i64 - cw as i64).div_euclid(2);
    for y in 0..ch {
        let sy = y as i64 + top;
        if sy < 0 || sy >= h as i64 {
            continue;
        }
        for x in 0..cw {
            let sx = x as i64 + left;
            if sx < 0 || sx >= w as i64 {
                continue;
            }
            let s = (sy as usize * w + sx as usize) * 3;
            let d = (y * cw + x) * 3;
            out[d..d + 3].copy_from_slice(&src[s..s + 3]);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vit_and_old_feature_extractor_configs() {
        let vit = r#"{"do_normalize": true, "do_rescale": true, "do_resize": true,
            "image_mean": [0.5, 0.5, 0.5], "image_processor_type": "ViTImageProcessor",
            "image_std": [0.5, 0.5, 0.5], "resample": 2, "rescale_factor": 0.00392156862745098,
            "size": {"height": 224, "width": 224}}"#;
        let p = Preprocessor::from_json(vit, "p.json").unwrap();
        assert_eq!(p.fixed_output(), Some([224, 224]));
        assert_eq!(p.resample, Resample::Bilinear);
        let old = r#"{"do_normalize": true, "do_resize": true, "feature_extractor_type": "ViTFeatureExtractor",
            "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5], "resample": 2, "size": 224}"#;
        let q = Preprocessor::from_json(old, "p.json").unwrap();
        assert_eq!(p, q);
        let clip = r#"{"image_processor_type": "CLIPImageProcessor", "size": {"shortest_edge": 224},
            "crop_size": {"height": 224, "width": 224}, "do_center_crop": true}"#;
        let c = Preprocessor::from_json(clip, "p.json").unwrap();
        assert_eq!(c.resize, Some(ResizeTo::ShortestEdge(224)));
        assert_eq!(c.crop, Some([224, 224]));
        assert_eq!(c.resample, Resample::Bicubic);
    }

    #[test]
    fn reads_siglip_configs() {
        // As `SiglipImageProcessorPil(size=...).save_pretrained` writes it (transformers 5.23).
        let siglip = r#"{"do_convert_rgb": true, "do_normalize": true, "do_rescale": true,
            "do_resize": true, "image_mean": [0.5, 0.5, 0.5],
            "image_processor_type": "SiglipImageProcessor", "image_std": [0.5, 0.5, 0.5],
            "resample": 3, "rescale_factor": 0.00392156862745098,
            "size": {"height": 384, "width": 384}}"#;
        let p = Preprocessor::from_json(siglip, "p.json").unwrap();
        assert_eq!(p.fixed_output(), Some([384, 384]));
        assert_eq!(p.crop, None);
        assert_eq!(p.resample, Resample::Bicubic);
        assert_eq!(p.normalize, Some(([0.5; 3], [0.5; 3])));
        // Missing keys take SigLIP's defaults, not ViT's.
        let bare = r#"{"image_processor_type": "SiglipImageProcessorPil"}"#;
        let q = Preprocessor::from_json(bare, "p.json").unwrap();
        assert_eq!(q.fixed_output(), Some([224, 224]));
        assert_eq!(q.resample, Resample::Bicubic);
        // `default_to_square = False`: a bare int is the shortest edge.
        let int = r#"{"image_processor_type": "SiglipImageProcessor", "size": 384}"#;
        let r = Preprocessor::from_json(int, "p.json").unwrap();
        assert_eq!(r.resize, Some(ResizeTo::ShortestEdge(384)));
    }

    #[test]
    fn bad_values_are_named() {
        let e = Preprocessor::from_json(r#"{"resample": 9}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("resample 9"), "{e}");
        let e = Preprocessor::from_json(r#"{"image_mean": [0.5, 0.5]}"#, "p.json").unwrap_err();
        assert!(e.to_string().contains("image_mean"), "{e}");
        let e = Preprocessor::from_json("[]", "p.json").unwrap_err();
        assert!(e.to_string().starts_with("p.json"), "{e}");
    }

    #[test]
    fn same_size_resize_is_a_copy_and_constant_images_stay_constant() {
        let src: Vec<u8> = (0..4 * 3 * 3).map(|i| i as u8).collect();
        assert_eq!(resize_rgb(&src, 4, 3, 4, 3, Resample::Bicubic), src);
        let grey = vec![77u8; 10 * 7 * 3];
        for f in [
            Resample::Bilinear,
            Resample::Bicubic,
            Resample::Lanczos,
            Resample::Box,
            Resample::Hamming,
            Resample::Nearest,
        ] {
            let out = resize_rgb(&grey, 10, 7, 4, 9, f);
            assert!(out.iter().all(|&v| v == 77), "{f:?}");
        }
    }

    #[test]
    fn crop_centres_and_pads() {
        // 4x2 image, crop 2x2 keeps columns 1..3.
        let src: Vec<u8> = (0..8).flat_map(|i| [i as u8; 3]).collect();
        let out = center_crop(&src, 4, 2, 2, 2);
        let firsts: Vec<u8> = out.chunks(3).map(|p| p[0]).collect();
        assert_eq!(firsts, vec![1, 2, 5, 6]);
        assert_eq!(shortest_edge_size(100, 200, 50), [50, 100]);
    }
}
