//! `gender-classifier sort SRC --out DST`: a progress bar over gc-sort, and a summary.

use crate::Status;
use crate::args::{Detect, SortArgs};
use crate::out::{errln, outln};
use anyhow::{Context, bail};
use gc_sort::{Category, Settings, Sort};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use signal_hook::consts::SIGINT;
use signal_hook::flag;
use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

pub fn run(args: SortArgs) -> anyhow::Result<Status> {
    super::check_min_confidence(args.min_confidence)?;
    if args.faces.detector().is_none() && args.faces.detect != Detect::Never {
        bail!(
            "sort needs a face detector to find the people in photos: pass --detector FILE.onnx \
             (or --detect never to classify each image whole, for folders of face crops)"
        );
    }
    let model = super::load_model(&args.model)?;
    let (detector, mode) = super::load_faces(&args.faces)?;
    let settings = Settings {
        model: model.name().to_string(),
        // The file loaded, not the path given: a folder of detectors gives one file or another
        // by --detector-kind, and recording the folder's name let a YuNet run continue an
        // UltraFace one.
        detector: detector.as_ref().map(|d| {
            let path = std::path::Path::new(d.path());
            path.file_name().map_or_else(
                || d.path().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )
        }),
        detect: format!("{:?}", args.faces.detect).to_lowercase(),
        min_confidence: args.min_confidence,
        link: args.link,
    };
    if let (Some(given), Some(loaded)) = (args.faces.detector(), &settings.detector)
        && given.is_dir()
        && let Some(name) = given.file_name()
        && gc_sort::update_detector_record(&args.out, &name.to_string_lossy(), loaded)
            .context("cannot sort")?
    {
        tracing::info!("{}: sort.json now names {loaded}", args.out.display());
    }
    let sort = Sort::open(&args.source, &args.out, settings).context("cannot sort")?;
    if sort.already_done() > 0 {
        errln!(
            "{}: continuing: {} photos already sorted, {} to go",
            args.out.display(),
            sort.already_done(),
            sort.remaining()
        );
    }
    if sort.already_done() == 0 && sort.remaining() == 0 {
        // predict -r says so too; an empty summary alone looked like a sort that worked.
        errln!(
            "{}: no image files found (sub-folders included)",
            args.source.display()
        );
    }
    let remaining = sort.remaining();
    let bar =
        ProgressBar::with_draw_target(Some(sort.remaining() as u64), ProgressDrawTarget::stderr())
            .with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} photos {per_sec} eta {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
    let batch = args.batch_size.unwrap_or_else(|| model.preferred_batch());
    // The first Ctrl-C lets the photos in hand reach their folders and the index, then stops; a
    // second one ends the process at once (what is in place is whole either way).
    let interrupted = Arc::new(AtomicBool::new(false));
    flag::register_conditional_shutdown(SIGINT, 130, interrupted.clone())
        .and_then(|_| flag::register(SIGINT, interrupted.clone()))
        .context("cannot watch for Ctrl-C")?;
    let mut failed = 0;
    let sort = sort.cancel_on(interrupted);
    let summary = sort.run(model.as_ref(), detector.as_ref(), mode, batch, |row| {
        if !row.error.is_empty() {
            failed += 1;
            let shown = crate::out::shown(&row.photo);
            bar.suspend(|| errln!("{shown}: error: {}", row.error));
        }
        bar.inc(1);
        ControlFlow::Continue(())
    })?;
    bar.finish_and_clear();
    let counts: Vec<String> = Category::ALL
        .iter()
        .map(|c| format!("{} {}", c, summary.counts.get(c).copied().unwrap_or(0)))
        .collect();
    outln!(
        "{}: {} photos sorted ({} by this run): {}",
        args.out.display(),
        summary.resumed + summary.sorted,
        summary.sorted,
        counts.join(", ")
    );
    // Photos that failed in this run are tried again by the next one.
    let left = remaining - summary.sorted + failed;
    if summary.stopped && left > 0 {
        errln!("interrupted: run the same command again to sort the {left} photos left");
        return Ok(Status::Interrupted);
    }
    if summary.counts.get(&Category::Error).copied().unwrap_or(0) > 0 {
        Ok(Status::SomeFailed)
    } else {
        Ok(Status::Success)
    }
}
