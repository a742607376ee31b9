//! Training on real faces: a few hundred UTKFace images from `../shared/data/`, prepared here with
//! gc-dataset. Tiny models and small images keep the whole file to about a minute on 2 cores.

use gc_core::{Classifier, Gender, ModelError, RgbView};
use gc_dataset::{ManifestRow, NoProgress, PrepareOptions, Split, prepare};
use gc_models::CnnConfig;
use gc_pipeline::{ImageFolder, Sample, decode_rgb};
use gc_testdata::shared;
use gc_train::{
    Arch, BatchStats, EpochMetrics, ModelSpec, Phase, RunOptions, Schedule, StopReason, Teacher,
    TrainConfig, TrainData, TrainError, TrainProgress, load_model, train,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, OnceLock};

/// burn's flex backend draws random numbers from one process-wide generator, so runs that must be
/// reproducible cannot overlap: every test that trains holds this lock.
fn one_run_at_a_time() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|e| e.into_inner())
}

/// The 64px UTKFace archive prepared once (all 23,705 images, a few seconds), and balanced samples
/// of adults (20 to 59) from each split.
struct Faces {
    _dir: tempfile::TempDir,
    root: PathBuf,
    rows: Vec<ManifestRow>,
}

fn faces() -> &'static Faces {
    static FACES: OnceLock<Faces> = OnceLock::new();
    FACES.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("utk64");
        let report = prepare(
            &PrepareOptions::new(shared("data/utkface-aligned-64px.tar.gz"), &root),
            &NoProgress,
        )
        .unwrap();
        Faces {
            _dir: dir,
            root,
            rows: report.rows,
        }
    })
}

/// `per_class` adult images of each gender from `split`, every `stride`-th in manifest order.
fn samples(split: Split, per_class: usize) -> Vec<Sample> {
    let f = faces();
    let mut out = Vec::new();
    for g in Gender::ALL {
        out.extend(
            f.rows
                .iter()
                .filter(|r| r.split == split && r.gender == g && (20..60).contains(&r.age))
                .step_by(3)
                .take(per_class)
                .map(|r| Sample {
                    path: f.root.join(&r.path),
                    label: g.index(),
                }),
        );
    }
    assert_eq!(out.len(), 2 * per_class, "not enough {split:?} adults");
    out
}

fn data(train_per_class: usize, val_per_class: usize) -> TrainData {
    let classes = Gender::ALL
        .iter()
        .map(|g| g.name().to_string())
        .collect::<Vec<_>>();
    let folder = |s| ImageFolder::from_samples(classes.clone(), s).unwrap();
    TrainData::new(
        &faces().root,
        folder(samples(Split::Train, train_per_class)),
        folder(samples(Split::Val, val_per_class)),
    )
    .unwrap()
}

/// The tiny CNN on 32x32 crops.
fn tiny(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 32,
        lr: 3e-3,
        image_size: 32,
        ..TrainConfig::new(ModelSpec::Cnn(CnnConfig::tiny()))
    }
}

fn options(threads: usize) -> RunOptions {
    RunOptions {
        threads,
        workers: 2,
        ..RunOptions::default()
    }
}

/// Stops the run after `batches` training batches of the 0-based epoch `epoch`, as Ctrl-C would
/// in the middle of it.
struct StopDuring {
    epoch: usize,
    batches: usize,
    seen: AtomicUsize,
}

impl TrainProgress for StopDuring {
    fn batch(&self, s: &BatchStats) {
        if s.phase == Phase::Train && s.epoch == self.epoch {
            self.seen.store(s.batches, Ordering::SeqCst);
        }
    }
    fn should_stop(&self) -> bool {
        self.seen.load(Ordering::SeqCst) >= self.batches
    }
}

fn stop_during(epoch: usize, batches: usize) -> StopDuring {
    StopDuring {
        epoch,
        batches,
        seen: AtomicUsize::new(0),
    }
}

fn weights(dir: &Path) -> Vec<u8> {
    std::fs::read(dir.join("model.safetensors")).unwrap()
}

