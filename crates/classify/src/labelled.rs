//! Labelled image sets for evaluation: a prepared dataset (its manifest gives age and race), or any folder
//! of class folders (`female/`, `male/`, or names like `women/`, `man/`), where UTKFace-style file names
//! still give age and race when they have them. And running a model over such a set.

use crate::inputs::{Input, has_image_extension};
use crate::run::{Outcome, classify_inputs};
use gc_core::{Classifier, Gender, Race, gender_of_label};
use gc_eval::Sample;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// One image with its labels.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelledImage {
    pub path: PathBuf,
    pub truth: Gender,
    pub age: Option<u32>,
    pub race: Option<Race>,
}

/// Why a labelled set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LabelledError {
    #[error("{}: {reason}", path.display())]
    Unreadable { path: PathBuf, reason: String },
    #[error("{}: no images found (expected manifest.csv, or class folders such as female/ and male/)", .0.display())]
    Empty(PathBuf),
}

/// Which images of a folder [`read_labelled`] takes for a split.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// A prepared dataset: the rows of `manifest.csv` in the split.
    Manifest,
    /// `DIR/SPLIT/`, as class folders.
    SplitFolder(PathBuf),
    /// No manifest and no folder named after the split: all of `DIR`, as class folders.
    WholeFolder,
}

impl Scope {
    pub fn of(dir: &Path, split: &str) -> Scope {
        if dir.join(gc_dataset::manifest::MANIFEST).is_file() {
            Scope::Manifest
        } else if dir.join(split).is_dir() {
            Scope::SplitFolder(dir.join(split))
        } else {
            Scope::WholeFolder
        }
    }
}

/// Reads `dir`: with `manifest.csv`, the rows of `split`; otherwise `dir/split/` if it exists, else `dir`
/// itself, as class folders ([`Scope`]).
pub fn read_labelled(dir: &Path, split: &str) -> Result<Vec<LabelledImage>, LabelledError> {
    let unreadable = |path: &Path, reason: String| LabelledError::Unreadable {
        path: path.to_path_buf(),
        reason,
    };
    gc_dataset::unfinished_prepare(dir).map_err(|reason| unreadable(dir, reason))?;
    let scope = Scope::of(dir, split);
    let from_manifest = scope == Scope::Manifest;
    let images: Vec<LabelledImage> = if from_manifest {
        let split: gc_dataset::Split = split.parse().map_err(|e: String| unreadable(dir, e))?;
        gc_dataset::read_manifest(dir)
            .map_err(|e| unreadable(dir, e.to_string()))?
            .into_iter()
            .filter(|r| r.split == split)
            .map(|r| LabelledImage {
                path: dir.join(&r.path),
                truth: r.gender,
                age: Some(r.age),
                race: Some(r.race),
            })
            .collect()
    } else {
        let root = match scope {
            Scope::SplitFolder(folder) => folder,
            _ => dir.to_path_buf(),
        };
        let mut classes: Vec<(PathBuf, Gender)> = Vec::new();
        let entries = std::fs::read_dir(&root).map_err(|e| unreadable(&root, e.to_string()))?;
        for e in entries.flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if !p.is_dir() || name.starts_with('.') {
                continue;
            }
            match gender_of_label(&name) {
                Some(g) => classes.push((p, g)),
                None => tracing::warn!(
                    "{}: folder name says neither female nor male; skipped",
                    p.display()
                ),
            }
        }
        classes.sort();
        let mut out = Vec::new();
        for (folder, truth) in classes {
            for e in walkdir::WalkDir::new(&folder)
                .sort_by_file_name()
                .into_iter()
                .flatten()
            {
                if e.file_type().is_file() && has_image_extension(e.path()) {
                    let name = e.file_name().to_string_lossy();
                    let label = gc_dataset::parse_utkface_name(&name).ok().map(|p| p.label);
                    out.push(LabelledImage {
                        path: e.into_path(),
                        truth,
                        age: label.map(|l| l.age),
                        race: label.map(|l| l.race),
                    });
                }
            }
        }
        out
    };
    if images.is_empty() {
        if from_manifest {
            return Err(unreadable(
                dir,
                format!("manifest.csv lists no {split} images (prepared with --split 1,0,0?)"),
            ));
        }
        return Err(LabelledError::Empty(dir.to_path_buf()));
    }
    Ok(images)
}

