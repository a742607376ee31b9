//! Image decoding: a file or a byte buffer to an 8-bit RGB image, whatever its format, colour model,
//! bit depth or EXIF orientation, refusing images whose declared size is too large before any pixel
//! buffer is allocated.
//!
//! The format is guessed from the content, never from the extension: datasets hold PNGs named `.jpg`.
//! JPEG goes straight to `zune-jpeg` (the decoder `image` itself wraps) because we want it strict:
//! `image` runs it in lenient mode, which turns a truncated file into an image padded with grey
//! instead of an error, and it parses the headers up to three times per image. Every other format goes
//! through `image`.

use std::io::{self, Cursor, Read};
use std::path::{Path, PathBuf};

use image::error::{ImageError, LimitErrorKind};
use image::metadata::Orientation;
use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_jpeg::errors::DecodeErrors;

/// Upper bounds checked against the dimensions an image declares in its header, before decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted width in pixels.
    pub max_width: u32,
    /// Largest accepted height in pixels.
    pub max_height: u32,
    /// Largest accepted decoded size in bytes, counted at the image's own bit depth and channels.
    pub max_alloc: u64,
    /// Largest accepted width x height.
    pub max_pixels: u64,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_width: 16_384,
            max_height: 16_384,
            max_alloc: 512 << 20,
            max_pixels: 16_384 * 16_384,
        }
    }
}

/// Why an image could not be decoded. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// The file does not exist.
    #[error("{}: no such file", path.display())]
    NotFound { path: PathBuf },
    /// The file exists but may not be read.
    #[error("{}: permission denied", path.display())]
    PermissionDenied { path: PathBuf },
    /// The path is a directory.
    #[error("{}: is a directory, not an image", path.display())]
    IsADirectory { path: PathBuf },
    /// Any other failure to read the file.
    #[error("{}: cannot read: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
    /// The file has no bytes.
    #[error("{}: empty file", path.display())]
    Empty { path: PathBuf },
    /// The file is larger than any image within the limits could be encoded in.
    #[error("{}: a file of {size} bytes, larger than any image within the limits ({max} bytes)", path.display())]
    FileTooLarge { path: PathBuf, size: u64, max: u64 },
    /// The content is not an image in a format we decode (JPEG, PNG, WebP, BMP, GIF, TIFF).
    #[error("{}: not a JPEG, PNG, WebP, BMP, GIF or TIFF image", path.display())]
    UnknownFormat { path: PathBuf },
    /// The format is recognised, but this image uses a variant of it that is not supported.
    #[error("{}: unsupported {format} image: {reason}", path.display())]
    Unsupported {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// The data is truncated or corrupt.
    #[error("{}: truncated or corrupt {format} data: {reason}", path.display())]
    Corrupt {
        path: PathBuf,
        format: &'static str,
        reason: String,
    },
    /// The declared dimensions exceed the configured limits.
    #[error("{}: declared size {width}x{height} exceeds the limit of {max_width}x{max_height}, {max_pixels} pixels and {max_alloc} bytes", path.display())]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        max_width: u32,
        max_height: u32,
        max_pixels: u64,
        max_alloc: u64,
    },
}

impl DecodeError {
    /// The file the error is about.
    pub fn path(&self) -> &Path {
        match self {
            DecodeError::NotFound { path }
            | DecodeError::PermissionDenied { path }
            | DecodeError::IsADirectory { path }
            | DecodeError::Io { path, .. }
            | DecodeError::Empty { path }
            | DecodeError::FileTooLarge { path, .. }
            | DecodeError::UnknownFormat { path }
            | DecodeError::Unsupported { path, .. }
            | DecodeError::Corrupt { path, .. }
            | DecodeError::TooLarge { path, .. } => path,
        }
    }
}

/// Reads and decodes the image at `path` with the default limits.
pub fn decode_rgb(path: impl AsRef<Path>) -> Result<RgbImage, DecodeError> {
    decode_rgb_with_limits(path, &DecodeLimits::default())
}

/// Reads and decodes the image at `path`, refusing images larger than `limits`.
pub fn decode_rgb_with_limits(
    path: impl AsRef<Path>,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    let path = path.as_ref();
    let bytes = read_image_file(path, limits)?;
    decode_rgb_bytes_with_limits(&bytes, path, limits)
}

