//! Helpers shared by gc-hf's integration tests: the committed fixtures (tiny models written by
//! `fixtures/make_tiny_vit.py` and what transformers computed with them), the synthetic images both
//! sides generate, and UTKFace faces read from the shared archive at test time (never copied into
//! the repository).

#![allow(dead_code)]

use flate2::read::GzDecoder;
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

pub const MODELS: [&str; 2] = ["tiny-vit-female-male", "tiny-vit-man-woman"];

/// `fixtures/expected.json`.
pub fn expected() -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join("expected.json")).expect("expected.json");
    serde_json::from_str(&text).expect("expected.json is JSON")
}

pub fn floats(v: &serde_json::Value) -> Vec<f32> {
    v.as_array()
        .expect("array")
        .iter()
        .map(|x| x.as_f64().expect("number") as f32)
        .collect()
}

/// The synthetic RGB image of `make_tiny_vit.py`'s `synthetic()`, same integer arithmetic.
pub fn synthetic(w: usize, h: usize, seed: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            for c in 0..3 {
                let v = (x * x * (3 + seed)
                    + y * (5 + 2 * seed)
                    + x * y
                    + c * 85
                    + ((x * 7 + y * 13 + c) % 11) * 9)
                    % 256;
                out.push(v as u8);
            }
        }
    }
    out
}

/// Nearest neighbour with source index floor(dst * src / dst_size), as the fixture script does.
pub fn nearest(w: usize, h: usize, px: &[u8], dw: usize, dh: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(dw * dh * 3);
    for y in 0..dh {
        let sy = y * h / dh;
        for x in 0..dw {
            let sx = x * w / dw;
            let i = (sy * w + sx) * 3;
            out.extend_from_slice(&px[i..i + 3]);
        }
    }
    out
}

/// `shared/data/NAME` beside the repository.
pub fn archive(name: &str) -> PathBuf {
    gc_testdata::shared(&format!("data/{name}"))
}

/// The JPEG bytes of the named files of a .tar.gz, in the order of `names`.
pub fn read_archive(archive: &Path, names: &[String]) -> Vec<(String, Vec<u8>)> {
    let wanted: HashSet<&str> = names.iter().map(String::as_str).collect();
    let file = std::fs::File::open(archive).expect("open archive");
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut found = Vec::new();
    for entry in tar.entries().expect("read archive") {
        let mut entry = entry.expect("archive entry");
        let path = entry.path().expect("entry path").into_owned();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if wanted.contains(name.as_str()) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            found.push((name, bytes));
        }
    }
    names
        .iter()
        .map(|n| {
            found
                .iter()
                .find(|(f, _)| f == n)
                .cloned()
                .unwrap_or_else(|| panic!("{n} not in {}", archive.display()))
        })
        .collect()
}

/// Every file of a .tar.gz whose base name `want` accepts, as (name, bytes), up to `limit`.
pub fn read_archive_where(
    archive: &Path,
    limit: usize,
    mut want: impl FnMut(&str) -> bool,
) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(archive).expect("open archive");
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in tar.entries().expect("read archive") {
        let mut entry = entry.expect("archive entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("entry path").into_owned();
        let Some(name) = path.file_name().map(|n| n.to_string_lossy().into_owned()) else {
            continue;
        };
        if want(&name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            out.push((name, bytes));
            if out.len() == limit {
                break;
            }
        }
    }
    out
}

/// 8-bit RGB pixels of a JPEG: (width, height, pixels).
pub fn decode_rgb(bytes: &[u8]) -> (usize, usize, Vec<u8>) {
    let img = image::load_from_memory(bytes)
        .expect("decode JPEG")
        .to_rgb8();
    (img.width() as usize, img.height() as usize, img.into_raw())
}

/// Copies a fixture model into a fresh temporary directory, for tests that break it.
pub fn copy_model(name: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    for entry in std::fs::read_dir(model_dir(name)).expect("fixture dir") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dir.path().join(entry.file_name())).expect("copy fixture");
    }
    dir
}
