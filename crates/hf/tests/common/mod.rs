//! Helpers shared by gc-hf's integration tests: the committed fixtures (tiny models written by
//! `fixtures/make_tiny_vit.py` and `fixtures/make_tiny_siglip.py`, and what transformers computed
//! with them), the synthetic images both sides generate, UTKFace faces read from the shared archive
//! at test time (never copied into the repository), and copies of a fixture model to break.

#![allow(dead_code)]

use flate2::read::GzDecoder;
use gc_hf::HfClassifier;
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use sha2::{Digest, Sha256};
use std::collections::HashSet;
use std::io::Read;
use std::path::{Path, PathBuf};

pub fn fixtures() -> PathBuf {
    gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

pub fn model_dir(name: &str) -> PathBuf {
    fixtures().join(name)
}

pub const MODELS: [&str; 2] = ["tiny-vit-female-male", "tiny-vit-man-woman"];

/// The SigLIP fixtures, whose expected values are in `fixtures/expected-siglip.json`.
pub const SIGLIP_MODELS: [&str; 2] = ["tiny-siglip-female-male", "tiny-siglip-hub-labels"];

fn read_json(name: &str) -> serde_json::Value {
    let text = std::fs::read_to_string(fixtures().join(name)).expect(name);
    serde_json::from_str(&text).expect("fixture JSON")
}

/// `fixtures/expected.json`.
pub fn expected() -> serde_json::Value {
    read_json("expected.json")
}

/// `fixtures/expected-siglip.json`.
pub fn expected_siglip() -> serde_json::Value {
    read_json("expected-siglip.json")
}

/// Every fixture model with what transformers computed for it (its entry under `models` of
/// `expected.json` or `expected-siglip.json`).
pub fn fixture_models() -> Vec<(&'static str, serde_json::Value)> {
    let (vit, siglip) = (expected(), expected_siglip());
    let entry = |e: &serde_json::Value, m: &str| e["models"][m].clone();
    MODELS
        .iter()
        .map(|&m| (m, entry(&vit, m)))
        .chain(SIGLIP_MODELS.iter().map(|&m| (m, entry(&siglip, m))))
        .collect()
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The parity faces (`expected.json`'s `faces`), read from the UTKFace archive and decoded, each
/// checked to be the pixels the fixtures were made from: (name, width, height, RGB pixels).
pub fn parity_faces() -> Vec<(String, usize, usize, Vec<u8>)> {
    let expected = expected();
    let names: Vec<String> = expected["faces"]
        .as_array()
        .expect("faces")
        .iter()
        .map(|n| n.as_str().expect("name").to_string())
        .collect();
    let faces = read_archive(&archive("utkface-aligned-64px.tar.gz"), &names);
    faces
        .into_iter()
        .map(|(name, bytes)| {
            let (w, h, px) = decode_rgb(&bytes);
            // The same pixels as the generator had, or a logit difference would not be the network's.
            let want = expected["decoded_sha256"][&name].as_str().expect("sha");
            assert_eq!(
                hex(&Sha256::digest(&px)),
                want,
                "{name}: decoded pixels differ from those the fixture was made from (did the `image` crate's JPEG decoder change?): rerun tests/fixtures/make_tiny_vit.py"
            );
            (name, w, h, px)
        })
        .collect()
}

/// The network input of the parity test for `clf`: each face resized by [`nearest`], rescaled and
/// normalised by the model's preprocessor, as `[faces, channels, height, width]`.
pub fn parity_input(clf: &HfClassifier, faces: &[(String, usize, usize, Vec<u8>)]) -> Vec<f32> {
    let [c, h, w] = clf.input_shape();
    let pre = clf.preprocessor();
    let mut pixels = Vec::with_capacity(faces.len() * c * h * w);
    for (_, fw, fh, px) in faces {
        let small = nearest(*fw, *fh, px, w, h);
        let mut chw = vec![0f32; c * h * w];
        for (i, p) in small.chunks_exact(3).enumerate() {
            for ch in 0..3 {
                chw[ch * h * w + i] = pre.value(p[ch], ch);
            }
        }
        pixels.extend(chw);
    }
    pixels
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

type Owned = Vec<(String, Dtype, Vec<usize>, Vec<u8>)>;

/// Rewrites `model.safetensors` of `dir` after `edit` has changed its tensors.
pub fn rewrite_weights(dir: &Path, edit: impl FnOnce(&mut Owned)) {
    let path = dir.join("model.safetensors");
    let bytes = std::fs::read(&path).expect("read weights");
    let st = SafeTensors::deserialize(&bytes).expect("parse weights");
    let mut owned: Owned = st
        .tensors()
        .into_iter()
        .map(|(n, v)| (n, v.dtype(), v.shape().to_vec(), v.data().to_vec()))
        .collect();
    edit(&mut owned);
    let views: Vec<(String, TensorView<'_>)> = owned
        .iter()
        .map(|(n, d, s, b)| (n.clone(), TensorView::new(*d, s.clone(), b).expect("view")))
        .collect();
    let out = safetensors::serialize(views, None).expect("serialize");
    std::fs::write(&path, out).expect("write weights");
}

/// Rewrites `config.json` of `dir` after `edit` has changed it.
pub fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
    edit(&mut v);
    std::fs::write(&path, serde_json::to_string_pretty(&v).expect("json")).expect("write");
}

/// The message of the error that loading `dir` must give.
pub fn load_err(dir: &Path) -> String {
    match HfClassifier::from_dir(dir) {
        Ok(_) => panic!("{} loaded but should not", dir.display()),
        Err(e) => e.to_string(),
    }
}
