//! `manifest.csv` and `rejected.csv`: what a prepared dataset holds, and what was left out and why.
//!
//! The manifest is how evaluation later finds each image's age and race; its rows are sorted, so two runs
//! with the same inputs write the same bytes.

use crate::PrepareError;
use crate::split::Split;
use gc_core::{Gender, Race};
use serde::{Deserialize, Serialize};
use std::path::Path;

pub const MANIFEST: &str = "manifest.csv";
pub const REJECTED: &str = "rejected.csv";

/// One image of a prepared dataset.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestRow {
    /// Relative to the dataset folder, `/`-separated: `train/female/26_1_2_...jpg.chip.jpg`.
    pub path: String,
    pub split: Split,
    pub gender: Gender,
    pub age: u32,
    pub race: Race,
    /// SHA-256 of the file's bytes, hex.
    pub sha256: String,
    /// Where it came from inside the source (archive path or path below the source folder).
    pub source: String,
}

/// One file that `prepare` left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RejectedRow {
    pub source: String,
    pub reason: String,
}

/// Reads a prepared dataset's manifest.
pub fn read_manifest(dataset_dir: &Path) -> Result<Vec<ManifestRow>, PrepareError> {
    read_csv(&dataset_dir.join(MANIFEST))
}

/// Reads a prepared dataset's list of rejected files.
pub fn read_rejected(dataset_dir: &Path) -> Result<Vec<RejectedRow>, PrepareError> {
    read_csv(&dataset_dir.join(REJECTED))
}

pub(crate) fn read_csv<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<Vec<T>, PrepareError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| PrepareError::csv(path, e))?;
    reader
        .deserialize()
        .collect::<Result<Vec<T>, _>>()
        .map_err(|e| PrepareError::csv(path, e))
}

/// Column names, written even when there are no rows (csv would only write them with the first row).
pub(crate) const MANIFEST_HEADER: &[&str] =
    &["path", "split", "gender", "age", "race", "sha256", "source"];
pub(crate) const REJECTED_HEADER: &[&str] = &["source", "reason"];

/// Writes rows to `path` through a temporary file and a rename, so a reader never sees half a file.
pub(crate) fn write_csv<T: Serialize>(
    path: &Path,
    header: &[&str],
    rows: &[T],
) -> Result<(), PrepareError> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(false)
        .from_writer(Vec::new());
    writer
        .write_record(header)
        .map_err(|e| PrepareError::csv(path, e))?;
    for row in rows {
        writer
            .serialize(row)
            .map_err(|e| PrepareError::csv(path, e))?;
    }
    let buf = writer
        .into_inner()
        .map_err(|e| PrepareError::io(path, e.into_error()))?;
    crate::fsutil::write_atomic(path, &buf)
}
