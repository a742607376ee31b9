//! The reports: `report.json` (everything, for machines), `report.md` (tables, for people and diffs)
//! and `report.html` (one self-contained file: charts as inline SVG, failure thumbnails as data URIs,
//! so it opens in a browser with no server). One column per model, so `eval` is a `compare` of one.

use crate::metrics::{Evaluation, Failure, GroupTable};
use crate::stats::{Proportion, ReliabilityBin};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt::Write;

/// Everything a report shows.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub title: String,
    /// What was evaluated: dataset folder, split, image count.
    pub data: String,
    pub models: Vec<ModelResult>,
    /// Inputs that could not be classified, with why.
    pub skipped: Vec<(String, String)>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ModelResult {
    pub name: String,
    pub evaluation: Evaluation,
    /// Images per second, end to end (decode + model).
    pub images_per_second: Option<f64>,
}

fn pct(p: Option<f64>) -> String {
    p.map(|v| format!("{:.1}%", v * 100.0))
        .unwrap_or_else(|| "–".into())
}

fn num(p: Option<f64>, digits: usize) -> String {
    p.map(|v| format!("{v:.digits$}"))
        .unwrap_or_else(|| "–".into())
}

fn prop(p: &Proportion) -> String {
    match (p.value, p.ci95) {
        (Some(v), Some([lo, hi])) => {
            format!("{:.1}% [{:.1}, {:.1}]", v * 100.0, lo * 100.0, hi * 100.0)
        }
        _ => "–".into(),
    }
}

