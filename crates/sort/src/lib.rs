//! `gender-classifier sort SRC --out DST`: every photo under SRC is copied (or hard-linked) into
//! one of `DST/female`, `male`, `mixed`, `no-face` or `uncertain`, and listed in `DST/index.csv`.
//!
//! What the user has is never at risk: SRC is only read; in DST a file is written under a
//! temporary name and linked into place under a name nobody holds (`IMG_1 (2).jpg` when `IMG_1.jpg`
//! is taken), so nothing is replaced and a killed run leaves no half-written photo. The index is
//! appended photo by photo; a second run with the same settings reads it, skips what is done, tries
//! again what failed, and ends with the same folders and index as a run that was never stopped
//! (the rows of photos tried again coming after the others).

mod category;
pub mod index;

pub use category::Category;
pub use index::Row;

use gc_classify::Input;
use gc_classify::photos::{DetectMode, PhotoOutcome, Verdict, classify_photos_until};
use gc_classify::place;
use gc_core::Classifier;
use gc_detect::Detector;
use index::Index;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// Why a sort could not start or go on. Problems with single photos are rows of the index instead.
#[derive(Debug, thiserror::Error)]
pub enum SortError {
    #[error("{}: {reason}", path.display())]
    Source { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Destination { path: PathBuf, reason: String },
    #[error("{}: {reason}", path.display())]
    Index { path: PathBuf, reason: String },
    // Not a `source` field: the message already holds it, and `{:#}` would print it twice.
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl SortError {
    fn io(path: &Path, source: std::io::Error) -> SortError {
        SortError::Io {
            path: path.to_path_buf(),
            error: source,
        }
    }
}

/// Everything that decides where a photo goes. Stored in `DST/sort.json`; a run into a folder
/// sorted with other settings is refused, because mixing two sorts in one index would be neither.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The model's name (`builtin`, an ONNX file name...).
    pub model: String,
    /// The face detector's file name, if any.
    pub detector: Option<String>,
    /// `auto`, `always` or `never`.
    pub detect: String,
    /// A face whose prediction is below this makes the photo `uncertain`.
    pub min_confidence: f32,
    /// Hard links instead of copies.
    pub link: bool,
}

pub const SETTINGS_FILE: &str = "sort.json";

/// A sort ready to run: the photos still to do.
pub struct Sort {
    src: PathBuf,
    dst: PathBuf,
    settings: Settings,
    index: Index,
    /// Every photo under SRC, in path order, with those the index already holds removed.
    todo: Vec<Input>,
    done: usize,
    /// Destinations recorded in the index: never handed out again.
    claimed: HashSet<String>,
    /// Set from outside (Ctrl-C) to stop after the batch in hand.
    cancel: Option<Arc<AtomicBool>>,
}

/// What a run did, photo counts by category (those sorted by earlier runs included).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Summary {
    pub counts: BTreeMap<Category, usize>,
    /// Photos an earlier run had already sorted.
    pub resumed: usize,
    /// Photos sorted by this run.
    pub sorted: usize,
    /// The run was stopped before the end.
    pub stopped: bool,
}

