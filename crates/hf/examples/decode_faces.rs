//! Decodes named JPEGs of a .tar.gz with this project's decoder (the `image` crate) and writes
//! their 8-bit RGB pixels as `OUT/NAME.WIDTHxHEIGHT.rgb`, for `tests/fixtures/make_tiny_*.py`:
//! JPEG decoders are not bit-exact (Pillow's libjpeg-turbo and zune-jpeg differ by a level here and
//! there), and the parity fixture must start from the pixels the Rust test will decode.
//!
//! `cargo run --release -p gc-hf --example decode_faces -- ARCHIVE OUT NAME...`

use std::collections::HashSet;
use std::io::Read;
use std::path::Path;

fn run() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [archive, out, names @ ..] = args.as_slice() else {
        return Err("usage: decode_faces ARCHIVE OUT NAME...".into());
    };
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let file = std::fs::File::open(archive).map_err(|e| format!("{archive}: {e}"))?;
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut done = 0;
    for entry in tar.entries().map_err(|e| format!("{archive}: {e}"))? {
        let mut entry = entry.map_err(|e| format!("{archive}: {e}"))?;
        let path = entry.path().map_err(|e| e.to_string())?.into_owned();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if !wanted.contains(name.as_str()) {
            continue;
        }
        let mut bytes = Vec::new();
        entry
            .read_to_end(&mut bytes)
            .map_err(|e| format!("{name}: {e}"))?;
        let img = image::load_from_memory(&bytes)
            .map_err(|e| format!("{name}: {e}"))?
            .to_rgb8();
        let dest = Path::new(out).join(format!("{name}.{}x{}.rgb", img.width(), img.height()));
        std::fs::write(&dest, img.as_raw()).map_err(|e| format!("{}: {e}", dest.display()))?;
        done += 1;
    }
    if done != wanted.len() {
        return Err(format!(
            "found {done} of {} names in {archive}",
            wanted.len()
        ));
    }
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("decode_faces: {e}");
        std::process::exit(1);
    }
}