/// Rows of the overall table: label, and the value for one model.
type Metric = (&'static str, fn(&ModelResult) -> String);

fn overall_metrics() -> Vec<Metric> {
    vec![
        ("images", |m| m.evaluation.n.to_string()),
        ("accuracy [95% CI]", |m| prop(&m.evaluation.accuracy)),
        ("balanced accuracy", |m| pct(m.evaluation.balanced_accuracy)),
        ("female precision", |m| {
            pct(m.evaluation.per_class[0].precision)
        }),
        ("female recall", |m| pct(m.evaluation.per_class[0].recall)),
        ("female F1", |m| num(m.evaluation.per_class[0].f1, 3)),
        ("male precision", |m| {
            pct(m.evaluation.per_class[1].precision)
        }),
        ("male recall", |m| pct(m.evaluation.per_class[1].recall)),
        ("male F1", |m| num(m.evaluation.per_class[1].f1, 3)),
        ("ROC AUC", |m| num(m.evaluation.roc_auc, 4)),
        ("expected calibration error", |m| num(m.evaluation.ece, 4)),
        ("coverage at min confidence", |m| {
            m.evaluation
                .coverage
                .as_ref()
                .map(prop)
                .unwrap_or_else(|| "–".into())
        }),
        ("accuracy on covered", |m| {
            m.evaluation
                .selective_accuracy
                .as_ref()
                .map(prop)
                .unwrap_or_else(|| "–".into())
        }),
        ("images/s", |m| num(m.images_per_second, 1)),
    ]
}

impl Report {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
    }

    pub fn to_markdown(&self) -> String {
        let mut s = String::new();
        // Model names and the data folder are paths the user chose: text, not Markdown.
        let _ = writeln!(s, "# {}\n\n{}\n", md_text(&self.title), md_text(&self.data));
        let names: Vec<String> = self.models.iter().map(|m| md_text(&m.name)).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        md_header(&mut s, "metric", &names);
        for (label, f) in overall_metrics() {
            let cells: Vec<String> = self.models.iter().map(f).collect();
            md_row(&mut s, label, &cells);
        }
        for m in &self.models {
            let c = m.evaluation.confusion;
            let _ = writeln!(
                s,
                "\n**{}**, confusion matrix (rows: truth, columns: predicted)\n\n| | female | male |\n| --- | --- | --- |\n| female | {} | {} |\n| male | {} | {} |",
                md_text(&m.name),
                c[0][0],
                c[0][1],
                c[1][0],
                c[1][1]
            );
        }
        if let Some(first) = self.models.first() {
            for (t, table) in first.evaluation.groups.iter().enumerate() {
                if is_unknown(&self.models, t) {
                    let _ = writeln!(
                        s,
                        "\n## Accuracy by {}\n\n{}",
                        table.by,
                        unknown_text(table)
                    );
                    continue;
                }
                let _ = writeln!(s, "\n## Accuracy by {}\n", table.by);
                let mut cols = vec!["n".to_string()];
                cols.extend(names.iter().map(|n| format!("{n} accuracy [95% CI]")));
                let cols: Vec<&str> = cols.iter().map(String::as_str).collect();
                md_header(&mut s, "group", &cols);
                for (r, row) in table.rows.iter().enumerate() {
                    let mut cells = vec![row.n.to_string()];
                    cells.extend(
                        self.models
                            .iter()
                            .map(|m| prop(&m.evaluation.groups[t].rows[r].accuracy)),
                    );
                    md_row(&mut s, &row.group, &cells);
                }
                let _ = writeln!(s);
                md_header(&mut s, "gap (largest minus smallest)", &names);
                for (label, pick) in GAPS {
                    let cells: Vec<String> = self
                        .models
                        .iter()
                        .map(|m| gap_text(pick(&m.evaluation.groups[t])))
                        .collect();
                    md_row(&mut s, label, &cells);
                }
                let _ = writeln!(s, "\n**Expected calibration error by {}**\n", table.by);
                let mut cols = vec!["n"];
                cols.extend(&names);
                md_header(&mut s, "group", &cols);
                for (group, cells) in group_eces(&self.models, t) {
                    md_row(&mut s, group, &cells);
                }
                if let Some(rows) = group_kept(&self.models, t) {
                    let _ = writeln!(
                        s,
                        "\n**Kept at the minimum confidence, by {}** (share of the group kept; accuracy on what is kept)\n",
                        table.by
                    );
                    md_header(&mut s, "group", &cols);
                    for (group, cells) in rows {
                        md_row(&mut s, &group, &cells);
                    }
                }
            }
        }
        // `--failures 0`, or a model without a mistake: no empty table.
        for m in self
            .models
            .iter()
            .filter(|m| !m.evaluation.failures.is_empty())
        {
            let _ = writeln!(s, "\n## Most confident failures: {}\n", md_text(&m.name));
            md_header(
                &mut s,
                "image",
                &["truth", "predicted", "confidence", "age", "race"],
            );
            for f in &m.evaluation.failures {
                let cells = failure_cells(f).join(" | ");
                let _ = writeln!(s, "| {} | {cells} |", md_text(&f.id));
            }
        }
        for m in self
            .models
            .iter()
            .filter(|m| !m.evaluation.failures_by_group.is_empty())
        {
            let _ = writeln!(
                s,
                "\n## Most confident failures by age and race: {}\n",
                md_text(&m.name)
            );
            md_header(
                &mut s,
                "group",
                &[
                    "wrong",
                    "image",
                    "truth",
                    "predicted",
                    "confidence",
                    "age",
                    "race",
                ],
            );
            for g in &m.evaluation.failures_by_group {
                for f in &g.failures {
                    let cells = failure_cells(f).join(" | ");
                    let _ = writeln!(
                        s,
                        "| {} {} | {} of {} | {} | {cells} |",
                        g.by,
                        md_text(&g.group),
                        g.wrong,
                        g.n,
                        md_text(&f.id)
                    );
                }
            }
        }
        if !self.skipped.is_empty() {
            let _ = writeln!(s, "\n## Images that could not be classified\n");
            for (path, why) in &self.skipped {
                let _ = writeln!(s, "- {}: {}", md_text(path), md_text(why));
            }
        }
        s
    }

    /// The HTML page; `thumbnails` maps a failure's id to a `data:` URI.
    pub fn to_html(&self, thumbnails: &HashMap<String, String>) -> String {
        let mut s = String::new();
        let _ = write!(
            s,
            "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{CSS}</style></head><body><h1>{}</h1><p>{}</p>",
            esc(&self.title),
            esc(&self.title),
            esc(&self.data)
        );
        let _ = write!(s, "<h2>Overall</h2><table><tr><th>metric</th>");
        for m in &self.models {
            let _ = write!(s, "<th>{}</th>", esc(&m.name));
        }
        let _ = write!(s, "</tr>");
        for (label, f) in overall_metrics() {
            let _ = write!(s, "<tr><td>{label}</td>");
            for m in &self.models {
                let _ = write!(s, "<td>{}</td>", esc(&f(m)));
            }
            let _ = write!(s, "</tr>");
        }
        let _ = write!(s, "</table><h2>Calibration</h2><div class=\"charts\">");
        for m in &self.models {
            let _ = write!(
                s,
                "<figure>{}<figcaption>{}: reliability diagram, ECE {}</figcaption></figure>",
                reliability_svg(&m.evaluation.reliability),
                esc(&m.name),
                num(m.evaluation.ece, 4)
            );
        }
        let _ = write!(s, "</div>");
        if let Some(first) = self.models.first() {
            for (t, table) in first.evaluation.groups.iter().enumerate() {
                if is_unknown(&self.models, t) {
                    let _ = write!(
                        s,
                        "<h2>Accuracy by {}</h2><p>{}</p>",
                        esc(&table.by),
                        esc(&unknown_text(table))
                    );
                    continue;
                }
                let _ = write!(
                    s,
                    "<h2>Accuracy by {}</h2><div class=\"charts\">",
                    esc(&table.by)
                );
                for m in &self.models {
                    let g = &m.evaluation.groups[t];
                    let _ = write!(
                        s,
                        "<figure>{}<figcaption>{}: accuracy with 95% Wilson intervals; gap {}</figcaption></figure>",
                        group_svg(g),
                        esc(&m.name),
                        esc(&gap_text(g.gaps.accuracy.as_ref()))
                    );
                }
                let _ = write!(s, "</div><table><tr><th>gap</th>");
                for m in &self.models {
                    let _ = write!(s, "<th>{}</th>", esc(&m.name));
                }
                let _ = write!(s, "</tr>");
                for (label, pick) in GAPS {
                    let _ = write!(s, "<tr><td>{label}</td>");
                    for m in &self.models {
                        let _ = write!(
                            s,
                            "<td>{}</td>",
                            esc(&gap_text(pick(&m.evaluation.groups[t])))
                        );
                    }
                    let _ = write!(s, "</tr>");
                }
                let _ = write!(
                    s,
                    "</table><h3>Expected calibration error by {}</h3>",
                    esc(&table.by)
                );
                html_group_table(&mut s, &self.models, group_eces(&self.models, t));
                if let Some(rows) = group_kept(&self.models, t) {
                    let _ = write!(
                        s,
                        "<h3>Kept at the minimum confidence, by {}</h3><p>Share of the group kept; accuracy on what is kept.</p>",
                        esc(&table.by)
                    );
                    html_group_table(&mut s, &self.models, rows);
                }
            }
        }
        for m in self
            .models
            .iter()
            .filter(|m| !m.evaluation.failures.is_empty())
        {
            let _ = write!(
                s,
                "<h2>Most confident failures: {}</h2><div class=\"gallery\">",
                esc(&m.name)
            );
            for f in &m.evaluation.failures {
                html_failure(&mut s, f, thumbnails);
            }
            let _ = write!(s, "</div>");
        }
        for m in self
            .models
            .iter()
            .filter(|m| !m.evaluation.failures_by_group.is_empty())
        {
            let _ = write!(
                s,
                "<h2>Most confident failures by age and race: {}</h2>",
                esc(&m.name)
            );
            for g in &m.evaluation.failures_by_group {
                let _ = write!(
                    s,
                    "<h3>{} {}: {} of {} wrong</h3><div class=\"gallery\">",
                    esc(&g.by),
                    esc(&g.group),
                    g.wrong,
                    g.n
                );
                for f in &g.failures {
                    html_failure(&mut s, f, thumbnails);
                }
                let _ = write!(s, "</div>");
            }
        }
        if !self.skipped.is_empty() {
            let _ = write!(s, "<h2>Images that could not be classified</h2><ul>");
            for (path, why) in &self.skipped {
                let _ = write!(s, "<li><code>{}</code>: {}</li>", esc(path), esc(why));
            }
            let _ = write!(s, "</ul>");
        }
        s.push_str("</body></html>\n");
        s
    }
}

