//! The list of labelled images: read from class folders as Keras' `image_dataset_from_directory`
//! reads them (one sub-folder per class, classes sorted by name), or given explicitly.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Extensions of the files taken as images (compared case-insensitively), as Keras'.
pub const IMAGE_EXTENSIONS: [&str; 8] = ["jpg", "jpeg", "png", "webp", "bmp", "gif", "tif", "tiff"];

/// One labelled image.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sample {
    pub path: PathBuf,
    /// Index into the class list.
    pub label: usize,
}

/// Why a folder of images or a sample list was refused.
#[derive(Debug, thiserror::Error)]
pub enum FolderError {
    /// The dataset folder does not exist.
    #[error("{}: no such directory", path.display())]
    NotFound { path: PathBuf },
    /// The dataset path is not a directory.
    #[error("{}: not a directory", path.display())]
    NotADirectory { path: PathBuf },
    /// A directory could not be listed.
    #[error("{}: cannot list: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The folder has no class sub-folders.
    #[error("{}: no class folders (expected one sub-folder of images per class, e.g. female/ and male/)", path.display())]
    NoClasses { path: PathBuf },
    /// An explicit sample has a label outside the class list.
    #[error("{}: label {label} is out of range for {classes} classes", path.display())]
    LabelOutOfRange {
        path: PathBuf,
        label: usize,
        classes: usize,
    },
}

/// Labelled images and their class names; a sample's label indexes `classes`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageFolder {
    pub classes: Vec<String>,
    pub samples: Vec<Sample>,
}

impl ImageFolder {
    /// Reads `dir/<class>/**/<image>`: classes are the sub-folders sorted by name (so `female` is 0
    /// and `male` 1), images are taken by extension, sorted by path within each class, and hidden
    /// files and folders are skipped. Files directly in `dir` are ignored, as Keras does.
    pub fn open(dir: impl AsRef<Path>) -> Result<ImageFolder, FolderError> {
        let dir = dir.as_ref();
        let meta = std::fs::metadata(dir).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => FolderError::NotFound {
                path: dir.to_path_buf(),
            },
            _ => FolderError::Io {
                path: dir.to_path_buf(),
                source: e,
            },
        })?;
        if !meta.is_dir() {
            return Err(FolderError::NotADirectory {
                path: dir.to_path_buf(),
            });
        }
        let mut classes: Vec<(String, PathBuf)> = list(dir)?
            .into_iter()
            .filter(|(_, path, is_dir)| *is_dir && path.file_name().is_some())
            .filter_map(|(name, path, _)| Some((name.into_string().ok()?, path)))
            .collect();
        classes.sort();
        if classes.is_empty() {
            return Err(FolderError::NoClasses {
                path: dir.to_path_buf(),
            });
        }
        // Folders that are walked once at most: the class folders (a link into another class
        // would label its images twice), then every folder entered. The dataset folder and those
        // above it are never entered: a link to one of them loops (`female/up -> ..` took every
        // image once more per lap, male ones labelled female).
        let mut seen: HashSet<PathBuf> = classes
            .iter()
            .map(|(_, path)| canonical(path))
            .collect::<Result<_, _>>()?;
        let root = canonical(dir)?;
        let mut samples = Vec::new();
        for (label, (name, class_dir)) in classes.iter().enumerate() {
            let mut files = Vec::new();
            let mut walk = Walk {
                root: &root,
                seen: &mut seen,
                out: &mut files,
            };
            walk.collect(class_dir)?;
            if files.is_empty() {
                tracing::warn!(class = %name, dir = %class_dir.display(), "class folder holds no images");
            }
            files.sort();
            samples.extend(files.into_iter().map(|path| Sample { path, label }));
        }
        Ok(ImageFolder {
            classes: classes.into_iter().map(|(name, _)| name).collect(),
            samples,
        })
    }

    /// An explicit list, e.g. built from a manifest; every label must index `classes`.
    pub fn from_samples(
        classes: Vec<String>,
        samples: Vec<Sample>,
    ) -> Result<ImageFolder, FolderError> {
        if let Some(bad) = samples.iter().find(|s| s.label >= classes.len()) {
            return Err(FolderError::LabelOutOfRange {
                path: bad.path.clone(),
                label: bad.label,
                classes: classes.len(),
            });
        }
        Ok(ImageFolder { classes, samples })
    }

    /// Number of samples per class, in class order.
    pub fn class_counts(&self) -> Vec<usize> {
        let mut counts = vec![0; self.classes.len()];
        // The fields are public, so a label may be out of range here: it is not counted.
        for s in &self.samples {
            if let Some(count) = counts.get_mut(s.label) {
                *count += 1;
            }
        }
        counts
    }
}

/// Whether `path` has one of the image extensions.
pub fn has_image_extension(path: &Path) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| {
        IMAGE_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(e))
    })
}

/// Non-hidden entries of `dir` as (name, path, is_dir); symbolic links are followed.
fn list(dir: &Path) -> Result<Vec<(std::ffi::OsString, PathBuf, bool)>, FolderError> {
    let io = |e| FolderError::Io {
        path: dir.to_path_buf(),
        source: e,
    };
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        let name = entry.file_name();
        if name.as_encoded_bytes().starts_with(b".") {
            continue;
        }
        let path = entry.path();
        // `metadata` follows links; a dangling link is neither a file nor a folder and is skipped.
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        out.push((name, path, meta.is_dir()));
    }
    Ok(out)
}

fn canonical(path: &Path) -> Result<PathBuf, FolderError> {
    std::fs::canonicalize(path).map_err(|source| FolderError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The images under a class folder, through links, each folder once.
struct Walk<'a> {
    /// The dataset folder, canonical.
    root: &'a Path,
    /// Canonical folders already walked.
    seen: &'a mut HashSet<PathBuf>,
    out: &'a mut Vec<PathBuf>,
}

impl Walk<'_> {
    fn collect(&mut self, dir: &Path) -> Result<(), FolderError> {
        let mut entries = list(dir)?;
        // By name, so that which of two ways to one folder is taken does not vary with the disk.
        entries.sort();
        for (_, path, is_dir) in entries {
            if !is_dir {
                if has_image_extension(&path) {
                    self.out.push(path);
                }
                continue;
            }
            let real = canonical(&path)?;
            if self.root.starts_with(&real) {
                tracing::warn!(
                    "{}: a link to {}, a folder above it; skipped",
                    path.display(),
                    real.display()
                );
            } else if !self.seen.insert(real.clone()) {
                tracing::warn!(
                    "{}: the folder {} is read already, through another path; skipped",
                    path.display(),
                    real.display()
                );
            } else {
                self.collect(&path)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extensions_are_case_insensitive() {
        assert!(has_image_extension(Path::new("a/b.JPG")));
        assert!(has_image_extension(Path::new("a/b.jpg.chip.jpg")));
        assert!(has_image_extension(Path::new("b.TiF")));
        assert!(!has_image_extension(Path::new("b.txt")));
        assert!(!has_image_extension(Path::new("jpg")));
    }

    #[test]
    fn explicit_labels_are_checked() {
        let s = |label| Sample {
            path: PathBuf::from("x.jpg"),
            label,
        };
        assert!(
            ImageFolder::from_samples(vec!["female".into(), "male".into()], vec![s(0), s(1)])
                .is_ok()
        );
        let err = ImageFolder::from_samples(vec!["female".into()], vec![s(1)]).unwrap_err();
        assert!(matches!(
            err,
            FolderError::LabelOutOfRange {
                label: 1,
                classes: 1,
                ..
            }
        ));
    }
}
