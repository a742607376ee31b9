//! `prepare` on the real UTKFace archives in `../shared/data/`, and on small folders and zips made here.

use gc_core::{AgeBucket, Gender, Race};
use gc_dataset::{
    ManifestRow, Mode, NoProgress, Outcome, PrepareError, PrepareOptions, Source, Split, prepare,
    read_manifest, read_rejected,
};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

fn shared_data(name: &str) -> PathBuf {
    gc_testdata::shared(&format!("data/{name}"))
}

/// The 64px archive prepared once with the default seed, shared by the tests that only read it.
fn prepared_64() -> &'static (tempfile::TempDir, gc_dataset::PrepareReport) {
    static CELL: OnceLock<(tempfile::TempDir, gc_dataset::PrepareReport)> = OnceLock::new();
    CELL.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("ds");
        let report = prepare(
            &PrepareOptions::new(shared_data("utkface-aligned-64px.tar.gz"), &out),
            &NoProgress,
        )
        .unwrap();
        (dir, report)
    })
}

fn rejected_names(out: &Path) -> BTreeSet<String> {
    read_rejected(out)
        .unwrap()
        .into_iter()
        .map(|r| r.source.rsplit('/').next().unwrap().to_string())
        .collect()
}

#[test]
fn aligned_64px_counts_and_rejects_exactly_the_malformed_names() {
    let (dir, report) = prepared_64();
    let out = dir.path().join("ds");
    assert_eq!(report.outcome, Outcome::Created);
    // 23,708 files; three have no race field.
    assert_eq!(report.rows.len(), 23_705);
    let expected: BTreeSet<String> = [
        "39_1_20170116174525125.jpg.chip.jpg",
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_1_20170109150557335.jpg.chip.jpg",
    ]
    .map(String::from)
    .into();
    assert_eq!(rejected_names(&out), expected);
    for r in read_rejected(&out).unwrap() {
        assert!(r.reason.contains("race field missing"), "{r:?}");
    }

    // Counts from the data README (the rejected three are females: 11,317 - 3).
    let by_gender = count_by(&report.rows, |r| r.gender);
    assert_eq!(by_gender[&Gender::Male], 12_391);
    assert_eq!(by_gender[&Gender::Female], 11_314);
    let by_race = count_by(&report.rows, |r| r.race);
    assert_eq!(by_race[&Race::White], 10_078);
    assert_eq!(by_race[&Race::Black], 4_526);
    assert_eq!(by_race[&Race::Asian], 3_434);
    assert_eq!(by_race[&Race::Indian], 3_975);
    assert_eq!(by_race[&Race::Others], 1_692);

    // The irregular but unambiguous names are accepted with their labels.
    let rows: HashMap<&str, &ManifestRow> = report
        .rows
        .iter()
        .map(|r| (file_name(&r.path), r))
        .collect();
    let space = rows["24_0_1_20170116220224657 .jpg.chip.jpg"];
    assert_eq!(
        (space.age, space.gender, space.race),
        (24, Gender::Male, Race::Black)
    );
    let nodot = rows["55_0_0_20170116232725357jpg.chip.jpg"];
    assert_eq!(
        (nodot.age, nodot.gender, nodot.race),
        (55, Gender::Male, Race::White)
    );
    assert_eq!(report.notes.len(), 2);

    // Every manifest row is a file in its class folder, and the manifest on disk is the report.
    assert_eq!(read_manifest(&out).unwrap(), report.rows);
    for r in report.rows.iter().step_by(97) {
        let p = out.join(&r.path);
        assert!(p.is_file(), "{}", p.display());
        assert_eq!(
            r.path,
            format!("{}/{}/{}", r.split, r.gender, file_name(&r.path))
        );
    }
    let on_disk: usize = Split::ALL
        .iter()
        .flat_map(|s| Gender::ALL.map(|g| out.join(s.name()).join(g.name())))
        .map(|d| std::fs::read_dir(d).unwrap().count())
        .sum();
    assert_eq!(on_disk, 23_705);
}

#[test]
fn aligned_64px_split_is_60_20_20_within_one_image_per_stratum() {
    let (_, report) = prepared_64();
    check_split_shares(&report.rows);
}

#[test]
fn identical_images_never_cross_splits() {
    let (_, report) = prepared_64();
    let mut split_of: HashMap<&str, Split> = HashMap::new();
    let mut groups = 0;
    for r in &report.rows {
        if let Some(s) = split_of.insert(&r.sha256, r.split) {
            assert_eq!(s, r.split, "{} is in two splits", r.sha256);
            groups += 1;
        }
    }
    // The archive really has duplicates, so this test tests something.
    assert!(groups >= 345, "{groups}");
    assert_eq!(report.duplicate_groups, 345);
}

