//! Writing files so that an interrupted run never leaves a half-written one: write beside, then rename.

use crate::PrepareError;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The temporary name used while `path` is being written: hidden, in the same folder (so the rename
/// stays on one file system), and recognisable.
pub(crate) fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    // A file name holds at most 255 bytes; a name near that would fail as a temporary one, so its
    // temporary name is cut short (each file is renamed before the next is written).
    let mut cut = name.len().min(255 - ".".len() - ".gc-tmp".len());
    while !name.is_char_boundary(cut) {
        cut -= 1;
    }
    path.with_file_name(format!(".{}.gc-tmp", &name[..cut]))
}

pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), PrepareError> {
    let tmp = temp_path(path);
    let result = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        // No fsync: it made a 23k-image prepare ten times slower, and it guards only against power
        // loss; a killed process leaves the kernel's data intact, and a resumed run re-hashes what it finds.
        f.write_all(bytes)?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        PrepareError::io(path, e)
    })
}

/// Hard-links `src` to `path`, through a temporary name so `path` appears whole or not at all.
pub(crate) fn link_atomic(src: &Path, path: &Path) -> Result<(), PrepareError> {
    let tmp = temp_path(path);
    let _ = std::fs::remove_file(&tmp);
    // link(2) does not follow a symbolic link, and a link to one would dangle wherever its
    // relative target does not resolve: link the file it names.
    std::fs::canonicalize(src)
        .and_then(|src| std::fs::hard_link(src, &tmp))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            PrepareError::io(path, e)
        })
}
