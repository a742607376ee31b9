//! `gc-sort` on real photos from `../shared/photos` with the built-in model and YuNet: folders,
//! index, duplicate names, a corrupt file, a photo with no face, the user's own files in the way,
//! and a run stopped half-way (with the leftovers of a killed process) that resumes to the same
//! result as an unbroken one.

use gc_classify::photos::DetectMode;
use gc_detect::{Detector, DetectorKind};
use gc_sort::{Category, Row, Settings, Sort, SortError};
use gc_testdata::shared;
use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

fn settings() -> Settings {
    Settings {
        model: "builtin".into(),
        detector: Some("yunet-n-dynamic.onnx".into()),
        detect: "auto".into(),
        min_confidence: 0.8,
        link: false,
    }
}

/// A folder of real photos: two sub-folders holding different photos under the same name, a
/// landscape with no one in it, a corrupt JPEG, and a text file that is not a photo.
fn photo_folder(root: &Path) -> PathBuf {
    let src = root.join("photos");
    for sub in ["trip", "party"] {
        std::fs::create_dir_all(src.join(sub)).unwrap();
    }
    let copy = |from: &str, to: &str| {
        std::fs::copy(shared(&format!("photos/{from}")), src.join(to)).unwrap();
    };
    copy("group-6-people.jpg", "trip/IMG_0001.jpg");
    copy("ultraface-imgs-2.jpg", "party/IMG_0001.jpg");
    copy("ultraface-imgs-19.jpg", "party/IMG_0002.jpg");
    copy("ultraface-mnn-4.jpg", "ultraface-mnn-4.jpg");
    // No face: a smooth sky-to-grass gradient, large enough to go through the detector.
    let landscape = image::RgbImage::from_fn(640, 480, |_, y| {
        if y < 300 {
            image::Rgb([120, 170, (255 - y / 3) as u8])
        } else {
            image::Rgb([60, (140 + y / 10) as u8, 50])
        }
    });
    landscape.save(src.join("landscape.png")).unwrap();
    let mut broken = std::fs::read(shared("photos/ultraface-imgs-1.jpg")).unwrap();
    broken.truncate(2_000);
    std::fs::write(src.join("party/broken.jpg"), broken).unwrap();
    std::fs::write(src.join("notes.txt"), "not a photo").unwrap();
    src
}

fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    walkdir(dir)
        .into_iter()
        .map(|p| {
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            (rel, std::fs::read(&p).unwrap())
        })
        .collect()
}

