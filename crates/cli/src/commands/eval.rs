//! `gender-classifier eval` and `compare`: run models over a labelled set and write the report.

use crate::Status;
use crate::args::{CompareArgs, EvalArgs, EvalCommon};
use crate::out::{errln, outln};
use anyhow::Context;
use gc_classify::{
    LabelledImage, ModelRun, ModelSpec, read_labelled, run_labelled, thumbnail_data_uri,
};
use gc_core::Classifier;
use gc_eval::{EvalOptions, ModelResult, Report, evaluate};
use indicatif::{ProgressBar, ProgressStyle};
use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;

pub fn run_eval(args: EvalArgs) -> anyhow::Result<Status> {
    run(&[(args.model, args.preset)], &args.common)
}

pub fn run_compare(args: CompareArgs) -> anyhow::Result<Status> {
    let models: Vec<(Option<String>, Option<String>)> = args
        .models
        .into_iter()
        .map(|m| {
            // --preset is for the ONNX files that need it: a spec beside a model comes first
            // anyway, and a file name recognised as a preset keeps its own.
            let preset = args.preset.clone().filter(|_| {
                m.ends_with(".onnx") && gc_onnx::preset_for_file(Path::new(m.as_str())).is_none()
            });
            (if m == "builtin" { None } else { Some(m) }, preset)
        })
        .collect();
    run(&models, &args.common)
}

fn run(models: &[(Option<String>, Option<String>)], c: &EvalCommon) -> anyhow::Result<Status> {
    // Everything that can refuse the run is checked before the first image: an evaluation can
    // take minutes per model.
    if let Some(p) = c.min_confidence {
        super::check_min_confidence(p)?;
    }
    check_report_folder(&c.out)?;
    let load = |(value, preset): &(Option<String>, Option<String>)| {
        let spec = ModelSpec::parse(value.as_deref(), preset.as_deref())?;
        gc_classify::load(&spec).with_context(|| {
            format!(
                "loading {}",
                value.as_deref().unwrap_or("the built-in model")
            )
        })
    };
    // Loaded once to check, then again in turn: several large models need not fit together.
    for m in models {
        load(m)?;
    }
    let split = super::split_in_use(&c.data, &c.split, "evaluating", "");
    let images = labelled(&c.data, &c.split, c.limit)?;
    std::fs::create_dir_all(&c.out).with_context(|| format!("creating {}", c.out.display()))?;
    let opts = EvalOptions {
        min_confidence: c.min_confidence,
        failures: c.failures,
        failures_per_group: c.failures.min(EvalOptions::default().failures_per_group),
        ..EvalOptions::default()
    };
    let mut runs: Vec<(String, ModelRun)> = Vec::new();
    let mut skipped = Vec::new();
    let mut named = std::collections::HashSet::new();
    for m in models {
        let model = load(m)?;
        let taken: Vec<&str> = runs.iter().map(|(n, _)| n.as_str()).collect();
        let name = column_name(model.name(), m.0.as_deref(), &taken);
        let run = run_with_progress(model.as_ref(), &images, c.batch_size);
        // Each file once, even when every model fails on it.
        for (path, why) in &run.skipped {
            if named.insert(path.clone()) {
                errln!("{}: error: {why}", crate::out::shown(path));
            }
        }
        let right = run.samples.iter().filter(|s| s.correct()).count();
        errln!(
            "{}: accuracy {} on {} images, {:.1} images/s, {} could not be classified",
            name,
            if run.samples.is_empty() {
                String::new()
            } else {
                format!("{:.2}%", 100.0 * right as f64 / run.samples.len() as f64)
            },
            run.samples.len(),
            run.images_per_second,
            run.skipped.len()
        );
        skipped.extend(
            run.skipped
                .iter()
                .map(|(p, w)| (p.clone(), format!("{name}: {w}"))),
        );
        runs.push((name, run));
    }
    // A comparison is on the same images: one that a model could not classify is left out for
    // all of them (and listed), or each column would count other faces.
    let common = common_images(&runs);
    let results: Vec<ModelResult> = runs
        .into_iter()
        .map(|(name, run)| {
            let samples: Vec<_> = run
                .samples
                .into_iter()
                .filter(|s| common.contains(s.id.as_str()))
                .collect();
            ModelResult {
                name,
                evaluation: evaluate(&samples, &opts),
                images_per_second: Some(run.images_per_second),
            }
        })
        .collect();
    let evaluated = results.first().map_or(0, |r| r.evaluation.n);
    let by_every = if results.len() > 1 {
        " by every model"
    } else {
        ""
    };
    if evaluated == 0 {
        anyhow::bail!(
            "none of the {} images could be classified{by_every}; no report written",
            images.len()
        );
    }
    let report = Report {
        title: if results.len() == 1 {
            format!("Evaluation of {}", results[0].name)
        } else {
            "Comparison of gender classifiers".into()
        },
        data: format!(
            "Data: {} (split {}), {} images{}. Positive class for the rates: female. Intervals: 95% Wilson. Gaps leave out groups under {} images (for the true- and false-positive rates, under {} women or men; on what is kept at a minimum confidence, under {} kept).",
            c.data.display(),
            split,
            images.len(),
            if evaluated < images.len() {
                format!(", {evaluated} of them classified{by_every}")
            } else {
                String::new()
            },
            opts.min_group_for_gaps,
            opts.min_group_for_gaps,
            opts.min_group_for_gaps
        ),
        models: results,
        skipped,
    };
    let thumbs: HashMap<String, String> = report
        .models
        .iter()
        .flat_map(|m| {
            let e = &m.evaluation;
            e.failures
                .iter()
                .chain(e.failures_by_group.iter().flat_map(|g| &g.failures))
                .map(|f| f.id.clone())
        })
        .filter_map(|id| thumbnail_data_uri(Path::new(&id), 128).map(|uri| (id, uri)))
        .collect();
    let [json, md, html] = REPORT_FILES.map(|name| c.out.join(name));
    write_atomic(&json, report.to_json().as_bytes())?;
    write_atomic(&md, report.to_markdown().as_bytes())?;
    write_atomic(&html, report.to_html(&thumbs).as_bytes())?;
    outln!("{}", html.display());
    Ok(if report.skipped.is_empty() {
        Status::Success
    } else {
        Status::SomeFailed
    })
}

