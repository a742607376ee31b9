//! The on-disk cache of resized images (`tf.data`'s `cache(filename)`): one file per sample list and
//! geometry, holding every sample's resized RGB8 pixels, or the reason it could not be decoded.
//!
//! The file is filled in place while an epoch runs (records are fixed-size, so samples arrive in any
//! order), under a temporary name, and renamed to its final name only once every sample is in it;
//! a crash or an early stop never leaves a half-written file under the final name. The name and the
//! header carry a fingerprint of the sample list (paths, sizes, modification times) and the
//! geometry, so a cache built for other files, or before a file changed, is not used.
//!
//! Layout, little-endian: a 64-byte header (magic, fingerprint, sample count, width, height, offset
//! of the trailer), then one record per sample (a status byte, then the pixels), then a JSON trailer
//! listing the failed samples and their reasons. The header is written last.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::RwLock;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use sha2::{Digest, Sha256};

use crate::folder::Sample;
use crate::transform::Size;

const MAGIC: &[u8; 8] = b"GCPIPE01";
const HEADER_LEN: u64 = 64;
const EMPTY: u8 = 0;
const OK: u8 = 1;
const FAILED: u8 = 2;

/// What the cache knows of one sample.
pub(crate) enum Cached {
    /// The resized pixels.
    Pixels(Vec<u8>),
    /// The sample failed to decode when the cache was built; the reason then.
    Failed(String),
}

enum State {
    /// A complete cache file, read-only.
    Ready {
        file: File,
        failures: HashMap<usize, String>,
    },
    /// Being filled under a temporary name.
    Building {
        tmp: tempfile::NamedTempFile,
        written: Vec<AtomicBool>,
        remaining: AtomicUsize,
        failures: std::sync::Mutex<Vec<(usize, String)>>,
    },
    /// Given up after an I/O error (warned once); the pipeline decodes instead.
    Off,
}

pub(crate) struct DiskCache {
    path: PathBuf,
    fingerprint: [u8; 32],
    count: usize,
    size: Size,
    state: RwLock<State>,
}

