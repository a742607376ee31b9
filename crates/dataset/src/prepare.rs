//! `prepare`: from a UTKFace folder or archive to `OUT/{train,val,test}/{female,male}/<name>` with a
//! manifest, in two streaming passes over the source (labels and hashes first, then the copies), so the
//! archive is never unpacked and memory stays flat whatever its size.
//!
//! Safety rules: the source is only read; OUT must be new, empty, or one that `prepare` made itself
//! (a marker file says so); every file is written under a temporary name and renamed, so an interrupted
//! run leaves only whole files and a second run finishes the job; an identical second run writes nothing.
//! A run with other inputs or settings starts an unfinished one over only when every file in OUT is
//! one that run wrote (its plan, written before any image, lists them with their hashes).

use crate::PrepareError;
use crate::fsutil::{link_atomic, write_atomic};
use crate::manifest::{
    MANIFEST, MANIFEST_HEADER, ManifestRow, REJECTED, REJECTED_HEADER, RejectedRow, write_csv,
};
use crate::name::{UtkLabel, parse_utkface_name};
use crate::source::Source;
use crate::split::{Fractions, Split, Unit, assign};
use gc_core::AgeBucket;
use gc_pipeline::decode::DecodeLimits;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::{Path, PathBuf};

/// The file in OUT that says `prepare` made it, and with which inputs.
pub const MARKER: &str = ".gender-classifier-prepare.json";

/// The seed used when none is given.
pub const DEFAULT_SEED: u64 = 42;

/// Copy the images, or hard-link them to the source files (folder sources only).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    #[default]
    Copy,
    Link,
}

#[derive(Debug, Clone)]
pub struct PrepareOptions {
    pub source: PathBuf,
    pub out: PathBuf,
    pub seed: u64,
    pub fractions: Fractions,
    pub mode: Mode,
}

impl PrepareOptions {
    pub fn new(source: impl Into<PathBuf>, out: impl Into<PathBuf>) -> Self {
        PrepareOptions {
            source: source.into(),
            out: out.into(),
            seed: DEFAULT_SEED,
            fractions: Fractions::default(),
            mode: Mode::Copy,
        }
    }
}

/// Called as work advances, so a front end can draw progress without this crate knowing how.
pub trait Progress: Sync {
    /// A new phase starts; `total` is known for the second pass.
    fn phase(&self, _name: &str, _total: Option<u64>) {}
    /// One more file handled in the current phase.
    fn inc(&self) {}
}

/// Progress that shows nothing.
pub struct NoProgress;
impl Progress for NoProgress {}

/// What a run did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// OUT was new or empty and is now complete.
    Created,
    /// OUT held an interrupted run with the same inputs; it is now complete.
    Resumed,
    /// OUT already held this exact result; nothing was written.
    UpToDate,
    /// OUT held an unfinished run with other inputs or settings; it was cleared and is now complete.
    Restarted,
}

/// The result of `prepare`, for the summary table and for tests.
#[derive(Debug, Clone, Serialize)]
pub struct PrepareReport {
    pub outcome: Outcome,
    pub rows: Vec<ManifestRow>,
    pub rejected: Vec<RejectedRow>,
    /// Irregular names that were accepted, with why.
    pub notes: Vec<(String, String)>,
    /// Groups of byte-identical images (2 or more names), each kept in one split.
    pub duplicate_groups: usize,
    /// Images in those groups.
    pub duplicate_images: usize,
    /// Duplicate groups whose names disagree on gender: a sign of label noise.
    pub conflicting_gender_groups: usize,
}