/// The predictions of one model over a labelled set.
pub struct ModelRun {
    pub samples: Vec<Sample>,
    /// Images that could not be classified, with why.
    pub skipped: Vec<(String, String)>,
    pub images_per_second: f64,
}

/// Runs `model` over `images`; `progress` is called once per image.
pub fn run_labelled(
    model: &dyn Classifier,
    images: &[LabelledImage],
    batch: usize,
    progress: &(dyn Fn() + Sync),
) -> ModelRun {
    let inputs: Vec<Input> = images
        .iter()
        .map(|i| Input {
            path: i.path.clone(),
            problem: None,
        })
        .collect();
    let mut outcomes: Vec<Outcome> = Vec::with_capacity(images.len());
    let start = Instant::now();
    classify_inputs(model, &inputs, batch, |o| {
        progress();
        outcomes.push(o);
    });
    let seconds = start.elapsed().as_secs_f64().max(1e-9);
    let mut samples = Vec::new();
    let mut skipped = Vec::new();
    for (img, o) in images.iter().zip(outcomes) {
        match o.result {
            Ok(p) => samples.push(Sample {
                id: img.path.display().to_string(),
                truth: img.truth,
                p_female: p.probabilities[Gender::Female.index()] as f64,
                age: img.age,
                race: img.race,
            }),
            Err(why) => skipped.push((img.path.display().to_string(), why)),
        }
    }
    ModelRun {
        images_per_second: samples.len() as f64 / seconds,
        samples,
        skipped,
    }
}

/// A small JPEG of an image as a `data:` URI, for the report's failure gallery.
pub fn thumbnail_data_uri(path: &Path, size: u32) -> Option<String> {
    use base64::Engine;
    let img = gc_pipeline::decode::decode_rgb(path).ok()?;
    let thumb = image::imageops::thumbnail(&img, size, size);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 80)
        .encode_image(&thumb)
        .ok()?;
    Some(format!(
        "data:image/jpeg;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(jpeg)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn class_folders_with_hub_names_and_utkface_file_names() {
        let dir = tempfile::tempdir().unwrap();
        for (folder, file) in [
            ("women", "25_1_3_20170101000000000.jpg.chip.jpg"),
            ("men", "photo.jpg"),
            ("cats", "tom.jpg"),
        ] {
            std::fs::create_dir_all(dir.path().join(folder)).unwrap();
            std::fs::write(dir.path().join(folder).join(file), b"x").unwrap();
        }
        let set = read_labelled(dir.path(), "test").unwrap();
        assert_eq!(set.len(), 2, "{set:?}");
        let woman = set.iter().find(|i| i.truth == Gender::Female).unwrap();
        assert_eq!((woman.age, woman.race), (Some(25), Some(Race::Indian)));
        let man = set.iter().find(|i| i.truth == Gender::Male).unwrap();
        assert_eq!((man.age, man.race), (None, None));

        let empty = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_labelled(empty.path(), "test"),
            Err(LabelledError::Empty(_))
        ));
    }

    #[test]
    fn a_split_folder_is_read_alone_and_the_scope_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        for folder in ["female", "test/female", "test/male"] {
            std::fs::create_dir_all(d.join(folder)).unwrap();
            std::fs::write(d.join(folder).join("a.jpg"), b"x").unwrap();
        }
        assert_eq!(Scope::of(d, "test"), Scope::SplitFolder(d.join("test")));
        let set = read_labelled(d, "test").unwrap();
        assert_eq!(set.len(), 2, "{set:?}");
        assert!(set.iter().all(|i| i.path.starts_with(d.join("test"))));
        // No val/ folder: the whole folder, its class folders (test/ is not one).
        assert_eq!(Scope::of(d, "val"), Scope::WholeFolder);
        let set = read_labelled(d, "val").unwrap();
        assert_eq!(set.len(), 1, "{set:?}");
        std::fs::write(d.join(gc_dataset::manifest::MANIFEST), b"").unwrap();
        assert_eq!(Scope::of(d, "val"), Scope::Manifest);
    }
}
