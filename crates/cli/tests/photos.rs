//! Photos of people through the binary: `predict --annotate`, EXIF-rotated group photos, and
//! `sort` killed with SIGKILL in the middle and started again.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

fn detector() -> PathBuf {
    shared("models/detect/yunet-n-dynamic.onnx")
}

fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .collect()
}

fn boxes(row: &serde_json::Value) -> Vec<[f64; 4]> {
    let mut b: Vec<[f64; 4]> = row["faces"]
        .as_array()
        .unwrap_or_else(|| panic!("no faces in {row}"))
        .iter()
        .map(|f| {
            let v: Vec<f64> = f["box"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .collect();
            [v[0], v[1], v[2], v[3]]
        })
        .collect();
    b.sort_by(|a, b| a[0].total_cmp(&b[0]));
    b
}

#[test]
fn annotate_writes_boxed_copies_and_never_replaces_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("annotated");
    let group = shared("photos/group-6-people.jpg");
    let args = |cmd: &mut std::process::Command| {
        cmd.args(["predict", "--json", "--annotate"])
            .arg(&out)
            .arg("--detector")
            .arg(detector())
            .arg(&group);
    };
    let mut cmd = bin();
    args(&mut cmd);
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let row = &json_lines(&stdout)[0];
    let written = out.join("group-6-people.jpg");
    let first = std::fs::read(&written).unwrap();
    let annotated = image::load_from_memory(&first).unwrap().to_rgb8();
    let original = image::open(&group).unwrap().to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    // The left edge of every box is drawn in its class's colour (pink or blue, through JPEG).
    for (face, b) in row["faces"].as_array().unwrap().iter().zip(boxes(row)) {
        let _ = face;
        let (x, y) = (b[0].max(0.0) as u32 + 1, (b[1] + b[3] / 2.0) as u32);
        let p = annotated.get_pixel(x, y).0;
        let o = original.get_pixel(x, y).0;
        let strong = p[0].max(p[2]) > 180 && p[1] < 150;
        assert!(
            strong && p != o,
            "no box edge at {x},{y}: {p:?} (photo {o:?})"
        );
    }
    // A second run writes a second copy and leaves the first as it was.
    let mut again = bin();
    args(&mut again);
    let (code, _, stderr) = run(&mut again);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read(&written).unwrap(), first);
    assert!(out.join("group-6-people (2).jpg").exists());
    assert_eq!(std::fs::read_dir(&out).unwrap().count(), 2);
    // A file as the folder: one error before any photo, the file as it was.
    let (code, stdout, stderr) = run(bin()
        .args(["predict", "--annotate"])
        .arg(&written)
        .arg(&group)
        .arg(&group));
    assert_eq!(code, 2, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    assert_eq!(
        stderr.matches("is a file, not a folder").count(),
        1,
        "{stderr}"
    );
    assert_eq!(std::fs::read(&written).unwrap(), first);
}

#[cfg(unix)]
#[test]
fn a_photo_read_from_a_named_pipe_is_annotated_from_the_bytes_classified() {
    // A pipe gives its bytes once: the copy must be drawn from what was read to classify it.
    let dir = tempfile::tempdir().unwrap();
    let fifo = dir.path().join("piped.jpg");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap();
    assert!(made.success());
    let bytes = std::fs::read(shared("photos/group-6-people.jpg")).unwrap();
    let writer = {
        let (fifo, bytes) = (fifo.clone(), bytes.clone());
        std::thread::spawn(move || std::fs::write(fifo, bytes))
    };
    let out = dir.path().join("annotated");
    let (code, stdout, stderr) = run(bin()
        .args(["predict", "--json", "--annotate"])
        .arg(&out)
        .arg("--detector")
        .arg(detector())
        .arg(&fifo));
    assert_eq!(code, 0, "{stderr}");
    writer.join().unwrap().unwrap();
    assert_eq!(boxes(&json_lines(&stdout)[0]).len(), 6, "{stdout}");
    let annotated = image::open(out.join("piped.jpg")).unwrap().to_rgb8();
    let original = image::load_from_memory(&bytes).unwrap().to_rgb8();
    assert_eq!(annotated.dimensions(), original.dimensions());
    assert_ne!(annotated, original);
}