/// What `eval` and `compare` write; a folder that holds only these, with a report.json of ours,
/// holds an earlier report, which a new run replaces.
const REPORT_FILES: [&str; 3] = ["report.json", "report.md", "report.html"];

/// The report folder must be new, empty, or hold only an earlier report: a user's own
/// `report.md`, or a dataset given as `--out`, was overwritten. A file browser's litter and the
/// `report.tmp` of a run killed while writing do not count.
fn check_report_folder(out: &Path) -> anyhow::Result<()> {
    let names = match gc_core::folder::entries(out) {
        Ok(names) => names.unwrap_or_default(),
        Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
            anyhow::bail!(
                "{}: cannot be the report folder: it is a file",
                out.display()
            )
        }
        Err(e) => return Err(e).with_context(|| format!("reading {}", out.display())),
    };
    let names: Vec<String> = names.into_iter().filter(|n| n != "report.tmp").collect();
    if names.is_empty() {
        return Ok(());
    }
    let refuse = |what: &str| {
        anyhow::anyhow!(
            "{}: holds {what}; reports go into a new or empty folder, or one holding only an earlier report, which they replace",
            out.display()
        )
    };
    if let Some(other) = names.iter().find(|n| !REPORT_FILES.contains(&n.as_str())) {
        return Err(refuse(&format!("{other}, which is not a report")));
    }
    let ours = std::fs::read(out.join(REPORT_FILES[0]))
        .ok()
        .and_then(|bytes| serde_json::from_slice::<serde_json::Value>(&bytes).ok())
        .is_some_and(|v| v.get("models").is_some_and(|m| m.is_array()) && v.get("data").is_some());
    if !ours {
        return Err(refuse("report files that no earlier eval or compare wrote"));
    }
    Ok(())
}

/// A model's name in the report, told apart from the columns before it: two copies of one
/// model file in two folders had two columns under one heading.
fn column_name(name: &str, given: Option<&str>, before: &[&str]) -> String {
    let taken = |n: &str| before.contains(&n);
    if !taken(name) {
        return name.to_string();
    }
    let with_path = format!("{name} ({})", given.unwrap_or("builtin"));
    if !taken(&with_path) {
        return with_path;
    }
    (2..)
        .map(|k| format!("{with_path} #{k}"))
        .find(|n| !taken(n))
        .unwrap_or(with_path)
}