impl PrepareReport {
    /// Counts of images by split and by a key of the row.
    pub fn counts<K: Ord>(&self, key: impl Fn(&ManifestRow) -> K) -> BTreeMap<(Split, K), usize> {
        let mut m = BTreeMap::new();
        for r in &self.rows {
            *m.entry((r.split, key(r))).or_insert(0) += 1;
        }
        m
    }
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Marker {
    tool: String,
    fingerprint: String,
    source: String,
    seed: u64,
    fractions: Fractions,
    mode: Mode,
    complete: bool,
}

/// An accepted file after the first pass.
struct Accepted {
    /// Its place in the source's order: the key that finds it again in the second pass (an
    /// archive may hold one path twice, and lossy text may make two folder names one).
    position: usize,
    inner_path: String,
    name: String,
    label: UtkLabel,
    sha256: String,
}

/// Prepares a UTKFace dataset: see the module docs.
pub fn prepare(
    opts: &PrepareOptions,
    progress: &dyn Progress,
) -> Result<PrepareReport, PrepareError> {
    let source = Source::open(&opts.source)?;
    if opts.mode == Mode::Link && !matches!(source, Source::Dir(_)) {
        return Err(PrepareError::LinkNeedsFolder(opts.source.clone()));
    }
    refuse_out_inside_source(&source, &opts.out)?;
    let out_state = inspect_out(&opts.out, opts)?;

    // Pass 1: labels, content hashes, and a decode of each image.
    let limits = DecodeLimits::default();
    progress.phase("reading labels and hashing", None);
    let mut accepted: Vec<Accepted> = Vec::new();
    let mut rejected: Vec<RejectedRow> = Vec::new();
    let mut notes = Vec::new();
    let mut by_name: HashMap<String, usize> = HashMap::new();
    let mut next_position = 0;
    source.for_each(|entry| {
        progress.inc();
        let position = next_position;
        next_position += 1;
        if let Some(reason) = entry.unusable {
            rejected.push(RejectedRow {
                source: entry.inner_path,
                reason,
            });
            return Ok(());
        }
        let parsed = parse_utkface_name(&entry.name);
        let keep = if parsed.is_ok() {
            limits.max_file_bytes()
        } else {
            0
        };
        let content = match read_content(entry.reader, keep) {
            Ok(content) => content,
            // One file of a folder is one rejected row; in an archive, the stream is broken.
            Err(e) if entry.disk_path.is_some() => {
                rejected.push(RejectedRow {
                    source: entry.inner_path,
                    reason: format!("cannot be read: {e}"),
                });
                return Ok(());
            }
            Err(e) => {
                return Err(PrepareError::Read {
                    source_path: source.path().to_path_buf(),
                    entry: entry.inner_path.clone(),
                    error: e,
                });
            }
        };
        let (sha256, len) = (content.sha256.clone(), content.len);
        let reject = |reason: String| RejectedRow {
            source: entry.inner_path.clone(),
            reason,
        };
        match parsed {
            Err(reason) => rejected.push(reject(reason)),
            Ok(_) if len == 0 => rejected.push(reject("empty file".into())),
            Ok(_) if by_name.contains_key(&entry.name) => {
                let first = &accepted[by_name[&entry.name]];
                let what = if first.sha256 == sha256 {
                    "same name and content"
                } else {
                    "same name"
                };
                // An archive can hold one path twice (`tar -r` appends): naming the path would
                // name the entry itself.
                let other = if first.inner_path == entry.inner_path {
                    "an earlier entry with this path, which is taken".to_string()
                } else {
                    first.inner_path.clone()
                };
                rejected.push(reject(format!("{what} as {other}")));
            }
            Ok(parsed) => {
                if let Some(problem) = content_problem(&content, &limits) {
                    rejected.push(reject(problem));
                    return Ok(());
                }
                if let Some(note) = parsed.note {
                    tracing::info!("{}: {note}", entry.inner_path);
                    notes.push((entry.inner_path.clone(), note));
                }
                by_name.insert(entry.name.clone(), accepted.len());
                accepted.push(Accepted {
                    position,
                    inner_path: entry.inner_path,
                    name: entry.name,
                    label: parsed.label,
                    sha256,
                });
            }
        }
        Ok(())
    })?;
    if accepted.is_empty() {
        return Err(PrepareError::NothingAccepted {
            source_path: opts.source.clone(),
            rejected: rejected.len(),
        });
    }

    // Group identical content; each group is placed whole.
    let mut groups: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, a) in accepted.iter().enumerate() {
        groups.entry(&a.sha256).or_default().push(i);
    }
    let mut units = Vec::with_capacity(groups.len());
    let (mut duplicate_groups, mut duplicate_images, mut conflicting_gender_groups) = (0, 0, 0);
    for (sha, members) in &groups {
        // The stratum of a group is that of its first name, so it does not depend on archive order.
        let first = members
            .iter()
            .min_by(|&&a, &&b| accepted[a].name.cmp(&accepted[b].name))
            .map(|&i| &accepted[i])
            .ok_or(PrepareError::Internal("empty duplicate group"))?;
        if members.len() > 1 {
            duplicate_groups += 1;
            duplicate_images += members.len();
            if members
                .iter()
                .any(|&i| accepted[i].label.gender != first.label.gender)
            {
                conflicting_gender_groups += 1;
            }
        }
        let l = first.label;
        units.push(Unit {
            sha256: sha.to_string(),
            stratum: (l.gender, l.race, AgeBucket::of_age(l.age)),
            images: members.len(),
        });
    }
    let unit_splits = assign(&units, opts.fractions, opts.seed);
    let mut split_of: Vec<Split> = vec![Split::Train; accepted.len()];
    for (members, split) in groups.values().zip(&unit_splits) {
        for &i in members {
            split_of[i] = *split;
        }
    }