/// Accuracy of a loaded model directory on images it never saw, through the `Classifier` API.
fn accuracy_on(classifier: &dyn Classifier, samples: &[Sample]) -> f64 {
    let images: Vec<_> = samples
        .iter()
        .map(|s| decode_rgb(&s.path).unwrap())
        .collect();
    let views: Vec<RgbView<'_>> = images
        .iter()
        .map(|im| RgbView::new(im.width(), im.height(), im.as_raw()).unwrap())
        .collect();
    let rows = classifier.classify(&views).unwrap();
    assert_eq!(rows.len(), samples.len());
    let mut correct = 0;
    for (row, s) in rows.iter().zip(samples) {
        assert!((row.iter().sum::<f32>() - 1.0).abs() < 1e-4, "{row:?}");
        let predicted = if row[1] > row[0] { 1 } else { 0 };
        correct += usize::from(predicted == s.label);
    }
    correct as f64 / samples.len() as f64
}

#[test]
fn a_tiny_cnn_learns_gender_from_a_few_hundred_faces() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("model");
    let config = tiny(8);
    let report = train(
        &config,
        &data(300, 100),
        &dir,
        &options(2),
        &gc_train::NoProgress,
    )
    .unwrap();
    let h = &report.history;
    for m in h {
        eprintln!(
            "epoch {}: train loss {:.4} acc {:.3}, val loss {:.4} acc {:.3}, {:.0} img/s",
            m.epoch, m.train_loss, m.train_acc, m.val_loss, m.val_acc, m.images_per_second
        );
    }
    assert_eq!(h.len(), 8);
    assert_eq!(report.stopped, StopReason::Completed);
    // The loss falls, and the best epoch is well above chance on the validation faces.
    assert!(h[7].train_loss < h[0].train_loss - 0.05, "{h:#?}");
    assert!(report.best.val_acc > 0.68, "best {:?}", report.best);

    // The model directory is complete and loads as a Classifier that does as well on held-out
    // test faces.
    for f in [
        "model.safetensors",
        "model.json",
        "history.csv",
        "checkpoint.bin",
    ] {
        assert!(dir.join(f).is_file(), "{f} missing");
    }
    let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
    assert_eq!(history.lines().count(), 9);
    let info = gc_train::read_info(&dir).unwrap();
    assert_eq!(info.labels, ["female", "male"]);
    assert_eq!((info.training.image_size, info.resize_size), (32, 36));
    assert_eq!(info.best, report.best);
    assert_eq!(info.stopped, StopReason::Completed);
    assert_eq!(info.data.fingerprint.len(), 64);

    let classifier = load_model(&dir).unwrap();
    assert_eq!(classifier.labels()[1].gender, Gender::Male);
    let test = samples(Split::Test, 100);
    let acc = accuracy_on(&classifier, &test);
    eprintln!("held-out test accuracy {acc:.3}");
    assert!(acc > 0.65, "held-out accuracy {acc}");
    // Any image size goes in: a 200x150 crop of a face is resized by the classifier itself.
    let face = decode_rgb(&test[0].path).unwrap();
    let big = upscale(face.as_raw(), face.width(), face.height(), 200, 150);
    let rows = classifier
        .classify(&[RgbView::new(200, 150, &big).unwrap()])
        .unwrap();
    assert_eq!(rows[0].len(), 2);
}