#[test]
fn crop_part1_counts_rejects_and_split() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    let report = prepare(
        &PrepareOptions::new(shared_data("utkface-crop_part1-200px.tar.gz"), &out),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.rows.len(), 9_778);
    let expected: BTreeSet<String> = [
        "61_1_20170109142408075.jpg.chip.jpg",
        "61_3_20170109150557335.jpg.chip.jpg",
    ]
    .map(String::from)
    .into();
    assert_eq!(rejected_names(&out), expected);
    let reasons: Vec<String> = read_rejected(&out)
        .unwrap()
        .into_iter()
        .map(|r| r.reason)
        .collect();
    assert!(
        reasons.iter().any(|r| r.contains("gender code 3")),
        "{reasons:?}"
    );
    let by_gender = count_by(&report.rows, |r| r.gender);
    assert_eq!(by_gender[&Gender::Male], 4_372);
    assert_eq!(by_gender[&Gender::Female], 5_406);
    check_split_shares(&report.rows);
}

#[test]
fn same_seed_same_bytes_other_seed_other_split() {
    let src = shared_data("utkface-crop_part1-200px.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let run = |name: &str, seed: u64| {
        let out = dir.path().join(name);
        let opts = PrepareOptions {
            seed,
            ..PrepareOptions::new(&src, &out)
        };
        prepare(&opts, &NoProgress).unwrap();
        std::fs::read(out.join("manifest.csv")).unwrap()
    };
    let a = run("a", 7);
    let b = run("b", 7);
    let c = run("c", 8);
    assert_eq!(a, b, "same seed, different manifests");
    assert_ne!(a, c, "different seeds, same manifest");
}