/// The fingerprint of a sample list and a resize size: what the cached pixels depend on.
pub(crate) fn fingerprint(samples: &[Sample], size: Size, recipe: &str) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(MAGIC);
    h.update(recipe.as_bytes());
    h.update(size.width.to_le_bytes());
    h.update(size.height.to_le_bytes());
    h.update((samples.len() as u64).to_le_bytes());
    for s in samples {
        let p = s.path.as_os_str().as_encoded_bytes();
        h.update((p.len() as u64).to_le_bytes());
        h.update(p);
        // A file rewritten in place changes size or mtime; a missing file hashes as such and is
        // reported when it is decoded.
        let (len, mtime) = match std::fs::metadata(&s.path) {
            Ok(m) => (
                m.len(),
                m.modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos()),
            ),
            Err(_) => (u64::MAX, 0),
        };
        h.update(len.to_le_bytes());
        h.update(mtime.to_le_bytes());
    }
    h.finalize().into()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl DiskCache {
    /// Opens the cache for this fingerprint in `dir`, or prepares to build it.
    pub(crate) fn open(
        dir: &Path,
        fingerprint: [u8; 32],
        count: usize,
        size: Size,
    ) -> io::Result<DiskCache> {
        std::fs::create_dir_all(dir)?;
        let path = dir.join(format!("gc-pipeline-{}.cache", &hex(&fingerprint)[..32]));
        let mut cache = DiskCache {
            path,
            fingerprint,
            count,
            size,
            state: RwLock::new(State::Off),
        };
        let state = match cache.open_ready() {
            Ok(state) => state,
            Err(reason) => {
                if cache.path.exists() {
                    tracing::warn!(cache = %cache.path.display(), %reason, "ignoring the disk cache and rebuilding it");
                }
                cache.building(dir)?
            }
        };
        cache.state = RwLock::new(state);
        Ok(cache)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// Whether the complete cache file is in use.
    pub(crate) fn is_ready(&self) -> bool {
        matches!(*self.read_state(), State::Ready { .. })
    }

    fn record_len(&self) -> u64 {
        1 + 3 * self.size.area() as u64
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        // A panic while holding the lock cannot leave the state half-changed: it is only replaced whole.
        self.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn building(&self, dir: &Path) -> io::Result<State> {
        let tmp = tempfile::Builder::new()
            .prefix(".gc-pipeline-")
            .suffix(".partial")
            .tempfile_in(dir)?;
        tmp.as_file()
            .set_len(HEADER_LEN + self.count as u64 * self.record_len())?;
        Ok(State::Building {
            tmp,
            written: (0..self.count).map(|_| AtomicBool::new(false)).collect(),
            remaining: AtomicUsize::new(self.count),
            failures: std::sync::Mutex::new(Vec::new()),
        })
    }

    /// Checks an existing file against what we expect; the error says why it is not usable.
    fn open_ready(&self) -> Result<State, String> {
        let file = File::open(&self.path).map_err(|e| e.to_string())?;
        let mut header = [0u8; HEADER_LEN as usize];
        read_at(&file, &mut header, 0).map_err(|e| format!("cannot read the header: {e}"))?;
        let u64_at = |i: usize| u64::from_le_bytes(header[i..i + 8].try_into().unwrap_or([0; 8]));
        let u32_at = |i: usize| u32::from_le_bytes(header[i..i + 4].try_into().unwrap_or([0; 4]));
        if &header[..8] != MAGIC {
            return Err("not a gc-pipeline cache of this version".into());
        }
        if header[8..40] != self.fingerprint {
            return Err("built for other files or another geometry".into());
        }
        if u64_at(40) != self.count as u64
            || u32_at(48) != self.size.width
            || u32_at(52) != self.size.height
        {
            return Err("sample count or size differ".into());
        }
        let trailer_at = u64_at(56);
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        if trailer_at != HEADER_LEN + self.count as u64 * self.record_len() || len < trailer_at {
            return Err("truncated".into());
        }
        let mut trailer = vec![0u8; (len - trailer_at) as usize];
        read_at(&file, &mut trailer, trailer_at)
            .map_err(|e| format!("cannot read the trailer: {e}"))?;
        let failures: Vec<(usize, String)> =
            serde_json::from_slice(&trailer).map_err(|e| format!("bad trailer: {e}"))?;
        Ok(State::Ready {
            file,
            failures: failures.into_iter().collect(),
        })
    }

    /// The cached sample, or `None` while the cache is not complete.
    pub(crate) fn get(&self, index: usize) -> Option<Cached> {
        let state = self.read_state();
        let State::Ready { file, failures } = &*state else {
            return None;
        };
        if let Some(reason) = failures.get(&index) {
            return Some(Cached::Failed(reason.clone()));
        }
        // Status byte and pixels read separately, so the pixels land in their own buffer uncopied.
        let offset = HEADER_LEN + index as u64 * self.record_len();
        let mut status = [EMPTY];
        let mut pixels = vec![0u8; 3 * self.size.area()];
        let read = read_at(file, &mut status, offset)
            .and_then(|()| read_at(file, &mut pixels, offset + 1));
        match read {
            Ok(()) if status[0] == OK => Some(Cached::Pixels(pixels)),
            Ok(()) => {
                tracing::warn!(cache = %self.path.display(), index, "disk cache record is not marked complete; decoding the image instead");
                None
            }
            Err(e) => {
                tracing::warn!(cache = %self.path.display(), error = %e, "cannot read the disk cache; decoding the image instead");
                None
            }
        }
    }

    /// Records a sample while the cache is being built (a no-op once it is complete).
    pub(crate) fn put(&self, index: usize, result: Result<&[u8], &str>) {
        let failed = {
            let state = self.read_state();
            let State::Building {
                tmp,
                written,
                remaining,
                failures,
            } = &*state
            else {
                return;
            };
            if written[index].swap(true, Ordering::AcqRel) {
                return;
            }
            let mut record = Vec::with_capacity(self.record_len() as usize);
            match result {
                Ok(pixels) if pixels.len() as u64 + 1 == self.record_len() => {
                    record.push(OK);
                    record.extend_from_slice(pixels);
                }
                Ok(_) => record.push(EMPTY),
                Err(reason) => {
                    record.push(FAILED);
                    failures
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((index, reason.to_string()));
                }
            }
            let written = write_at(
                tmp.as_file(),
                &record,
                HEADER_LEN + index as u64 * self.record_len(),
            );
            remaining.fetch_sub(1, Ordering::AcqRel);
            written.err()
        };
        if let Some(e) = failed {
            self.give_up(&e);
        }
    }

    /// Once every sample is recorded: writes the trailer and header and renames the file into place.
    pub(crate) fn finish_if_complete(&self) {
        if !matches!(&*self.read_state(), State::Building { remaining, .. } if remaining.load(Ordering::Acquire) == 0)
        {
            return;
        }
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        let State::Building { .. } = &*state else {
            return;
        };
        let State::Building { tmp, failures, .. } = std::mem::replace(&mut *state, State::Off)
        else {
            return;
        };
        let failures = failures.into_inner().unwrap_or_else(|e| e.into_inner());
        match self.persist(tmp, &failures) {
            Ok(file) => {
                tracing::debug!(cache = %self.path.display(), "disk cache complete");
                *state = State::Ready {
                    file,
                    failures: failures.into_iter().collect(),
                };
            }
            Err(e) => {
                tracing::warn!(cache = %self.path.display(), error = %e, "cannot write the disk cache; images will be decoded every epoch");
            }
        }
    }

    fn persist(
        &self,
        tmp: tempfile::NamedTempFile,
        failures: &[(usize, String)],
    ) -> io::Result<File> {
        let trailer_at = HEADER_LEN + self.count as u64 * self.record_len();
        let trailer = serde_json::to_vec(failures).map_err(io::Error::other)?;
        write_at(tmp.as_file(), &trailer, trailer_at)?;
        let mut header = Vec::with_capacity(HEADER_LEN as usize);
        header.extend_from_slice(MAGIC);
        header.extend_from_slice(&self.fingerprint);
        header.extend_from_slice(&(self.count as u64).to_le_bytes());
        header.extend_from_slice(&self.size.width.to_le_bytes());
        header.extend_from_slice(&self.size.height.to_le_bytes());
        header.extend_from_slice(&trailer_at.to_le_bytes());
        write_at(tmp.as_file(), &header, 0)?;
        // Data reaches the disk before the rename makes it visible under the final name.
        tmp.as_file().sync_data()?;
        tmp.persist(&self.path).map_err(|e| e.error)
    }

    fn give_up(&self, error: &io::Error) {
        let mut state = self.state.write().unwrap_or_else(|e| e.into_inner());
        if !matches!(*state, State::Off) {
            tracing::warn!(cache = %self.path.display(), %error, "cannot write the disk cache; images will be decoded every epoch");
            *state = State::Off;
        }
    }
}

#[cfg(unix)]
fn read_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buf, offset)
}

