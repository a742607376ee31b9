//! The `gender-classifier` binary, end to end: real face images from `../shared/data`, real models from
//! `../shared/models`, and bad inputs made by each test.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

mod common;

use common::*;

#[test]
fn predict_prints_every_class_highest_first_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let faces = real_faces(dir.path(), 5);
    let (code, stdout, stderr) = run(bin()
        .arg("predict")
        .arg("--model")
        .arg(dlib_model())
        .args(&faces));
    assert_eq!(code, 0, "{stderr}");
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    for (line, face) in lines.iter().zip(&faces) {
        // photo.jpg  female  0.931  (female 0.931, male 0.069)
        let (path, rest) = line.split_once("  ").unwrap();
        assert_eq!(path, face.display().to_string());
        let fields: Vec<&str> = rest.splitn(3, "  ").collect();
        assert!(fields[0] == "female" || fields[0] == "male", "{line}");
        let p: f32 = fields[1].parse().unwrap();
        assert!((0.5..=1.0).contains(&p), "{line}");
        let inner = fields[2].trim_start_matches('(').trim_end_matches(')');
        let probs: Vec<f32> = inner
            .split(", ")
            .map(|kv| kv.rsplit_once(' ').unwrap().1.parse().unwrap())
            .collect();
        assert_eq!(probs.len(), 2);
        assert!(probs[0] >= probs[1], "not highest first: {line}");
        assert!((probs[0] + probs[1] - 1.0).abs() < 2e-3, "{line}");
        assert!(
            inner.starts_with(fields[0]),
            "label and first class differ: {line}"
        );
    }

    // A newline in a name is written `\x0a`, so one result stays one line, and an escape
    // character never reaches the terminal, on stdout or in an error.
    let odd = dir.path().join("two\nlines.jpg");
    std::fs::copy(&faces[0], &odd).unwrap();
    let gone = dir.path().join("gone\u{1b}[2J.jpg");
    let (code, stdout, stderr) = run(bin().arg("--model").arg(dlib_model()).arg(&odd).arg(&gone));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let want = format!("{}/two\\x0alines.jpg  ", dir.path().display());
    assert!(stdout.starts_with(&want), "{stdout}");
    assert!(stderr.contains("gone\\x1b[2J.jpg: error"), "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

#[test]
fn json_lines_and_the_bare_shorthand_and_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let faces = real_faces(dir.path(), 3);
    // `gender-classifier --json --model M PATH...` without the word predict.
    let (code, stdout, stderr) = run(bin()
        .arg("--json")
        .arg("--model")
        .arg(dlib_model())
        .args(&faces));
    assert_eq!(code, 0, "{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 3);
    for (row, face) in rows.iter().zip(&faces) {
        assert_eq!(row["path"], face.display().to_string());
        let f = row["probabilities"]["female"].as_f64().unwrap();
        let m = row["probabilities"]["male"].as_f64().unwrap();
        assert!((f + m - 1.0).abs() < 1e-4);
        let label = row["label"].as_str().unwrap();
        assert_eq!(label, if f >= m { "female" } else { "male" });
    }

    // `-` reads paths from stdin, one a line.
    let mut child = bin()
        .args(["predict", "--json", "--model", &dlib_model(), "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let list: String = faces
        .iter()
        .rev()
        .map(|f| format!("{}\n", f.display()))
        .collect();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(list.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
    let paths: Vec<&str> = rows.iter().map(|r| r["path"].as_str().unwrap()).collect();
    let want: Vec<String> = faces
        .iter()
        .rev()
        .map(|f| f.display().to_string())
        .collect();
    assert_eq!(paths, want);

    // A name that is not UTF-8 is read and classified, and written `\xNN` (one such line ended
    // the list silently); the lines after it are read too.
    #[cfg(unix)]
    {
        use std::os::unix::ffi::OsStrExt;
        let odd = dir.path().join(std::ffi::OsStr::from_bytes(b"caf\xe9.jpg"));
        std::fs::copy(&faces[0], &odd).unwrap();
        let mut list = odd.as_os_str().as_bytes().to_vec();
        list.extend_from_slice(b"\n");
        list.extend_from_slice(faces[1].as_os_str().as_bytes());
        list.extend_from_slice(b"\nmissing.jpg\n");
        let mut child = bin()
            .args(["predict", "--json", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&list).unwrap();
        let out = child.wait_with_output().unwrap();
        assert_eq!(out.status.code(), Some(1));
        let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
        assert_eq!(rows.len(), 3, "{rows:?}");
        let first = rows[0]["path"].as_str().unwrap();
        assert!(first.ends_with("caf\\xe9.jpg"), "{first}");
        assert!(rows[0]["label"].is_string(), "{}", rows[0]);
        assert!(rows[1]["label"].is_string(), "{}", rows[1]);
        assert_eq!(rows[2]["path"], "missing.jpg");
        assert!(rows[2]["error"].is_string(), "{}", rows[2]);
    }
}

/// A PNG header that declares 100000 x 100000 pixels: 30 GB if anyone allocated it.
fn huge_png() -> Vec<u8> {
    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(b"IHDR");
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&100_000u32.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let crc = crc32(&ihdr);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend_from_slice(&13u32.to_be_bytes());
    png.extend_from_slice(&ihdr);
    png.extend_from_slice(&crc.to_be_bytes());
    // A real file goes on with image data and an end chunk; decoders read up to the first IDAT before
    // they report the size, so the check must hold with them there.
    for (kind, data) in [
        (&b"IDAT"[..], &[0x78u8, 0x9c, 0x03, 0, 0, 0, 0, 1][..]),
        (&b"IEND"[..], &[][..]),
    ] {
        let mut chunk = kind.to_vec();
        chunk.extend_from_slice(data);
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        png.extend_from_slice(&chunk);
        png.extend_from_slice(&crc32(&chunk).to_be_bytes());
    }
    png
}

/// CRC-32 as PNG chunks need it; written here because no test dependency offers it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in bytes {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn bad_inputs_are_each_named_and_never_stop_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let faces = real_faces(d, 2);
    let good = std::fs::read(&faces[0]).unwrap();

    let missing = d.join("missing.jpg");
    let folder = d.join("folder");
    std::fs::create_dir(&folder).unwrap();
    let empty = d.join("empty.jpg");
    std::fs::write(&empty, b"").unwrap();
    let text = d.join("text.jpg");
    std::fs::write(&text, b"this is not an image at all\n").unwrap();
    let truncated = d.join("truncated.jpg");
    std::fs::write(&truncated, &good[..good.len() / 3]).unwrap();
    let pdf = d.join("document.pdf");
    std::fs::write(
        &pdf,
        b"%PDF-1.4\n1 0 obj << >> endobj\ntrailer << >>\n%%EOF\n",
    )
    .unwrap();
    let huge = d.join("huge.png");
    std::fs::write(&huge, huge_png()).unwrap();

    let bad = [&missing, &folder, &empty, &text, &truncated, &pdf, &huge];
    let mut args: Vec<&Path> = vec![&faces[0]];
    args.extend(bad.iter().map(|p| p.as_path()));
    args.push(&faces[1]);

    let (code, stdout, stderr) = run(bin()
        .args(["predict", "--json", "--model", &dlib_model()])
        .args(&args));
    assert_eq!(code, 1, "exit code must say something failed\n{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), args.len(), "every input gets a line:\n{stdout}");
    assert!(rows[0]["label"].is_string());
    assert!(
        rows.last().unwrap()["label"].is_string(),
        "the batch stopped"
    );
    for (row, path) in rows[1..=bad.len()].iter().zip(bad) {
        assert_eq!(row["path"], path.display().to_string());
        assert!(row["error"].is_string(), "{row}");
        // One line on stderr naming the file.
        let line = stderr
            .lines()
            .find(|l| l.starts_with(&format!("{}: error: ", path.display())))
            .unwrap_or_else(|| panic!("no stderr line for {}:\n{stderr}", path.display()));
        assert!(line.len() > path.display().to_string().len() + 10, "{line}");
    }
    let reason = |p: &Path| {
        rows.iter()
            .find(|r| r["path"] == p.display().to_string())
            .unwrap()["error"]
            .as_str()
            .unwrap()
            .to_lowercase()
    };
    assert!(reason(&missing).contains("no such file") || reason(&missing).contains("not found"));
    assert!(reason(&folder).contains("directory"));
    assert!(reason(&empty).contains("empty"));
    assert!(reason(&huge).contains("100000"), "{}", reason(&huge));
}

#[test]
fn odd_but_valid_images_are_classified() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let face = image::open(&real_faces(d, 1)[0]).unwrap();
    let gray = d.join("gray.png");
    face.to_luma8().save(&gray).unwrap();
    let rgba = d.join("alpha.png");
    face.to_rgba8().save(&rgba).unwrap();
    let deep = d.join("16bit.png");
    face.to_rgb16().save(&deep).unwrap();
    let webp = d.join("face.webp");
    face.to_rgb8().save(&webp).unwrap();
    let bmp = d.join("face.bmp");
    face.to_rgb8().save(&bmp).unwrap();
    let cmyk = gc_testdata::crate_dir(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/cmyk.jpg");
    let (code, stdout, stderr) = run(bin()
        .args(["predict", "--json", "--model", &dlib_model()])
        .args([&gray, &rgba, &deep, &webp, &bmp, &cmyk]));
    assert_eq!(code, 0, "{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 6);
    // The same face in four encodings gets the same answer.
    let female: Vec<f64> = rows
        .iter()
        .map(|r| r["probabilities"]["female"].as_f64().unwrap())
        .collect();
    for f in &female[1..5] {
        assert!((f - female[1]).abs() < 0.02, "{female:?}");
    }
}

#[test]
fn exif_rotation_is_applied_before_classifying() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let face = image::open(&real_faces(d, 1)[0]).unwrap().to_rgb8();
    let upright = d.join("upright.png");
    face.save(&upright).unwrap();
    // Stored turned a quarter to the left, with an EXIF tag saying "turn right to view" (6).
    let turned = image::imageops::rotate270(&face);
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut jpeg, 100)
        .encode_image(&turned)
        .unwrap();
    let tagged = d.join("tagged.jpg");
    std::fs::write(&tagged, with_exif_orientation(&jpeg, 6)).unwrap();
    let untagged = d.join("untagged.jpg");
    std::fs::write(&untagged, &jpeg).unwrap();

    let (code, stdout, stderr) = run(bin()
        .args(["predict", "--json", "--model", &dlib_model()])
        .args([&upright, &tagged, &untagged]));
    assert_eq!(code, 0, "{stderr}");
    let rows = json_lines(&stdout);
    let f: Vec<f64> = rows
        .iter()
        .map(|r| r["probabilities"]["female"].as_f64().unwrap())
        .collect();
    let tagged_gap = (f[1] - f[0]).abs();
    let untagged_gap = (f[2] - f[0]).abs();
    assert!(tagged_gap < 0.02, "EXIF not applied: {f:?}");
    assert!(
        untagged_gap > tagged_gap,
        "the test image is not orientation-sensitive: {f:?}"
    );
}

#[test]
fn folders_need_recursive() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("photos/nested");
    std::fs::create_dir_all(&sub).unwrap();
    real_faces(&sub, 2);
    let top = dir.path().join("photos");
    let (code, _, stderr) = run(bin().args(["predict", "--model", &dlib_model()]).arg(&top));
    assert_eq!(code, 1);
    assert!(stderr.contains("--recursive"), "{stderr}");
    let (code, stdout, stderr) = run(bin()
        .args(["predict", "-r", "--model", &dlib_model()])
        .arg(&top));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 2);
}

#[test]
fn bad_models_are_clear_errors_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let face = real_faces(d, 1).remove(0);
    let cases: Vec<(PathBuf, &str)> = {
        let missing = d.join("nope.onnx");
        let text = d.join("text.onnx");
        std::fs::write(&text, b"not a model").unwrap();
        let empty_dir = d.join("empty-model");
        std::fs::create_dir(&empty_dir).unwrap();
        vec![
            (missing, "nope.onnx"),
            (text, "text.onnx"),
            (empty_dir, "empty-model"),
        ]
    };
    for (model, needle) in cases {
        let (code, _, stderr) = run(bin().arg("predict").arg("--model").arg(&model).arg(&face));
        assert_eq!(code, 2, "{}: {stderr}", model.display());
        assert!(stderr.contains(needle), "{stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
        // Text named .onnx is no model: said so, not asked for a preprocessing spec.
        if needle == "text.onnx" {
            assert!(stderr.contains("not an ONNX model"), "{stderr}");
            assert!(!stderr.contains("no preprocessing spec"), "{stderr}");
        }
    }
    // A missing detector is named as missing, not asked for its family.
    let (code, _, stderr) = run(bin().arg("--detector").arg(d.join("typo")).arg(&face));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("typo: no such file or folder"), "{stderr}");
    // An unknown detector kind lists the known ones; --preset on the built-in model names it
    // as the user does.
    let detect = shared("models/detect");
    let (code, _, stderr) = run(bin()
        .arg("--detector")
        .arg(&detect)
        .args(["--detector-kind", "bogus"])
        .arg(&face));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("expected one of: ultraface"), "{stderr}");
    let (code, _, stderr) = run(bin().args(["--preset", "yu4u-age-gender"]).arg(&face));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("builtin: --preset applies"), "{stderr}");
    // serve refuses a body limit of nothing before it starts.
    let (code, _, stderr) = run(bin().args(["serve", "--max-body-mib", "0"]));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--max-body-mib"), "{stderr}");
}

