//! Helpers shared by the integration tests: where the shared models and data are, and reading
//! UTKFace faces from the shared archives at test time (no image is ever copied into the repo).

#![allow(dead_code)]

use flate2::read::GzDecoder;
use std::io::Read;
use std::path::{Path, PathBuf};

pub use gc_testdata::shared_dir;

pub fn model_path(rel: &str) -> PathBuf {
    let p = shared_dir().join("models").join(rel);
    assert!(p.is_file(), "missing model {}", p.display());
    p
}

pub fn archive_path(name: &str) -> PathBuf {
    let p = shared_dir().join("data").join(name);
    assert!(p.is_file(), "missing archive {}", p.display());
    p
}

/// The JPEG bytes of every file in a .tar.gz whose base name `want` accepts, in archive order.
pub fn read_archive(archive: &Path, mut want: impl FnMut(&str) -> bool) -> Vec<(String, Vec<u8>)> {
    let file = std::fs::File::open(archive).expect("open archive");
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in tar.entries().expect("read archive") {
        let mut entry = entry.expect("archive entry");
        if !entry.header().entry_type().is_file() {
            continue;
        }
        let path = entry.path().expect("entry path").into_owned();
        let name = match path.file_name() {
            Some(n) => n.to_string_lossy().into_owned(),
            None => continue,
        };
        if want(&name) {
            let mut bytes = Vec::new();
            entry.read_to_end(&mut bytes).expect("read entry");
            out.push((name, bytes));
        }
    }
    out
}

/// Every base name in an archive, in archive order.
pub fn list_archive(archive: &Path) -> Vec<String> {
    let file = std::fs::File::open(archive).expect("open archive");
    let mut tar = tar::Archive::new(GzDecoder::new(file));
    tar.entries()
        .expect("read archive")
        .filter_map(|e| {
            let e = e.expect("archive entry");
            if !e.header().entry_type().is_file() {
                return None;
            }
            let path = e.path().expect("entry path").into_owned();
            path.file_name().map(|n| n.to_string_lossy().into_owned())
        })
        .collect()
}

/// 8-bit RGB pixels of a JPEG: (width, height, pixels).
pub fn decode_rgb(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let img = image::load_from_memory(bytes)
        .expect("decode JPEG")
        .to_rgb8();
    (img.width(), img.height(), img.into_raw())
}

/// Age and UTKFace gender code (0 male, 1 female) from `age_gender_race_datetime.jpg.chip.jpg`.
pub fn utk_labels(name: &str) -> Option<(u32, u32)> {
    let mut parts = name.split('_');
    let age = parts.next()?.parse().ok()?;
    let gender = parts.next()?.parse().ok()?;
    Some((age, gender))
}

/// Nearest-neighbour sampling with source index floor(dst * src / dst_size): the parity fixture's
/// rule, which numpy reproduces exactly.
pub fn nearest(w: u32, h: u32, px: &[u8], dw: u32, dh: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity(dw as usize * dh as usize * 3);
    for y in 0..dh as usize {
        let sy = y * h as usize / dh as usize;
        for x in 0..dw as usize {
            let sx = x * w as usize / dw as usize;
            let i = (sy * w as usize + sx) * 3;
            out.extend_from_slice(&px[i..i + 3]);
        }
    }
    out
}

/// A decoded, labelled face.
pub struct Face {
    pub name: String,
    /// UTKFace code: 0 male, 1 female.
    pub gender: u32,
    pub width: u32,
    pub height: u32,
    pub pixels: Vec<u8>,
}

/// Adults (age >= 18, gender 0 or 1) of the 200px `crop_part1` archive in name order, every
/// `stride`-th from `phase`: phase 0 is the accuracy tests' sample, other phases are disjoint from
/// it (for choosing presets without tuning on the test sample).
pub fn adult_sample(stride: usize, phase: usize) -> Vec<Face> {
    let archive = archive_path("utkface-crop_part1-200px.tar.gz");
    let mut adults: Vec<String> = list_archive(&archive)
        .into_iter()
        .filter(|n| matches!(utk_labels(n), Some((age, g)) if age >= 18 && g <= 1))
        .collect();
    adults.sort();
    let chosen: std::collections::HashSet<String> =
        adults.into_iter().skip(phase).step_by(stride).collect();
    let mut faces: Vec<Face> = read_archive(&archive, |n| chosen.contains(n))
        .into_iter()
        .map(|(name, bytes)| {
            let (width, height, pixels) = decode_rgb(&bytes);
            let gender = utk_labels(&name).map(|l| l.1).unwrap_or(0);
            Face {
                name,
                gender,
                width,
                height,
                pixels,
            }
        })
        .collect();
    faces.sort_by(|a, b| a.name.cmp(&b.name));
    faces
}
