//! `hf:OWNER/NAME[@REVISION]` against a Hugging Face cache that the test fills itself, in the
//! layout `huggingface_hub` writes (`models--OWNER--NAME/{refs/main, blobs/, snapshots/SHA/}`),
//! with the network out of reach: offline mode on, and the endpoint pointed at a closed local port
//! so that even a bug could not reach the Hub. Every call that might touch the network runs under
//! a time limit.

mod common;

use common::*;
use gc_core::{Classifier, RgbView};
use gc_hf::{HfClassifier, HubOptions};
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const REPO: &str = "someone/tiny-vit";
const COMMIT: &str = "0123456789abcdef0123456789abcdef01234567";
/// A closed port on this machine: a connection attempt fails at once.
const NOWHERE: &str = "http://127.0.0.1:9";

/// Fills `hub` (a hub cache dir) with the tiny fixture model as `REPO` at `COMMIT`, `refs/main`
/// and a tag `v1` pointing at it, files linked into `blobs/` as huggingface_hub does.
fn fill_cache(hub: &Path) {
    let repo = hub.join(format!("models--{}", REPO.replace('/', "--")));
    let snapshot = repo.join("snapshots").join(COMMIT);
    std::fs::create_dir_all(&snapshot).expect("snapshot dir");
    std::fs::create_dir_all(repo.join("blobs")).expect("blobs dir");
    std::fs::create_dir_all(repo.join("refs")).expect("refs dir");
    std::fs::write(repo.join("refs/main"), COMMIT).expect("refs/main");
    std::fs::write(repo.join("refs/v1"), format!("{COMMIT}\n")).expect("refs/v1");
    for file in [
        "config.json",
        "preprocessor_config.json",
        "model.safetensors",
    ] {
        let blob = repo.join("blobs").join(format!("blob-of-{file}"));
        std::fs::copy(model_dir("tiny-vit-female-male").join(file), &blob).expect("blob");
        #[cfg(unix)]
        std::os::unix::fs::symlink(
            Path::new("../../blobs").join(blob.file_name().expect("name")),
            snapshot.join(file),
        )
        .expect("symlink");
        #[cfg(not(unix))]
        std::fs::copy(&blob, snapshot.join(file)).expect("copy");
    }
}

fn offline(hub: &Path) -> HubOptions {
    HubOptions {
        cache_dir: hub.to_path_buf(),
        offline: true,
        endpoint: Some(NOWHERE.to_string()),
        token: None,
    }
}

/// Runs `f` on another thread and fails the test if it takes longer than `secs`.
fn bounded<T: Send + 'static>(secs: u64, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(secs))
        .unwrap_or_else(|_| panic!("took longer than {secs} s: something tried the network"))
}

fn probabilities(clf: &HfClassifier) -> Vec<Vec<f32>> {
    let px = synthetic(48, 40, 5);
    clf.classify(&[RgbView::new(48, 40, &px).expect("view")])
        .expect("classify")
}

#[test]
fn reads_a_prefilled_cache_offline() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let hub = tmp.path().join("hub");
    fill_cache(&hub);
    let reference =
        probabilities(&HfClassifier::from_dir(model_dir("tiny-vit-female-male")).expect("fixture"));
    for revision in [None, Some("main"), Some("v1"), Some(COMMIT)] {
        let opts = offline(&hub);
        let clf = bounded(60, move || {
            HfClassifier::from_hub_with(REPO, revision, &opts)
        })
        .unwrap_or_else(|e| panic!("{revision:?}: {e}"));
        assert_eq!(probabilities(&clf), reference, "{revision:?}");
        let want = match revision {
            None => format!("hf:{REPO}"),
            Some(r) => format!("hf:{REPO}@{r}"),
        };
        assert_eq!(clf.name(), want);
    }
}