impl Sort {
    /// Checks SRC and DST, writes or checks `DST/sort.json`, and lists the photos to do.
    pub fn open(src: &Path, dst: &Path, settings: Settings) -> Result<Sort, SortError> {
        let src_canon = src.canonicalize().map_err(|e| SortError::Source {
            path: src.to_path_buf(),
            reason: match e.kind() {
                std::io::ErrorKind::NotFound => "no such folder".to_string(),
                _ => e.to_string(),
            },
        })?;
        if !src_canon.is_dir() {
            return Err(SortError::Source {
                path: src.to_path_buf(),
                reason: "is not a folder".into(),
            });
        }
        if dst.exists() && !dst.is_dir() {
            return Err(SortError::Destination {
                path: dst.to_path_buf(),
                reason: "is a file, not a folder; sort into a folder (new or one sorted before)"
                    .into(),
            });
        }
        // A file where a class folder goes failed every photo of that class, one by one.
        for category in Category::ALL.into_iter().filter(|&c| c != Category::Error) {
            let folder = dst.join(category.name());
            if folder.symlink_metadata().is_ok() && !folder.is_dir() {
                return Err(SortError::Destination {
                    path: folder,
                    reason: format!(
                        "is a file, where sort puts its {}/ folder; sort into another folder",
                        category.name()
                    ),
                });
            }
        }
        if settings.link {
            same_file_system(&src_canon, dst)?;
        }
        std::fs::create_dir_all(dst).map_err(|e| SortError::io(dst, e))?;
        let dst_canon = dst.canonicalize().map_err(|e| SortError::io(dst, e))?;
        if dst_canon == src_canon {
            return Err(SortError::Destination {
                path: dst.to_path_buf(),
                reason: "is the source folder; sort into another one".into(),
            });
        }
        if src_canon.starts_with(&dst_canon) {
            return Err(SortError::Destination {
                path: dst.to_path_buf(),
                reason: "holds the source folder; sort into another one".into(),
            });
        }
        check_settings(dst, &settings)?;
        remove_partial_files(dst);
        let (index, rows) = Index::open(dst)?;
        let done_photos: HashSet<&str> = rows.iter().map(|r| r.photo.as_str()).collect();
        let todo: Vec<Input> = list_photos(&src_canon, &dst_canon)
            .into_iter()
            .filter(|(rel, _)| !done_photos.contains(rel.as_str()))
            .map(|(_, input)| input)
            .collect();
        let claimed = rows
            .iter()
            .filter(|r| !r.destination.is_empty())
            .map(|r| r.destination.clone())
            .collect();
        Ok(Sort {
            src: src_canon,
            dst: dst.to_path_buf(),
            settings,
            index,
            todo,
            done: rows.len(),
            claimed,
            cancel: None,
        })
    }

    /// Stops the run once `flag` is set (by a signal handler, say): the batch being classified is
    /// finished, every photo classified is placed and indexed, no other batch is started, and the
    /// summary says it stopped.
    pub fn cancel_on(self, flag: Arc<AtomicBool>) -> Sort {
        Sort {
            cancel: Some(flag),
            ..self
        }
    }

    /// Photos still to sort.
    pub fn remaining(&self) -> usize {
        self.todo.len()
    }

    /// Photos an earlier run sorted.
    pub fn already_done(&self) -> usize {
        self.done
    }