fn walkdir(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

struct Models {
    model: Box<dyn gc_core::Classifier>,
    detector: Detector,
}

fn models() -> Models {
    Models {
        model: Box::new(gc_classify::builtin::load().unwrap()),
        detector: Detector::from_path(
            &shared("models/detect/yunet-n-dynamic.onnx"),
            DetectorKind::YuNet,
        )
        .unwrap(),
    }
}

fn sort_all(m: &Models, src: &Path, dst: &Path) -> gc_sort::Summary {
    Sort::open(src, dst, settings())
        .unwrap()
        .run(
            m.model.as_ref(),
            Some(&m.detector),
            DetectMode::Auto,
            4,
            |_| ControlFlow::Continue(()),
        )
        .unwrap()
}

fn rows(dst: &Path) -> Vec<Row> {
    gc_sort::index::read(&dst.join("index.csv")).unwrap()
}

#[test]
fn photos_are_sorted_and_nothing_is_lost_or_overwritten() {
    let tmp = tempfile::tempdir().unwrap();
    let src = photo_folder(tmp.path());
    let before = snapshot(&src);
    let dst = tmp.path().join("sorted");
    // The user's own file where a copy would go, and a file under another category's name.
    for c in ["female", "male", "mixed", "uncertain"] {
        std::fs::create_dir_all(dst.join(c)).unwrap();
        std::fs::write(dst.join(c).join("IMG_0001.jpg"), format!("the user's {c}")).unwrap();
    }
    let m = models();
    let summary = sort_all(&m, &src, &dst);

    assert_eq!(snapshot(&src), before, "the source folder changed");
    for c in ["female", "male", "mixed", "uncertain"] {
        let kept = std::fs::read_to_string(dst.join(c).join("IMG_0001.jpg")).unwrap();
        assert_eq!(
            kept,
            format!("the user's {c}"),
            "{c}/IMG_0001.jpg was overwritten"
        );
    }
    let rows = rows(&dst);
    let photos: Vec<&str> = rows.iter().map(|r| r.photo.as_str()).collect();
    assert_eq!(
        photos,
        [
            "landscape.png",
            "party/IMG_0001.jpg",
            "party/IMG_0002.jpg",
            "party/broken.jpg",
            "trip/IMG_0001.jpg",
            "ultraface-mnn-4.jpg"
        ],
        "every image once, in path order, and nothing else"
    );
    assert_eq!(summary.sorted, 6);
    let by_photo: BTreeMap<&str, &Row> = rows.iter().map(|r| (r.photo.as_str(), r)).collect();

    let broken = by_photo["party/broken.jpg"];
    assert_eq!(broken.category, "error");
    assert!(broken.error.contains("corrupt"), "{}", broken.error);
    assert!(broken.destination.is_empty());

    let landscape = by_photo["landscape.png"];
    assert_eq!(
        (landscape.category.as_str(), landscape.faces),
        ("no-face", 0)
    );
    assert_eq!(landscape.destination, "no-face/landscape.png");

    let group = by_photo["trip/IMG_0001.jpg"];
    assert_eq!(group.faces, 6, "every face of group-6-people.jpg");
    assert_eq!(group.boxes.split(';').count(), 6);
    assert_eq!(group.labels.split(';').count(), 6);

    // Every sorted photo is a whole, byte-identical copy, in the folder of its category, and that
    // category follows from the faces' labels and probabilities.
    for r in rows.iter().filter(|r| r.category != "error") {
        let copy = std::fs::read(dst.join(&r.destination)).unwrap();
        assert_eq!(copy, before[&r.photo], "{} -> {}", r.photo, r.destination);
        assert!(r.destination.starts_with(&format!("{}/", r.category)));
        let probs: Vec<f32> = r
            .probabilities
            .split(';')
            .filter(|s| !s.is_empty())
            .map(|s| s.parse().unwrap())
            .collect();
        let expected = if probs.is_empty() {
            "no-face"
        } else if probs.iter().any(|&p| p.max(1.0 - p) < 0.8) {
            "uncertain"
        } else if probs.iter().all(|&p| p >= 0.5) {
            "female"
        } else if probs.iter().all(|&p| p < 0.5) {
            "male"
        } else {
            "mixed"
        };
        assert_eq!(r.category, expected, "{r:?}");
    }
    // The two IMG_0001.jpg both survive, beside the user's file of that name.
    let dests: Vec<&str> = rows
        .iter()
        .filter(|r| r.photo.ends_with("IMG_0001.jpg"))
        .map(|r| r.destination.as_str())
        .collect();
    assert_eq!(dests.len(), 2);
    assert!(
        dests.iter().all(|d| !d.ends_with("/IMG_0001.jpg")),
        "{dests:?}"
    );
    assert_ne!(dests[0], dests[1]);
    // Nothing else was written: the copies, the user's files, index.csv and sort.json.
    let written = walkdir(&dst).len();
    assert_eq!(written, 5 + 4 + 2);
    let counted: usize = summary.counts.values().sum();
    assert_eq!(counted, 6);
    assert_eq!(summary.counts[&Category::Error], 1);
}

#[test]
fn a_stopped_run_resumes_to_the_same_result() {
    let tmp = tempfile::tempdir().unwrap();
    let src = photo_folder(tmp.path());
    let m = models();
    let whole = tmp.path().join("whole");
    sort_all(&m, &src, &whole);

    let broken = tmp.path().join("broken");
    let mut seen = 0;
    let summary = Sort::open(&src, &broken, settings())
        .unwrap()
        .run(
            m.model.as_ref(),
            Some(&m.detector),
            DetectMode::Auto,
            2,
            |_| {
                seen += 1;
                if seen == 3 {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            },
        )
        .unwrap();
    assert!(summary.stopped);
    assert_eq!(rows(&broken).len(), 3);
    // What a kill at the worst moments leaves: the third photo copied but its row half-written,
    // and a copy of the next one cut short under its temporary name.
    let index = broken.join("index.csv");
    let text = std::fs::read_to_string(&index).unwrap();
    let mut lines: Vec<&str> = text.lines().collect();
    let last = lines.pop().unwrap();
    let torn = format!("{}\n{}", lines.join("\n"), &last[..last.len() / 2]);
    std::fs::write(&index, torn).unwrap();
    std::fs::write(broken.join("no-face/.gc-XYZ.partial"), b"half a ph").unwrap();

    let sort = Sort::open(&src, &broken, settings()).unwrap();
    assert_eq!((sort.already_done(), sort.remaining()), (2, 4));
    sort.run(
        m.model.as_ref(),
        Some(&m.detector),
        DetectMode::Auto,
        3,
        |_| ControlFlow::Continue(()),
    )
    .unwrap();

    assert_eq!(
        snapshot(&broken),
        snapshot(&whole),
        "files and index differ"
    );
    // A third run has only the corrupt photo to try again.
    let sort = Sort::open(&src, &broken, settings()).unwrap();
    assert_eq!((sort.already_done(), sort.remaining()), (5, 1));
}

#[test]
fn other_settings_and_overlapping_folders_are_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let src = photo_folder(tmp.path());
    let dst = tmp.path().join("out");
    Sort::open(&src, &dst, settings()).unwrap();
    let other = Settings {
        min_confidence: 0.9,
        ..settings()
    };
    let err = Sort::open(&src, &dst, other).err().unwrap();
    assert!(
        err.to_string()
            .contains("--min-confidence 0.8 there, 0.9 now"),
        "{err}"
    );
    // Sorting a folder into itself, or into a folder inside which it lives, would sort the copies.
    assert!(matches!(
        Sort::open(&src, &src, settings()),
        Err(SortError::Destination { .. })
    ));
    assert!(matches!(
        Sort::open(&src.join("trip"), &src, settings()),
        Err(SortError::Destination { .. })
    ));
    let missing = Sort::open(&tmp.path().join("nope"), &dst, settings())
        .err()
        .unwrap();
    assert!(missing.to_string().contains("no such folder"), "{missing}");
    // An output folder inside the source is skipped by the walk: its copies are not sorted again.
    let inside = src.join("sorted");
    let sort = Sort::open(&src, &inside, settings()).unwrap();
    assert_eq!(sort.remaining(), 6);
    // A symbolic link to a folder above is skipped, not a failed photo tried again on every run.
    std::os::unix::fs::symlink("..", src.join("party").join("up")).unwrap();
    let sort = Sort::open(&src, &tmp.path().join("other"), settings()).unwrap();
    assert_eq!(sort.remaining(), 6);
    // A file where a class folder goes is refused up front (each photo of that class failed,
    // "copying into female: File exists").
    let mine = tmp.path().join("mine");
    std::fs::create_dir(&mine).unwrap();
    std::fs::write(mine.join("female"), b"my notes").unwrap();
    let err = Sort::open(&src, &mine, settings())
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("female: is a file, where sort puts its female/ folder"),
        "{err}"
    );
    assert_eq!(std::fs::read(mine.join("female")).unwrap(), b"my notes");
    assert!(
        !mine.join("sort.json").exists(),
        "a refused run records no settings"
    );
}