    let mut rows: Vec<(usize, ManifestRow)> = accepted
        .iter()
        .zip(&split_of)
        .map(|(a, &split)| {
            let row = ManifestRow {
                path: format!("{}/{}/{}", split.name(), a.label.gender.name(), a.name),
                split,
                gender: a.label.gender,
                age: a.label.age,
                race: a.label.race,
                sha256: a.sha256.clone(),
                source: a.inner_path.clone(),
            };
            (a.position, row)
        })
        .collect();
    rows.sort_by(|(_, a), (_, b)| (a.split, a.gender, &a.path).cmp(&(b.split, b.gender, &b.path)));
    let (positions, rows): (Vec<usize>, Vec<ManifestRow>) = rows.into_iter().unzip();
    rejected.sort_by(|a, b| a.source.cmp(&b.source));

    let marker = Marker {
        tool: concat!("gender-classifier ", env!("CARGO_PKG_VERSION")).into(),
        fingerprint: fingerprint(&rows, opts),
        source: opts.source.display().to_string(),
        seed: opts.seed,
        fractions: opts.fractions,
        mode: opts.mode,
        complete: false,
    };
    let mut report = PrepareReport {
        outcome: Outcome::Created,
        rows,
        rejected,
        notes,
        duplicate_groups,
        duplicate_images,
        conflicting_gender_groups,
    };

    report.outcome = match out_state {
        OutState::Fresh => {
            std::fs::create_dir_all(&opts.out).map_err(|e| PrepareError::io(&opts.out, e))?;
            Outcome::Created
        }
        OutState::Ours(found) if found.fingerprint == marker.fingerprint => {
            if found.complete && opts.out.join(MANIFEST).exists() {
                report.outcome = Outcome::UpToDate;
                return Ok(report);
            }
            Outcome::Resumed
        }
        OutState::Ours(found) if found.complete => {
            return Err(PrepareError::OutPreparedDifferently {
                out: opts.out.clone(),
                source_path: found.source,
                seed: found.seed,
            });
        }
        OutState::Ours(found) => {
            start_over(&opts.out, &found, &report.rows, opts.mode)?;
            Outcome::Restarted
        }
    };
    write_marker(&opts.out, &marker)?;
    // Written before any image, so that a later run with other inputs can tell the images of this
    // one from files of the user's.
    write_csv(&opts.out.join(PLAN), MANIFEST_HEADER, &report.rows)?;
    for split in Split::ALL {
        for gender in gc_core::Gender::ALL {
            let dir = opts.out.join(split.name()).join(gender.name());
            std::fs::create_dir_all(&dir).map_err(|e| PrepareError::io(&dir, e))?;
        }
    }

    // Pass 2: write each accepted file to its place.
    let index: HashMap<usize, &ManifestRow> = positions.iter().copied().zip(&report.rows).collect();
    let changed = |row: &ManifestRow| PrepareError::SourceChanged {
        source_path: source.path().to_path_buf(),
        entry: row.source.clone(),
    };
    progress.phase("writing class folders", Some(report.rows.len() as u64));
    let mut next_position = 0;
    source.for_each(|entry| {
        let position = next_position;
        next_position += 1;
        let Some(row) = index.get(&position) else {
            return Ok(());
        };
        // A file added to or removed from a folder between the passes moves the others.
        if entry.unusable.is_some() || entry.inner_path != row.source {
            return Err(changed(row));
        }
        progress.inc();
        let dest = opts.out.join(&row.path);
        if dest.exists() && hash_file(&dest).is_ok_and(|h| h == row.sha256) {
            return Ok(());
        }
        match (&entry.disk_path, opts.mode) {
            (Some(src), Mode::Link) => {
                check_hash(
                    &hash_file(src).map_err(|e| PrepareError::io(src, e))?,
                    row,
                    source.path(),
                )?;
                link_atomic(src, &dest)
            }
            _ => {
                let mut bytes = Vec::new();
                entry
                    .reader
                    .read_to_end(&mut bytes)
                    .map_err(|e| PrepareError::Read {
                        source_path: source.path().to_path_buf(),
                        entry: entry.inner_path.clone(),
                        error: e,
                    })?;
                check_hash(&format!("{:x}", Sha256::digest(&bytes)), row, source.path())?;
                write_atomic(&dest, &bytes)
            }
        }
    })?;
    // A folder that lost files since the first pass ends early.
    if let Some(row) = positions
        .iter()
        .zip(&report.rows)
        .find(|(p, _)| **p >= next_position)
    {
        return Err(changed(row.1));
    }