#[test]
fn the_built_in_model_is_the_default() {
    let dir = tempfile::tempdir().unwrap();
    let faces = real_faces(dir.path(), 3);
    let (code, stdout, stderr) = run(bin().arg("--json").args(&faces));
    assert_eq!(code, 0, "{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 3);
    for (row, face) in rows.iter().zip(&faces) {
        assert_eq!(row["path"], face.display().to_string());
        let p = &row["probabilities"];
        let (f, m) = (p["female"].as_f64().unwrap(), p["male"].as_f64().unwrap());
        assert!((f + m - 1.0).abs() < 1e-5, "{row}");
        assert_eq!(row["label"], if f >= m { "female" } else { "male" });
    }
    // `--model builtin` names the same model.
    let (code, again, _) = run(bin()
        .args(["predict", "--json", "--model", "builtin"])
        .args(&faces));
    assert_eq!(code, 0);
    assert_eq!(again, stdout);
}

#[test]
fn flip_averages_each_face_and_its_mirror() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // 64x64 PNGs, the built-in model's input size: no resampling, so the mirror the model sees
    // inside `flip:` is exactly the mirrored file.
    let (mut plain, mut mirrored) = (Vec::new(), Vec::new());
    for (i, face) in real_faces(d, 4).iter().enumerate() {
        let img = image::open(face)
            .unwrap()
            .resize_exact(64, 64, image::imageops::FilterType::Triangle)
            .to_rgb8();
        let p = d.join(format!("face{i}.png"));
        img.save(&p).unwrap();
        let m = d.join(format!("mirror{i}.png"));
        image::imageops::flip_horizontal(&img).save(&m).unwrap();
        plain.push(p);
        mirrored.push(m);
    }
    let p_female = |model: &str, files: &[PathBuf]| -> Vec<f64> {
        let (code, stdout, stderr) = run(bin()
            .args(["predict", "--json", "--model", model])
            .args(files));
        assert_eq!(code, 0, "{model}: {stderr}");
        json_lines(&stdout)
            .iter()
            .map(|row| row["probabilities"]["female"].as_f64().unwrap())
            .collect()
    };
    let a = p_female("builtin", &plain);
    let b = p_female("builtin", &mirrored);
    let both = p_female("flip:builtin", &plain);
    assert_eq!(both.len(), 4);
    for i in 0..4 {
        let want = 0.5 * (a[i] + b[i]);
        assert!(
            (both[i] - want).abs() < 1e-5,
            "face {i}: {} vs {want}",
            both[i]
        );
    }
    assert!(
        a.iter().zip(&b).any(|(x, y)| (x - y).abs() > 1e-4),
        "the mirror changed no answer, so the test shows nothing: {a:?} {b:?}"
    );
}

