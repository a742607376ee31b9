//! Where UTKFace images come from: a folder, or an archive as UTKFace publishes them (`.tar.gz`,
//! `.tar`, `.zip`), read entry by entry without unpacking it first.
//!
//! Entries are visited in a fixed order (archive order, or sorted paths for a folder), which is one of
//! the things that makes `prepare` reproducible.

use crate::PrepareError;
use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
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
    /// Why an entry cannot be taken (an archive's link, a path climbing out with `..`, a second
    /// zip entry of one name, a file of a folder that cannot be read); its reader is then empty.
    /// Such an entry is reported, not passed over in silence.
    pub unusable: Option<String>,
}

impl Source {
    /// Recognises a folder, or an archive by its content: gzip and zip by their magic bytes, a
    /// plain tar by `ustar` at offset 257, whatever its name (a plain tar saved as `.tar.gz` is
    /// common); an old tar without that mark by its extension.
    pub fn open(path: &Path) -> Result<Source, PrepareError> {
        let meta = std::fs::metadata(path).map_err(|e| PrepareError::io(path, e))?;
        if meta.is_dir() {
            return Ok(Source::Dir(path.to_path_buf()));
        }
        let mut head = [0u8; 262];
        let n = File::open(path)
            .and_then(|mut f| read_up_to(&mut f, &mut head))
            .map_err(|e| PrepareError::io(path, e))?;
        let head = &head[..n];
        let name = path.to_string_lossy().to_ascii_lowercase();
        let tar = |gzip| {
            Ok(Source::Tar {
                path: path.to_path_buf(),
                gzip,
            })
        };
        match head {
            [0x1f, 0x8b, ..] => tar(true),
            [b'P', b'K', 3, 4, ..] | [b'P', b'K', 5, 6, ..] => Ok(Source::Zip(path.to_path_buf())),
            _ if head.get(257..262) == Some(b"ustar") || name.ends_with(".tar") => tar(false),
            _ => Err(PrepareError::UnknownSource(path.to_path_buf())),
        }
    }

    pub fn path(&self) -> &Path {
        match self {
            Source::Dir(p) | Source::Tar { path: p, .. } | Source::Zip(p) => p,
        }
    }