    sweep_temp_files(&opts.out).map_err(|e| PrepareError::io(&opts.out, e))?;
    write_csv(&opts.out.join(REJECTED), REJECTED_HEADER, &report.rejected)?;
    write_csv(&opts.out.join(MANIFEST), MANIFEST_HEADER, &report.rows)?;
    write_marker(
        &opts.out,
        &Marker {
            complete: true,
            ..marker
        },
    )?;
    // The manifest says the same now.
    let _ = std::fs::remove_file(opts.out.join(PLAN));
    Ok(report)
}

/// What OUT holds before the first pass.
enum OutState {
    /// Nothing: it is missing or empty.
    Fresh,
    /// A run of `prepare`, finished or not: its marker.
    Ours(Marker),
}

/// Looks at OUT before the first pass, so that a folder that is not ours, or ours with other
/// settings, is refused at once rather than after minutes of reading; a refusal that needs the
/// files' hashes comes after it.
fn inspect_out(out: &Path, opts: &PrepareOptions) -> Result<OutState, PrepareError> {
    if !out.exists() {
        return Ok(OutState::Fresh);
    }
    if !out.is_dir() {
        return Err(PrepareError::OutNotDir(out.to_path_buf()));
    }
    let marker_path = out.join(MARKER);
    if !marker_path.exists() {
        let mut entries = std::fs::read_dir(out).map_err(|e| PrepareError::io(out, e))?;
        return match entries.next() {
            None => Ok(OutState::Fresh),
            Some(_) => Err(PrepareError::OutNotOurs(out.to_path_buf())),
        };
    }
    let text =
        std::fs::read_to_string(&marker_path).map_err(|e| PrepareError::io(&marker_path, e))?;
    let found: Marker = serde_json::from_str(&text).map_err(|e| PrepareError::BadMarker {
        path: marker_path.clone(),
        reason: e.to_string(),
    })?;
    if (found.seed, found.fractions, found.mode) != (opts.seed, opts.fractions, opts.mode) {
        if found.complete {
            return Err(PrepareError::OutPreparedDifferently {
                out: out.to_path_buf(),
                source_path: found.source,
                seed: found.seed,
            });
        }
        // Other settings: this run will have to start over there, if it may.
        our_files(out, &found)?;
    }
    Ok(OutState::Ours(found))
}

/// The plan of the run under way: the manifest to be, written before any image.
const PLAN: &str = ".gender-classifier-prepare-plan.csv";

/// The images in OUT's class folders with their hashes, and its other files (hash `None`), when
/// every file in OUT is one that the unfinished run of `found` wrote: its marker, plan, lists,
/// temporary files, and images its plan names with that content. Otherwise the first other file
/// is named in the error, and nothing may be removed.
fn our_files(out: &Path, found: &Marker) -> Result<Vec<(PathBuf, Option<String>)>, PrepareError> {
    let stray = |path: PathBuf| PrepareError::OutUnfinishedDifferently {
        out: out.to_path_buf(),
        source_path: found.source.clone(),
        seed: found.seed,
        stray: path,
    };
    let planned: HashMap<String, String> =
        crate::manifest::read_csv::<ManifestRow>(&out.join(PLAN))
            .unwrap_or_default()
            .into_iter()
            .map(|r| (r.path, r.sha256))
            .collect();
    let is_temp = |name: &str| name.starts_with('.') && name.ends_with(".gc-tmp");
    let list = |dir: &Path| -> Result<Vec<(String, std::fs::FileType)>, PrepareError> {
        let entries = std::fs::read_dir(dir).map_err(|e| PrepareError::io(dir, e))?;
        let mut names = Vec::new();
        for e in entries {
            let e = e.map_err(|e| PrepareError::io(dir, e))?;
            let kind = e
                .file_type()
                .map_err(|err| PrepareError::io(&e.path(), err))?;
            names.push((e.file_name().to_string_lossy().into_owned(), kind));
        }
        Ok(names)
    };
    let mut files = Vec::new();
    for (name, kind) in list(out)? {
        let path = out.join(&name);
        if kind.is_file()
            && ([MARKER, PLAN, MANIFEST, REJECTED].contains(&name.as_str()) || is_temp(&name))
        {
            if name != MARKER && name != PLAN {
                files.push((path, None));
            }
            continue;
        }
        if !kind.is_dir() || !Split::ALL.iter().any(|s| s.name() == name) {
            return Err(stray(path));
        }
        for (gender, kind) in list(&path)? {
            let dir = path.join(&gender);
            if !kind.is_dir() || !gc_core::Gender::ALL.iter().any(|g| g.name() == gender) {
                return Err(stray(dir));
            }
            for (image, kind) in list(&dir)? {
                let file = dir.join(&image);
                if kind.is_file() && is_temp(&image) {
                    files.push((file, None));
                    continue;
                }
                let hash = match planned.get(&format!("{name}/{gender}/{image}")) {
                    Some(want) if kind.is_file() => hash_file(&file).ok().filter(|h| h == want),
                    _ => None,
                };
                match hash {
                    Some(hash) => files.push((file, Some(hash))),
                    None => return Err(stray(file)),
                }
            }
        }
    }
    Ok(files)
}