/// Decodes an encoded image held in memory with the default limits; `name` is only used in errors.
pub fn decode_rgb_bytes(bytes: &[u8], name: impl AsRef<Path>) -> Result<RgbImage, DecodeError> {
    decode_rgb_bytes_with_limits(bytes, name, &DecodeLimits::default())
}

/// Decodes an encoded image held in memory, refusing images larger than `limits`; `name` is only
/// used in errors.
pub fn decode_rgb_bytes_with_limits(
    bytes: &[u8],
    name: impl AsRef<Path>,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    let path = name.as_ref();
    if bytes.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    match supported_format(bytes) {
        Some(ImageFormat::Jpeg) => decode_jpeg(bytes, path, limits),
        Some(format) => decode_with_image(bytes, format, path, limits),
        None => Err(DecodeError::UnknownFormat {
            path: path.to_path_buf(),
        }),
    }
}

/// The format of an image file from its first bytes (16 are enough), if it is one this build
/// decodes: JPEG, PNG, WebP, BMP, GIF or TIFF.
pub fn supported_format(head: &[u8]) -> Option<ImageFormat> {
    match image::guess_format(head).ok()? {
        f @ (ImageFormat::Jpeg
        | ImageFormat::Png
        | ImageFormat::WebP
        | ImageFormat::Bmp
        | ImageFormat::Gif
        | ImageFormat::Tiff) => Some(f),
        // `guess_format` also knows formats whose decoders this build leaves out (AVIF, ICO, ...).
        _ => None,
    }
}

impl DecodeLimits {
    /// The largest file read: twice `max_alloc`. No format we decode stores an image within the
    /// limits in more (uncompressed BMP and TIFF take about `max_alloc`; metadata adds megabytes).
    pub fn max_file_bytes(&self) -> u64 {
        self.max_alloc.saturating_mul(2)
    }
}