type GapPick = fn(&GroupTable) -> Option<&crate::metrics::Gap>;
const GAPS: [(&str, GapPick); 4] = [
    ("accuracy", |g| g.gaps.accuracy.as_ref()),
    ("true-positive rate (women said female)", |g| {
        g.gaps.tpr.as_ref()
    }),
    ("false-positive rate (men said female)", |g| {
        g.gaps.fpr.as_ref()
    }),
    ("rate of saying female (demographic parity)", |g| {
        g.gaps.demographic_parity.as_ref()
    }),
];

/// The rows of group table `t` with each model's ECE on the group: one temperature or one
/// average calibration error can hide groups miscalibrated in opposite directions.
fn group_eces(models: &[ModelResult], t: usize) -> Vec<(&str, Vec<String>)> {
    let Some(first) = models.first() else {
        return Vec::new();
    };
    first.evaluation.groups[t]
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let mut cells = vec![row.n.to_string()];
            cells.extend(
                models
                    .iter()
                    .map(|m| num(m.evaluation.groups[t].rows[r].ece, 3)),
            );
            (row.group.as_str(), cells)
        })
        .collect()
}

/// A table of groups: `group`, `n` and a column per model; each row is the group's name and its
/// cells (`n` first).
fn html_group_table<G: AsRef<str>>(
    s: &mut String,
    models: &[ModelResult],
    rows: impl IntoIterator<Item = (G, Vec<String>)>,
) {
    let _ = write!(s, "<table><tr><th>group</th><th>n</th>");
    for m in models {
        let _ = write!(s, "<th>{}</th>", esc(&m.name));
    }
    let _ = write!(s, "</tr>");
    for (group, cells) in rows {
        let _ = write!(s, "<tr><td>{}</td>", esc(group.as_ref()));
        for c in cells {
            let _ = write!(s, "<td>{}</td>", esc(&c));
        }
        let _ = write!(s, "</tr>");
    }
    let _ = write!(s, "</table>");
}