/// Clears an unfinished run of other inputs or settings out of OUT, so this one can start over
/// there: only what that run wrote, and of its images only those this run would not write the same.
/// The old marker and plan stay until this run's replace them, so a kill in between leaves a
/// folder that can still be proved ours.
fn start_over(
    out: &Path,
    found: &Marker,
    rows: &[ManifestRow],
    mode: Mode,
) -> Result<(), PrepareError> {
    // Of another mode nothing is kept: a hard link of a `--link` run kept by a run that copies
    // would follow every later edit of the source.
    let keep: std::collections::HashSet<(PathBuf, &str)> = rows
        .iter()
        .filter(|_| found.mode == mode)
        .map(|r| (out.join(&r.path), r.sha256.as_str()))
        .collect();
    for (file, hash) in our_files(out, found)? {
        if hash.is_some_and(|h| keep.contains(&(file.clone(), h.as_str()))) {
            continue;
        }
        std::fs::remove_file(&file).map_err(|e| PrepareError::io(&file, e))?;
    }
    Ok(())
}

/// `Err(reason)` when `dir` is the output of a `prepare` that has not finished (interrupted, or
/// still running): its splits hold only the images written so far, and no manifest. The commands
/// that read a dataset refuse it rather than train or evaluate on a part of it without a word.
/// A folder without our marker is somebody's own folder of class folders, and fine.
pub fn unfinished_prepare(dir: &Path) -> Result<(), String> {
    // A split folder given alone (`eval --data DIR/test`) is part of its parent's run.
    if let Some(parent) = dir.parent()
        && dir
            .file_name()
            .is_some_and(|n| Split::ALL.iter().any(|s| n == s.name()))
    {
        unfinished_prepare(parent)?;
    }
    let Ok(text) = std::fs::read_to_string(dir.join(MARKER)) else {
        return Ok(());
    };
    match serde_json::from_str::<Marker>(&text) {
        Ok(m) if m.complete && dir.join(MANIFEST).exists() => Ok(()),
        Ok(m) => Err(format!(
            "an unfinished `prepare` of {} (interrupted, or still running): run the same prepare \
             command again to finish it",
            m.source
        )),
        Err(_) => Ok(()),
    }
}

fn write_marker(out: &Path, marker: &Marker) -> Result<(), PrepareError> {
    let json = serde_json::to_vec_pretty(marker).map_err(|e| PrepareError::BadMarker {
        path: out.join(MARKER),
        reason: e.to_string(),
    })?;
    write_atomic(&out.join(MARKER), &json)
}

/// Writing OUT inside a source folder would feed the output back in on the next run.
fn refuse_out_inside_source(source: &Source, out: &Path) -> Result<(), PrepareError> {
    if let Source::Dir(src) = source {
        let src = src.canonicalize().map_err(|e| PrepareError::io(src, e))?;
        let out_resolved = resolve_to_be(out).map_err(|e| PrepareError::io(out, e))?;
        if out_resolved.starts_with(&src) {
            return Err(PrepareError::OutInsideSource(out.to_path_buf()));
        }
    }
    Ok(())
}