#[test]
fn an_exif_rotated_group_photo_gives_the_same_faces() {
    let dir = tempfile::tempdir().unwrap();
    let group = image::open(shared("photos/group-6-people.jpg"))
        .unwrap()
        .to_rgb8();
    let encode = |img: &image::RgbImage| {
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 95)
            .encode_image(img)
            .unwrap();
        jpeg
    };
    let upright = dir.path().join("upright.jpg");
    std::fs::write(&upright, encode(&group)).unwrap();
    // Stored a quarter turn to the left, with EXIF orientation 6 ("turn right to view").
    let tagged = dir.path().join("tagged.jpg");
    let turned = encode(&image::imageops::rotate270(&group));
    std::fs::write(&tagged, with_exif_orientation(&turned, 6)).unwrap();

    let (code, stdout, stderr) = run(bin()
        .args(["predict", "--json", "--detector"])
        .arg(detector())
        .args([&upright, &tagged]));
    assert_eq!(code, 0, "{stderr}");
    let rows = json_lines(&stdout);
    let (a, b) = (boxes(&rows[0]), boxes(&rows[1]));
    assert_eq!(a.len(), 6, "{}", rows[0]);
    assert_eq!(b.len(), 6, "EXIF not applied: {}", rows[1]);
    for (a, b) in a.iter().zip(&b) {
        for k in 0..4 {
            assert!((a[k] - b[k]).abs() < 6.0, "boxes differ: {a:?} vs {b:?}");
        }
    }
}

fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

fn sort_cmd(src: &Path, dst: &Path) -> std::process::Command {
    let mut c = bin();
    c.arg("sort")
        .arg(src)
        .arg("--out")
        .arg(dst)
        .arg("--detector")
        .arg(detector())
        .args(["--batch-size", "8"]);
    c
}