#[test]
fn a_student_learns_what_its_teacher_says() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let d = data(300, 100);
    // A teacher that is always wrong, and certain: p(female) 0 for women and 1 for men. With all
    // of the target its own, the student learns the teacher's classes, not the labels', and is
    // wrong on the faces about as often as a student of the labels is right. (Accuracy and
    // validation loss are still measured against the labels, so the kept epoch is an early one.)
    let liar: Vec<f32> = d.train.iter().map(|s| s.label as f32).collect();
    let config = TrainConfig {
        teacher: Some(Teacher {
            models: vec!["/models/liar.onnx".into()],
            weight: 1.0,
        }),
        ..tiny(8)
    };
    let dir = out.path().join("student");
    let taught = d.clone().with_teacher(liar.clone()).unwrap();
    let report = train(&config, &taught, &dir, &options(2), &gc_train::NoProgress).unwrap();
    let last = report.history.last().unwrap();
    eprintln!("the liar's student, last epoch: {last:?}");
    assert!(last.train_acc < 0.35 && last.val_acc < 0.35, "{last:?}");
    let info = gc_train::read_info(&dir).unwrap();
    assert_eq!(info.training.teacher, config.teacher);
    assert_eq!(info.data, taught.info);
    assert_eq!(taught.info.teacher.as_ref().map(String::len), Some(64));

    // The teachers' answers are part of the data: a resume with others is refused, and one with
    // the same answers finds the run finished.
    let resume = RunOptions {
        resume: true,
        ..options(2)
    };
    let mut changed = liar.clone();
    changed[0] = 0.5;
    let changed = d.clone().with_teacher(changed).unwrap();
    let err = train(&config, &changed, &dir, &resume, &gc_train::NoProgress).unwrap_err();
    assert!(
        err.to_string().contains("teachers' probabilities differ"),
        "{err}"
    );
    let again = train(&config, &taught, &dir, &resume, &gc_train::NoProgress).unwrap();
    assert_eq!(again.history, report.history);

    // Settings and data must agree on whether there is a teacher; the probabilities must be one
    // per training image, each in [0, 1] or NaN.
    let refused = |config: &TrainConfig, data: &TrainData| {
        let dir = out.path().join("refused");
        let err = train(config, data, &dir, &options(2), &gc_train::NoProgress).unwrap_err();
        assert!(!dir.exists(), "{err}");
        err.to_string()
    };
    let err = refused(&config, &d);
    assert!(err.contains("no teacher probabilities"), "{err}");
    let err = refused(&tiny(1), &taught);
    assert!(err.contains("settings name no teacher"), "{err}");
    let err = d
        .clone()
        .with_teacher(vec![0.5; 3])
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("3 teacher probabilities for 600 training images"),
        "{err}"
    );
    let mut bad = liar;
    bad[7] = 1.5;
    let err = d.with_teacher(bad).unwrap_err().to_string();
    assert!(
        err.contains("teacher probability 1.5 is not in [0, 1]"),
        "{err}"
    );
}

/// Nearest-neighbour resize of packed RGB, to feed the classifier an image of another size.
fn upscale(rgb: &[u8], w0: u32, h0: u32, w: u32, h: u32) -> Vec<u8> {
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let i = (((y * h0 / h) * w0 + x * w0 / w) * 3) as usize;
            out.extend_from_slice(&rgb[i..i + 3]);
        }
    }
    out
}

#[test]
fn the_same_seed_gives_the_same_weights() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        model: ModelSpec::Cnn(CnnConfig::tiny().with_dropout(0.3)),
        ..tiny(2)
    };
    let d = data(64, 32);
    let run = |name: &str, threads: usize| {
        let dir = out.path().join(name);
        train(&config, &d, &dir, &options(threads), &gc_train::NoProgress).unwrap();
        weights(&dir)
    };
    let a = run("a", 2);
    assert!(a == run("b", 2), "two runs with 2 threads differ");
    let other_seed = TrainConfig {
        seed: 7,
        ..config.clone()
    };
    let dir = out.path().join("c");
    train(&other_seed, &d, &dir, &options(2), &gc_train::NoProgress).unwrap();
    assert_ne!(a, weights(&dir), "another seed gave the same weights");
}