/// Reads a whole image file, mapping the usual failures to their own error kinds. The first bytes
/// are read alone and the rest only if they name an image format, and never more than
/// `limits.max_file_bytes()`: a video or disk image named `.jpg`, or a device such as
/// `/dev/zero`, would otherwise be read into memory whole before being refused.
///
/// For callers that need the encoded bytes again after decoding them (a named pipe or a photo
/// replaced meanwhile cannot be read a second time as it was).
pub fn read_image_file(path: &Path, limits: &DecodeLimits) -> Result<Vec<u8>, DecodeError> {
    let io = |e| io_error(path, e);
    let mut file = std::fs::File::open(path).map_err(io)?;
    let mut bytes = Vec::with_capacity(16);
    (&mut file).take(16).read_to_end(&mut bytes).map_err(io)?;
    if bytes.is_empty() {
        return Err(DecodeError::Empty {
            path: path.to_path_buf(),
        });
    }
    if supported_format(&bytes).is_none() {
        return Err(DecodeError::UnknownFormat {
            path: path.to_path_buf(),
        });
    }
    let max = limits.max_file_bytes();
    let too_large = |size| DecodeError::FileTooLarge {
        path: path.to_path_buf(),
        size,
        max,
    };
    // The size on disk refuses a large file at once; the capped read covers files that grow and
    // special files whose size says nothing.
    if let Ok(meta) = file.metadata() {
        if meta.len() > max {
            return Err(too_large(meta.len()));
        }
        // As std::fs::read does: one allocation for the whole file, not doublings.
        bytes.reserve(meta.len().saturating_sub(bytes.len() as u64) as usize);
    }
    file.take(max + 1 - bytes.len() as u64)
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > max {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

fn io_error(path: &Path, e: io::Error) -> DecodeError {
    let path = path.to_path_buf();
    match e.kind() {
        io::ErrorKind::NotFound => DecodeError::NotFound { path },
        io::ErrorKind::PermissionDenied => DecodeError::PermissionDenied { path },
        io::ErrorKind::IsADirectory => DecodeError::IsADirectory { path },
        // Some platforms report reading a directory as a generic error: look before blaming the data.
        _ if path.is_dir() => DecodeError::IsADirectory { path },
        _ => DecodeError::Io { path, source: e },
    }
}

fn check_limits(
    path: &Path,
    width: u32,
    height: u32,
    bytes_per_pixel: u64,
    limits: &DecodeLimits,
) -> Result<(), DecodeError> {
    let pixels = u64::from(width) * u64::from(height);
    let alloc = pixels * bytes_per_pixel;
    if width > limits.max_width
        || height > limits.max_height
        || pixels > limits.max_pixels
        || alloc > limits.max_alloc
    {
        return Err(DecodeError::TooLarge {
            path: path.to_path_buf(),
            width,
            height,
            max_width: limits.max_width,
            max_height: limits.max_height,
            max_pixels: limits.max_pixels,
            max_alloc: limits.max_alloc,
        });
    }
    Ok(())
}

fn decode_jpeg(bytes: &[u8], path: &Path, limits: &DecodeLimits) -> Result<RgbImage, DecodeError> {
    const FORMAT: &str = "JPEG";
    let corrupt = |e: DecodeErrors| match e {
        DecodeErrors::Unsupported(scheme) => DecodeError::Unsupported {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: format!("{scheme:?}"),
        },
        other => DecodeError::Corrupt {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: other.to_string(),
        },
    };
    // zune's own size limits are lifted (a JPEG cannot exceed 65535x65535) so that our check below
    // is the one that fires, with the declared dimensions in the message.
    let options = DecoderOptions::default()
        .set_strict_mode(true)
        .set_max_width(usize::from(u16::MAX))
        .set_max_height(usize::from(u16::MAX))
        .jpeg_set_out_colorspace(ColorSpace::RGB);
    let mut decoder = zune_jpeg::JpegDecoder::new_with_options(ZCursor::new(bytes), options);
    decoder.decode_headers().map_err(corrupt)?;
    let Some(info) = decoder.info() else {
        return Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: "no frame header".into(),
        });
    };
    let (width, height) = (u32::from(info.width), u32::from(info.height));
    // Three bytes per pixel is what we allocate; zune's intermediate planes are of the same order.
    check_limits(path, width, height, 3, limits)?;
    let orientation = decoder
        .exif()
        .and_then(|exif| Orientation::from_exif_chunk(exif));
    let pixels = decoder.decode().map_err(corrupt)?;
    let Some(image) = RgbImage::from_raw(width, height, pixels) else {
        return Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            format: FORMAT,
            reason: "decoded size does not match the declared dimensions".into(),
        });
    };
    Ok(match orientation {
        None | Some(Orientation::NoTransforms) => image,
        Some(orientation) => {
            let mut image = DynamicImage::ImageRgb8(image);
            image.apply_orientation(orientation);
            image.into_rgb8()
        }
    })
}

fn format_name(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::Png => "PNG",
        ImageFormat::WebP => "WebP",
        ImageFormat::Bmp => "BMP",
        ImageFormat::Gif => "GIF",
        ImageFormat::Tiff => "TIFF",
        ImageFormat::Jpeg => "JPEG",
        _ => "image",
    }
}