/// Group table `t` with no image in any group for any model: the images' ages or races are not
/// known (a folder of class folders whose file names do not carry them), or none is in the
/// table's range. Its rows were all `| 0 | – |`.
fn is_unknown(models: &[ModelResult], t: usize) -> bool {
    models
        .iter()
        .all(|m| m.evaluation.groups[t].rows.iter().all(|r| r.n == 0))
}

fn unknown_text(table: &GroupTable) -> String {
    match table.by.split_once(", ") {
        // `race, ages 20-69`: races may be known, with no adult among the images.
        Some((by, range)) => format!("No image here has a known {by} and {range}."),
        None => format!(
            "No image here has a known {}: there is no manifest.csv, and the file names carry \
             no UTKFace labels.",
            table.by
        ),
    }
}

/// With `--min-confidence`: each group's share kept and accuracy on what is kept, then the gap
/// in that accuracy (`Gaps::selective_accuracy`). Abstentions fall unevenly too, and the overall
/// two figures hid it (the groups' were only in report.json). `None` without it.
fn group_kept(models: &[ModelResult], t: usize) -> Option<Vec<(String, Vec<String>)>> {
    let first = models.first()?;
    if models.iter().all(|m| m.evaluation.coverage.is_none()) {
        return None;
    }
    let mut rows: Vec<(String, Vec<String>)> = first.evaluation.groups[t]
        .rows
        .iter()
        .enumerate()
        .map(|(r, row)| {
            let mut cells = vec![row.n.to_string()];
            cells.extend(models.iter().map(|m| {
                let g = &m.evaluation.groups[t].rows[r];
                match (&g.coverage, &g.selective_accuracy) {
                    (Some(c), Some(a)) if g.n > 0 => {
                        format!("{} kept, {} right", pct(c.value), pct(a.value))
                    }
                    _ => "–".into(),
                }
            }));
            (row.group.clone(), cells)
        })
        .collect();
    let gaps = models
        .iter()
        .map(|m| gap_text(m.evaluation.groups[t].gaps.selective_accuracy.as_ref()));
    let mut last = vec![String::new()];
    last.extend(gaps);
    rows.push(("gap in accuracy on what is kept".into(), last));
    Some(rows)
}

fn gap_text(g: Option<&crate::metrics::Gap>) -> String {
    g.map(|g| format!("{:.1} pts ({} to {})", g.value * 100.0, g.low, g.high))
        .unwrap_or_else(|| "–".into())
}

