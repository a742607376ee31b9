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