#[test]
fn second_run_is_a_no_op_and_foreign_or_other_outputs_are_refused() {
    let src = shared_data("utkface-crop_part1-200px.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    let before = snapshot(&out, true);
    let again = prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    assert_eq!(again.outcome, Outcome::UpToDate);
    assert_eq!(snapshot(&out, true), before, "a no-op run changed files");

    let other_seed = PrepareOptions {
        seed: 9,
        ..PrepareOptions::new(&src, &out)
    };
    let err = prepare(&other_seed, &NoProgress).unwrap_err();
    assert!(
        matches!(err, PrepareError::OutPreparedDifferently { .. }),
        "{err}"
    );

    let foreign = dir.path().join("foreign");
    std::fs::create_dir(&foreign).unwrap();
    std::fs::write(foreign.join("notes.txt"), "mine").unwrap();
    let err = prepare(&PrepareOptions::new(&src, &foreign), &NoProgress).unwrap_err();
    assert!(matches!(err, PrepareError::OutNotOurs(_)), "{err}");
    assert!(err.to_string().contains("foreign"), "{err}");
    assert_eq!(
        std::fs::read_to_string(foreign.join("notes.txt")).unwrap(),
        "mine"
    );
}

#[test]
fn interrupted_run_resumes_to_the_same_result() {
    let src = shared_data("utkface-crop_part1-200px.tar.gz");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ds");
    prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    let whole = snapshot(&out, false);
    let rows = read_manifest(&out).unwrap();

    // What a kill mid-way leaves: no manifest, the marker not complete, some images missing, one
    // half-written temporary file, one damaged image.
    std::fs::remove_file(out.join("manifest.csv")).unwrap();
    let marker = out.join(gc_dataset::MARKER);
    let text = std::fs::read_to_string(&marker).unwrap();
    std::fs::write(
        &marker,
        text.replace("\"complete\": true", "\"complete\": false"),
    )
    .unwrap();
    for r in rows.iter().take(50) {
        std::fs::remove_file(out.join(&r.path)).unwrap();
    }
    let damaged = out.join(&rows[60].path);
    std::fs::write(&damaged, b"half").unwrap();
    let tmp = out.join("train/female/.x.jpg.gc-tmp");
    std::fs::write(&tmp, b"partial").unwrap();

    let report = prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    assert_eq!(report.outcome, Outcome::Resumed);
    assert!(!tmp.exists());
    assert_eq!(snapshot(&out, false), whole);
}

#[test]
fn folder_source_with_links_zip_source_and_bad_names() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("faces");
    std::fs::create_dir_all(src.join("part2")).unwrap();
    // 60 real images from the archive, in two sub-folders, plus defects made here; a 61st
    // outside, reached through a symbolic link.
    let archive = Source::open(&shared_data("utkface-crop_part1-200px.tar.gz")).unwrap();
    let mut taken = Vec::new();
    archive
        .for_each(|e| {
            if taken.len() < 61
                && e.name.ends_with(".jpg.chip.jpg")
                && e.name.matches('_').count() == 3
            {
                let mut bytes = Vec::new();
                e.reader.read_to_end(&mut bytes).unwrap();
                taken.push((e.name, bytes));
            }
            Ok(())
        })
        .unwrap();
    for (i, (name, bytes)) in taken[..60].iter().enumerate() {
        let sub = if i % 2 == 0 { "" } else { "part2" };
        std::fs::write(src.join(sub).join(name), bytes).unwrap();
    }
    std::fs::write(src.join("30_1_0_20170101000000000.jpg.chip.jpg"), b"").unwrap();
    std::fs::write(src.join("notes.txt"), b"not an image").unwrap();
    std::fs::write(src.join(".DS_Store"), b"litter").unwrap();
    // The same name in two folders with different content: the second is refused.
    std::fs::write(src.join("part2").join(&taken[0].0), b"other bytes").unwrap();
    // A good name on text, and on a link to text: refused by their content.
    std::fs::write(src.join("31_1_0_20170101000000000.jpg.chip.jpg"), b"text").unwrap();
    // A truncated JPEG: refused here, as every later command would skip it.
    std::fs::write(
        src.join("33_1_0_20170101000000000.jpg.chip.jpg"),
        &taken[1].1[..700],
    )
    .unwrap();
    #[cfg(unix)]
    {
        let link = |target: &str, name: &str| {
            std::os::unix::fs::symlink(target, src.join("part2").join(name)).unwrap()
        };
        link("../notes.txt", "32_1_0_20170101000000000.jpg.chip.jpg");
        // A link back to the source folder: passed over, not an error that ends the run.
        link("..", "up");
        // A relative link to an image outside: accepted, and the hard link made of it is the
        // image's, not a link that would dangle in the output.
        let (name, bytes) = &taken[60];
        std::fs::create_dir_all(dir.path().join("outside")).unwrap();
        std::fs::write(dir.path().join("outside").join(name), bytes).unwrap();
        link(&format!("../../outside/{name}"), name);
    }
    #[cfg(not(unix))]
    taken.pop();

    let out = dir.path().join("linked");
    let opts = PrepareOptions {
        mode: Mode::Link,
        ..PrepareOptions::new(&src, &out)
    };
    let report = prepare(&opts, &NoProgress).unwrap();
    let links = usize::from(cfg!(unix));
    assert_eq!(report.rows.len(), 60 + links);
    let reasons: BTreeMap<String, String> = report
        .rejected
        .iter()
        .map(|r| (r.source.clone(), r.reason.clone()))
        .collect();
    assert_eq!(reasons.len(), 5 + links, "{reasons:?}");
    assert!(
        reasons["33_1_0_20170101000000000.jpg.chip.jpg"].starts_with("truncated or corrupt JPEG"),
        "{reasons:?}"
    );
    let by_content = "not a JPEG, PNG, WebP, BMP, GIF or TIFF image (by its content)";
    assert_eq!(reasons["31_1_0_20170101000000000.jpg.chip.jpg"], by_content);
    #[cfg(unix)]
    assert_eq!(
        reasons["part2/32_1_0_20170101000000000.jpg.chip.jpg"],
        by_content
    );
    assert_eq!(
        reasons["30_1_0_20170101000000000.jpg.chip.jpg"],
        "empty file"
    );
    assert!(reasons["notes.txt"].contains(".jpg"));
    assert!(reasons[&format!("part2/{}", taken[0].0)].starts_with("same name as"));

    // Hard links: same inode as the source, source untouched.
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        for row in &report.rows {
            // symlink_metadata: the output holds files, not links; metadata() of the source
            // follows its link to the image.
            let linked = std::fs::symlink_metadata(out.join(&row.path)).unwrap();
            let original = std::fs::metadata(src.join(&row.source)).unwrap();
            assert!(linked.is_file(), "{}", row.path);
            assert_eq!(linked.ino(), original.ino(), "{}", row.path);
        }
    }
    for (i, (name, bytes)) in taken[..60].iter().enumerate().skip(1) {
        let sub = if i % 2 == 0 { "" } else { "part2" };
        assert_eq!(&std::fs::read(src.join(sub).join(name)).unwrap(), bytes);
    }

    // An output inside the source is refused.
    let err = prepare(&PrepareOptions::new(&src, src.join("out")), &NoProgress).unwrap_err();
    assert!(matches!(err, PrepareError::OutInsideSource(_)), "{err}");

    // The same images in a zip give the same labels and split.
    let zip_path = dir.path().join("faces.zip");
    let mut zip = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
    for (name, bytes) in &taken {
        zip.start_file(
            format!("UTKFace/{name}"),
            zip::write::SimpleFileOptions::default(),
        )
        .unwrap();
        zip.write_all(bytes).unwrap();
    }
    // A link inside an archive is never followed: a row in rejected.csv says so (it was passed
    // over in silence).
    let link_entry = "UTKFace/34_1_0_20170101000000000.jpg.chip.jpg";
    zip.add_symlink(
        link_entry,
        "/etc/passwd",
        zip::write::SimpleFileOptions::default(),
    )
    .unwrap();
    zip.finish().unwrap();
    let from_zip = prepare(
        &PrepareOptions::new(&zip_path, dir.path().join("zipped")),
        &NoProgress,
    )
    .unwrap();
    let link_rows: Vec<_> = from_zip
        .rejected
        .iter()
        .filter(|r| r.source == link_entry)
        .collect();
    assert_eq!(link_rows.len(), 1, "{:?}", from_zip.rejected);
    assert!(
        link_rows[0].reason.contains("symbolic link"),
        "{link_rows:?}"
    );
    let key = |rows: &[ManifestRow]| -> BTreeSet<(String, Split)> {
        rows.iter()
            .map(|r| (file_name(&r.path).to_string(), r.split))
            .collect()
    };
    assert_eq!(key(&from_zip.rows), key(&report.rows));

    // Links need files on disk.
    let err = prepare(
        &PrepareOptions {
            mode: Mode::Link,
            ..PrepareOptions::new(&zip_path, dir.path().join("z2"))
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(matches!(err, PrepareError::LinkNeedsFolder(_)), "{err}");

    // A file that is no archive is named in the error.
    let junk = dir.path().join("junk.bin");
    std::fs::write(&junk, b"\x00\x01\x02\x03 nothing").unwrap();
    let err = prepare(
        &PrepareOptions::new(&junk, dir.path().join("j")),
        &NoProgress,
    )
    .unwrap_err();
    assert!(err.to_string().contains("junk.bin"), "{err}");
}

fn check_split_shares(rows: &[ManifestRow]) {
    // The stratum of a group of identical images is that of its first name.
    let mut first: HashMap<&str, &ManifestRow> = HashMap::new();
    for r in rows {
        let e = first.entry(&r.sha256).or_insert(r);
        if file_name(&r.path) < file_name(&e.path) {
            *e = r;
        }
    }
    let mut counts: BTreeMap<(Gender, Race, AgeBucket), [usize; 3]> = BTreeMap::new();
    for r in rows {
        let f = first[r.sha256.as_str()];
        let c = counts
            .entry((f.gender, f.race, AgeBucket::of_age(f.age)))
            .or_default();
        c[r.split as usize] += 1;
    }
    assert!(counts.len() >= 80, "{} strata", counts.len());
    for (stratum, c) in &counts {
        let n: usize = c.iter().sum();
        for (k, share) in [0.6, 0.2, 0.2].into_iter().enumerate() {
            let want = share * n as f64;
            assert!(
                (c[k] as f64 - want).abs() < 1.0 + 1e-9,
                "stratum {stratum:?}: {} has {} of {n}, want {want:.1}",
                Split::ALL[k],
                c[k]
            );
        }
    }
    let total = rows.len() as f64;
    for (k, share) in [0.6, 0.2, 0.2].into_iter().enumerate() {
        let n = rows.iter().filter(|r| r.split as usize == k).count() as f64;
        assert!(
            (n - share * total).abs() <= 2.0,
            "{}: {n} of {total}",
            Split::ALL[k]
        );
    }
}

fn count_by<K: Ord>(rows: &[ManifestRow], key: impl Fn(&ManifestRow) -> K) -> BTreeMap<K, usize> {
    let mut m = BTreeMap::new();
    for r in rows {
        *m.entry(key(r)).or_insert(0) += 1;
    }
    m
}

fn file_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap()
}