/// One failure of a gallery: its thumbnail, when there is one, and what the model said.
fn html_failure(s: &mut String, f: &Failure, thumbnails: &HashMap<String, String>) {
    let img = thumbnails
        .get(&f.id)
        .map(|uri| format!("<img src=\"{uri}\" alt=\"\">"))
        .unwrap_or_default();
    let c = failure_cells(f);
    let _ = write!(
        s,
        "<figure>{img}<figcaption>truth {}, said {} ({})<br>age {}, {}<br><small>{}</small></figcaption></figure>",
        c[0],
        c[1],
        c[2],
        c[3],
        c[4],
        esc(f.id.rsplit('/').next().unwrap_or(&f.id))
    );
}

fn failure_cells(f: &Failure) -> Vec<String> {
    vec![
        f.truth.to_string(),
        f.predicted.to_string(),
        format!("{:.3}", f.confidence),
        f.age.map(|a| a.to_string()).unwrap_or_else(|| "–".into()),
        f.race.map(|r| r.to_string()).unwrap_or_else(|| "–".into()),
    ]
}

fn md_header(s: &mut String, first: &str, cols: &[&str]) {
    let _ = writeln!(s, "| {first} | {} |", cols.join(" | "));
    let _ = writeln!(s, "|{}", " --- |".repeat(cols.len() + 1));
}

fn md_row(s: &mut String, first: &str, cells: &[String]) {
    let _ = writeln!(
        s,
        "| {} | {} |",
        first.replace('|', "\\|"),
        cells.join(" | ")
    );
}

/// Text as itself in Markdown: file names in the failures table are the user's, and a name like
/// `<img onerror=...>.jpg` was raw HTML in report.md (CommonMark lets any ASCII punctuation be
/// escaped with a backslash; a line break would end the table row).
fn md_text(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '#' | '!' | '&' => {
                out.push('\\');
                out.push(c);
            }
            '\n' | '\r' => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const CSS: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;max-width:1200px;color:#222}\
table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}\
td:first-child,th:first-child{text-align:left}.charts,.gallery{display:flex;flex-wrap:wrap;gap:1em}\
figure{margin:0}figcaption{font-size:12px;color:#555;max-width:420px}.gallery figure{width:140px}\
.gallery img{width:128px;height:128px;object-fit:cover;display:block}";

/// Accuracy per group as horizontal bars with Wilson interval whiskers, 0 to 100%.
fn group_svg(table: &GroupTable) -> String {
    let (w, row_h, label_w) = (420.0, 18.0, 110.0);
    let h = row_h * table.rows.len() as f64 + 24.0;
    let bar_w = w - label_w - 50.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" role=\"img\">"
    );
    for (i, r) in table.rows.iter().enumerate() {
        let y = i as f64 * row_h + 4.0;
        let _ = write!(
            s,
            "<text x=\"0\" y=\"{}\" font-size=\"11\">{} (n={})</text>",
            y + 12.0,
            esc(&r.group),
            r.n
        );
        if let (Some(v), Some([lo, hi])) = (r.accuracy.value, r.accuracy.ci95) {
            let _ = write!(
                s,
                "<rect x=\"{label_w}\" y=\"{y}\" width=\"{:.1}\" height=\"{}\" fill=\"#4a7fb5\"/>\
                 <line x1=\"{:.1}\" x2=\"{:.1}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#000\"/>\
                 <text x=\"{:.1}\" y=\"{}\" font-size=\"11\">{:.1}%</text>",
                v * bar_w,
                row_h - 4.0,
                label_w + lo * bar_w,
                label_w + hi * bar_w,
                y + (row_h - 4.0) / 2.0,
                y + (row_h - 4.0) / 2.0,
                label_w + bar_w + 4.0,
                y + 12.0,
                v * 100.0
            );
        }
    }
    let axis = h - 8.0;
    let _ = write!(
        s,
        "<text x=\"{label_w}\" y=\"{axis}\" font-size=\"10\">0%</text><text x=\"{:.1}\" y=\"{axis}\" font-size=\"10\">100%</text></svg>",
        label_w + bar_w - 24.0
    );
    s
}