#[cfg(unix)]
fn write_at(file: &File, buf: &[u8], offset: u64) -> io::Result<()> {
    std::os::unix::fs::FileExt::write_all_at(file, buf, offset)
}

#[cfg(windows)]
fn read_at(file: &File, mut buf: &mut [u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_read(buf, offset)? {
            0 => return Err(io::ErrorKind::UnexpectedEof.into()),
            n => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(windows)]
fn write_at(file: &File, mut buf: &[u8], mut offset: u64) -> io::Result<()> {
    use std::os::windows::fs::FileExt;
    while !buf.is_empty() {
        match file.seek_write(buf, offset)? {
            0 => return Err(io::ErrorKind::WriteZero.into()),
            n => {
                buf = &buf[n..];
                offset += n as u64;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_a_foreign_file() {
        let dir = tempfile::tempdir().unwrap();
        let size = Size::square(2);
        let fp = [7u8; 32];
        let cache = DiskCache::open(dir.path(), fp, 3, size).unwrap();
        assert!(!cache.is_ready());
        assert!(cache.get(0).is_none());
        cache.put(0, Ok(&[1; 12]));
        cache.put(2, Err("broken"));
        cache.finish_if_complete();
        assert!(!cache.is_ready(), "one sample is still missing");
        cache.put(1, Ok(&[2; 12]));
        cache.finish_if_complete();
        assert!(cache.is_ready());
        let again = DiskCache::open(dir.path(), fp, 3, size).unwrap();
        assert!(again.is_ready());
        assert!(matches!(again.get(1), Some(Cached::Pixels(p)) if p == [2; 12]));
        assert!(matches!(again.get(2), Some(Cached::Failed(r)) if r == "broken"));
        // Same name, other content: rebuilt, not trusted.
        std::fs::write(again.path(), b"GCPIPE01 but nothing else").unwrap();
        assert!(!DiskCache::open(dir.path(), fp, 3, size).unwrap().is_ready());
        // Leftover temporary files are removed when a cache being built is dropped.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }
}
