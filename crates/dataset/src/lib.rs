//! UTKFace preparation: labels from file names, folder and archive sources, duplicate detection,
//! the stratified reproducible split, and the class folders + manifest that training and evaluation read.
//!
//! This crate knows no ML framework and decodes no image: it moves bytes and labels.

mod fsutil;
pub mod manifest;
pub mod name;
pub mod prepare;
pub mod source;
pub mod split;

pub use manifest::{ManifestRow, RejectedRow, read_manifest, read_rejected};
pub use name::{UtkLabel, parse_utkface_name};
pub use prepare::{
    DEFAULT_SEED, MARKER, Mode, NoProgress, Outcome, PrepareOptions, PrepareReport, Progress,
    prepare, unfinished_prepare,
};
pub use source::Source;
pub use split::{Fractions, Split};

use std::path::{Path, PathBuf};

/// Everything that can stop `prepare`. Each variant names the file involved.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// A file or folder could not be read or written.
    #[error("{}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        error: std::io::Error,
    },
    /// An archive is damaged or not what its name says.
    #[error("{}: not a readable archive: {reason}", path.display())]
    Archive { path: PathBuf, reason: String },
    /// An entry inside a source could not be read.
    #[error("{}: reading {entry}", source_path.display())]
    Read {
        source_path: PathBuf,
        entry: String,
        #[source]
        error: std::io::Error,
    },
    /// The source is neither a folder nor a .tar.gz, .tar or .zip archive.
    #[error("{}: not a folder nor a .tar.gz, .tar or .zip archive", .0.display())]
    UnknownSource(PathBuf),
    /// Hard links need files on disk.
    #[error("{}: --link needs a folder source (an archive's entries cannot be hard-linked); use --copy", .0.display())]
    LinkNeedsFolder(PathBuf),
    /// Nothing in the source had a usable UTKFace name.
    #[error("{}: no file with a UTKFace name (age_gender_race_datetime.jpg.chip.jpg); {rejected} rejected", source_path.display())]
    NothingAccepted {
        source_path: PathBuf,
        rejected: usize,
    },
    /// OUT exists and is not a folder.
    #[error("{}: exists and is not a folder", .0.display())]
    OutNotDir(PathBuf),
    /// OUT holds files that `prepare` did not write.
    #[error("{}: refusing to write into a non-empty folder that prepare did not create; choose a new or empty --out", .0.display())]
    OutNotOurs(PathBuf),
    /// OUT was prepared from other inputs or settings.
    #[error("{}: already prepared from {source_path} with seed {seed} and other files or settings; choose a new --out", out.display())]
    OutPreparedDifferently {
        out: PathBuf,
        source_path: String,
        seed: u64,
    },
    /// OUT holds an unfinished run with other inputs or settings, and a file that run did not write.
    #[error("{}: holds an unfinished prepare of {source_path} with seed {seed} and other files or settings, and {}, which that prepare did not write (or which changed since); to let prepare start over there, move that out of it (or delete the whole folder); or choose a new --out", out.display(), stray.display())]
    OutUnfinishedDifferently {
        out: PathBuf,
        source_path: String,
        seed: u64,
        stray: PathBuf,
    },
    /// OUT lies inside the source folder.
    #[error("{}: the output folder lies inside the source folder; choose one outside it", .0.display())]
    OutInsideSource(PathBuf),
    /// The marker file in OUT is unreadable.
    #[error("{}: unreadable prepare marker: {reason}", path.display())]
    BadMarker { path: PathBuf, reason: String },
    /// The source changed between the two passes.
    #[error("{}: {entry} changed while being read; run prepare again", source_path.display())]
    SourceChanged { source_path: PathBuf, entry: String },
    /// A CSV file is malformed.
    #[error("{}: {reason}", path.display())]
    Csv { path: PathBuf, reason: String },
    /// A bug: an invariant of this crate did not hold.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

impl PrepareError {
    pub(crate) fn io(path: &Path, error: std::io::Error) -> Self {
        PrepareError::Io {
            path: path.to_path_buf(),
            error,
        }
    }

    pub(crate) fn archive(path: &Path, reason: impl std::fmt::Display) -> Self {
        PrepareError::Archive {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn csv(path: &Path, reason: impl std::fmt::Display) -> Self {
        PrepareError::Csv {
            path: path.to_path_buf(),
            reason: reason.to_string(),
        }
    }
}