fn decode_with_image(
    bytes: &[u8],
    format: ImageFormat,
    path: &Path,
    limits: &DecodeLimits,
) -> Result<RgbImage, DecodeError> {
    let name = format_name(format);
    // `dims` are the declared dimensions once the header is read, for a limit hit while decoding.
    let map = |dims: (u32, u32)| {
        move |e: ImageError| match e {
            ImageError::Limits(ref l)
                if matches!(
                    l.kind(),
                    LimitErrorKind::DimensionError | LimitErrorKind::InsufficientMemory
                ) =>
            {
                DecodeError::TooLarge {
                    path: path.to_path_buf(),
                    width: dims.0,
                    height: dims.1,
                    max_width: limits.max_width,
                    max_height: limits.max_height,
                    max_pixels: limits.max_pixels,
                    max_alloc: limits.max_alloc,
                }
            }
            ImageError::Unsupported(u) => DecodeError::Unsupported {
                path: path.to_path_buf(),
                format: name,
                reason: u.to_string(),
            },
            ImageError::IoError(io) if io.kind() == io::ErrorKind::UnexpectedEof => {
                DecodeError::Corrupt {
                    path: path.to_path_buf(),
                    format: name,
                    reason: "unexpected end of data".into(),
                }
            }
            other => DecodeError::Corrupt {
                path: path.to_path_buf(),
                format: name,
                reason: other.to_string(),
            },
        }
    };
    let mut reader = ImageReader::with_format(Cursor::new(bytes), format);
    // Header first, without limits, so that a refusal can report the declared dimensions; the
    // limits then go to the decoder, which checks them again for its own allocations.
    reader.no_limits();
    // Limits are off here, so no limit error can come out with unknown dimensions.
    let mut decoder = reader.into_decoder().map_err(map((0, 0)))?;
    let (width, height) = decoder.dimensions();
    let bytes_per_pixel = u64::from(decoder.color_type().bytes_per_pixel());
    check_limits(path, width, height, bytes_per_pixel, limits)?;
    let mut image_limits = image::Limits::default();
    image_limits.max_image_width = Some(limits.max_width);
    image_limits.max_image_height = Some(limits.max_height);
    image_limits.max_alloc = Some(limits.max_alloc);
    decoder
        .set_limits(image_limits)
        .map_err(map((width, height)))?;
    let orientation = decoder.orientation().unwrap_or(Orientation::NoTransforms);
    let mut image = DynamicImage::from_decoder(decoder).map_err(map((width, height)))?;
    image.apply_orientation(orientation);
    // A GIF whose screen is 0x0 decodes to no pixels even when its frame has some; refused here,
    // where the file is named, rather than by every model with a message about buffer sizes.
    if image.width() == 0 || image.height() == 0 {
        return Err(DecodeError::Corrupt {
            path: path.to_path_buf(),
            format: name,
            reason: format!("an image of {}x{} pixels", image.width(), image.height()),
        });
    }
    // Alpha is dropped, not composited: faces in datasets are opaque, and Keras does the same.
    Ok(image.into_rgb8())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_and_unknown_bytes_are_distinct_errors() {
        assert!(matches!(
            decode_rgb_bytes(b"", "a.jpg"),
            Err(DecodeError::Empty { .. })
        ));
        assert!(matches!(
            decode_rgb_bytes(b"hello, not an image", "a.jpg"),
            Err(DecodeError::UnknownFormat { .. })
        ));
    }

    #[test]
    fn missing_file_and_directory_are_distinct_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.jpg");
        let err = decode_rgb(&missing).unwrap_err();
        assert!(matches!(err, DecodeError::NotFound { .. }), "{err}");
        assert_eq!(err.path(), missing);
        assert!(err.to_string().contains("nope.jpg"));
        assert!(matches!(
            decode_rgb(dir.path()),
            Err(DecodeError::IsADirectory { .. })
        ));
    }

    #[test]
    fn an_image_without_pixels_is_refused() {
        let mut gif = Vec::new();
        RgbImage::new(2, 2)
            .write_to(&mut Cursor::new(&mut gif), ImageFormat::Gif)
            .unwrap();
        // The logical screen (bytes 6-9, after "GIF89a") made 0x0; the 2x2 frame stays.
        gif[6..10].fill(0);
        match decode_rgb_bytes(&gif, "empty.gif") {
            Err(e @ DecodeError::Corrupt { .. }) => {
                assert!(e.to_string().contains("0x0 pixels"), "{e}")
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
    }

    #[test]
    fn too_large_is_reported_with_dimensions() {
        let limits = DecodeLimits {
            max_width: 10,
            max_height: 10,
            max_alloc: 1 << 20,
            max_pixels: 100,
        };
        let mut png = Vec::new();
        RgbImage::new(11, 4)
            .write_to(&mut Cursor::new(&mut png), ImageFormat::Png)
            .unwrap();
        match decode_rgb_bytes_with_limits(&png, "big.png", &limits) {
            Err(DecodeError::TooLarge {
                width: 11,
                height: 4,
                ..
            }) => {}
            other => panic!("expected TooLarge, got {other:?}"),
        }
        assert_eq!(
            decode_rgb_bytes(&png, "big.png").unwrap().dimensions(),
            (11, 4)
        );
    }
}