/// The images every run classified.
fn common_images(runs: &[(String, ModelRun)]) -> std::collections::HashSet<String> {
    let mut common: std::collections::HashSet<String> = runs
        .first()
        .map(|(_, r)| r.samples.iter().map(|s| s.id.clone()).collect())
        .unwrap_or_default();
    for (_, run) in runs.iter().skip(1) {
        let ids: std::collections::HashSet<&str> =
            run.samples.iter().map(|s| s.id.as_str()).collect();
        common.retain(|id| ids.contains(id.as_str()));
    }
    common
}

/// The labelled images of `split` in `data`; with `limit`, that many spread evenly over them.
/// The list runs one class after the other (and a manifest by age within it): its first N were
/// all women, and a quick look had no men to measure, nor a calibration two classes to fit.
pub(super) fn labelled(
    data: &Path,
    split: &str,
    limit: Option<usize>,
) -> anyhow::Result<Vec<LabelledImage>> {
    let images = read_labelled(data, split)?;
    let images = match limit {
        Some(n) if n < images.len() => spread(images, n),
        _ => images,
    };
    if images.is_empty() {
        anyhow::bail!("{}: --limit 0 leaves no images", data.display());
    }
    Ok(images)
}

/// `n` of `items`, at evenly spaced positions, in their order.
fn spread<T>(items: Vec<T>, n: usize) -> Vec<T> {
    let len = items.len();
    let mut want = (0..n).map(|i| i * len / n).peekable();
    items
        .into_iter()
        .enumerate()
        .filter_map(|(i, item)| {
            (want.peek() == Some(&i)).then(|| {
                want.next();
                item
            })
        })
        .collect()
}

/// Runs `model` over `images` with a progress bar on a terminal.
pub(super) fn run_with_progress(
    model: &dyn Classifier,
    images: &[LabelledImage],
    batch_size: Option<usize>,
) -> ModelRun {
    let bar = bar(images.len() as u64, model.name());
    let run = run_labelled(
        model,
        images,
        batch_size.unwrap_or_else(|| model.preferred_batch()),
        &|| bar.inc(1),
    );
    bar.finish_and_clear();
    run
}

/// A progress bar named after a model, on a terminal only.
pub(super) fn bar(total: u64, name: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    ProgressBar::new(total)
        .with_style(
            ProgressStyle::with_template("{msg:20} {bar:40} {pos}/{len} {per_sec} eta {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
        .with_message(name.to_string())
}

/// Reports are written under a temporary name and renamed, so a reader never sees half a report.
fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_of_the_same_name_are_told_apart() {
        let mut before: Vec<String> = vec![];
        let mut add = |name: &str, given: Option<&str>| {
            let taken: Vec<&str> = before.iter().map(String::as_str).collect();
            let n = column_name(name, given, &taken);
            before.push(n.clone());
            n
        };
        assert_eq!(add("dlib", Some("a/dlib.onnx")), "dlib");
        assert_eq!(add("dlib", Some("b/dlib.onnx")), "dlib (b/dlib.onnx)");
        assert_eq!(add("built-in", None), "built-in");
        assert_eq!(add("built-in", None), "built-in (builtin)");
        assert_eq!(add("built-in", None), "built-in (builtin) #2");
    }

    #[test]
    fn a_comparison_keeps_the_images_every_model_classified() {
        let sample = |id: &str| gc_eval::Sample {
            id: id.into(),
            truth: gc_core::Gender::Female,
            p_female: 0.9,
            age: None,
            race: None,
        };
        let run = |ids: &[&str]| ModelRun {
            samples: ids.iter().map(|id| sample(id)).collect(),
            skipped: vec![],
            images_per_second: 1.0,
        };
        let runs = vec![
            ("a".to_string(), run(&["x", "y", "z"])),
            ("b".to_string(), run(&["x", "z"])),
            ("c".to_string(), run(&["z", "x", "w"])),
        ];
        let mut common: Vec<String> = common_images(&runs).into_iter().collect();
        common.sort();
        assert_eq!(common, ["x", "z"]);
        assert_eq!(
            common_images(&runs[..1]).len(),
            3,
            "one model keeps all it classified"
        );
    }

    #[test]
    fn a_limit_spreads_over_the_whole_list() {
        let v: Vec<u32> = (0..10).collect();
        assert_eq!(spread(v.clone(), 3), [0, 3, 6]);
        assert_eq!(spread(v.clone(), 5), [0, 2, 4, 6, 8]);
        assert_eq!(spread(v.clone(), 10), v);
        assert!(spread(v, 0).is_empty());
    }
}
