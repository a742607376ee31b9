//! `index.csv`: one row per photo, appended (and flushed) as soon as the photo is in place, so
//! that it is also the journal a resumed run reads to know what is done.

use crate::SortError;
use serde::{Deserialize, Serialize};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// One photo of the index.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Row {
    /// The photo's path under the source folder, with `/` separators.
    pub photo: String,
    /// `female`, `male`, `mixed`, `no-face`, `uncertain`, or `error`.
    pub category: String,
    /// Where the copy (or link) is, under the output folder; empty for an error.
    pub destination: String,
    /// The number of faces found (1 for an image classified whole as a face crop).
    pub faces: usize,
    /// `x,y,w,h` of each face in pixels, `;` between faces.
    pub boxes: String,
    /// The label of each face, `;` between faces.
    pub labels: String,
    /// The probability of `female` for each face, `;` between faces.
    pub probabilities: String,
    /// Why the photo could not be sorted; empty when it was.
    pub error: String,
}

pub const FILE_NAME: &str = "index.csv";

impl Row {
    fn error_row(&self) -> bool {
        self.category == crate::Category::Error.name()
    }
}

/// The index of an output folder, open for appending.
pub struct Index {
    path: PathBuf,
    writer: csv::Writer<File>,
}

impl Index {
    /// Opens (or creates) `dir/index.csv` and returns the rows already in it. A last line cut short
    /// by an interrupted run is dropped: its photo is sorted again. So are the rows of photos that
    /// could not be sorted (category `error`): the cause may have gone (a permission, a full
    /// disk), and a run that gives up on a photo for good would leave it out without a word.
    pub fn open(dir: &Path) -> Result<(Index, Vec<Row>), SortError> {
        let (index, rows) = Index::open_all(dir)?;
        let failed = rows.iter().filter(|r| r.error_row()).count();
        if failed == 0 {
            return Ok((index, rows));
        }
        drop(index);
        let kept: Vec<Row> = rows.into_iter().filter(|r| !r.error_row()).collect();
        let path = dir.join(FILE_NAME);
        let io = |e: std::io::Error| SortError::io(&path, e);
        // The index is ours, not a user's file: replaced whole (written aside, then renamed).
        let tmp = gc_classify::place::temp_in(dir).map_err(io)?;
        let mut writer = csv::Writer::from_writer(tmp.as_file());
        for row in &kept {
            writer.serialize(row).map_err(|e| SortError::Index {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        writer.flush().map_err(io)?;
        drop(writer);
        // The user may have opened the index up to others: the new one keeps its permissions.
        let permissions = std::fs::metadata(&path).map_err(io)?.permissions();
        tmp.as_file().set_permissions(permissions).map_err(io)?;
        tmp.as_file().sync_all().map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        tracing::info!(
            "{}: {failed} photos that could not be sorted are tried again",
            path.display()
        );
        Index::open_all(dir)
    }

    fn open_all(dir: &Path) -> Result<(Index, Vec<Row>), SortError> {
        let path = dir.join(FILE_NAME);
        let io = |e: std::io::Error| SortError::io(&path, e);
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(&path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let whole = bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        if whole < bytes.len() {
            tracing::info!("{}: dropping a last line cut short", path.display());
            file.set_len(whole as u64).map_err(io)?;
            file.seek(SeekFrom::End(0)).map_err(io)?;
        }
        let mut rows = Vec::new();
        let mut reader = csv::Reader::from_reader(&bytes[..whole]);
        for (i, row) in reader.deserialize::<Row>().enumerate() {
            rows.push(row.map_err(|e| SortError::Index {
                path: path.clone(),
                reason: format!("row {}: {e}", i + 2),
            })?);
        }
        let writer = csv::WriterBuilder::new()
            .has_headers(whole == 0)
            .from_writer(file);
        Ok((Index { path, writer }, rows))
    }

    /// Appends a row and pushes it to the file before returning.
    pub fn append(&mut self, row: &Row) -> Result<(), SortError> {
        self.writer
            .serialize(row)
            .and_then(|()| self.writer.flush().map_err(csv::Error::from))
            .map_err(|e| SortError::Index {
                path: self.path.clone(),
                reason: e.to_string(),
            })
    }
}

/// Reads a finished index.
pub fn read(path: &Path) -> Result<Vec<Row>, SortError> {
    let mut reader = csv::Reader::from_path(path).map_err(|e| SortError::Index {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    reader
        .deserialize()
        .collect::<Result<_, _>>()
        .map_err(|e| SortError::Index {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })
}