#[test]
fn link_mode_links_the_photos_themselves() {
    use std::os::unix::fs::MetadataExt;
    let tmp = tempfile::tempdir().unwrap();
    let src = photo_folder(tmp.path());
    // A relative symbolic link: a hard link of the link itself would dangle in DST.
    std::os::unix::fs::symlink("party/IMG_0002.jpg", src.join("shortcut.jpg")).unwrap();
    let before = snapshot(&src);
    let dst = tmp.path().join("linked");
    let m = models();
    let linked = Settings {
        link: true,
        ..settings()
    };
    Sort::open(&src, &dst, linked)
        .unwrap()
        .run(
            m.model.as_ref(),
            Some(&m.detector),
            DetectMode::Auto,
            4,
            |_| ControlFlow::Continue(()),
        )
        .unwrap();
    let rows = rows(&dst);
    assert_eq!(rows.len(), 7);
    assert!(
        rows.iter()
            .any(|r| r.photo == "shortcut.jpg" && r.category != "error")
    );
    for r in rows.iter().filter(|r| r.category != "error") {
        // metadata() follows links: the shortcut's row must reach the photo's own inode.
        let original = std::fs::metadata(src.join(&r.photo)).unwrap();
        let link = std::fs::metadata(dst.join(&r.destination)).unwrap();
        assert_eq!(
            (original.dev(), original.ino()),
            (link.dev(), link.ino()),
            "{} is not a hard link of {}",
            r.destination,
            r.photo
        );
    }
    assert_eq!(snapshot(&src), before);
    // A copy run into the linked folder is refused: its settings differ.
    let err = Sort::open(&src, &dst, settings()).err().unwrap();
    assert!(err.to_string().contains("--link there"), "{err}");

    // Links cannot cross file systems: refused before any photo, where this machine has a
    // second one to try (a RAM disk).
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && std::fs::metadata(shm).unwrap().dev() != std::fs::metadata(&src).unwrap().dev()
    {
        let elsewhere = tempfile::tempdir_in(shm).unwrap();
        let out = elsewhere.path().join("linked");
        let linked = Settings {
            link: true,
            ..settings()
        };
        let err = Sort::open(&src, &out, linked).err().unwrap().to_string();
        assert!(err.contains("another file system"), "{err}");
        assert!(!out.exists(), "{err}");
    }
}