type Snapshot = BTreeMap<PathBuf, (String, Option<std::time::SystemTime>)>;

/// Every file under `dir` with the SHA-256 of its bytes and, if asked, its modification time.
fn snapshot(dir: &Path, with_mtimes: bool) -> Snapshot {
    use sha2::Digest;
    walk(dir)
        .into_iter()
        .map(|p| {
            let hash = format!("{:x}", sha2::Sha256::digest(std::fs::read(&p).unwrap()));
            let mtime = with_mtimes.then(|| std::fs::metadata(&p).unwrap().modified().unwrap());
            (p.strip_prefix(dir).unwrap().to_path_buf(), (hash, mtime))
        })
        .collect()
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

/// A tar can list a link and then a file under one path: the link gets its rejected.csv row and
/// the file is taken, in both passes (the second read the link's empty entry for the file's row
/// and stopped on a changed hash).
#[test]
fn a_link_and_a_file_under_one_path_in_a_tar() {
    let mut faces = Vec::new();
    Source::open(&shared_data("utkface-crop_part1-200px.tar.gz"))
        .unwrap()
        .for_each(|e| {
            if faces.len() < 12 && e.name.matches('_').count() == 3 {
                let mut bytes = Vec::new();
                e.reader.read_to_end(&mut bytes).unwrap();
                faces.push((e.name, bytes));
            }
            Ok(())
        })
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("faces.tar");
    let mut b = tar::Builder::new(std::fs::File::create(&tar_path).unwrap());
    let (first, _) = &faces[0];
    let mut link = tar::Header::new_gnu();
    link.set_entry_type(tar::EntryType::Symlink);
    link.set_size(0);
    b.append_link(&mut link, format!("UTKFace/{first}"), "/etc/passwd")
        .unwrap();
    for (name, bytes) in &faces {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, format!("UTKFace/{name}"), bytes.as_slice())
            .unwrap();
    }
    b.finish().unwrap();
    drop(b);
    let out = dir.path().join("out");
    let report = prepare(&PrepareOptions::new(&tar_path, &out), &NoProgress).unwrap();
    assert_eq!(report.rows.len(), faces.len());
    assert_eq!(report.rejected.len(), 1, "{:?}", report.rejected);
    assert!(report.rejected[0].reason.contains("symbolic link"));
    let row = report
        .rows
        .iter()
        .find(|r| r.path.ends_with(first.as_str()))
        .unwrap();
    assert_eq!(std::fs::read(out.join(&row.path)).unwrap(), faces[0].1);
}

