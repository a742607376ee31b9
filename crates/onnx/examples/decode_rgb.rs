//! Decodes named JPEGs from a UTKFace .tar.gz with the project's decoder (the `image` crate) and
//! writes their raw 8-bit RGB to a folder, one `<name>.rgb` each, printing `name width height`.
//!
//! For `tests/fixtures/make_onnx_fixtures.py`: JPEG decoders differ by a few levels (Pillow's
//! libjpeg-turbo and zune-jpeg disagree on about a quarter of the values of 4:2:0 files), so the
//! script feeds onnxruntime the pixels that the Rust tests will see, not Pillow's.
//!
//! `cargo run --release -p gc-onnx --example decode_rgb -- ARCHIVE OUT_DIR NAME...`

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [archive, out, names @ ..] = args.as_slice() else {
        return Err("usage: decode_rgb ARCHIVE OUT_DIR NAME...".into());
    };
    let found = common::read_archive(Path::new(archive), |n| names.iter().any(|x| x == n));
    for name in names {
        let (_, bytes) = found
            .iter()
            .find(|(n, _)| n == name)
            .ok_or_else(|| format!("{archive}: no {name}"))?;
        let img = image::load_from_memory(bytes)
            .map_err(|e| format!("{name}: {e}"))?
            .to_rgb8();
        std::fs::write(Path::new(out).join(format!("{name}.rgb")), img.as_raw())?;
        println!("{name} {} {}", img.width(), img.height());
    }
    Ok(())
}