/// A folder of class folders made by hand can hold files that do not decode. The learning-rate
/// schedule is sized by the batches an epoch really has, so a run with a batch's worth of broken
/// files ends its cosine where the same run without them does (sized by every file, it ended
/// above it, a fifth of the way up here).
#[test]
fn unreadable_training_images_do_not_stretch_the_schedule() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let config = TrainConfig {
        lr: 1e-2,
        ..tiny(2)
    };
    let clean = data(64, 16);
    let mut with_broken: Vec<Sample> = clean.train.clone();
    for i in 0..32 {
        let path = out.path().join(format!("broken-{i}.jpg"));
        std::fs::write(&path, b"not a JPEG at all").unwrap();
        with_broken.push(Sample { path, label: i % 2 });
    }
    let classes: Vec<String> = Gender::ALL.iter().map(|g| g.name().to_string()).collect();
    let broken = TrainData::new(
        &faces().root,
        ImageFolder::from_samples(classes.clone(), with_broken).unwrap(),
        ImageFolder::from_samples(classes, clean.val.clone()).unwrap(),
    )
    .unwrap();
    let last_lr = |d: &TrainData, name: &str| {
        let report = train(
            &config,
            d,
            &out.path().join(name),
            &options(2),
            &gc_train::NoProgress,
        )
        .unwrap();
        report.history.last().unwrap().lr
    };
    let (a, b) = (last_lr(&clean, "clean"), last_lr(&broken, "broken"));
    assert!(a < 0.05 * config.lr, "the cosine did not end near 0: {a}");
    assert!(
        (a - b).abs() <= 1e-9 * config.lr,
        "last learning rate {b} with 32 broken files, {a} without"
    );
}

#[test]
fn an_interrupted_run_resumes_to_the_same_weights() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    // Dropout and a warm-up followed by a cosine schedule: the random generator and the
    // scheduler position must both be restored.
    let config = TrainConfig {
        model: ModelSpec::Cnn(CnnConfig::tiny().with_dropout(0.3)),
        warmup_epochs: 1,
        schedule: Schedule::Cosine,
        ..tiny(3)
    };
    let d = data(64, 32);
    let whole = out.path().join("whole");
    let report = train(&config, &d, &whole, &options(2), &gc_train::NoProgress).unwrap();
    assert_eq!(report.history.len(), 3);

    // Stopped early by a patience of 0 epochs, after the first. The patience is the one setting
    // that may change on resume: it never alters an epoch.
    let parts = out.path().join("parts");
    let impatient = TrainConfig {
        patience: Some(0),
        ..config.clone()
    };
    let first = train(&impatient, &d, &parts, &options(2), &gc_train::NoProgress).unwrap();
    assert_eq!(
        (first.stopped, first.history.len()),
        (StopReason::EarlyStopped, 1)
    );
    let resume = |config: &TrainConfig, progress: &dyn TrainProgress| {
        let options = RunOptions {
            resume: true,
            ..options(2)
        };
        train(config, &d, &parts, &options, progress)
    };
    // Resumed with the same patience, it stays stopped, as a finished run stays finished (it
    // trained two more epochs, to stop again).
    let again = resume(&impatient, &gc_train::NoProgress).unwrap();
    assert_eq!(
        (again.resumed_after, again.history.len(), again.stopped),
        (Some(1), 1, StopReason::EarlyStopped)
    );
    // Without a patience it goes on, here until a stop request in the middle of the third
    // epoch: that epoch is dropped, and the second one's checkpoint is where the run stands.
    let second = resume(&config, &stop_during(2, 1)).unwrap();
    assert_eq!(
        (second.resumed_after, second.history.len(), second.stopped),
        (Some(1), 2, StopReason::Interrupted)
    );
    assert_eq!(
        gc_train::read_info(&parts).unwrap().stopped,
        StopReason::Interrupted
    );
    // Stopped during the first epoch there is nothing to keep, and the folder stays free.
    let early = out.path().join("early");
    match train(&config, &d, &early, &options(2), &stop_during(0, 1)) {
        Err(TrainError::Interrupted) => {}
        other => panic!("{other:?}"),
    }
    assert_eq!(std::fs::read_dir(&early).unwrap().count(), 0);
    let resume = |config: &TrainConfig| resume(config, &gc_train::NoProgress);
    // The new patience is allowed, so only the learning rate is named.
    let refused = resume(&TrainConfig {
        lr: config.lr / 2.0,
        patience: Some(3),
        ..config.clone()
    })
    .unwrap_err()
    .to_string();
    assert!(refused.contains("lr:"), "{refused}");
    assert!(!refused.contains("patience"), "{refused}");
    // Another number of threads sums in another order, and ended with weights that neither
    // number gives uninterrupted: refused, naming the number to resume with.
    let one_thread = RunOptions {
        resume: true,
        ..options(1)
    };
    let refused = train(&config, &d, &parts, &one_thread, &gc_train::NoProgress)
        .unwrap_err()
        .to_string();
    assert!(
        refused.contains("trained on 2 threads") && refused.contains("--workers 2"),
        "{refused}"
    );
    let last = resume(&config).unwrap();
    assert_eq!(last.stopped, StopReason::Completed);
    assert_eq!(last.history.len(), 3);
    assert_eq!(gc_train::read_info(&parts).unwrap().training.patience, None);
    for (a, b) in report.history.iter().zip(&last.history) {
        assert_eq!(
            (a.train_loss, a.val_loss, a.lr),
            (b.train_loss, b.val_loss, b.lr),
            "epoch {}",
            a.epoch
        );
    }
    // The best epoch is the last one, trained after two resumes: its weights are compared.
    assert_eq!(last.best.epoch, 3, "{:#?}", last.history);
    assert!(
        weights(&whole) == weights(&parts),
        "the resumed run's weights differ"
    );
}