/// The first `n` images of the 64px archive with well-formed names: (name, bytes).
fn faces(n: usize) -> Vec<(String, Vec<u8>)> {
    let mut faces = Vec::new();
    Source::open(&shared_data("utkface-aligned-64px.tar.gz"))
        .unwrap()
        .for_each(|e| {
            if faces.len() < n && e.name.matches('_').count() == 3 {
                let mut bytes = Vec::new();
                e.reader.read_to_end(&mut bytes).unwrap();
                faces.push((e.name, bytes));
            }
            Ok(())
        })
        .unwrap();
    faces
}

/// A plain tar of `entries` (path, bytes), in that order, repeats included.
fn write_tar(path: &Path, entries: &[(String, &[u8])]) {
    let mut b = tar::Builder::new(std::fs::File::create(path).unwrap());
    for (name, bytes) in entries {
        let mut h = tar::Header::new_gnu();
        h.set_size(bytes.len() as u64);
        h.set_mode(0o644);
        b.append_data(&mut h, name, *bytes).unwrap();
    }
    b.finish().unwrap();
}

fn reasons(report: &gc_dataset::PrepareReport) -> Vec<(String, String)> {
    report
        .rejected
        .iter()
        .map(|r| (r.source.clone(), r.reason.clone()))
        .collect()
}

/// `tar -r` leaves one path twice. When the first copy was rejected (empty, or a truncated JPEG),
/// the second pass, which found rows by path, met that copy and stopped with "changed while being
/// read" on every run; with two good copies, the second's row named itself as the other.
#[test]
fn one_path_twice_in_a_tar() {
    let faces = faces(6);
    let dir = tempfile::tempdir().unwrap();
    let path = |i: usize| format!("UTKFace/{}", faces[i].0);
    let mut entries: Vec<(String, &[u8])> = (0..3).map(|i| (path(i), &faces[i].1[..])).collect();
    entries.push((path(3), b""));
    entries.push((path(3), &faces[3].1));
    entries.push((path(4), &faces[4].1[..300]));
    entries.push((path(4), &faces[4].1));
    entries.push((path(5), &faces[5].1));
    entries.push((path(5), &faces[5].1));
    let tar_path = dir.path().join("faces.tar");
    write_tar(&tar_path, &entries);

    let out = dir.path().join("out");
    let report = prepare(&PrepareOptions::new(&tar_path, &out), &NoProgress).unwrap();
    assert_eq!(report.rows.len(), 6);
    for (name, bytes) in &faces {
        let row = report.rows.iter().find(|r| r.path.ends_with(name)).unwrap();
        assert_eq!(&std::fs::read(out.join(&row.path)).unwrap(), bytes);
    }
    let got = reasons(&report);
    assert_eq!(got.len(), 3, "{got:?}");
    assert_eq!(got[0], (path(3), "empty file".to_string()));
    assert_eq!(got[1].0, path(4));
    assert!(got[1].1.contains("truncated"), "{got:?}");
    assert_eq!(
        got[2],
        (
            path(5),
            "same name and content as an earlier entry with this path, which is taken".to_string()
        )
    );
}