    /// Classifies and places the remaining photos, `batch` at a time, calling `on_photo` after
    /// each is in place and in the index; `ControlFlow::Break` stops the run there (the photos
    /// classified after it are not placed, unlike after a cancel: the caller asked for no more).
    ///
    /// Photos are placed and indexed on a thread of their own, in input order, while the next
    /// batches are decoded and classified: creating files is kernel time that would otherwise
    /// leave the decoding threads waiting after every batch.
    pub fn run(
        mut self,
        model: &dyn Classifier,
        detector: Option<&Detector>,
        mode: DetectMode,
        batch: usize,
        mut on_photo: impl FnMut(&Row) -> ControlFlow<()> + Send,
    ) -> Result<Summary, SortError> {
        let mut summary = Summary {
            resumed: self.done,
            ..Summary::default()
        };
        let todo = std::mem::take(&mut self.todo);
        let stop = AtomicBool::new(false);
        let cancel = self.cancel.clone();
        let cancelled = || cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed));
        let halted = || stop.load(Ordering::Relaxed) || cancelled();
        let (sorted, stopped) = std::thread::scope(|scope| {
            // A few batches of slack: enough to keep both sides busy, little memory (outcomes
            // hold no pixels).
            let (tx, rx) = std::sync::mpsc::sync_channel::<PhotoOutcome>(
                batch.clamp(1, gc_core::MAX_BATCH) * 4,
            );
            let this = &mut self;
            let stop_flag = &stop;
            // What was classified before a Ctrl-C is placed: the classifying side stops
            // starting batches, and this side takes what it has sent.
            let writer = scope.spawn(move || -> Result<(usize, bool), SortError> {
                let mut sorted = 0;
                for outcome in rx {
                    let row = this.sort_one(&outcome).inspect_err(|_| {
                        stop_flag.store(true, Ordering::Relaxed);
                    })?;
                    sorted += 1;
                    if on_photo(&row).is_break() {
                        stop_flag.store(true, Ordering::Relaxed);
                        return Ok((sorted, true));
                    }
                }
                Ok((sorted, cancelled()))
            });
            // A stop request ends the work after the batch in hand.
            classify_photos_until(model, detector, mode, &todo, batch, &halted, |outcome| {
                if !stop_flag.load(Ordering::Relaxed) {
                    // A closed channel means the writer stopped; it says why below.
                    let _ = tx.send(outcome);
                }
            });
            drop(tx);
            writer
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })?;
        summary.sorted = sorted;
        summary.stopped = stopped;
        drop(self.index);
        for row in index::read(&self.dst.join(index::FILE_NAME))? {
            if let Some(c) = Category::from_name(&row.category) {
                *summary.counts.entry(c).or_default() += 1;
            }
        }
        Ok(summary)
    }

    fn sort_one(&mut self, outcome: &PhotoOutcome) -> Result<Row, SortError> {
        let rel = relative(&self.src, &outcome.path);
        let mut row = Row {
            photo: rel,
            category: String::new(),
            destination: String::new(),
            faces: 0,
            boxes: String::new(),
            labels: String::new(),
            probabilities: String::new(),
            error: String::new(),
        };
        match &outcome.result {
            // The caller names the photo and the reason (`on_photo`); the index keeps them.
            Err(reason) => {
                row.category = Category::Error.name().into();
                row.error = reason.clone();
            }
            Ok(verdict) => {
                let category = Category::of(verdict, self.settings.min_confidence);
                describe(&mut row, verdict, outcome.size.unwrap_or((0, 0)));
                row.category = category.name().into();
                match self.place(&outcome.path, category) {
                    Ok(dest) => row.destination = dest,
                    // The photo stays where it is; the reason is in the index and on stderr.
                    Err(e) => {
                        let how = if self.settings.link {
                            "linking"
                        } else {
                            "copying"
                        };
                        row.category = Category::Error.name().into();
                        row.error = format!("{how} into {}: {e}", category.name());
                    }
                }
            }
        }
        self.index.append(&row)?;
        Ok(row)
    }

    /// Copies or links `source` into the category's folder under the first free name, and returns
    /// that path relative to DST.
    fn place(&mut self, source: &Path, category: Category) -> std::io::Result<String> {
        let dir = self.dst.join(category.name());
        std::fs::create_dir_all(&dir)?;
        // The photo's own name where it is text; a name that is not UTF-8 gets its escaped
        // text (two photos whose names then read alike get two names, as any others do).
        let name = source
            .file_name()
            .map(|n| {
                n.to_str()
                    .map_or_else(|| gc_classify::inputs::path_text(n), str::to_owned)
            })
            .unwrap_or_else(|| "photo".into());
        let (stem, ext) = place::split_name(&name);
        for n in 1.. {
            let file = place::candidate(stem, ext, n);
            let rel = format!("{}/{file}", category.name());
            if self.claimed.contains(&rel) {
                continue;
            }
            let path = dir.join(&file);
            let placed = match path.symlink_metadata() {
                // A copy that a killed run put in place but did not get to index is this photo's:
                // taking it back keeps a resumed run's folders the same as an unbroken run's.
                Ok(_) => same_content(source, &path)?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    match self.put(source, &dir, &path) {
                        Ok(()) => true,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => false,
                        Err(e) => return Err(e),
                    }
                }
                Err(e) => return Err(e),
            };
            if placed {
                self.claimed.insert(rel.clone());
                return Ok(rel);
            }
        }
        unreachable!("the name counter is unbounded")
    }

    /// Puts `source` at `path`, failing with `AlreadyExists` if it is taken.
    fn put(&self, source: &Path, dir: &Path, path: &Path) -> std::io::Result<()> {
        if self.settings.link {
            // link(2) does not follow a symbolic link: a link to the link would dangle wherever
            // its relative target does not resolve. Link the photo it names.
            return std::fs::hard_link(source.canonicalize()?, path);
        }
        let tmp = place::temp_in(dir)?;
        std::fs::copy(source, tmp.path())?;
        // Keep the photo's date: photo apps sort by it.
        if let Ok(modified) = std::fs::metadata(source).and_then(|m| m.modified()) {
            let _ = tmp.as_file().set_modified(modified);
        }
        tmp.persist_noclobber(path).map(|_| ()).map_err(|e| e.error)
    }
}