#[test]
fn the_output_folder_and_resume_are_checked() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("m");
    let d = data(32, 16);
    let config = tiny(1);
    let resume = RunOptions {
        resume: true,
        ..options(2)
    };
    match train(&config, &d, &dir, &resume, &gc_train::NoProgress) {
        Err(TrainError::Resume(msg)) => assert!(msg.contains("no checkpoint"), "{msg}"),
        other => panic!("{other:?}"),
    }
    train(&config, &d, &dir, &options(2), &gc_train::NoProgress).unwrap();
    match train(&config, &d, &dir, &options(2), &gc_train::NoProgress) {
        Err(TrainError::OutputExists { path, .. }) => assert_eq!(path, dir),
        other => panic!("{other:?}"),
    }
    // The weights are as readable as the other files (burn-store's own writes are 0600).
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| {
            std::fs::metadata(dir.join(name))
                .unwrap()
                .permissions()
                .mode()
        };
        assert_eq!(mode("model.safetensors"), mode("model.json"));
    }
    // Nor into a folder of the user's own files, nor onto a file.
    let theirs = dir.with_extension("theirs");
    std::fs::create_dir(&theirs).unwrap();
    std::fs::write(theirs.join("history.csv"), "mine").unwrap();
    match train(&config, &d, &theirs, &options(2), &gc_train::NoProgress) {
        Err(e @ TrainError::OutputExists { .. }) => {
            assert!(e.to_string().contains("history.csv"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        std::fs::read_to_string(theirs.join("history.csv")).unwrap(),
        "mine"
    );
    let file = theirs.join("history.csv");
    assert!(matches!(
        train(&config, &d, &file, &options(2), &gc_train::NoProgress),
        Err(TrainError::OutputNotAFolder(_))
    ));
    // The folder of a finished run has a checkpoint: --resume is suggested there, not here.
    for (folder, suggested) in [(&dir, true), (&theirs, false)] {
        match train(&config, &d, folder, &options(2), &gc_train::NoProgress) {
            Err(e @ TrainError::OutputExists { .. }) => {
                assert_eq!(e.to_string().contains("--resume"), suggested, "{e}")
            }
            other => panic!("{other:?}"),
        }
    }
    // A file browser's litter and a killed run's temporary file leave a folder free.
    let litter = dir.with_extension("litter");
    std::fs::create_dir(&litter).unwrap();
    std::fs::write(litter.join(".DS_Store"), "").unwrap();
    std::fs::write(litter.join(".model.safetensors.tmp-123"), "").unwrap();
    train(&config, &d, &litter, &options(2), &gc_train::NoProgress).unwrap();
    let other_lr = TrainConfig {
        lr: 1e-2,
        ..config.clone()
    };
    match train(&other_lr, &d, &dir, &resume, &gc_train::NoProgress) {
        Err(TrainError::Resume(msg)) => assert!(msg.contains("lr: 0.003"), "{msg}"),
        other => panic!("{other:?}"),
    }
    match train(&config, &data(33, 16), &dir, &resume, &gc_train::NoProgress) {
        Err(TrainError::Resume(msg)) => assert!(msg.contains("other data"), "{msg}"),
        other => panic!("{other:?}"),
    }
    // A finished run resumed does nothing and reports itself.
    let again = train(&config, &d, &dir, &resume, &gc_train::NoProgress).unwrap();
    assert_eq!((again.resumed_after, again.history.len()), (Some(1), 1));
}

/// Makes the next atomic write of `file` into `dir` by this process fail, as a kill at that
/// moment would stop it: its temporary name is taken by a folder.
fn block_write(dir: &Path, file: &str) -> PathBuf {
    let blocker = dir.join(format!(".{file}.tmp-{}", std::process::id()));
    std::fs::create_dir_all(&blocker).unwrap();
    blocker
}

/// Blocks the writes of `history.csv` once the first epoch has ended.
struct BlockHistoryAfterFirstEpoch<'a>(&'a Path);

impl TrainProgress for BlockHistoryAfterFirstEpoch<'_> {
    fn epoch_end(&self, _: &EpochMetrics, _: bool) {
        block_write(self.0, "history.csv");
    }
}