#[test]
fn photos_that_failed_are_tried_again() {
    let tmp = tempfile::tempdir().unwrap();
    let src = photo_folder(tmp.path());
    let dst = tmp.path().join("sorted");
    let m = models();
    sort_all(&m, &src, &dst);
    let broken = |rows: &[Row]| {
        rows.iter()
            .find(|r| r.photo == "party/broken.jpg")
            .cloned()
            .unwrap()
    };
    assert_eq!(broken(&rows(&dst)).category, "error");
    // The cause goes away (here: the file is mended); the next run sorts it, once.
    std::fs::copy(
        shared("photos/ultraface-imgs-1.jpg"),
        src.join("party/broken.jpg"),
    )
    .unwrap();
    let mode = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode()
    };
    let index_mode = mode(&dst.join("index.csv"));
    let summary = sort_all(&m, &src, &dst);
    // The index was rewritten without the failed row, and kept its permissions.
    assert_eq!(mode(&dst.join("index.csv")), index_mode);
    assert_eq!((summary.resumed, summary.sorted), (5, 1));
    let after = rows(&dst);
    assert_eq!(after.len(), 6, "{after:#?}");
    let mended = broken(&after);
    assert_ne!(mended.category, "error", "{mended:?}");
    assert!(dst.join(&mended.destination).is_file());
    assert_eq!(summary.counts.get(&Category::Error), None);
    // Nothing left to do (the text file is not an image): a third run changes nothing.
    let index = std::fs::read(dst.join("index.csv")).unwrap();
    assert_eq!(sort_all(&m, &src, &dst).sorted, 0);
    assert_eq!(std::fs::read(dst.join("index.csv")).unwrap(), index);
}

#[test]
fn a_broken_link_where_a_copy_would_go_is_passed_over() {
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("photos");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::copy(shared("photos/ultraface-mnn-4.jpg"), src.join("a.jpg")).unwrap();
    let dst = tmp.path().join("sorted");
    let m = models();
    sort_all(&m, &src, &dst);
    // A new photo, and a dangling link of its name in every category folder: every run failed
    // on it ("No such file or directory" reading the link) and it was never sorted.
    std::fs::copy(shared("photos/ultraface-imgs-2.jpg"), src.join("b.jpg")).unwrap();
    for c in Category::ALL.into_iter().filter(|&c| c != Category::Error) {
        let dir = dst.join(c.name());
        std::fs::create_dir_all(&dir).unwrap();
        std::os::unix::fs::symlink(tmp.path().join("nowhere"), dir.join("b.jpg")).unwrap();
    }
    assert_eq!(sort_all(&m, &src, &dst).sorted, 1);
    let b = rows(&dst).into_iter().find(|r| r.photo == "b.jpg").unwrap();
    assert!(b.destination.ends_with("/b (2).jpg"), "{b:?}");
    assert_eq!(
        std::fs::read(dst.join(&b.destination)).unwrap(),
        std::fs::read(src.join("b.jpg")).unwrap()
    );
}