/// The numeric user id this test runs as (`id -u`).
fn effective_uid() -> u32 {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

#[test]
fn an_unreadable_file_is_named_and_the_others_classified() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Others must be able to enter the folder and run the copy of the binary (for the root case).
    std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    let faces = real_faces(d, 2);
    for f in &faces {
        std::fs::set_permissions(f, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    let locked = d.join("locked.jpg");
    std::fs::copy(&faces[0], &locked).unwrap();
    std::fs::set_permissions(&locked, std::fs::Permissions::from_mode(0o000)).unwrap();

    // Root reads any file whatever its mode, so as root the binary runs as `nobody` (setpriv from
    // util-linux), from a copy outside root's home where the build may live.
    let mut cmd = if effective_uid() == 0 {
        let exe = d.join("gender-classifier");
        std::fs::copy(env!("CARGO_BIN_EXE_gender-classifier"), &exe).unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let mut c = Command::new("setpriv");
        c.args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(exe);
        c
    } else {
        bin()
    };
    let (code, stdout, stderr) = run(cmd
        .current_dir(d)
        .args(["predict", "--json"])
        .arg(&faces[0])
        .arg(&locked)
        .arg(&faces[1]));
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 3, "{stdout}\n{stderr}");
    assert!(rows[0]["label"].is_string() && rows[2]["label"].is_string());
    assert_eq!(rows[1]["path"], locked.display().to_string());
    let reason = rows[1]["error"].as_str().unwrap().to_lowercase();
    assert!(reason.contains("permission denied"), "{reason}");
    assert!(
        stderr
            .lines()
            .any(|l| l.starts_with(&format!("{}: error: ", locked.display()))
                && l.to_lowercase().contains("permission denied")),
        "{stderr}"
    );
}

#[test]
fn photos_are_classified_face_by_face_with_a_detector() {
    let dir = tempfile::tempdir().unwrap();
    let group = shared("photos/group-6-people.jpg");
    let crop = real_faces(dir.path(), 1).remove(0);
    // A photo with no face: a smooth gradient, larger than a face crop.
    let blank = dir.path().join("blank.png");
    image::RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, ((x + y) / 5) as u8])
    })
    .save(&blank)
    .unwrap();
    let detector = shared("models/detect/yunet-n-dynamic.onnx");

    let (code, stdout, stderr) = run(bin()
        .arg("--json")
        .arg("--detector")
        .arg(&detector)
        .args([&group, &blank, &crop]));
    assert_eq!(code, 0, "{stderr}");
    let rows = json_lines(&stdout);
    assert_eq!(rows.len(), 3, "{stdout}");
    let faces = rows[0]["faces"]
        .as_array()
        .expect("faces of the group photo");
    assert_eq!(faces.len(), 6, "{}", rows[0]);
    for face in faces {
        let b: Vec<f64> = face["box"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        assert!(b.len() == 4 && b[2] > 10.0 && b[3] > 10.0, "{face}");
        let p = &face["probabilities"];
        let sum = p["female"].as_f64().unwrap() + p["male"].as_f64().unwrap();
        assert!((sum - 1.0).abs() < 1e-5, "{face}");
        assert!(face["label"] == "female" || face["label"] == "male");
    }
    // No face: said so, and no class forced on the photo.
    assert_eq!(rows[1]["faces"], serde_json::json!([]), "{}", rows[1]);
    assert!(rows[1].get("label").is_none());
    // A small square face crop is classified whole under --detect auto.
    assert!(rows[2]["label"].is_string(), "{}", rows[2]);

    let (code, stdout, _) = run(bin().arg("--detector").arg(&detector).arg(&blank));
    assert_eq!(code, 0);
    assert!(stdout.contains("no face found"), "{stdout}");

    // GC_DETECTOR names the detector; exported but empty, it means none (it was refused as
    // "a value is required").
    let (code, stdout, stderr) = run(bin().env("GC_DETECTOR", &detector).arg(&group));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.matches(" of 6 at ").count(), 6, "{stdout}");
    let (code, stdout, stderr) = run(bin().env("GC_DETECTOR", "").arg(&group));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(stdout.lines().count(), 1, "the photo whole: {stdout}");
    assert!(!stdout.contains(" face "), "{stdout}");

    // Without a detector, --detect always is refused with a reason.
    let (code, _, stderr) = run(bin().args(["--detect", "always"]).arg(&group));
    assert_eq!(code, 2);
    assert!(stderr.contains("--detector"), "{stderr}");
}