/// The best weights were written before the checkpoint: a kill between the two left a folder
/// that could not be resumed (first epoch) or weights that model.json did not describe. Now the
/// checkpoint comes first, and --resume writes the files that follow it again.
#[test]
fn a_run_stopped_while_writing_its_files_resumes_whole() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let config = tiny(2);
    let d = data(32, 16);
    let whole = out.path().join("whole");
    let report = train(&config, &d, &whole, &options(2), &gc_train::NoProgress).unwrap();
    let resume = RunOptions {
        resume: true,
        ..options(2)
    };
    let check = |dir: &Path| {
        let info = gc_train::read_info(dir).unwrap();
        // Seconds and speed differ from run to run; the rest does not.
        assert_eq!(
            (info.best.epoch, info.best.val_loss, info.epochs_run),
            (report.best.epoch, report.best.val_loss, 2)
        );
        assert_eq!(info.stopped, StopReason::Completed);
        assert!(weights(dir) == weights(&whole), "other weights");
        let history = std::fs::read_to_string(dir.join("history.csv")).unwrap();
        assert_eq!(history.lines().count(), 3, "{history}");
        let names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with('.'))
            .collect();
        assert!(names.is_empty(), "left behind: {names:?}");
    };

    // Stopped as the first epoch's weights were written: the checkpoint is there.
    let first = out.path().join("first");
    let blocker = block_write(&first, "model.safetensors");
    let err = train(&config, &d, &first, &options(2), &gc_train::NoProgress).unwrap_err();
    assert!(matches!(err, TrainError::Io { .. }), "{err}");
    assert!(first.join("checkpoint.bin").is_file());
    match train(&config, &d, &first, &options(2), &gc_train::NoProgress) {
        Err(e @ TrainError::OutputExists { .. }) => assert!(e.to_string().contains("--resume")),
        other => panic!("{other:?}"),
    }
    std::fs::remove_dir(blocker).unwrap();
    // A temporary file of a run killed earlier is removed.
    std::fs::write(first.join(".checkpoint.bin.tmp-1"), "half").unwrap();
    train(&config, &d, &first, &resume, &gc_train::NoProgress).unwrap();
    check(&first);

    // Stopped in the second epoch, after its checkpoint, with history.csv and model.json still
    // those of the first.
    let second = out.path().join("second");
    let err = train(
        &config,
        &d,
        &second,
        &options(2),
        &BlockHistoryAfterFirstEpoch(&second),
    )
    .unwrap_err();
    assert!(matches!(err, TrainError::Io { .. }), "{err}");
    assert_eq!(gc_train::read_info(&second).unwrap().epochs_run, 1);
    std::fs::remove_dir(block_write(&second, "history.csv")).unwrap();
    let again = train(&config, &d, &second, &resume, &gc_train::NoProgress).unwrap();
    assert_eq!(again.resumed_after, Some(2));
    check(&second);
}