#[test]
fn a_cancelled_run_places_what_it_classified_and_starts_nothing_more() {
    let tmp = tempfile::tempdir().unwrap();
    let src = photo_folder(tmp.path());
    let dst = tmp.path().join("sorted");
    let m = models();
    let flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    // Set before the run: nothing is classified or placed, and the run says it stopped.
    let summary = Sort::open(&src, &dst, settings())
        .unwrap()
        .cancel_on(flag.clone())
        .run(
            m.model.as_ref(),
            Some(&m.detector),
            DetectMode::Auto,
            4,
            |_| panic!("no photo should be placed"),
        )
        .unwrap();
    assert!(summary.stopped);
    assert_eq!(summary.sorted, 0);
    assert!(rows(&dst).is_empty());
    // Set while the model classifies a batch (as Ctrl-C would be): that batch is finished and
    // every photo of it placed (it was the first photo alone, or none: the rest were classified
    // and thrown away), and no other batch is started.
    flag.store(false, std::sync::atomic::Ordering::SeqCst);
    let model = StopsWhenCalled {
        inner: m.model.as_ref(),
        flag: flag.clone(),
    };
    let summary = Sort::open(&src, &dst, settings())
        .unwrap()
        .cancel_on(flag.clone())
        .run(&model, Some(&m.detector), DetectMode::Auto, 2, |_| {
            ControlFlow::Continue(())
        })
        .unwrap();
    assert!(summary.stopped);
    let placed = rows(&dst);
    assert_eq!(placed.len(), summary.sorted);
    // Six photos in batches of two: whole batches, up to the first with a face, and not all.
    assert!(
        summary.sorted.is_multiple_of(2) && (2..6).contains(&summary.sorted),
        "{placed:?}"
    );
    assert!(
        placed
            .iter()
            .all(|r| !r.destination.is_empty() || !r.error.is_empty()),
        "{placed:?}"
    );
}

/// A model that raises `flag` whenever it is asked to classify.
struct StopsWhenCalled<'a> {
    inner: &'a dyn gc_core::Classifier,
    flag: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl gc_core::Classifier for StopsWhenCalled<'_> {
    fn name(&self) -> &str {
        self.inner.name()
    }
    fn labels(&self) -> &[gc_core::ClassLabel] {
        self.inner.labels()
    }
    fn classify(
        &self,
        images: &[gc_core::RgbView<'_>],
    ) -> Result<Vec<Vec<f32>>, gc_core::ModelError> {
        self.flag.store(true, std::sync::atomic::Ordering::SeqCst);
        self.inner.classify(images)
    }
}

#[cfg(unix)]
#[test]
fn names_that_are_not_utf8_stay_apart() {
    use std::os::unix::ffi::OsStrExt;
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("photos");
    std::fs::create_dir_all(&src).unwrap();
    // Two names that differ only in a byte that is not UTF-8: lossy text makes both "bad�.jpg".
    for (byte, photo) in [
        (0xffu8, "ultraface-imgs-2.jpg"),
        (0xfe, "ultraface-imgs-19.jpg"),
    ] {
        let bytes = [b'b', b'a', b'd', byte, b'.', b'j', b'p', b'g'];
        let name = std::ffi::OsStr::from_bytes(&bytes);
        std::fs::copy(shared(&format!("photos/{photo}")), src.join(name)).unwrap();
    }
    // And a name that is UTF-8 but reads like the escape of the first: it was taken for it, and
    // never sorted.
    std::fs::copy(
        shared("photos/ultraface-mnn-4.jpg"),
        src.join(r"bad\xff.jpg"),
    )
    .unwrap();
    let dst = tmp.path().join("sorted");
    let m = models();
    sort_all(&m, &src, &dst);
    let mut photos: Vec<String> = rows(&dst).into_iter().map(|r| r.photo).collect();
    photos.sort();
    assert_eq!(photos, [r"bad\\xff.jpg", r"bad\xfe.jpg", r"bad\xff.jpg"]);
    // A second run finds all three done.
    assert_eq!(sort_all(&m, &src, &dst).sorted, 0);
}