    /// Calls `f` for every regular file, and every entry that cannot be read (as unusable), in a
    /// fixed order. Hidden files (`.DS_Store`, macOS `._` forks, `__MACOSX/`) are passed over:
    /// they are archive litter, not data.
    pub fn for_each(
        &self,
        mut f: impl FnMut(Entry<'_>) -> Result<(), PrepareError>,
    ) -> Result<(), PrepareError> {
        match self {
            Source::Dir(root) => {
                let walk = walkdir::WalkDir::new(root)
                    .follow_links(true)
                    .sort_by_file_name();
                let mut nothing = std::io::empty();
                for item in walk {
                    let (path, mut file, unusable) = match item {
                        Ok(item) if !item.file_type().is_file() => continue,
                        Ok(item) => {
                            let path = item.into_path();
                            match File::open(&path) {
                                Ok(file) => (path, Some(file), None),
                                Err(e) => {
                                    let why = unreadable(&path, Some(&e));
                                    (path, None, Some(why))
                                }
                            }
                        }
                        // It used to end the run.
                        Err(e) if skip_link_loop(&e) => continue,
                        Err(e) if e.depth() == 0 => return Err(walk_error(root, e)),
                        // A folder that cannot be read would drop all its images as one row.
                        Err(e) if e.path().is_some_and(Path::is_dir) => {
                            return Err(walk_error(root, e));
                        }
                        // One unreadable file (a dangling link, say) is a rejected row, not
                        // the end of the run.
                        Err(e) => match e.path().map(Path::to_path_buf) {
                            Some(path) => {
                                let why = unreadable(&path, e.io_error());
                                (path, None, Some(why))
                            }
                            None => return Err(walk_error(root, e)),
                        },
                    };
                    let inner = inner_path(root, &path);
                    if is_litter(&inner) {
                        continue;
                    }
                    f(Entry {
                        name: base_name(&inner).to_string(),
                        inner_path: inner,
                        disk_path: Some(path),
                        reader: match file.as_mut() {
                            Some(file) => file,
                            None => &mut nothing,
                        },
                        unusable,
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
                    let kind = entry.header().entry_type();
                    let link = if kind.is_symlink() {
                        Some(not_followed("a symbolic link"))
                    } else if kind.is_hard_link() {
                        Some(not_followed("a hard link"))
                    } else if kind.is_file() {
                        None
                    } else {
                        continue;
                    };
                    let inner = String::from_utf8_lossy(&entry.path_bytes()).into_owned();
                    archive_entry(inner, link, &mut entry, &mut f)?;
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
                    let link = if entry.is_symlink() {
                        Some(not_followed("a symbolic link"))
                    } else if entry.is_file() {
                        None
                    } else {
                        continue;
                    };
                    let inner = entry
                        .name()
                        .map_err(|e| PrepareError::archive(path, e))?
                        .replace('\\', "/");
                    archive_entry(inner, link, &mut entry, &mut f)?;
                }
                // The zip crate keys entries by name and keeps the last copy of a name listed
                // twice: the others are read from the central directory, to be reported.
                if archive.has_duplicate_names() {
                    let names = central_directory_names(path, archive.central_directory_start())
                        .map_err(|e| PrepareError::archive(path, e))?;
                    let mut left: HashMap<&[u8], usize> = HashMap::new();
                    for name in &names {
                        *left.entry(name).or_default() += 1;
                    }
                    for name in &names {
                        let copies = left[name.as_slice()];
                        if copies == 1 || name.ends_with(b"/") {
                            continue;
                        }
                        left.insert(name, copies - 1);
                        let why = "one of two or more entries with this name in the zip; only \
                                   the last of them can be read";
                        archive_entry(
                            String::from_utf8_lossy(name).replace('\\', "/"),
                            Some(why.to_string()),
                            &mut std::io::empty(),
                            &mut f,
                        )?;
                    }
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

/// Hidden files and folders, and macOS's resource forks. `.` and `..` are path steps, not hidden
/// names: `tar -czf x.tar.gz .` writes every entry under `./`.
fn is_litter(inner: &str) -> bool {
    inner
        .split('/')
        .any(|part| (part.starts_with('.') && part != "." && part != "..") || part == "__MACOSX")
}

/// Hands an archive entry to `f`, litter aside. A link (whose target is another entry, or a file
/// outside the archive, which is never read) or a path with a `..` step (a place outside the
/// archive's folder; nothing is unpacked by path, but such an archive is not as published) is
/// handed over as unusable, with nothing to read.
fn archive_entry(
    inner: String,
    unusable: Option<String>,
    reader: &mut dyn Read,
    f: &mut impl FnMut(Entry<'_>) -> Result<(), PrepareError>,
) -> Result<(), PrepareError> {
    if is_litter(&inner) {
        return Ok(());
    }
    let unusable = unusable.or_else(|| {
        inner
            .split('/')
            .any(|part| part == "..")
            .then(|| "a path with a '..' step, outside the archive's folder".to_string())
    });
    let mut nothing = std::io::empty();
    f(Entry {
        name: base_name(&inner).to_string(),
        reader: if unusable.is_some() {
            &mut nothing
        } else {
            reader
        },
        inner_path: inner,
        disk_path: None,
        unusable,
    })
}

fn not_followed(link: &str) -> String {
    format!("{link} in the archive; links are not followed")
}

/// Every name in a zip's central directory, in order, copies of one name included.
fn central_directory_names(path: &Path, start: u64) -> std::io::Result<Vec<Vec<u8>>> {
    let mut r = BufReader::new(File::open(path)?);
    r.seek(SeekFrom::Start(start))?;
    let mut names = Vec::new();
    // A central directory header: its signature, then fixed fields (the name's, the extra field's
    // and the comment's lengths at 28, 30 and 32), then those three.
    let mut fixed = [0u8; 46];
    while read_up_to(&mut r, &mut fixed)? == fixed.len() && fixed.starts_with(b"PK\x01\x02") {
        let len = |at: usize| usize::from(u16::from_le_bytes([fixed[at], fixed[at + 1]]));
        let mut name = vec![0; len(28)];
        r.read_exact(&mut name)?;
        r.seek_relative((len(30) + len(32)) as i64)?;
        names.push(name);
    }
    Ok(names)
}

fn inner_path(root: &Path, path: &Path) -> String {
    path.strip_prefix(root)
        .unwrap_or(path)
        .to_string_lossy()
        .replace('\\', "/")
}

/// Why a file of a folder source cannot be read, for its rejected row.
fn unreadable(path: &Path, error: Option<&std::io::Error>) -> String {
    let is_link = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    match error {
        Some(e) if is_link && e.kind() == std::io::ErrorKind::NotFound => {
            match std::fs::read_link(path) {
                Ok(target) => format!("a symbolic link to a missing file, {}", target.display()),
                Err(_) => "a symbolic link to a missing file".to_string(),
            }
        }
        Some(e) => format!("cannot be read: {e}"),
        None => "cannot be read".to_string(),
    }
}

/// The error for the source folder itself, which ends the run. walkdir's error repeats the
/// message of the IO error it wraps, so that one is taken alone.
fn walk_error(root: &Path, e: walkdir::Error) -> PrepareError {
    let path = e.path().unwrap_or(root).to_path_buf();
    let message = e.to_string();
    let error = e
        .into_io_error()
        .unwrap_or_else(|| std::io::Error::other(message));
    PrepareError::io(&path, error)
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
        assert!(!is_litter("./UTKFace/1_0_0_1.jpg.chip.jpg"));
        assert!(!is_litter("../1_0_0_1.jpg.chip.jpg"));
        assert_eq!(base_name("UTKFace/a.jpg"), "a.jpg");
        assert_eq!(base_name("a.jpg"), "a.jpg");
    }

    /// What `for_each` hands over from an archive: (path inside, first bytes, why unusable).
    fn visit(source: &Source) -> Vec<(String, Vec<u8>, Option<String>)> {
        let mut seen = Vec::new();
        source
            .for_each(|e| {
                let mut bytes = Vec::new();
                e.reader.read_to_end(&mut bytes).unwrap();
                seen.push((e.inner_path, bytes, e.unusable));
                Ok(())
            })
            .unwrap();
        seen
    }

    #[test]
    fn archive_links_and_climbing_paths_are_reported_and_dot_paths_taken() {
        let dir = tempfile::tempdir().unwrap();
        let tar_path = dir.path().join("faces.tar");
        {
            let mut b = tar::Builder::new(File::create(&tar_path).unwrap());
            // `Header::set_path` drops `./` and refuses `..`; archives hold them in the raw
            // name bytes (`tar -cf faces.tar .` names every entry under `./`).
            let file = |path: &str| {
                let mut h = tar::Header::new_gnu();
                let name = &mut h.as_old_mut().name;
                name.fill(0);
                name[..path.len()].copy_from_slice(path.as_bytes());
                h.set_size(3);
                h.set_entry_type(tar::EntryType::Regular);
                h.set_cksum();
                h
            };
            b.append(&file("./UTKFace/1_0_0_1.jpg.chip.jpg"), &b"abc"[..])
                .unwrap();
            let mut link = tar::Header::new_gnu();
            link.set_path("UTKFace/2_0_0_1.jpg.chip.jpg").unwrap();
            link.set_link_name("/etc/passwd").unwrap();
            link.set_size(0);
            link.set_entry_type(tar::EntryType::Symlink);
            link.set_cksum();
            b.append(&link, std::io::empty()).unwrap();
            b.append(&file("../3_0_0_1.jpg.chip.jpg"), &b"xyz"[..])
                .unwrap();
            b.finish().unwrap();
        }
        let seen = visit(&Source::open(&tar_path).unwrap());
        assert_eq!(seen.len(), 3, "{seen:?}");
        assert_eq!(seen[0].0, "./UTKFace/1_0_0_1.jpg.chip.jpg");
        assert_eq!((seen[0].1.as_slice(), &seen[0].2), (&b"abc"[..], &None));
        assert!(
            seen[1].2.as_deref().unwrap().contains("symbolic link"),
            "{seen:?}"
        );
        assert_eq!(seen[2].0, "../3_0_0_1.jpg.chip.jpg");
        assert!(seen[2].2.as_deref().unwrap().contains("'..'"), "{seen:?}");
        assert!(
            seen[2].1.is_empty(),
            "an unusable entry's bytes are not handed over"
        );

        let zip_path = dir.path().join("faces.zip");
        {
            let mut z = zip::ZipWriter::new(File::create(&zip_path).unwrap());
            let opts = zip::write::SimpleFileOptions::default();
            z.start_file("UTKFace/1_0_0_1.jpg.chip.jpg", opts).unwrap();
            std::io::Write::write_all(&mut z, b"abc").unwrap();
            z.add_symlink("UTKFace/2_0_0_1.jpg.chip.jpg", "/etc/passwd", opts)
                .unwrap();
            z.finish().unwrap();
        }
        let seen = visit(&Source::open(&zip_path).unwrap());
        assert_eq!(seen.len(), 2, "{seen:?}");
        assert_eq!(seen[0].2, None);
        assert!(
            seen[1].2.as_deref().unwrap().contains("symbolic link"),
            "{seen:?}"
        );
        assert!(seen[1].1.is_empty());
    }
}