#[test]
fn sort_killed_mid_run_resumes_to_the_same_folders() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photos");
    std::fs::create_dir_all(src.join("faces")).unwrap();
    std::fs::create_dir_all(src.join("more")).unwrap();
    real_faces(&src.join("faces"), 400);
    for name in ["group-6-people.jpg", "ultraface-imgs-19.jpg"] {
        std::fs::copy(shared(&format!("photos/{name}")), src.join(name)).unwrap();
        std::fs::copy(
            shared(&format!("photos/{name}")),
            src.join("more").join(name),
        )
        .unwrap();
    }
    std::fs::write(src.join("more/corrupt.jpg"), b"\xff\xd8\xff\xe0 not really").unwrap();
    let before = tree(&src);

    let whole = dir.path().join("whole");
    let (code, stdout, stderr) = run(&mut sort_cmd(&src, &whole));
    assert_eq!(code, 1, "a corrupt photo makes exit code 1: {stderr}");
    assert!(stderr.contains("corrupt.jpg: error:"), "{stderr}");
    assert!(stdout.contains("405 photos sorted"), "{stdout}");

    // Kill the second run as soon as it has indexed a few photos, then run it again.
    let killed = dir.path().join("killed");
    let mut child = sort_cmd(&src, &killed)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let index = killed.join("index.csv");
    let start = Instant::now();
    loop {
        let lines = std::fs::read_to_string(&index).map_or(0, |t| t.lines().count());
        if lines > 5 {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert!(!status.success(), "the run ended before it could be killed");
    let partial = std::fs::read_to_string(&index).unwrap().lines().count();
    assert!(partial < 406, "{partial} rows before the kill");

    let (code, _, stderr) = run(&mut sort_cmd(&src, &killed));
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("continuing"), "{stderr}");
    assert_eq!(
        tree(&killed),
        tree(&whole),
        "resumed run differs from an unbroken one"
    );
    assert_eq!(tree(&src), before, "the source folder changed");

    // Ctrl-C: the photo in hand is finished, nothing half-written is left, exit 130.
    let stopped = dir.path().join("stopped");
    let child = sort_cmd(&src, &stopped)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let index = stopped.join("index.csv");
    let start = Instant::now();
    while std::fs::read_to_string(&index).map_or(0, |t| t.lines().count()) <= 5 {
        assert!(start.elapsed() < Duration::from_secs(120), "no progress");
        std::thread::sleep(Duration::from_millis(2));
    }
    let sent = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    assert!(
        stderr.contains("interrupted: run the same command again"),
        "{stderr}"
    );
    let rows = std::fs::read_to_string(&index).unwrap();
    assert!(rows.ends_with('\n') && rows.lines().count() < 406, "{rows}");
    let leftovers: Vec<String> = tree(&stopped)
        .into_keys()
        .filter(|k| k.contains(".partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let (code, _, stderr) = run(&mut sort_cmd(&src, &stopped));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(tree(&stopped), tree(&whole), "resumed after Ctrl-C");
}

#[test]
fn sort_says_what_it_needs() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(bin()
        .arg("sort")
        .arg(dir.path())
        .arg("--out")
        .arg(dir.path().join("o")));
    assert_eq!(code, 2);
    assert!(stderr.contains("--detector"), "{stderr}");
    let (code, _, stderr) = run(bin()
        .arg("sort")
        .arg(dir.path().join("missing"))
        .arg("--out")
        .arg(dir.path().join("o"))
        .arg("--detector")
        .arg(detector()));
    assert_eq!(code, 2);
    assert!(stderr.contains("missing: no such folder"), "{stderr}");
    // A folder with no images: said so (an empty summary alone looked like a sort that worked).
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(empty.join("notes.txt"), b"no photo").unwrap();
    let (code, _, stderr) = run(bin()
        .arg("sort")
        .arg(&empty)
        .arg("--out")
        .arg(dir.path().join("o2"))
        .args(["--detect", "never"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("empty: no image files found"), "{stderr}");
}

/// `sort.json` names the detector file loaded: from a folder of detectors, --detector-kind picks
/// another file, and recording the folder's name let a YuNet run continue an UltraFace one (and
/// refused the same file named by its path).
#[test]
fn sort_records_which_detector_a_folder_gave() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("photos");
    std::fs::create_dir(&src).unwrap();
    std::fs::copy(shared("photos/group-6-people.jpg"), src.join("g.jpg")).unwrap();
    let folder = shared("models/detect");
    let sort = |out: &str, detector: &Path, kind: Option<&str>| {
        let mut cmd = bin();
        cmd.arg("sort")
            .arg(&src)
            .arg("--out")
            .arg(dir.path().join(out))
            .arg("--detector")
            .arg(detector);
        if let Some(k) = kind {
            cmd.args(["--detector-kind", k]);
        }
        run(&mut cmd)
    };
    let (code, _, stderr) = sort("a", &folder, None);
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sort("a", &folder, Some("yunet"));
    assert_eq!(code, 2, "another detector from the same folder: {stderr}");
    assert!(
        stderr.contains("ultraface-rfb-320.onnx there, yunet-n-dynamic.onnx now"),
        "{stderr}"
    );
    let (code, _, stderr) = sort("b", &folder, Some("yunet"));
    assert_eq!(code, 0, "{stderr}");
    let (code, _, stderr) = sort("b", &folder.join("yunet-n-dynamic.onnx"), None);
    assert_eq!(code, 0, "the same file by its path: {stderr}");
    // A sort begun before, which recorded the folder's name, is continued by the same command.
    let settings = dir.path().join("a/sort.json");
    let text = std::fs::read_to_string(&settings).unwrap();
    std::fs::write(&settings, text.replace("ultraface-rfb-320.onnx", "detect")).unwrap();
    let (code, _, stderr) = sort("a", &folder, None);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(std::fs::read_to_string(&settings).unwrap(), text);
}