/// Fills the face columns of `row`.
fn describe(row: &mut Row, verdict: &Verdict, size: (u32, u32)) {
    let faces: Vec<([f32; 4], &gc_classify::Prediction)> = match verdict {
        Verdict::Whole(p) => vec![([0.0, 0.0, size.0 as f32, size.1 as f32], p)],
        Verdict::Faces(faces) => faces.iter().map(|f| (f.bbox, &f.prediction)).collect(),
    };
    let (mut boxes, mut labels, mut probabilities) = (Vec::new(), Vec::new(), Vec::new());
    for (b, p) in &faces {
        let [x, y, w, h] = b.map(|v| v.round() as i64);
        boxes.push(format!("{x},{y},{w},{h}"));
        labels.push(p.label.to_string());
        probabilities.push(format!("{:.4}", p.probabilities[0]));
    }
    row.faces = faces.len();
    row.boxes = boxes.join(";");
    row.labels = labels.join(";");
    row.probabilities = probabilities.join(";");
}

fn relative(root: &Path, path: &Path) -> String {
    let rel = path.strip_prefix(root).unwrap_or(path);
    rel.components()
        .map(|c| gc_classify::inputs::path_text(c.as_os_str()))
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the file already at `b` is a copy of photo `a`. A `b` that cannot be read (a broken
/// link, no permission) is not: the photo then goes to the next free name, where before every
/// run failed on it.
fn same_content(a: &Path, b: &Path) -> std::io::Result<bool> {
    let ma = std::fs::metadata(a)?;
    let Ok(mb) = std::fs::metadata(b) else {
        return Ok(false);
    };
    if ma.len() != mb.len() || !mb.is_file() {
        return Ok(false);
    }
    let theirs = match std::fs::read(b) {
        Ok(bytes) => bytes,
        Err(_) => return Ok(false),
    };
    Ok(std::fs::read(a)? == theirs)
}

/// Hard links cannot cross file systems: refused before any photo, rather than for every one.
#[cfg(unix)]
fn same_file_system(src: &Path, dst: &Path) -> Result<(), SortError> {
    use std::os::unix::fs::MetadataExt;
    let dev = |p: &Path| std::fs::metadata(p).map(|m| m.dev());
    // DST may not exist yet: the folder it would be made in decides.
    let made_in = std::path::absolute(dst)
        .map_err(|e| SortError::io(dst, e))?
        .ancestors()
        .find(|a| a.exists())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("/"));
    let (a, b) = (
        dev(src).map_err(|e| SortError::io(src, e))?,
        dev(&made_in).map_err(|e| SortError::io(dst, e))?,
    );
    if a != b {
        return Err(SortError::Destination {
            path: dst.to_path_buf(),
            reason: format!(
                "is on another file system than {}, and --link makes hard links, which cannot cross file systems; sort into a folder on the same one, or copy (leave out --link)",
                src.display()
            ),
        });
    }
    Ok(())
}

#[cfg(not(unix))]
fn same_file_system(_: &Path, _: &Path) -> Result<(), SortError> {
    Ok(())
}

/// Sorts begun before `sort.json` named the detector file recorded the name of the `--detector`
/// path given, a folder's name for a folder of detectors. When `dst` records `given` and the run
/// loads `loaded` from that folder, the record is brought up to date, so that the same command
/// continues the sort. Returns whether it was.
pub fn update_detector_record(dst: &Path, given: &str, loaded: &str) -> Result<bool, SortError> {
    let path = dst.join(SETTINGS_FILE);
    let Ok(bytes) = std::fs::read(&path) else {
        return Ok(false);
    };
    let Ok(mut recorded) = serde_json::from_slice::<Settings>(&bytes) else {
        return Ok(false);
    };
    if recorded.detector.as_deref() != Some(given) || given == loaded {
        return Ok(false);
    }
    recorded.detector = Some(loaded.to_string());
    write_settings(dst, &recorded, Replace::Yes)?;
    Ok(true)
}

enum Replace {
    Yes,
    /// A settings file that appeared meanwhile is not replaced.
    No,
}

/// `DST/sort.json`, written whole: a temporary file put in place.
fn write_settings(dst: &Path, settings: &Settings, replace: Replace) -> Result<(), SortError> {
    let path = dst.join(SETTINGS_FILE);
    let json = serde_json::to_vec_pretty(settings).expect("settings serialise");
    let tmp = place::temp_in(dst).map_err(|e| SortError::io(dst, e))?;
    std::fs::write(tmp.path(), json).map_err(|e| SortError::io(&path, e))?;
    match replace {
        Replace::Yes => tmp.persist(&path).map(drop),
        Replace::No => tmp.persist_noclobber(&path).map(drop),
    }
    .map_err(|e| SortError::io(&path, e.error))
}

fn check_settings(dst: &Path, settings: &Settings) -> Result<(), SortError> {
    let path = dst.join(SETTINGS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => {
            let theirs: Settings =
                serde_json::from_slice(&bytes).map_err(|e| SortError::Destination {
                    path: path.clone(),
                    reason: format!("not a sort settings file: {e}"),
                })?;
            if &theirs != settings {
                return Err(SortError::Destination {
                    path: dst.to_path_buf(),
                    reason: format!(
                        "was sorted with other settings ({}); resume with the same ones or sort into another folder",
                        settings_diff(&theirs, settings)
                    ),
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if dst.join(index::FILE_NAME).exists() {
                return Err(SortError::Destination {
                    path: dst.to_path_buf(),
                    reason: format!(
                        "holds an {} that this tool did not write (no {SETTINGS_FILE}); sort into another folder",
                        index::FILE_NAME
                    ),
                });
            }
            write_settings(dst, settings, Replace::No)
        }
        Err(e) => Err(SortError::io(&path, e)),
    }
}

fn settings_diff(old: &Settings, new: &Settings) -> String {
    let mut diffs = Vec::new();
    if old.model != new.model {
        diffs.push(format!("model {} there, {} now", old.model, new.model));
    }
    if old.detector != new.detector {
        diffs.push(format!(
            "detector {} there, {} now",
            old.detector.as_deref().unwrap_or("none"),
            new.detector.as_deref().unwrap_or("none")
        ));
    }
    if old.detect != new.detect {
        diffs.push(format!("--detect {} there, {} now", old.detect, new.detect));
    }
    if old.min_confidence != new.min_confidence {
        diffs.push(format!(
            "--min-confidence {} there, {} now",
            old.min_confidence, new.min_confidence
        ));
    }
    if old.link != new.link {
        diffs.push(format!(
            "{} there",
            if old.link { "--link" } else { "copies" }
        ));
    }
    diffs.join(", ")
}

/// Temporary files of a killed run (ours by their name), in the category folders.
fn remove_partial_files(dst: &Path) {
    // DST itself holds sort.json's, if a run died writing it.
    let dirs = std::iter::once(dst.to_path_buf()).chain(Category::ALL.map(|c| dst.join(c.name())));
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            continue;
        };
        for e in entries.flatten() {
            let name = e.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(".gc-") && name.ends_with(".partial") {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
}

/// The image files under `root` (hidden ones and DST excepted), sorted by path, each with its path
/// relative to `root`. Unreadable entries become inputs with a problem, so they reach the index.
fn list_photos(root: &Path, dst: &Path) -> Vec<(String, Input)> {
    let mut out = Vec::new();
    let walk = walkdir::WalkDir::new(root)
        .follow_links(true)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| {
            let hidden = e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
            let is_dst = e.file_type().is_dir() && e.path().canonicalize().is_ok_and(|p| p == dst);
            !hidden && !is_dst
        });
    for entry in walk {
        match entry {
            Ok(e)
                if e.file_type().is_file()
                    && gc_classify::inputs::has_image_extension(e.path()) =>
            {
                let rel = relative(root, e.path());
                out.push((
                    rel,
                    Input {
                        path: e.into_path(),
                        problem: None,
                    },
                ));
            }
            Ok(_) => {}
            Err(e) if gc_classify::inputs::skip_link_loop(&e) => {}
            Err(e) => {
                let path = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let reason = gc_classify::inputs::walk_error_reason(&e);
                out.push((
                    relative(root, &path),
                    Input {
                        path,
                        problem: Some(reason),
                    },
                ));
            }
        }
    }
    out
}