#[test]
fn offline_without_the_model_says_so() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let hub = tmp.path().join("hub");
    fill_cache(&hub);
    let opts = offline(&hub);
    let e = bounded(60, move || {
        HfClassifier::from_hub_with("someone/other-model", None, &opts).map(|_| ())
    })
    .expect_err("not cached");
    let e = e.to_string();
    assert!(
        e.contains("hf:someone/other-model@main") && e.contains("HF_HUB_OFFLINE"),
        "{e}"
    );

    // An unknown revision of a cached model.
    let opts = offline(&hub);
    let e = bounded(60, move || {
        HfClassifier::from_hub_with(REPO, Some("v2"), &opts).map(|_| ())
    })
    .expect_err("unknown revision");
    assert!(e.to_string().contains("HF_HUB_OFFLINE"), "{e}");

    // An incomplete snapshot (weights missing) is not used, and offline it is an error.
    let snapshot = hub
        .join(format!("models--{}", REPO.replace('/', "--")))
        .join("snapshots")
        .join(COMMIT);
    std::fs::remove_file(snapshot.join("model.safetensors")).expect("remove");
    let opts = offline(&hub);
    let e = bounded(60, move || {
        HfClassifier::from_hub_with(REPO, None, &opts).map(|_| ())
    })
    .expect_err("incomplete");
    assert!(e.to_string().contains("incomplete"), "{e}");
}

#[test]
fn bad_repository_names_never_reach_the_cache_or_network() {
    let tmp = tempfile::tempdir().expect("temp dir");
    for repo in ["../etc", "a/b/c", "", "a/..", "x--y/z"] {
        let opts = offline(tmp.path());
        let e = HfClassifier::from_hub_with(repo, None, &opts).expect_err(repo);
        assert!(
            e.to_string().contains("not a Hub repository id"),
            "{repo}: {e}"
        );
    }
}

#[test]
fn a_failed_download_is_an_error_not_a_hang() {
    // Online mode, but the Hub address is a closed local port: the download fails at once.
    let tmp = tempfile::tempdir().expect("temp dir");
    let opts = HubOptions {
        offline: false,
        ..offline(tmp.path())
    };
    let e = bounded(60, move || {
        HfClassifier::from_hub_with("someone/not-cached", None, &opts).map(|_| ())
    })
    .expect_err("no network");
    let e = e.to_string();
    assert!(
        e.contains("download failed") && e.contains("config.json"),
        "{e}"
    );
}

/// The child half of `environment_selects_cache_and_offline_mode`; does nothing when run alone.
#[test]
#[ignore = "run by environment_selects_cache_and_offline_mode in a child process"]
fn hub_child_process() {
    if std::env::var("GC_HF_TEST_CHILD").is_err() {
        return;
    }
    let clf = HfClassifier::open(&format!("hf:{REPO}")).expect("load from the HF_HOME cache");
    let p = probabilities(&clf);
    println!("CHILD OK {:.6}", p[0][0]);
}

#[test]
fn environment_selects_cache_and_offline_mode() {
    // HF_HOME and HF_HUB_OFFLINE as a user sets them; a child process, since the environment is
    // process-wide.
    let tmp = tempfile::tempdir().expect("temp dir");
    fill_cache(&tmp.path().join("hub"));
    let exe = std::env::current_exe().expect("test binary");
    let mut child = std::process::Command::new(exe)
        .args(["--exact", "hub_child_process", "--ignored", "--nocapture"])
        .env("GC_HF_TEST_CHILD", "1")
        .env("HF_HOME", tmp.path())
        .env("HF_HUB_OFFLINE", "1")
        .env("HF_ENDPOINT", NOWHERE)
        .env_remove("HF_HUB_CACHE")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn child");
    let started = std::time::Instant::now();
    while child.try_wait().expect("wait").is_none() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("child took longer than 120 s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("child output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("CHILD OK"),
        "child failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reference =
        probabilities(&HfClassifier::from_dir(model_dir("tiny-vit-female-male")).expect("fixture"));
    assert!(
        stdout.contains(&format!("CHILD OK {:.6}", reference[0][0])),
        "{stdout}"
    );
}