#[test]
fn a_folder_of_detectors_gives_ultraface_unless_a_kind_is_named() {
    let models = shared("models/detect");
    let group = shared("photos/group-6-people.jpg");
    // From the folder: UltraFace RFB-320 by default, YuNet when named. Each run prints exactly
    // what the file itself gives, and the two families give different boxes.
    let json = |detector: &std::path::Path, kind: Option<&str>| {
        let mut cmd = bin();
        cmd.arg("--json").arg("--detector").arg(detector);
        if let Some(k) = kind {
            cmd.args(["--detector-kind", k]);
        }
        let (code, stdout, stderr) = run(cmd.arg(&group));
        assert_eq!(code, 0, "{kind:?}: {stderr}");
        assert_eq!(
            json_lines(&stdout)[0]["faces"].as_array().unwrap().len(),
            6,
            "{stdout}"
        );
        stdout
    };
    let ultraface = json(&models, None);
    assert_eq!(
        ultraface,
        json(&models.join("ultraface-rfb-320.onnx"), None)
    );
    let yunet = json(&models, Some("yunet"));
    assert_eq!(yunet, json(&models.join("yunet-n-dynamic.onnx"), None));
    assert_ne!(ultraface, yunet);
    // A folder without the file of the family asked for is refused, naming both.
    let empty = tempfile::tempdir().unwrap();
    let (code, _, stderr) = run(bin().arg("--detector").arg(empty.path()).arg(&group));
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains(&empty.path().display().to_string())
            && stderr.contains("ultraface-rfb-320.onnx"),
        "{stderr}"
    );
}