/// The fingerprint named the files only: a resume took data whose files had been replaced.
#[test]
fn a_file_replaced_under_its_name_is_other_data() {
    let dir = tempfile::tempdir().unwrap();
    let classes: Vec<String> = Gender::ALL.iter().map(|g| g.name().to_string()).collect();
    let copy = |samples: Vec<Sample>, split: &str| {
        let samples = samples
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let path = dir.path().join(format!("{split}/{i}.jpg"));
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::copy(&s.path, &path).unwrap();
                Sample { path, ..s }
            })
            .collect();
        ImageFolder::from_samples(classes.clone(), samples).unwrap()
    };
    let (train, val) = (
        copy(samples(Split::Train, 4), "train"),
        copy(samples(Split::Val, 2), "val"),
    );
    let fingerprint = || {
        TrainData::new(dir.path(), train.clone(), val.clone())
            .unwrap()
            .info
            .fingerprint
    };
    let before = fingerprint();
    assert_eq!(before, fingerprint());
    // Another face under the first one's name.
    std::fs::copy(&train.samples[1].path, &train.samples[0].path).unwrap();
    assert_ne!(before, fingerprint());
}

/// A trained model directory copied to `name` under `root`, for damaging.
fn copy_model(from: &Path, root: &Path, name: &str) -> PathBuf {
    let to = root.join(name);
    std::fs::create_dir_all(&to).unwrap();
    for f in ["model.safetensors", "model.json"] {
        std::fs::copy(from.join(f), to.join(f)).unwrap();
    }
    to
}

fn edit_json(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("model.json");
    let mut v: serde_json::Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
    edit(&mut v);
    std::fs::write(&path, serde_json::to_vec(&v).unwrap()).unwrap();
}

fn refused(dir: &Path) -> String {
    match load_model(dir) {
        Err(e @ (ModelError::File { .. } | ModelError::Format { .. })) => e.to_string(),
        Err(e) => panic!("unexpected error kind: {e:?}"),
        Ok(_) => panic!("{} loaded", dir.display()),
    }
}

#[test]
fn broken_model_directories_are_refused_with_a_reason() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let good = out.path().join("good");
    train(
        &tiny(1),
        &data(32, 16),
        &good,
        &options(2),
        &gc_train::NoProgress,
    )
    .unwrap();
    assert!(load_model(&good).is_ok());
    let root = out.path();

    let dir = copy_model(&good, root, "no-weights");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let msg = refused(&dir);
    assert!(msg.contains("model.safetensors"), "{msg}");

    let dir = copy_model(&good, root, "no-json");
    std::fs::remove_file(dir.join("model.json")).unwrap();
    assert!(refused(&dir).contains("model.json"));

    let dir = copy_model(&good, root, "unknown-arch");
    edit_json(&dir, |v| v["arch"] = "resnet50".into());
    let msg = refused(&dir);
    assert!(msg.contains("unknown architecture \"resnet50\""), "{msg}");

    // The config says 64 channels where the weights have 32: a shape mismatch.
    let dir = copy_model(&good, root, "wrong-shape");
    edit_json(&dir, |v| {
        v["config"]["channels"] = serde_json::json!([8, 16, 16, 64])
    });
    let msg = refused(&dir);
    assert!(
        msg.contains("do not fit") && msg.contains("blocks.3"),
        "{msg}"
    );

    // Weights of a 3-block CNN where the config has 4 blocks: tensors are missing.
    let dir = copy_model(&good, root, "missing-tensor");
    let three = CnnConfig::new()
        .with_channels(vec![8, 16, 16])
        .init(&gc_models::cpu_device());
    gc_models::weights::save_safetensors(&three, &dir.join("model.safetensors")).unwrap();
    let msg = refused(&dir);
    assert!(
        msg.contains("missing") && msg.contains("blocks.3.conv.weight"),
        "{msg}"
    );

    let dir = copy_model(&good, root, "bad-labels");
    edit_json(&dir, |v| v["labels"] = serde_json::json!(["cat", "dog"]));
    assert!(refused(&dir).contains("cat"));

    let dir = copy_model(&good, root, "not-safetensors");
    std::fs::write(dir.join("model.safetensors"), b"not a tensor file").unwrap();
    let msg = refused(&dir);
    assert!(msg.contains("model.safetensors"), "{msg}");

    let dir = copy_model(&good, root, "not-json");
    std::fs::write(dir.join("model.json"), b"{").unwrap();
    assert!(refused(&dir).contains("model.json"));

    // Settings training refuses panicked in burn's layers when the network was built from them.
    for (name, edit, needle) in [
        (
            "dropout-5",
            serde_json::json!({"config": {"dropout": 5.0}}),
            "dropout 5",
        ),
        (
            "dropout-neg",
            serde_json::json!({"config": {"dropout": -1.0}}),
            "dropout -1",
        ),
        (
            "zero-channels",
            serde_json::json!({"config": {"channels": [8, 16, 0]}}),
            "channels [8, 16, 0]",
        ),
        (
            "one-pixel",
            serde_json::json!({"image_size": 1, "resize_size": 1}),
            "image size 1 ",
        ),
    ] {
        let dir = copy_model(&good, root, name);
        edit_json(&dir, |v| merge(v, &edit));
        let msg = refused(&dir);
        assert!(
            msg.contains(needle) && msg.contains("model.json"),
            "{name}: {msg}"
        );
    }
}

