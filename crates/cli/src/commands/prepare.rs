//! `gender-classifier prepare`: runs `gc_dataset::prepare` and prints the summary tables.

use crate::Status;
use crate::args::PrepareArgs;
use crate::out::{errln, out, outln};
use crate::progress::Bar;
use anyhow::Context;
use gc_core::{AgeBucket, Gender, Race};
use gc_dataset::{Mode, Outcome, PrepareOptions, PrepareReport, Split};
use std::collections::BTreeMap;
use std::fmt::Write;

pub fn run(args: PrepareArgs) -> anyhow::Result<Status> {
    let opts = PrepareOptions {
        mode: if args.link { Mode::Link } else { Mode::Copy },
        seed: args.seed,
        fractions: args.split,
        ..PrepareOptions::new(&args.source, &args.out)
    };
    let bar = Bar::new();
    let report = gc_dataset::prepare(&opts, &bar)
        .with_context(|| format!("preparing {}", args.source.display()))?;
    bar.finish();
    // Allowed (a held-out set alone is `0,0,1`), but the commands that read the folder need
    // their split: train refused the result later with "no val images".
    for (split, needed_by) in [
        (Split::Train, "train"),
        (Split::Val, "train and calibrate"),
        (Split::Test, "eval and compare (by default)"),
    ] {
        if !report.rows.iter().any(|r| r.split == split) {
            errln!(
                "note: the {} split is empty; it is needed by {needed_by}",
                split.name()
            );
        }
    }
    if args.json {
        outln!("{}", serde_json::to_string(&json_summary(&report))?);
    } else {
        out!("{}", text_summary(&report, &args.out.display().to_string()));
    }
    Ok(Status::Success)
}

fn json_summary(r: &PrepareReport) -> serde_json::Value {
    let table = |counts: BTreeMap<(Split, String), usize>| {
        let mut m: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for ((split, key), n) in counts {
            m.entry(split.name().to_string())
                .or_default()
                .insert(key, n);
        }
        m
    };
    serde_json::json!({
        "outcome": r.outcome,
        "images": r.rows.len(),
        "rejected": r.rejected,
        "accepted_irregular_names": r.notes,
        "duplicate_groups": r.duplicate_groups,
        "duplicate_images": r.duplicate_images,
        "conflicting_gender_groups": r.conflicting_gender_groups,
        "by_gender": table(r.counts(|x| x.gender.to_string())),
        "by_race": table(r.counts(|x| x.race.to_string())),
        "by_age": table(r.counts(|x| AgeBucket::of_age(x.age).to_string())),
    })
}

fn text_summary(r: &PrepareReport, out: &str) -> String {
    let mut s = String::new();
    let outcome = match r.outcome {
        Outcome::Created => "prepared",
        Outcome::Resumed => "finished an interrupted run in",
        Outcome::UpToDate => "already up to date, nothing written:",
        Outcome::Restarted => "cleared an unfinished run of other inputs or settings and prepared",
    };
    let _ = writeln!(
        s,
        "{outcome} {out}: {} images, {} rejected",
        r.rows.len(),
        r.rejected.len()
    );
    let gender: Vec<String> = Gender::ALL.iter().map(|g| g.to_string()).collect();
    let race: Vec<String> = Race::ALL.iter().map(|g| g.to_string()).collect();
    let age: Vec<String> = AgeBucket::ALL.iter().map(|g| g.to_string()).collect();
    table(
        &mut s,
        "gender",
        &gender,
        &r.counts(|x| x.gender.to_string()),
    );
    table(&mut s, "race", &race, &r.counts(|x| x.race.to_string()));
    table(
        &mut s,
        "age",
        &age,
        &r.counts(|x| AgeBucket::of_age(x.age).to_string()),
    );
    if r.duplicate_groups > 0 {
        let _ = writeln!(
            s,
            "\n{} groups of identical images ({} files) kept together in one split each; {} of them disagree on gender",
            r.duplicate_groups, r.duplicate_images, r.conflicting_gender_groups
        );
    }
    if !r.notes.is_empty() {
        let _ = writeln!(s, "\naccepted irregular names:");
        for (name, note) in &r.notes {
            let _ = writeln!(s, "  {name}: {note}");
        }
    }
    if !r.rejected.is_empty() {
        let _ = writeln!(s, "\nrejected (also in {out}/rejected.csv):");
        for row in &r.rejected {
            let _ = writeln!(s, "  {}: {}", row.source, row.reason);
        }
    }
    s
}

/// One table: a row per split, a column per group, with totals.
fn table(
    s: &mut String,
    title: &str,
    columns: &[String],
    counts: &BTreeMap<(Split, String), usize>,
) {
    let width = columns.iter().map(|c| c.len()).max().unwrap_or(0).max(6) + 1;
    let _ = write!(s, "\n{title:<8}");
    for c in columns {
        let _ = write!(s, "{c:>width$}");
    }
    let _ = writeln!(s, "{:>width$}", "total");
    let mut col_totals = vec![0usize; columns.len()];
    for split in Split::ALL {
        let _ = write!(s, "{:<8}", split.name());
        let mut total = 0;
        for (i, c) in columns.iter().enumerate() {
            let n = counts.get(&(split, c.clone())).copied().unwrap_or(0);
            total += n;
            col_totals[i] += n;
            let _ = write!(s, "{n:>width$}");
        }
        let _ = writeln!(s, "{total:>width$}");
    }
    let _ = write!(s, "{:<8}", "all");
    for n in &col_totals {
        let _ = write!(s, "{n:>width$}");
    }
    let _ = writeln!(s, "{:>width$}", col_totals.iter().sum::<usize>());
}