/// Two file names that differ only in bytes that are not UTF-8 read as one text. When the first
/// was rejected (empty here), the second pass took it for the second and stopped.
#[cfg(target_os = "linux")]
#[test]
fn two_names_that_read_as_one_text() {
    use std::os::unix::ffi::OsStrExt;
    let faces = faces(2);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("faces");
    std::fs::create_dir(&src).unwrap();
    std::fs::write(src.join(&faces[0].0), &faces[0].1).unwrap();
    for (byte, bytes) in [(0xfe, &b""[..]), (0xff, &faces[1].1[..])] {
        let name = [&b"20_1_0_2017"[..], &[byte], b".jpg.chip.jpg"].concat();
        std::fs::write(src.join(std::ffi::OsStr::from_bytes(&name)), bytes).unwrap();
    }
    let out = dir.path().join("out");
    let report = prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    assert_eq!(report.rows.len(), 2);
    let got = reasons(&report);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].1, "empty file");
    let row = report
        .rows
        .iter()
        .find(|r| r.path.contains("2017"))
        .unwrap();
    assert_eq!(std::fs::read(out.join(&row.path)).unwrap(), faces[1].1);
}

/// A dangling link anywhere in a source folder ended the whole run, its error said twice.
#[cfg(unix)]
#[test]
fn a_dangling_link_in_a_folder_is_a_rejected_row() {
    let faces = faces(3);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("faces");
    std::fs::create_dir_all(src.join("UTKFace")).unwrap();
    for (name, bytes) in &faces {
        std::fs::write(src.join("UTKFace").join(name), bytes).unwrap();
    }
    let dangling = "UTKFace/20_1_0_20170101000000000.jpg.chip.jpg";
    std::os::unix::fs::symlink("/nonexistent/x.jpg", src.join(dangling)).unwrap();
    let report = prepare(
        &PrepareOptions::new(&src, dir.path().join("out")),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.rows.len(), 3);
    assert_eq!(
        reasons(&report),
        [(
            dangling.to_string(),
            "a symbolic link to a missing file, /nonexistent/x.jpg".to_string()
        )]
    );
}

/// Stops a run as a kill would, after `n` images of the second pass.
struct StopAfter {
    n: usize,
    writing: std::sync::atomic::AtomicBool,
    done: std::sync::atomic::AtomicUsize,
}

impl StopAfter {
    fn new(n: usize) -> Self {
        StopAfter {
            n,
            writing: false.into(),
            done: 0.into(),
        }
    }
}

impl gc_dataset::Progress for StopAfter {
    fn phase(&self, name: &str, _total: Option<u64>) {
        use std::sync::atomic::Ordering::SeqCst;
        self.writing.store(name.starts_with("writing"), SeqCst);
    }
    fn inc(&self) {
        use std::sync::atomic::Ordering::SeqCst;
        if self.writing.load(SeqCst) && self.done.fetch_add(1, SeqCst) == self.n {
            panic!("stopped");
        }
    }
}

/// Runs `opts` until `n` images are written, as a kill would leave OUT.
/// `dir/faces` holding `n` real faces.
fn face_folder(dir: &Path, n: usize) -> PathBuf {
    let src = dir.join("faces");
    std::fs::create_dir(&src).unwrap();
    for (name, bytes) in &faces(n) {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    src
}

fn prepare_interrupted(opts: &PrepareOptions, n: usize) {
    let stop = StopAfter::new(n);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| prepare(opts, &stop)));
    assert!(run.is_err(), "not stopped");
    assert!(gc_dataset::unfinished_prepare(&opts.out).is_err());
}

