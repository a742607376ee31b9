//! Putting new files into a folder the user owns: whole or not at all (written under a temporary
//! name, then linked into place), and never over an existing file (a taken name becomes
//! `name (2).ext`, `name (3).ext`...).

use std::io::Write;
use std::path::{Path, PathBuf};

/// The longest file name most file systems take, in bytes.
const MAX_NAME: usize = 255;

/// The `n`th name tried for `stem.ext`: `stem.ext`, then `stem (2).ext`, `stem (3).ext`...; the
/// stem cut short (at a character) where the name would pass 255 bytes, so that a long name
/// taken already still finds a free one.
pub fn candidate(stem: &str, ext: &str, n: usize) -> String {
    if ext.len() + 16 > MAX_NAME {
        // No "extension" that long is one: the whole name is the stem.
        return candidate(&format!("{stem}.{ext}"), "", n);
    }
    let dot = if ext.is_empty() { "" } else { "." };
    let suffix = if n <= 1 {
        String::new()
    } else {
        format!(" ({n})")
    };
    let room = MAX_NAME.saturating_sub(suffix.len() + dot.len() + ext.len());
    let mut cut = stem.len().min(room);
    while !stem.is_char_boundary(cut) {
        cut -= 1;
    }
    format!("{}{suffix}{dot}{ext}", &stem[..cut])
}

/// Splits a file name into stem and extension the way [`candidate`] joins them.
pub fn split_name(name: &str) -> (&str, &str) {
    match name.rsplit_once('.') {
        Some((stem, ext)) if !stem.is_empty() => (stem, ext),
        _ => (name, ""),
    }
}

/// A temporary file in `dir` for a file that will be put in place with [`persist_new`].
pub fn temp_in(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    std::fs::create_dir_all(dir)?;
    temp_in_existing(dir)
}

/// [`temp_in`] for a folder that must exist already.
pub fn temp_in_existing(dir: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let mut builder = tempfile::Builder::new();
    // tempfile's files are private (0600); what we put in place is read like any new file
    // (the umask still applies), by another account too, such as a server's.
    #[cfg(unix)]
    builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
    builder.prefix(".gc-").suffix(".partial").tempfile_in(dir)
}

/// Gives `tmp` the first free name `stem.ext`, `stem (2).ext`... in `dir`. The link into place
/// fails rather than replace a file, so a file that appears meanwhile is not lost either.
pub fn persist_new(
    mut tmp: tempfile::NamedTempFile,
    dir: &Path,
    stem: &str,
    ext: &str,
) -> std::io::Result<PathBuf> {
    for n in 1.. {
        let path = dir.join(candidate(stem, ext, n));
        match tmp.persist_noclobber(&path) {
            Ok(_) => return Ok(path),
            Err(e) if e.error.kind() == std::io::ErrorKind::AlreadyExists => tmp = e.file,
            Err(e) => return Err(e.error),
        }
    }
    unreachable!("the name counter is unbounded")
}

/// Writes `bytes` as a new file `stem.ext` (or the next free name) in `dir`, created if missing.
pub fn write_new(dir: &Path, stem: &str, ext: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
    let mut tmp = temp_in(dir)?;
    tmp.write_all(bytes)?;
    persist_new(tmp, dir, stem, ext)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_never_reused() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.jpg"), b"user's").unwrap();
        let p2 = write_new(dir.path(), "a", "jpg", b"one").unwrap();
        let p3 = write_new(dir.path(), "a", "jpg", b"two").unwrap();
        assert_eq!(p2.file_name().unwrap(), "a (2).jpg");
        assert_eq!(p3.file_name().unwrap(), "a (3).jpg");
        assert_eq!(std::fs::read(dir.path().join("a.jpg")).unwrap(), b"user's");
        assert_eq!(std::fs::read(&p3).unwrap(), b"two");
        // No temporary file is left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
        // A new file's permissions, not tempfile's private ones (annotated copies were 0600).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode();
            assert_eq!(mode(&p3), mode(&dir.path().join("a.jpg")));
        }
    }

    #[test]
    fn names_split_and_join() {
        assert_eq!(split_name("IMG_1.jpg"), ("IMG_1", "jpg"));
        assert_eq!(split_name("a.b.png"), ("a.b", "png"));
        assert_eq!(split_name("noext"), ("noext", ""));
        assert_eq!(split_name(".hidden"), (".hidden", ""));
        assert_eq!(candidate("x", "", 2), "x (2)");
    }

    #[test]
    fn long_names_are_cut_to_fit() {
        // 251 bytes of stem + ".jpg" is the longest name; its second candidate must still fit.
        let stem = "L".repeat(251);
        assert_eq!(candidate(&stem, "jpg", 1).len(), 255);
        let second = candidate(&stem, "jpg", 2);
        assert_eq!(second.len(), 255);
        assert!(second.ends_with("L (2).jpg"), "{second}");
        // Cut at a character, never inside one (é is two bytes).
        let accented = "é".repeat(126); // 252 bytes
        let name = candidate(&accented, "jpg", 12);
        assert!(name.len() <= 255 && name.ends_with("é (12).jpg"), "{name}");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(candidate(&stem, "jpg", 1)), b"user's").unwrap();
        let p = write_new(dir.path(), &stem, "jpg", b"new").unwrap();
        assert_eq!(p.file_name().unwrap().to_string_lossy(), second);
        // An "extension" of 250 bytes is cut like a stem.
        let long_ext = candidate("a", &"x".repeat(250), 2);
        assert!(
            long_ext.len() <= 255 && long_ext.ends_with(" (2)"),
            "{long_ext}"
        );
    }
}
