//! Where UTKFace images come from: a folder, or an archive as UTKFace publishes them (`.tar.gz`,
//! `.tar`, `.zip`), read entry by entry without unpacking it first.
//!
//! Entries are visited in a fixed order (archive order, or sorted paths for a folder), which is one of
//! the things that makes `prepare` reproducible.

use crate::PrepareError;
use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// A place to read images from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    Dir(PathBuf),
    Tar { path: PathBuf, gzip: bool },
    Zip(PathBuf),
}

/// One file met while reading a source.
pub struct Entry<'a> {
    /// The path inside the source, `/`-separated (for messages).
    pub inner_path: String,
    /// The base name, which carries the labels.
    pub name: String,
    /// The file on disk, for folder sources (hard links need it).
    pub disk_path: Option<PathBuf>,
    pub reader: &'a mut dyn Read,
}

impl Source {
    /// Recognises a folder, or an archive by its magic bytes (falling back to its extension for a plain
    /// tar, which has no magic at offset 0).
    pub fn open(path: &Path) -> Result<Source, PrepareError> {
        let meta = std::fs::metadata(path).map_err(|e| PrepareError::io(path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let mut magic = [0u8; 4];
        let n = File::open(path)
            .and_then(|mut f| read_up_to(&mut f, &mut magic))
            .map_err(|e| PrepareError::io(path, e))?;
        let name = path.to_string_lossy().to_ascii_lowercase();
        match &magic[..n] {
            [0x1f, 0x8b, ..] => Ok(Source::Tar {
                path: path.to_path_buf(),
                gzip: true,
            }),
            [b'P', b'K', 3, 4] | [b'P', b'K', 5, 6] => Ok(Source::Zip(path.to_path_buf())),
            _ if name.ends_with(".tar") => Ok(Source::Tar {
                path: path.to_path_buf(),
                gzip: false,
            }),
            _ => Err(PrepareError::UnknownSource(path.to_path_buf())),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) | Source::Tar { path: p, .. } | Source::Zip(p) => p,
        }
    }

    /// Calls `f` for every regular file, in a fixed order. Hidden files (`.DS_Store`, macOS `._` forks,
    /// `__MACOSX/`) are passed over: they are archive litter, not data.
    pub fn for_each(
        &self,
        mut f: impl FnMut(Entry<'_>) -> Result<(), PrepareError>,
    ) -> Result<(), PrepareError> {
        match self {
            Source::Dir(root) => {
                let walk = walkdir::WalkDir::new(root)
                    .follow_links(true)
                    .sort_by_file_name();
                for item in walk {
                    // It used to end the run.
                    if let Err(e) = &item
                        && skip_link_loop(e)
                    {
                        continue;
                    }
                    let item = item.map_err(|e| {
                        let p = e.path().unwrap_or(root).to_path_buf();
                        PrepareError::io(&p, e.into())
                    })?;
                    if !item.file_type().is_file() {
                        continue;
                    }
                    let inner = item
                        .path()
                        .strip_prefix(root)
                        .unwrap_or(item.path())
                        .to_string_lossy()
                        .replace('\\', "/");
                    if is_litter(&inner) {
                        continue;
                    }
                    let mut file =
                        File::open(item.path()).map_err(|e| PrepareError::io(item.path(), e))?;
                    f(Entry {
                        name: base_name(&inner).to_string(),
                        inner_path: inner,
                        disk_path: Some(item.path().to_path_buf()),
                        reader: &mut file,
                    })?;
                }
                Ok(())
            }
            Source::Tar { path, gzip } => {
                let file = BufReader::new(File::open(path).map_err(|e| PrepareError::io(path, e))?);
                let reader: Box<dyn Read> = if *gzip {
                    Box::new(flate2::read::MultiGzDecoder::new(file))
                } else {
                    Box::new(file)
                };
                let mut archive = tar::Archive::new(reader);
                let entries = archive
                    .entries()
                    .map_err(|e| PrepareError::archive(path, e))?;
                for entry in entries {
                    let mut entry = entry.map_err(|e| PrepareError::archive(path, e))?;
                    if !entry.header().entry_type().is_file() {
                        continue;
                    }
                    let inner = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                    if is_litter(&inner) {
                        continue;
                    }
                    f(Entry {
                        name: base_name(&inner).to_string(),
                        inner_path: inner,
                        disk_path: None,
                        reader: &mut entry,
                    })?;
                }
                Ok(())
            }
            Source::Zip(path) => {
                let file = BufReader::new(File::open(path).map_err(|e| PrepareError::io(path, e))?);
                let mut archive =
                    zip::ZipArchive::new(file).map_err(|e| PrepareError::archive(path, e))?;
                for i in 0..archive.len() {
                    let mut entry = archive
                        .by_index(i)
                        .map_err(|e| PrepareError::archive(path, e))?;
                    if !entry.is_file() {
                        continue;
                    }
                    let inner = entry
                        .name()
                        .map_err(|e| PrepareError::archive(path, e))?
                        .into_owned();
                    if is_litter(&inner) {
                        continue;
                    }
                    f(Entry {
                        name: base_name(&inner).to_string(),
                        inner_path: inner,
                        disk_path: None,
                        reader: &mut entry,
                    })?;
                }
                Ok(())
            }
        }
    }
}

/// Whether a folder walk met a symbolic link to a folder above it, which holds nothing new; if so
/// it is logged as skipped. Every walk of a user's folder (prepare, predict, sort) passes over
/// such links rather than fail on them (a sort retried one on every run).
pub fn skip_link_loop(err: &walkdir::Error) -> bool {
    let Some(ancestor) = err.loop_ancestor() else {
        return false;
    };
    tracing::warn!(
        "{}: a symbolic link to {}, a folder above it; skipped",
        err.path().unwrap_or(ancestor).display(),
        ancestor.display()
    );
    true
}

fn base_name(inner: &str) -> &str {
    inner.rsplit('/').next().unwrap_or(inner)
}

fn is_litter(inner: &str) -> bool {
    inner
        .split('/')
        .any(|part| part.starts_with('.') || part == "__MACOSX")
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn litter_is_recognised() {
        assert!(is_litter("__MACOSX/UTKFace/._1_0_0_1.jpg"));
        assert!(is_litter("UTKFace/.DS_Store"));
        assert!(!is_litter("UTKFace/1_0_0_1.jpg.chip.jpg"));
        assert_eq!(base_name("UTKFace/a.jpg"), "a.jpg");
        assert_eq!(base_name("a.jpg"), "a.jpg");
    }
}