/// [`tiny_dataset`] of 24 real faces at `d/data` (the faces in `d/faces`).
fn tiny_dataset_in(d: &Path) -> PathBuf {
    std::fs::create_dir(d.join("faces")).unwrap();
    let faces = real_faces(&d.join("faces"), 24);
    let data = d.join("data");
    tiny_dataset(&data, &faces);
    data
}

/// A prepared-dataset layout (`train/` and `val/`, each with `female/` and `male/`) of real faces,
/// sorted by the gender in their UTKFace names; about a third of each class goes to `val/`.
fn tiny_dataset(root: &Path, faces: &[PathBuf]) {
    for (i, face) in faces.iter().enumerate() {
        let name = face.file_name().unwrap().to_string_lossy().into_owned();
        let class = match name.split('_').nth(1) {
            Some("0") => "male",
            Some("1") => "female",
            _ => continue,
        };
        let split = if i % 3 == 0 { "val" } else { "train" };
        let dir = root.join(split).join(class);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(face, dir.join(&name)).unwrap();
    }
}

/// `train` for one epoch of batches of 8 on one thread, with `extra` options.
fn train_tiny(data: &Path, out: &Path, extra: &[&str]) -> (i32, String, String) {
    run(bin()
        .arg("train")
        .arg("--data")
        .arg(data)
        .arg("--out")
        .arg(out)
        .args(["--epochs", "1", "--batch-size", "8", "--workers", "1"])
        .args(extra))
}