/// `patch`'s fields written over `v`'s, objects merged.
fn merge(v: &mut serde_json::Value, patch: &serde_json::Value) {
    match (v, patch) {
        (serde_json::Value::Object(v), serde_json::Value::Object(patch)) => {
            for (k, p) in patch {
                merge(v.entry(k.clone()).or_insert(serde_json::Value::Null), p);
            }
        }
        (v, p) => *v = p.clone(),
    }
}

#[test]
fn efficientnet_lite0_fine_tunes_from_imagenet() {
    let _lock = one_run_at_a_time();
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("lite0");
    let config = TrainConfig {
        epochs: 1,
        batch_size: 16,
        lr: 1e-3,
        image_size: 64,
        init: Some(shared(
            "models/backbone/efficientnet-lite0-imagenet.safetensors",
        )),
        ..TrainConfig::new(Arch::EfficientNetLite0.default_spec())
    };
    let report = train(
        &config,
        &data(32, 16),
        &dir,
        &options(2),
        &gc_train::NoProgress,
    )
    .unwrap();
    assert!(report.best.val_loss.is_finite(), "{:?}", report.best);
    let classifier = load_model(&dir).unwrap();
    let acc = accuracy_on(&classifier, &samples(Split::Test, 8));
    assert!((0.0..=1.0).contains(&acc));
    // The backbone moved away from ImageNet during fine-tuning but kept its BatchNorm statistics
    // (momentum 0.01: one epoch changes them little).
    let info = gc_train::read_info(&dir).unwrap();
    assert_eq!(info.training.model.arch(), Arch::EfficientNetLite0);
}

/// The fingerprint counts file sizes now; the built-in model's `model.json` (and a checkpoint of
/// an earlier version) recorded it without them, and still names the same data: the full prepared
/// set is recognised by it, other data is not.
#[test]
fn fingerprints_of_earlier_versions_still_name_their_data() {
    let recorded: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models/builtin/model.json"),
        )
        .unwrap(),
    )
    .unwrap();
    let builtin = recorded["data"]["fingerprint"].as_str().unwrap();
    let data = TrainData::from_dir(&faces().root).unwrap();
    assert_ne!(data.info.fingerprint, builtin, "the scheme changed");
    assert!(data.is_fingerprinted(builtin));
    assert!(data.is_fingerprinted(&data.info.fingerprint.clone()));
    assert!(!data.is_fingerprinted(&"0".repeat(64)));
}
