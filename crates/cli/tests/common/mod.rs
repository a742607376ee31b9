//! What the binary's tests share: the binary, the files in ../shared, real UTKFace faces.
#![allow(dead_code)]

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub use gc_testdata::shared;

/// The binary, without a `GC_DETECTOR` the caller's shell may have exported.
pub fn bin() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_gender-classifier"));
    cmd.env_remove("GC_DETECTOR");
    cmd
}

/// A small, fast ONNX gender model (dlib/Cydral, CC0), chosen by its preset from the file name.
pub fn dlib_model() -> String {
    shared("models/gender/dlib-cydral-gender-v1.opset13.onnx")
        .display()
        .to_string()
}

/// Writes `n` adult faces from the 200px crop_part1 archive into `dir`, returning their paths.
pub fn real_faces(dir: &Path, n: usize) -> Vec<PathBuf> {
    let file = std::fs::File::open(shared("data/utkface-crop_part1-200px.tar.gz")).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(file));
    let mut out = Vec::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let name = entry
            .path()
            .unwrap()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let age: u32 = name.split('_').next().unwrap().parse().unwrap_or(0);
        if !(20..=60).contains(&age) || name.matches('_').count() != 3 {
            continue;
        }
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        let path = dir.join(&name);
        std::fs::write(&path, bytes).unwrap();
        out.push(path);
        if out.len() == n {
            break;
        }
    }
    out
}

/// `n` real faces written into `dir/faces/` and prepared by the binary into `dir/prepared/`
/// (default seed and split), which is returned.
pub fn prepared_faces(dir: &Path, n: usize) -> PathBuf {
    let faces = dir.join("faces");
    std::fs::create_dir_all(&faces).unwrap();
    real_faces(&faces, n);
    let prepared = dir.join("prepared");
    let (code, _, stderr) = run(bin().arg("prepare").arg(&faces).arg("--out").arg(&prepared));
    assert_eq!(code, 0, "{stderr}");
    prepared
}

pub fn run(cmd: &mut Command) -> (i32, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().unwrap();
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

/// Inserts an APP1 Exif segment with one Orientation entry right after the JPEG's SOI marker.
pub fn with_exif_orientation(jpeg: &[u8], orientation: u16) -> Vec<u8> {
    let mut tiff = Vec::new();
    tiff.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // big-endian TIFF header, IFD at 8
    tiff.extend_from_slice(&1u16.to_be_bytes()); // one entry
    tiff.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    tiff.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    tiff.extend_from_slice(&1u32.to_be_bytes()); // count
    tiff.extend_from_slice(&orientation.to_be_bytes());
    tiff.extend_from_slice(&[0, 0]);
    tiff.extend_from_slice(&0u32.to_be_bytes()); // no next IFD
    let mut app1 = b"Exif\0\0".to_vec();
    app1.extend_from_slice(&tiff);
    let mut out = jpeg[..2].to_vec();
    out.extend_from_slice(&[0xff, 0xe1]);
    out.extend_from_slice(&((app1.len() + 2) as u16).to_be_bytes());
    out.extend_from_slice(&app1);
    out.extend_from_slice(&jpeg[2..]);
    out
}