/// The write end of a pipe whose reader has gone, as under `| head` once head has its lines.
fn pipe_nobody_reads() -> std::io::PipeWriter {
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    writer
}

/// Writing to such a pipe panicked ("failed printing to stdout: Broken pipe", exit 101) in every
/// command but predict, and a training run piped to `grep -m1 epoch` died after its first epoch.
/// Now the work goes to its end, with the status it has without the pipe.
#[test]
fn a_reader_that_has_gone_stops_no_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("faces")).unwrap();
    let faces = real_faces(&d.join("faces"), 24);

    let out = bin()
        .arg("prepare")
        .arg(d.join("faces"))
        .arg("--out")
        .arg(d.join("prepared"))
        .stdout(pipe_nobody_reads())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(d.join("prepared/manifest.csv").is_file());

    let out = bin()
        .args(&faces[..3])
        .stdout(pipe_nobody_reads())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("error"), "{stderr}");

    let data = d.join("data");
    tiny_dataset(&data, &faces);
    let status = bin()
        .arg("train")
        .arg("--data")
        .arg(&data)
        .arg("--out")
        .arg(d.join("model"))
        .args([
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--workers",
            "1",
            "--image-size",
            "32",
        ])
        .stdout(pipe_nobody_reads())
        .stderr(pipe_nobody_reads())
        .status()
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let history = std::fs::read_to_string(d.join("model/history.csv")).unwrap();
    assert_eq!(
        history.lines().count(),
        3,
        "a header and two epochs: {history}"
    );
    assert!(d.join("model/model.json").is_file());
}

/// A `prepare` stopped half-way leaves split folders with the images written so far and its
/// marker saying so; train, eval and calibrate used it without a word (948 of 14,223 training
/// images), and eval lost age and race with the missing manifest.
#[test]
fn an_unfinished_prepare_is_refused_by_every_reader() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = prepared_faces(d, 24);
    // What an interrupted run leaves: the marker not complete, no manifest yet.
    let marker = data.join(".gender-classifier-prepare.json");
    let text = std::fs::read_to_string(&marker).unwrap();
    assert!(text.contains("\"complete\": true"), "{text}");
    std::fs::write(
        &marker,
        text.replace("\"complete\": true", "\"complete\": false"),
    )
    .unwrap();
    std::fs::remove_file(data.join("manifest.csv")).unwrap();
    let commands: [&[&str]; 3] = [
        &["train", "--out", "model", "--epochs", "1"],
        &["eval", "--out", "report"],
        &["calibrate", "--out", "cal.json"],
    ];
    for args in commands {
        let (code, _, stderr) = run(bin().current_dir(d).args(args).arg("--data").arg(&data));
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains("unfinished `prepare`"),
            "{args:?}: {stderr}"
        );
        assert!(stderr.contains("prepared"), "names the folder: {stderr}");
    }
    assert!(!d.join("model").exists() && !d.join("report").exists());
    assert!(!d.join("cal.json").exists());
    // One of its split folders too, with the refusal alone (a warning that the folder has no
    // manifest came first, and eval went on).
    let (code, _, stderr) = run(bin()
        .current_dir(d)
        .args(["eval", "--out", "report", "--data"])
        .arg(data.join("test")));
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unfinished `prepare`"), "{stderr}");
    assert!(!stderr.contains("no manifest.csv"), "{stderr}");
    // A split left empty on purpose is said at once (train refused it later, "no val images").
    let (code, _, stderr) = run(bin()
        .arg("prepare")
        .arg(d.join("faces"))
        .arg("--out")
        .arg(d.join("held-out"))
        .args(["--split", "0,0,1"]));
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("note: the train split is empty"),
        "{stderr}"
    );
    assert!(stderr.contains("note: the val split is empty"), "{stderr}");
    assert!(!stderr.contains("the test split is empty"), "{stderr}");
}