/// An interrupted run followed by one with other settings or other files was refused as "already
/// prepared ... choose a new --out", though nothing had been finished there.
#[test]
fn an_unfinished_run_of_other_inputs_is_started_over_when_all_its_files_are_ours() {
    let dir = tempfile::tempdir().unwrap();
    let src = face_folder(dir.path(), 30);
    let out = dir.path().join("out");
    prepare_interrupted(&PrepareOptions::new(&src, &out), 20);

    let other = PrepareOptions {
        fractions: "0.8,0.1,0.1".parse().unwrap(),
        ..PrepareOptions::new(&src, &out)
    };
    let report = prepare(&other, &NoProgress).unwrap();
    assert_eq!(report.outcome, Outcome::Restarted);
    let fresh = dir.path().join("fresh");
    prepare(
        &PrepareOptions {
            out: fresh.clone(),
            ..other.clone()
        },
        &NoProgress,
    )
    .unwrap();
    assert_eq!(snapshot(&out, false), snapshot(&fresh, false));

    // A file of the user's in it: named, kept, and nothing removed.
    let out = dir.path().join("out2");
    prepare_interrupted(&PrepareOptions::new(&src, &out), 20);
    let mine = out.join("train/female/mine.jpg");
    std::fs::write(&mine, b"mine").unwrap();
    let before = snapshot(&out, false);
    let other = PrepareOptions {
        out: out.clone(),
        ..other
    };
    let err = prepare(&other, &NoProgress).unwrap_err();
    assert!(
        matches!(err, PrepareError::OutUnfinishedDifferently { .. }),
        "{err}"
    );
    let message = err.to_string();
    assert!(
        message.contains("unfinished") && message.contains("mine.jpg"),
        "{message}"
    );
    assert_eq!(snapshot(&out, false), before);
}

/// Rewrites one source image when the second pass begins.
struct ChangeAtPass2 {
    file: PathBuf,
    bytes: Vec<u8>,
}

impl gc_dataset::Progress for ChangeAtPass2 {
    fn phase(&self, name: &str, _total: Option<u64>) {
        if name.starts_with("writing") {
            std::fs::write(&self.file, &self.bytes).unwrap();
        }
    }
}

#[test]
fn a_source_changed_between_the_passes_can_be_prepared_again() {
    let faces = faces(21);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("faces");
    std::fs::create_dir(&src).unwrap();
    for (name, bytes) in &faces[..20] {
        std::fs::write(src.join(name), bytes).unwrap();
    }
    let out = dir.path().join("out");
    // The last file in the folder's order, so the others are written before the change is seen.
    let last = faces[..20].iter().map(|f| &f.0).max().unwrap();
    let change = ChangeAtPass2 {
        file: src.join(last),
        bytes: faces[20].1.clone(),
    };
    let err = prepare(&PrepareOptions::new(&src, &out), &change).unwrap_err();
    assert!(matches!(err, PrepareError::SourceChanged { .. }), "{err}");
    assert!(err.to_string().contains("run prepare again"), "{err}");

    let report = prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    assert_eq!(report.outcome, Outcome::Restarted);
    let fresh = dir.path().join("fresh");
    prepare(&PrepareOptions::new(&src, &fresh), &NoProgress).unwrap();
    assert_eq!(snapshot(&out, false), snapshot(&fresh, false));
}

/// A complete output of other settings is refused before the source is read (it came after the
/// whole first pass).
#[test]
fn other_settings_are_refused_before_reading_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = face_folder(dir.path(), 3);
    let out = dir.path().join("out");
    prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    // A source with nothing to take: read first, it would say so.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let err = prepare(
        &PrepareOptions {
            seed: 7,
            ..PrepareOptions::new(&empty, &out)
        },
        &NoProgress,
    )
    .unwrap_err();
    assert!(
        matches!(err, PrepareError::OutPreparedDifferently { .. }),
        "{err}"
    );
}