/// Accuracy against confidence per bin, with the diagonal of perfect calibration.
fn reliability_svg(bins: &[ReliabilityBin]) -> String {
    let (size, pad) = (240.0, 30.0);
    let inner = size - 2.0 * pad;
    let x = |v: f64| pad + v * inner;
    let y = |v: f64| size - pad - v * inner;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{size}\" height=\"{size}\" role=\"img\">\
         <rect x=\"{pad}\" y=\"{pad}\" width=\"{inner}\" height=\"{inner}\" fill=\"none\" stroke=\"#999\"/>\
         <line x1=\"{}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"#bbb\" stroke-dasharray=\"4\"/>",
        x(0.0),
        y(0.0),
        x(1.0),
        y(1.0)
    );
    for b in bins {
        if let Some(acc) = b.accuracy {
            let _ = write!(
                s,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"#4a7fb5\" opacity=\"0.8\"><title>{}-{}: n={}, accuracy {:.3}, confidence {:.3}</title></rect>",
                x(b.lower) + 1.0,
                y(acc),
                (b.upper - b.lower) * inner - 2.0,
                acc * inner,
                b.lower,
                b.upper,
                b.count,
                acc,
                b.confidence.unwrap_or(0.0)
            );
        }
    }
    let _ = write!(
        s,
        "<text x=\"{pad}\" y=\"{}\" font-size=\"10\">confidence</text><text x=\"2\" y=\"{}\" font-size=\"10\">acc</text></svg>",
        size - 8.0,
        pad + 10.0
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::{EvalOptions, Sample, evaluate};
    use gc_core::{Gender, Race};

    fn report() -> Report {
        let samples = vec![
            Sample {
                id: "a/<b>.jpg".into(),
                truth: Gender::Female,
                p_female: 0.2,
                age: Some(30),
                race: Some(Race::Black),
            },
            Sample {
                id: "c.jpg".into(),
                truth: Gender::Male,
                p_female: 0.1,
                age: Some(1),
                race: Some(Race::White),
            },
        ];
        Report {
            title: "t".into(),
            data: "d".into(),
            models: vec![ModelResult {
                name: "m".into(),
                evaluation: evaluate(&samples, &EvalOptions::default()),
                images_per_second: Some(10.0),
            }],
            skipped: vec![("x.jpg".into(), "empty file".into())],
        }
    }

    #[test]
    fn markdown_holds_the_numbers() {
        let md = report().to_markdown();
        assert!(md.contains("| accuracy [95% CI] | 50.0% ["), "{md}");
        assert!(md.contains("| female | 0 | 1 |"), "{md}");
        assert!(md.contains("## Accuracy by race"));
        // The woman of 30 said male at 0.8: ECE 0.8 in her group; the baby boy right at 0.9: 0.1.
        assert!(md.contains("**Expected calibration error by age**"), "{md}");
        assert!(md.contains("| 30-39 | 1 | 0.800 |"), "{md}");
        assert!(md.contains("| 0-2 | 1 | 0.100 |"), "{md}");
        assert!(md.contains("- x.jpg: empty file"), "{md}");
        // The failure named a/<b>.jpg is text, not HTML.
        assert!(md.contains("| a/\\<b\\>.jpg | female |"), "{md}");
        assert!(!md.contains("<b>"), "{md}");
        assert_eq!(md_text("x|y_z\nw"), "x\\|y\\_z w");
        // The same failure in its age bucket's and its race group's galleries.
        assert!(
            md.contains("## Most confident failures by age and race: m"),
            "{md}"
        );
        assert!(
            md.contains("| age 30-39 | 1 of 1 | a/\\<b\\>.jpg | female | male | 0.800 |"),
            "{md}"
        );
        assert!(
            md.contains("| race black | 1 of 1 | a/\\<b\\>.jpg |"),
            "{md}"
        );
        assert!(!md.contains("| race white |"), "no failure, no row: {md}");
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        let mut thumbs = HashMap::new();
        thumbs.insert(
            "a/<b>.jpg".to_string(),
            "data:image/jpeg;base64,AAAA".to_string(),
        );
        let html = report().to_html(&thumbs);
        assert!(html.contains("&lt;b&gt;.jpg"));
        assert!(!html.contains("<b>.jpg"));
        assert!(html.contains("<img src=\"data:image/jpeg;base64,AAAA\""));
        assert!(html.contains("<svg"));
        assert!(html.contains("<h3>Expected calibration error by race</h3>"));
        assert!(html.contains("<h3>race black: 1 of 1 wrong</h3>"), "{html}");
        assert_eq!(
            html.matches("<img src=\"data:image/jpeg;base64,AAAA\"")
                .count(),
            3,
            "overall, by age, by race"
        );
        assert!(
            html.contains("<tr><td>black</td><td>1</td><td>0.800</td></tr>"),
            "{html}"
        );
        assert!(
            !html.contains("http://")
                || html.matches("http://").count()
                    == html.matches("xmlns=\"http://www.w3.org/2000/svg\"").count()
        );
        let json: serde_json::Value = serde_json::from_str(&report().to_json()).unwrap();
        assert_eq!(json["models"][0]["evaluation"]["n"], 2);
        assert!(
            !html.contains("Kept at the minimum confidence"),
            "only with one"
        );
    }

    /// Images whose ages and races are unknown give one line a table, not rows of `| 0 | – |`.
    #[test]
    fn unknown_groups_are_said_once() {
        let samples: Vec<Sample> = (0..4)
            .map(|i| Sample {
                id: format!("{i}.jpg"),
                truth: if i % 2 == 0 {
                    Gender::Female
                } else {
                    Gender::Male
                },
                p_female: 0.7,
                age: None,
                race: None,
            })
            .collect();
        let mut r = report();
        r.models[0].evaluation = evaluate(&samples, &EvalOptions::default());
        let md = r.to_markdown();
        assert!(!md.contains("| 0 | –"), "{md}");
        // The two men said female are failures; with none kept (`--failures 0`), no empty
        // section.
        r.models[0].evaluation.failures.clear();
        let md = r.to_markdown();
        assert!(!md.contains("Most confident failures"), "{md}");
        assert!(
            md.contains("No image here has a known race x gender:"),
            "{md}"
        );
        assert!(md.contains("No image here has a known age:"), "{md}");
        let html = r.to_html(&HashMap::new());
        assert!(!html.contains("<td>0</td>"), "{html}");
        // Races known, no adult: the adults' table says so, not that nothing is known.
        let children: Vec<Sample> = (0..4)
            .map(|i| Sample {
                id: format!("{i}.jpg"),
                truth: Gender::Female,
                p_female: 0.7,
                age: Some(5),
                race: Some(Race::Asian),
            })
            .collect();
        r.models[0].evaluation = evaluate(&children, &EvalOptions::default());
        let md = r.to_markdown();
        assert!(
            md.contains("No image here has a known race and ages 20-69."),
            "{md}"
        );
        assert!(md.contains("| asian | 4 |"), "{md}");
    }

    /// With --min-confidence, each group's share kept and accuracy on what is kept are in the
    /// markdown and the page, not only in report.json.
    #[test]
    fn kept_shares_are_shown_by_group() {
        let sample = |id: &str, truth, p_female, race| Sample {
            id: id.into(),
            truth,
            p_female,
            age: Some(30),
            race: Some(race),
        };
        let mut samples = Vec::new();
        // 20 white faces, all kept and right; 40 black faces, half kept (0.55 is unsure), and of
        // those kept half wrong.
        for i in 0..20 {
            samples.push(sample(&format!("w{i}"), Gender::Female, 0.95, Race::White));
        }
        for i in 0..20 {
            samples.push(sample(&format!("b{i}"), Gender::Female, 0.55, Race::Black));
        }
        for i in 0..20 {
            let p = if i < 10 { 0.05 } else { 0.95 };
            samples.push(sample(&format!("k{i}"), Gender::Male, p, Race::Black));
        }
        let opts = EvalOptions {
            min_confidence: Some(0.8),
            ..EvalOptions::default()
        };
        let mut r = report();
        r.models[0].evaluation = evaluate(&samples, &opts);
        let md = r.to_markdown();
        assert!(
            md.contains("**Kept at the minimum confidence, by race**"),
            "{md}"
        );
        assert!(
            md.contains("| white | 20 | 100.0% kept, 100.0% right |"),
            "{md}"
        );
        assert!(
            md.contains("| black | 40 | 50.0% kept, 50.0% right |"),
            "{md}"
        );
        assert!(
            md.contains("| gap in accuracy on what is kept |  | 50.0 pts (black to white) |"),
            "{md}"
        );
        let html = r.to_html(&HashMap::new());
        assert!(html.contains("<h3>Kept at the minimum confidence, by race</h3>"));
    }
}