#[test]
fn settings_that_mean_nothing_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let train = |option: &str, value: &str| {
        run(bin()
            .args(["train", "--data"])
            .arg(dir.path())
            .arg("--out")
            .arg(dir.path().join("out"))
            .args([option, value]))
    };
    let (code, _, stderr) = train("--workers", "100000");
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--workers") && stderr.contains("100000") && stderr.contains("1024"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists());
    // A patience of 0 stopped after the first epoch, "no better validation loss for 0 epochs".
    let (code, _, stderr) = train("--patience", "0");
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--patience"), "{stderr}");
    // A batch of 0 images was taken as 1 by predict, eval and calibrate, refused by train.
    for args in [
        &["predict", "x.jpg"][..],
        &["eval", "--data", "d", "--out", "o"],
        &["calibrate", "--data", "d", "--out", "o.json"],
    ] {
        let command = args[0];
        let (code, _, stderr) = run(bin().args(args).args(["--batch-size", "0"]));
        assert_eq!(code, 2, "{command}: {stderr}");
        assert!(stderr.contains("--batch-size"), "{command}: {stderr}");
    }
}

#[test]
fn train_with_teachers_records_them_and_checks_before_their_pass() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_dataset_in(d);
    // A file no model can read: the teachers leave it out, and training skips it too.
    let broken = data.join("train/female/30_1_0_20170101000000000.jpg.chip.jpg");
    std::fs::write(&broken, b"not a jpeg").unwrap();
    let train = |out: &Path, extra: &[&str]| {
        train_tiny(&data, out, &[&["--image-size", "32"], extra].concat())
    };
    // Two teachers, averaged; model.json says which, so that --resume can check them.
    let model = d.join("student");
    let teachers = ["--teacher", "builtin", "--teacher", "flip:builtin"];
    let (code, _, stderr) = train(
        &model,
        &[&teachers[..], &["--teacher-weight", "0.3"]].concat(),
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        stderr
            .matches("16 of the 17 training images classified")
            .count(),
        2,
        "{stderr}"
    );
    assert!(
        stderr.contains("30_1_0_20170101000000000.jpg.chip.jpg: "),
        "{stderr}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(
        json["teacher"],
        serde_json::json!({"models": ["builtin", "flip:builtin"], "weight": 0.3})
    );
    // Resuming with another teacher weight is another run, refused before the teachers' pass.
    let (code, _, stderr) = train(&model, &[&teachers[..], &["--resume"]].concat());
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("other settings: teacher"), "{stderr}");
    assert!(!stderr.contains("classified"), "{stderr}");

    // Refused before the teachers classify anything, and without writing a file.
    let missing = d.join("missing.onnx");
    let missing = missing.to_str().unwrap();
    let mut refusals = vec![
        (vec!["--teacher-weight", "0.3"], "--teacher"),
        (
            vec!["--teacher", "builtin", "--teacher-weight", "0"],
            "teacher weight 0",
        ),
        (
            vec!["--teacher", "builtin", "--teacher", missing],
            "missing.onnx",
        ),
    ];
    if !cfg!(feature = "gpu") {
        refusals.push((vec!["--teacher", "builtin", "--device", "gpu"], "gpu"));
    }
    for (extra, needle) in refusals {
        let out = d.join("refused");
        let (code, _, stderr) = train(&out, &extra);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!stderr.contains("classified"), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
    let (code, _, stderr) = train(&model, &["--teacher", "builtin"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already holds files"), "{stderr}");
    assert!(!stderr.contains("classified"), "{stderr}");
    // Without teachers too, the refusal comes before the line that says training starts.
    let (code, _, stderr) = train(&model, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("already holds files"), "{stderr}");
    assert!(!stderr.contains("training cnn on"), "{stderr}");
}

#[test]
fn train_builds_the_asked_network_and_predict_reads_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    std::fs::create_dir(d.join("faces")).unwrap();
    let faces = real_faces(&d.join("faces"), 30);
    let data = d.join("data");
    tiny_dataset(&data, &faces);
    let train = |out: &Path, extra: &[&str]| train_tiny(&data, out, extra);

    // Five blocks take 32 pixels down to one; the network is rebuilt from model.json alone.
    let model = d.join("five-blocks");
    let (code, stdout, stderr) = train(
        &model,
        &[
            "--image-size",
            "32",
            "--channels",
            "4,8,8,8,8",
            "--dropout",
            "0.1",
            "--color-jitter",
            "20",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("best epoch 1 of 1"), "{stdout}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(model.join("model.json")).unwrap()).unwrap();
    assert_eq!(
        json["config"]["channels"],
        serde_json::json!([4, 8, 8, 8, 8])
    );
    assert_eq!(json["config"]["dropout"], 0.1);
    assert_eq!(json["color_jitter"], 20);
    let (code, stdout, stderr) = run(bin()
        .arg("--json")
        .arg("--model")
        .arg(&model)
        .arg(&faces[0]));
    assert_eq!(code, 0, "{stderr}");
    let row = &json_lines(&stdout)[0];
    let p = &row["probabilities"];
    let sum = p["female"].as_f64().unwrap() + p["male"].as_f64().unwrap();
    assert!((sum - 1.0).abs() < 1e-3, "{row}");

    // Refused before any image is read or any file written, each with its reason.
    for (extra, needle) in [
        (
            &["--arch", "efficientnet-lite0", "--channels", "8"][..],
            "efficientnet-lite0",
        ),
        (
            &["--image-size", "32", "--channels", "8,8,8,8,8,8"][..],
            "image size 32",
        ),
        (&["--channels", "8,0"][..], "channels [8, 0]"),
        (&["--dropout", "1"][..], "dropout 1"),
        (&["--color-jitter", "101"][..], "color jitter 101%"),
    ] {
        let out = d.join("refused");
        let (code, _, stderr) = train(&out, extra);
        assert_eq!(code, 2, "{extra:?}: {stderr}");
        assert!(stderr.contains(needle), "{extra:?}: {stderr}");
        assert!(!out.exists(), "{extra:?} wrote {}", out.display());
    }
}

#[test]
fn train_takes_each_setting_once_and_a_weight_decay_in_range() {
    let dir = tempfile::tempdir().unwrap();
    let train = |extra: &[&str]| {
        run(bin()
            .args(["train", "--data"])
            .arg(dir.path().join("none"))
            .arg("--out")
            .arg(dir.path().join("out"))
            .args(extra))
    };
    // A second --channels was added to the first: 8,16 then 4 made three blocks.
    let (code, _, stderr) = train(&["--channels", "8,16", "--channels", "4"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("--channels") && stderr.contains("cannot be used multiple times"),
        "{stderr}"
    );
    // 1e39 is infinite as AdamW's f32: it trained until "the training loss became NaN".
    let (code, _, stderr) = train(&["--weight-decay", "1e39"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("weight decay") && stderr.contains("must be in [0, 1]"),
        "{stderr}"
    );
    assert!(!dir.path().join("out").exists());
}

/// --init was recorded as typed: a resume from another folder, or with the path spelt
/// otherwise, was refused as other settings.
#[test]
fn train_records_the_init_weights_by_their_canonical_path() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_dataset_in(d);
    let backbone = shared("models/backbone/efficientnet-lite0-imagenet.safetensors");
    let (folder, name) = (backbone.parent().unwrap(), backbone.file_name().unwrap());
    let out = d.join("lite0");
    let train = |cwd: &Path, init: &std::ffi::OsStr, extra: &[&str]| {
        run(bin()
            .current_dir(cwd)
            .args(["train", "--arch", "efficientnet-lite0", "--data"])
            .arg(&data)
            .arg("--out")
            .arg(&out)
            .args(["--epochs", "1", "--batch-size", "8", "--workers", "1"])
            .args(["--image-size", "32", "--init"])
            .arg(init)
            .args(extra))
    };
    let (code, _, stderr) = train(folder, name, &[]);
    assert_eq!(code, 0, "{stderr}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    let canonical = backbone.canonicalize().unwrap();
    assert_eq!(json["init"], canonical.to_str().unwrap());
    // The same file, named from elsewhere, and through a `..` step: the finished run is found
    // finished.
    let (code, stdout, stderr) = train(d, backbone.as_os_str(), &["--resume"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("done: best epoch 1 of 1"), "{stdout}");
    let detour = folder
        .join("..")
        .join(folder.file_name().unwrap())
        .join(name);
    let (code, stdout, stderr) = train(d, detour.as_os_str(), &["--resume"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("done: best epoch 1 of 1"), "{stdout}");
}

/// Ctrl-C killed the process: the run's model.json said "running" and the exit status was
/// the signal's. Now the epoch in hand ends, the last checkpoint stays, and the exit is 130.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_training_at_the_last_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let data = tiny_dataset_in(d);
    let out = d.join("model");
    let child = bin()
        .args(["train", "--data"])
        .arg(&data)
        .arg("--out")
        .arg(&out)
        .args(["--epochs", "1000000", "--batch-size", "4", "--workers", "1"])
        .args(["--image-size", "16", "--channels", "4,4"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while !out.join("checkpoint.bin").is_file() {
        assert!(start.elapsed().as_secs() < 120, "no epoch ended");
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    let sent = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(sent.success());
    let output = child.wait_with_output().unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert_eq!(output.status.code(), Some(130), "{stderr}");
    assert!(
        stdout.contains("interrupted; --resume continues"),
        "{stdout}"
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("model.json")).unwrap()).unwrap();
    assert_eq!(json["stopped"], "interrupted");
    assert!(json["epochs_run"].as_u64().unwrap() < 1000, "{json}");
}