/// A zip can list one name twice; the zip crate keeps one entry per name, so the other copy was
/// dropped without a row in rejected.csv. Older Windows tools write `\` between folders, and
/// every name was refused as `age field "UTKFace\10" is not a number`.
#[test]
fn zip_names_listed_twice_or_with_backslashes() {
    let faces = faces(4);
    let dir = tempfile::tempdir().unwrap();
    let zip_path = dir.path().join("faces.zip");
    let twice = format!("UTKFace/{}", faces[0].0);
    // The writer refuses a name twice: the second is written under a name of the same length,
    // then renamed in the bytes.
    let stand_in = twice.replace(".jpg.chip.jpg", ".jpg.chip.jpX");
    {
        let mut z = zip::ZipWriter::new(std::fs::File::create(&zip_path).unwrap());
        let stored = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored);
        let entries = [
            (twice.clone(), &faces[0].1),
            (format!("UTKFace\\{}", faces[1].0), &faces[1].1),
            (format!("UTKFace/{}", faces[2].0), &faces[2].1),
            (stand_in.clone(), &faces[3].1),
        ];
        for (name, bytes) in entries {
            z.start_file(name, stored).unwrap();
            z.write_all(bytes).unwrap();
        }
        z.finish().unwrap();
    }
    let bytes = std::fs::read(&zip_path).unwrap();
    let mut patched = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut renamed = 0;
    while i < bytes.len() {
        if bytes[i..].starts_with(stand_in.as_bytes()) {
            patched.extend_from_slice(twice.as_bytes());
            i += stand_in.len();
            renamed += 1;
        } else {
            patched.push(bytes[i]);
            i += 1;
        }
    }
    assert_eq!(renamed, 2, "the local and the central header");
    std::fs::write(&zip_path, patched).unwrap();

    let out = dir.path().join("out");
    let report = prepare(&PrepareOptions::new(&zip_path, &out), &NoProgress).unwrap();
    let mut names: Vec<&str> = report.rows.iter().map(|r| file_name(&r.path)).collect();
    names.sort();
    let mut want: Vec<&str> = faces[..3].iter().map(|f| f.0.as_str()).collect();
    want.sort();
    assert_eq!(names, want);
    let sources: BTreeSet<&str> = report.rows.iter().map(|r| r.source.as_str()).collect();
    assert!(sources.contains(format!("UTKFace/{}", faces[1].0).as_str()));
    let got = reasons(&report);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, twice);
    assert!(got[0].1.contains("name in the zip"), "{got:?}");
}

/// A plain tar saved as `.tar.gz` (or `.tgz`) was refused as "not a .tar.gz, .tar or .zip archive".
#[test]
fn a_plain_tar_named_tar_gz() {
    let faces = faces(2);
    let dir = tempfile::tempdir().unwrap();
    let tar_path = dir.path().join("faces.tar.gz");
    let entries: Vec<(String, &[u8])> = faces
        .iter()
        .map(|(name, bytes)| (format!("UTKFace/{name}"), &bytes[..]))
        .collect();
    write_tar(&tar_path, &entries);
    let report = prepare(
        &PrepareOptions::new(&tar_path, dir.path().join("out")),
        &NoProgress,
    )
    .unwrap();
    assert_eq!(report.rows.len(), 2);
}

/// `eval --data DIR/test` of an unfinished prepare read the split folder as a folder of class
/// folders, with only a warning that it had no manifest.
#[test]
fn a_split_folder_of_an_unfinished_prepare_is_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let src = face_folder(dir.path(), 12);
    let out = dir.path().join("out");
    prepare_interrupted(&PrepareOptions::new(&src, &out), 5);
    let err = gc_dataset::unfinished_prepare(&out.join("test")).unwrap_err();
    assert!(err.contains("unfinished"), "{err}");
    prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap();
    assert_eq!(gc_dataset::unfinished_prepare(&out.join("test")), Ok(()));
}

/// A name near the 255-byte limit is a valid UTKFace name, but its temporary name, 8 bytes longer,
/// was not: "File name too long" ended the run.
#[test]
fn a_name_near_the_length_limit() {
    let faces = faces(1);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("faces");
    std::fs::create_dir(&src).unwrap();
    let name = format!("20_1_0_{}.jpg.chip.jpg", "1".repeat(230));
    assert_eq!(name.len(), 250);
    std::fs::write(src.join(&name), &faces[0].1).unwrap();
    let out = dir.path().join("out");
    for mode in [Mode::Copy, Mode::Link] {
        let out = out.join(format!("{mode:?}"));
        let report = prepare(
            &PrepareOptions {
                mode,
                ..PrepareOptions::new(&src, &out)
            },
            &NoProgress,
        )
        .unwrap();
        assert_eq!(report.rows.len(), 1);
        assert_eq!(
            std::fs::read(out.join(&report.rows[0].path)).unwrap(),
            faces[0].1
        );
    }
}

/// `--out A/missing/../../SRC/out` passed the check by walking the text up to `A`, and the output
/// went into the source folder.
#[test]
fn an_output_reached_through_a_folder_still_to_be_made_inside_the_source() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("faces");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(dir.path().join("a")).unwrap();
    let out = dir.path().join("a/missing/../../faces/out");
    let err = prepare(&PrepareOptions::new(&src, &out), &NoProgress).unwrap_err();
    assert!(matches!(err, PrepareError::OutInsideSource(_)), "{err}");
    assert!(!dir.path().join("a/missing").exists());
    // Beside the source, through the same kind of path: fine (no image, so refused for that).
    let beside = dir.path().join("a/missing/../../beside");
    let err = prepare(&PrepareOptions::new(&src, &beside), &NoProgress).unwrap_err();
    assert!(matches!(err, PrepareError::NothingAccepted { .. }), "{err}");
}