/// Where `path` will be once its folders are made: the part that exists resolved by the file
/// system (links followed), the rest step by step, as `create_dir_all` will make it (a `..` after
/// a folder still to be made goes back to its parent, which a walk up the text missed).
fn resolve_to_be(path: &Path) -> std::io::Result<PathBuf> {
    use std::path::Component;
    let mut resolved = std::env::current_dir()?;
    // Steps below the last folder that exists.
    let mut missing = 0usize;
    for part in path.components() {
        match part {
            Component::CurDir => {}
            Component::ParentDir if missing > 0 => {
                resolved.pop();
                missing -= 1;
            }
            _ if missing > 0 => {
                resolved.push(part);
                missing += 1;
            }
            _ => {
                resolved.push(part);
                match resolved.canonicalize() {
                    Ok(p) => resolved = p,
                    // Not there yet (or not to be made at all, which creating OUT will say).
                    Err(_) => missing = 1,
                }
            }
        }
    }
    Ok(resolved)
}

/// Identifies the result: the same accepted files, labels, seed, fractions and mode give the same value.
fn fingerprint(rows: &[ManifestRow], opts: &PrepareOptions) -> String {
    let mut h = Sha256::new();
    h.update(format!(
        "v1 seed={} fractions={:?} mode={:?}\n",
        opts.seed, opts.fractions.0, opts.mode
    ));
    for r in rows {
        h.update(format!("{},{},{}\n", r.path, r.sha256, r.source));
    }
    format!("{:x}", h.finalize())
}

fn check_hash(found: &str, row: &ManifestRow, source: &Path) -> Result<(), PrepareError> {
    if found == row.sha256 {
        Ok(())
    } else {
        Err(PrepareError::SourceChanged {
            source_path: source.to_path_buf(),
            entry: row.source.clone(),
        })
    }
}

/// What pass 1 learns of an entry's content, read once as a stream.
struct Content {
    sha256: String,
    len: u64,
    /// The first 16 bytes, which name the format.
    head: Vec<u8>,
    /// All the bytes, kept only for an image whose name was taken, whose first bytes name a
    /// format we decode, and while they are no more than the limit: a large file that is no
    /// image, or is not asked for, is hashed as a stream and never held in memory.
    bytes: Option<Vec<u8>>,
}

fn read_content(r: &mut dyn Read, keep: u64) -> std::io::Result<Content> {
    let mut h = Sha256::new();
    let mut buf = [0u8; 64 * 1024];
    let mut len = 0u64;
    let mut head = Vec::with_capacity(16);
    let mut bytes = (keep > 0).then(Vec::new);
    loop {
        let n = r.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
        len += n as u64;
        let more = (16 - head.len()).min(n);
        head.extend_from_slice(&buf[..more]);
        if len > keep
            || (head.len() == 16 && gc_pipeline::decode::supported_format(&head).is_none())
        {
            bytes = None;
        } else if let Some(b) = bytes.as_mut() {
            b.extend_from_slice(&buf[..n]);
        }
    }
    Ok(Content {
        sha256: format!("{:x}", h.finalize()),
        len,
        head,
        bytes,
    })
}

/// Why the content of an entry is no usable image, if it is not: the decoder the other
/// commands use is run on it, so that a truncated JPEG or an image of huge declared size is
/// rejected here rather than counted in a split and skipped by every later command.
fn content_problem(content: &Content, limits: &DecodeLimits) -> Option<String> {
    if gc_pipeline::decode::supported_format(&content.head).is_none() {
        return Some("not a JPEG, PNG, WebP, BMP, GIF or TIFF image (by its content)".into());
    }
    let e = match &content.bytes {
        // Not kept: larger than the decoder reads (its own error, as for a file given alone).
        None => gc_pipeline::decode::DecodeError::FileTooLarge {
            path: Default::default(),
            size: content.len,
            max: limits.max_file_bytes(),
        },
        Some(bytes) => {
            gc_pipeline::decode::decode_rgb_bytes_with_limits(bytes, "", limits).err()?
        }
    };
    // The error names the file first; the rejected row names it already.
    Some(e.to_string().trim_start_matches(": ").to_string())
}

fn hash_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    read_content(&mut f, 0).map(|c| c.sha256)
}

/// Removes temporary files a killed run may have left in OUT's class folders.
fn sweep_temp_files(out: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for split in Split::ALL {
        for gender in gc_core::Gender::ALL {
            let dir = out.join(split.name()).join(gender.name());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for e in entries.flatten() {
                let p = e.path();
                if p.file_name()
                    .is_some_and(|n| n.to_string_lossy().ends_with(".gc-tmp"))
                {
                    std::fs::remove_file(&p)?;
                    removed += 1;
                }
            }
        }
    }
    Ok(removed)
}
