//! From predictions to the numbers of the report: overall metrics, calibration, per-group tables with
//! confidence intervals, fairness gaps, abstention, and the most confident failures.
//!
//! "Positive" in the rates below is `female` (class 0): the true-positive rate is the share of women
//! predicted female, the false-positive rate the share of men predicted female, and demographic parity
//! compares the share of each group predicted female.

use crate::stats::{Proportion, ReliabilityBin, calibration, roc_auc};
use gc_core::{AgeBucket, Gender, Race};
use serde::Serialize;

/// One evaluated image.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Sample {
    /// Its path, for the failure gallery.
    pub id: String,
    pub truth: Gender,
    /// The model's probability of `female`; `male` is `1 - p_female`.
    pub p_female: f64,
    pub age: Option<u32>,
    pub race: Option<Race>,
}

impl Sample {
    pub fn predicted(&self) -> Gender {
        if self.p_female >= 0.5 {
            Gender::Female
        } else {
            Gender::Male
        }
    }

    /// The probability of the predicted class.
    pub fn confidence(&self) -> f64 {
        self.p_female.max(1.0 - self.p_female)
    }

    pub fn correct(&self) -> bool {
        self.predicted() == self.truth
    }
}

#[derive(Debug, Clone)]
pub struct EvalOptions {
    /// Predictions below this confidence count as "uncertain" (the model abstains).
    pub min_confidence: Option<f64>,
    pub calibration_bins: usize,
    /// How many of the most confident failures to keep overall.
    pub failures: usize,
    /// How many to keep per age bucket and per race group (`Evaluation::failures_by_group`).
    pub failures_per_group: usize,
    /// Groups smaller than this are shown but left out of the fairness gaps, where their noise would
    /// swamp the signal.
    pub min_group_for_gaps: usize,
}

impl Default for EvalOptions {
    fn default() -> Self {
        EvalOptions {
            min_confidence: None,
            calibration_bins: 10,
            failures: 24,
            failures_per_group: 6,
            min_group_for_gaps: 20,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ClassMetrics {
    pub class: Gender,
    pub support: usize,
    pub precision: Option<f64>,
    pub recall: Option<f64>,
    pub f1: Option<f64>,
}

/// One row of a group table.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupRow {
    pub group: String,
    pub n: usize,
    pub accuracy: Proportion,
    /// Women predicted female.
    pub tpr: Proportion,
    /// Men predicted female.
    pub fpr: Proportion,
    /// Everyone predicted female (demographic parity).
    pub female_rate: Proportion,
    pub ece: Option<f64>,
    /// With `min_confidence`: the share kept, and the accuracy on what is kept.
    pub coverage: Option<Proportion>,
    pub selective_accuracy: Option<Proportion>,
}

/// Largest difference between eligible groups, with the groups at both ends.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gap {
    pub value: f64,
    pub low: String,
    pub high: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Gaps {
    pub accuracy: Option<Gap>,
    pub tpr: Option<Gap>,
    pub fpr: Option<Gap>,
    /// None in the tables crossed with gender: there a row's rate of saying female is its
    /// true-positive rate (a row of women) or its false-positive rate (of men), so the gap between
    /// rows would measure how well the model tells women from men, not parity.
    pub demographic_parity: Option<Gap>,
    /// With `min_confidence`: the gap in accuracy on what each group keeps, between groups
    /// that keep `min_group_for_gaps` images or more (abstaining can hide a gap or move it).
    pub selective_accuracy: Option<Gap>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupTable {
    /// `age`, `race`, `race x gender`, `age x gender`.
    pub by: String,
    pub rows: Vec<GroupRow>,
    pub gaps: Gaps,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub id: String,
    pub truth: Gender,
    pub predicted: Gender,
    pub confidence: f64,
    pub age: Option<u32>,
    pub race: Option<Race>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Evaluation {
    pub n: usize,
    pub accuracy: Proportion,
    pub balanced_accuracy: Option<f64>,
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[truth][predicted]`, classes in `Gender::ALL` order.
    pub confusion: [[usize; 2]; 2],
    /// AUC of `p_female` for telling women from men.
    pub roc_auc: Option<f64>,
    pub ece: Option<f64>,
    pub reliability: Vec<ReliabilityBin>,
    pub min_confidence: Option<f64>,
    pub coverage: Option<Proportion>,
    pub selective_accuracy: Option<Proportion>,
    pub groups: Vec<GroupTable>,
    /// The most confident wrong predictions, most confident first.
    pub failures: Vec<Failure>,
    /// The same, per age bucket and per race group (groups without a failure left out): the
    /// overall gallery shows mostly the groups the model fails most, and hides how it fails the
    /// others.
    pub failures_by_group: Vec<GroupFailures>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupFailures {
    /// `age` or `race`.
    pub by: String,
    pub group: String,
    /// Wrong predictions in the group, and its size.
    pub wrong: usize,
    pub n: usize,
    pub failures: Vec<Failure>,
}

/// The ages of the adults-only race table: the model card's intended users, 20 to 69.
pub const ADULT_AGES: std::ops::Range<u32> = 20..70;
/// The name (`GroupTable::by`) of the race table over `ADULT_AGES` only.
pub const ADULT_RACE_TABLE: &str = "race, ages 20-69";

/// Evaluates `samples`.
pub fn evaluate(samples: &[Sample], opts: &EvalOptions) -> Evaluation {
    let n = samples.len();
    let correct = samples.iter().filter(|s| s.correct()).count();
    let mut confusion = [[0usize; 2]; 2];
    for s in samples {
        confusion[s.truth.index()][s.predicted().index()] += 1;
    }
    let per_class: Vec<ClassMetrics> = Gender::ALL
        .iter()
        .map(|&g| {
            let i = g.index();
            let tp = confusion[i][i];
            let support = confusion[i].iter().sum::<usize>();
            let predicted = confusion[0][i] + confusion[1][i];
            let precision = (predicted > 0).then(|| tp as f64 / predicted as f64);
            let recall = (support > 0).then(|| tp as f64 / support as f64);
            let f1 = match (precision, recall) {
                (Some(p), Some(r)) if p + r > 0.0 => Some(2.0 * p * r / (p + r)),
                (Some(_), Some(_)) => Some(0.0),
                _ => None,
            };
            ClassMetrics {
                class: g,
                support,
                precision,
                recall,
                f1,
            }
        })
        .collect();
    let recalls: Vec<f64> = per_class.iter().filter_map(|c| c.recall).collect();
    let balanced_accuracy =
        (!recalls.is_empty()).then(|| recalls.iter().sum::<f64>() / recalls.len() as f64);
    let scores: Vec<f64> = samples.iter().map(|s| s.p_female).collect();
    let is_female: Vec<bool> = samples.iter().map(|s| s.truth == Gender::Female).collect();
    let conf: Vec<f64> = samples.iter().map(|s| s.confidence()).collect();
    let right: Vec<bool> = samples.iter().map(|s| s.correct()).collect();
    let (ece, reliability) = calibration(&conf, &right, opts.calibration_bins);
    let (coverage, selective_accuracy) = abstain(samples, opts.min_confidence);

    let age = |s: &Sample| s.age.map(|a| AgeBucket::of_age(a).to_string());
    let race = |s: &Sample| s.race.map(|r| r.to_string());
    let ages: Vec<String> = AgeBucket::ALL.iter().map(|a| a.to_string()).collect();
    let races: Vec<String> = Race::ALL.iter().map(|r| r.to_string()).collect();
    let groups = vec![
        table("age", samples, opts, Parity::Compare, age, ages.clone()),
        table("race", samples, opts, Parity::Compare, race, races.clone()),
        // UTKFace's race groups differ in age (27% of its Asian test faces are under 10, 3.5% of
        // its Black ones), and children are the hardest faces for every model, so the race table
        // alone mixes a race effect with an age one; the same table over adults separates them.
        table(
            ADULT_RACE_TABLE,
            samples,
            opts,
            Parity::Compare,
            |s| {
                s.age
                    .filter(|a| ADULT_AGES.contains(a))
                    .and_then(|_| race(s))
            },
            races.clone(),
        ),
        table(
            "race x gender",
            samples,
            opts,
            Parity::OneGenderPerRow,
            |s| race(s).map(|r| format!("{r} {}", s.truth)),
            Race::ALL
                .iter()
                .flat_map(|r| Gender::ALL.map(|g| format!("{r} {g}")))
                .collect(),
        ),
        table(
            "age x gender",
            samples,
            opts,
            Parity::OneGenderPerRow,
            |s| age(s).map(|a| format!("{a} {}", s.truth)),
            AgeBucket::ALL
                .iter()
                .flat_map(|a| Gender::ALL.map(|g| format!("{a} {g}")))
                .collect(),
        ),
    ];

    Evaluation {
        n,
        accuracy: Proportion::new(correct, n),
        balanced_accuracy,
        per_class,
        confusion,
        roc_auc: roc_auc(&scores, &is_female),
        ece,
        reliability,
        min_confidence: opts.min_confidence,
        coverage,
        selective_accuracy,
        groups,
        failures: worst_failures(samples.iter(), opts.failures),
        failures_by_group: [
            failures_by("age", samples, opts, age, ages),
            failures_by("race", samples, opts, race, races),
        ]
        .concat(),
    }
}

/// The most confident failures of each of `groups` (by `key`), for groups with any.
fn failures_by(
    by: &str,
    samples: &[Sample],
    opts: &EvalOptions,
    key: impl Fn(&Sample) -> Option<String>,
    groups: Vec<String>,
) -> Vec<GroupFailures> {
    if opts.failures_per_group == 0 {
        return Vec::new();
    }
    groups
        .into_iter()
        .filter_map(|group| {
            let members: Vec<&Sample> = samples
                .iter()
                .filter(|s| key(s).as_deref() == Some(group.as_str()))
                .collect();
            let wrong = members.iter().filter(|s| !s.correct()).count();
            (wrong > 0).then(|| GroupFailures {
                by: by.to_string(),
                group,
                wrong,
                n: members.len(),
                failures: worst_failures(members.into_iter(), opts.failures_per_group),
            })
        })
        .collect()
}

/// The most confident wrong predictions among `samples`.
pub fn worst_failures<'a>(samples: impl Iterator<Item = &'a Sample>, n: usize) -> Vec<Failure> {
    let mut wrong: Vec<&Sample> = samples.filter(|s| !s.correct()).collect();
    wrong.sort_by(|a, b| {
        b.confidence()
            .total_cmp(&a.confidence())
            .then(a.id.cmp(&b.id))
    });
    wrong
        .into_iter()
        .take(n)
        .map(|s| Failure {
            id: s.id.clone(),
            truth: s.truth,
            predicted: s.predicted(),
            confidence: s.confidence(),
            age: s.age,
            race: s.race,
        })
        .collect()
}

fn abstain(
    samples: &[Sample],
    min_confidence: Option<f64>,
) -> (Option<Proportion>, Option<Proportion>) {
    let Some(t) = min_confidence else {
        return (None, None);
    };
    // Compared at the models' own precision, f32, as `sort` does: widened to f64, a male
    // probability of 0.8 (1 - 0.2f32) is 0.79999999702 and fell under a threshold of 0.8 that
    // the same probability of female met.
    let kept: Vec<&Sample> = samples
        .iter()
        .filter(|s| s.confidence() as f32 >= t as f32)
        .collect();
    let right = kept.iter().filter(|s| s.correct()).count();
    (
        Some(Proportion::new(kept.len(), samples.len())),
        Some(Proportion::new(right, kept.len())),
    )
}

/// Whether a table's rows can be compared for demographic parity.
#[derive(Clone, Copy, PartialEq)]
enum Parity {
    Compare,
    /// Each row holds one true gender (`Gaps::demographic_parity`).
    OneGenderPerRow,
}

fn table(
    by: &str,
    samples: &[Sample],
    opts: &EvalOptions,
    parity: Parity,
    key: impl Fn(&Sample) -> Option<String>,
    groups: Vec<String>,
) -> GroupTable {
    let rows: Vec<GroupRow> = groups
        .into_iter()
        .map(|group| {
            let members: Vec<Sample> = samples
                .iter()
                .filter(|s| key(s).as_deref() == Some(group.as_str()))
                .cloned()
                .collect();
            row(group, &members, opts)
        })
        .collect();
    let gaps = Gaps {
        accuracy: gap(&rows, opts, |r| Some(&r.accuracy)),
        tpr: gap(&rows, opts, |r| Some(&r.tpr)),
        fpr: gap(&rows, opts, |r| Some(&r.fpr)),
        demographic_parity: match parity {
            Parity::Compare => gap(&rows, opts, |r| Some(&r.female_rate)),
            Parity::OneGenderPerRow => None,
        },
        selective_accuracy: gap(&rows, opts, |r| r.selective_accuracy.as_ref()),
    };
    GroupTable {
        by: by.to_string(),
        rows,
        gaps,
    }
}

fn row(group: String, members: &[Sample], opts: &EvalOptions) -> GroupRow {
    let count = |f: &dyn Fn(&Sample) -> bool| members.iter().filter(|s| f(s)).count();
    let women = count(&|s| s.truth == Gender::Female);
    let men = members.len() - women;
    let conf: Vec<f64> = members.iter().map(|s| s.confidence()).collect();
    let right: Vec<bool> = members.iter().map(|s| s.correct()).collect();
    let (coverage, selective_accuracy) = abstain(members, opts.min_confidence);
    GroupRow {
        group,
        n: members.len(),
        accuracy: Proportion::new(count(&|s| s.correct()), members.len()),
        tpr: Proportion::new(
            count(&|s| s.truth == Gender::Female && s.predicted() == Gender::Female),
            women,
        ),
        fpr: Proportion::new(
            count(&|s| s.truth == Gender::Male && s.predicted() == Gender::Female),
            men,
        ),
        female_rate: Proportion::new(count(&|s| s.predicted() == Gender::Female), members.len()),
        ece: calibration(&conf, &right, opts.calibration_bins).0,
        coverage,
        selective_accuracy,
    }
}

fn gap(
    rows: &[GroupRow],
    opts: &EvalOptions,
    rate: impl Fn(&GroupRow) -> Option<&Proportion>,
) -> Option<Gap> {
    let eligible: Vec<(&str, f64)> = rows
        .iter()
        .filter_map(|r| {
            let p = rate(r)?;
            (p.n >= opts.min_group_for_gaps).then_some((r.group.as_str(), p.value?))
        })
        .collect();
    if eligible.len() < 2 {
        return None;
    }
    let low = eligible.iter().min_by(|a, b| a.1.total_cmp(&b.1))?;
    let high = eligible.iter().max_by(|a, b| a.1.total_cmp(&b.1))?;
    Some(Gap {
        value: high.1 - low.1,
        low: low.0.to_string(),
        high: high.0.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(id: &str, truth: Gender, p_female: f64, age: u32, race: Race) -> Sample {
        Sample {
            id: id.into(),
            truth,
            p_female,
            age: Some(age),
            race: Some(race),
        }
    }

    use Gender::{Female as F, Male as M};
    use Race::{Asian, Black, White};

    /// Six made-up predictions, computed by hand below.
    fn six() -> Vec<Sample> {
        vec![
            s("a", F, 0.9, 25, White),  // right, conf 0.9
            s("b", F, 0.3, 25, White),  // wrong (says male), conf 0.7
            s("c", M, 0.2, 35, White),  // right, conf 0.8
            s("d", M, 0.6, 1, Black),   // wrong (says female), conf 0.6
            s("e", M, 0.1, 1, Black),   // right, conf 0.9
            s("f", F, 0.95, 72, Asian), // right, conf 0.95
        ]
    }

    fn opts() -> EvalOptions {
        EvalOptions {
            min_group_for_gaps: 1,
            ..EvalOptions::default()
        }
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn overall_metrics_by_hand() {
        let e = evaluate(&six(), &opts());
        assert_eq!(e.n, 6);
        assert_eq!(e.accuracy.k, 4);
        // Truth female: a right, b wrong, f right. Truth male: c right, d wrong, e right.
        assert_eq!(e.confusion, [[2, 1], [1, 2]]);
        let f = &e.per_class[0];
        assert!(close(f.precision.unwrap(), 2.0 / 3.0)); // predicted female: a, d, f
        assert!(close(f.recall.unwrap(), 2.0 / 3.0));
        assert!(close(f.f1.unwrap(), 2.0 / 3.0));
        assert!(close(e.balanced_accuracy.unwrap(), 2.0 / 3.0));
        // Female scores 0.9, 0.3, 0.95 against male 0.2, 0.6, 0.1: pairs won 3+2+3 = 8 of 9.
        assert!(close(e.roc_auc.unwrap(), 8.0 / 9.0));
        // Ten bins: 0.6 (bin 6) wrong: 0.6; 0.7 (bin 7) wrong: 0.7; 0.8 (bin 8) right: 0.2;
        // 0.9, 0.9, 0.95 (bin 9) all right: |3 - 2.75| = 0.25. ECE = (0.6+0.7+0.2+0.25)/6.
        assert!(close(e.ece.unwrap(), 1.75 / 6.0));
        // Most confident failure first.
        let ids: Vec<&str> = e.failures.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(ids, ["b", "d"]);
    }

    #[test]
    fn groups_and_gaps_by_hand_with_empty_groups_and_a_group_of_one() {
        let e = evaluate(&six(), &opts());
        let race = e.groups.iter().find(|g| g.by == "race").unwrap();
        let get = |name: &str| race.rows.iter().find(|r| r.group == name).unwrap();
        // White: a right, b wrong, c right.
        assert_eq!((get("white").accuracy.k, get("white").n), (2, 3));
        // Black: d wrong, e right; both men, d predicted female -> FPR 1/2, TPR undefined.
        assert!(close(get("black").fpr.value.unwrap(), 0.5));
        assert_eq!(get("black").tpr.value, None);
        // Asian: a group of one, right.
        assert_eq!(get("asian").n, 1);
        assert!(close(get("asian").accuracy.value.unwrap(), 1.0));
        // Indian and Others: empty, no values, no intervals.
        assert_eq!(get("indian").n, 0);
        assert_eq!(get("others").accuracy.value, None);
        // Accuracy gap: asian 1.0 - black 0.5 (white 0.667 between).
        let gap = race.gaps.accuracy.as_ref().unwrap();
        assert!(close(gap.value, 0.5));
        assert_eq!((gap.low.as_str(), gap.high.as_str()), ("black", "asian"));
        // Predicted female: white 1/3 (a), black 1/2 (d), asian 1/1 (f): gap 2/3.
        assert!(close(
            race.gaps.demographic_parity.as_ref().unwrap().value,
            2.0 / 3.0
        ));
        // TPR: white 1/2, asian 1/1 -> 0.5; FPR: white 0/1, black 1/2 -> 0.5.
        assert!(close(race.gaps.tpr.as_ref().unwrap().value, 0.5));
        assert!(close(race.gaps.fpr.as_ref().unwrap().value, 0.5));

        // Adults only: a, b, c (white, 25-35); d and e are babies, f is 72.
        let adults = e.groups.iter().find(|g| g.by == ADULT_RACE_TABLE).unwrap();
        let n: Vec<usize> = adults.rows.iter().map(|r| r.n).collect();
        assert_eq!(n, [3, 0, 0, 0, 0], "{:?}", adults.rows);
        assert_eq!(adults.rows[0].accuracy.k, 2);
        assert_eq!(adults.gaps.accuracy, None, "one group has no gap");

        let age = e.groups.iter().find(|g| g.by == "age").unwrap();
        let baby = age.rows.iter().find(|r| r.group == "0-2").unwrap();
        assert_eq!((baby.accuracy.k, baby.n), (1, 2));
        let cross = e.groups.iter().find(|g| g.by == "race x gender").unwrap();
        let wf = cross
            .rows
            .iter()
            .find(|r| r.group == "white female")
            .unwrap();
        assert_eq!((wf.accuracy.k, wf.n), (1, 2));
    }

    #[test]
    fn small_groups_are_left_out_of_gaps() {
        let e = evaluate(
            &six(),
            &EvalOptions {
                min_group_for_gaps: 2,
                ..EvalOptions::default()
            },
        );
        let race = e.groups.iter().find(|g| g.by == "race").unwrap();
        // Asian (n=1) is out: white 2/3 vs black 1/2.
        assert!(close(
            race.gaps.accuracy.as_ref().unwrap().value,
            2.0 / 3.0 - 0.5
        ));
        let e = evaluate(&six()[..1], &opts());
        assert_eq!(e.groups[1].gaps.accuracy, None, "one group has no gap");
    }

    #[test]
    fn abstaining_by_hand() {
        let e = evaluate(
            &six(),
            &EvalOptions {
                min_confidence: Some(0.75),
                ..opts()
            },
        );
        // Kept: a (0.9), c (0.8), e (0.9), f (0.95): 4 of 6, all right.
        let cov = e.coverage.unwrap();
        assert_eq!((cov.k, cov.n), (4, 6));
        let acc = e.selective_accuracy.unwrap();
        assert_eq!((acc.k, acc.n), (4, 4));
        let race = e.groups.iter().find(|g| g.by == "race").unwrap();
        let black = race.rows.iter().find(|r| r.group == "black").unwrap();
        assert_eq!(black.coverage.unwrap().k, 1);
        let indian = race.rows.iter().find(|r| r.group == "indian").unwrap();
        assert_eq!(indian.selective_accuracy.unwrap().value, None);
        // At 0.65, b (wrong, 0.7) is kept too: white keep 2 right of 3, black and asian 1 of 1;
        // indian keep nothing and are left out of the gap.
        let e = evaluate(
            &six(),
            &EvalOptions {
                min_confidence: Some(0.65),
                ..opts()
            },
        );
        let race = e.groups.iter().find(|g| g.by == "race").unwrap();
        let kept = race.gaps.selective_accuracy.as_ref().unwrap();
        assert!(close(kept.value, 1.0 / 3.0), "{kept:?}");
        assert_eq!(kept.low, "white");
        assert_eq!(
            evaluate(&six(), &opts()).groups[1].gaps.selective_accuracy,
            None
        );
    }

    #[test]
    fn parity_is_not_compared_between_rows_of_one_gender() {
        let e = evaluate(&six(), &opts());
        for g in &e.groups {
            match g.by.as_str() {
                // Between rows of women and rows of men the "gap" was 1 here (white women said
                // female 1/2, Asian women 1/1, white men 0/1): true-positive rates against
                // false-positive ones.
                "race x gender" | "age x gender" => {
                    assert_eq!(g.gaps.demographic_parity, None, "{}", g.by);
                    assert!(g.gaps.tpr.is_some() && g.gaps.fpr.is_some(), "{}", g.by);
                }
                "race" | "age" => assert!(g.gaps.demographic_parity.is_some(), "{}", g.by),
                _ => {}
            }
        }
    }

    #[test]
    fn probabilities_from_f32_models_meet_thresholds_and_bin_edges_whichever_class() {
        let p = |x: f32| f64::from(x);
        let samples = vec![
            s("f8", F, p(0.8), 30, White), // female, confidence 0.8f32
            s("m8", M, p(0.2), 30, White), // male, 1 - 0.2f32 = 0.79999999702 in f64
            s("f7", F, p(0.7), 30, White), // 0.69999998807 in f64
            s("m7", M, p(0.3), 30, White), // 1 - 0.3f32 = 0.69999998808
        ];
        let e = evaluate(
            &samples,
            &EvalOptions {
                min_confidence: Some(0.8),
                ..opts()
            },
        );
        let kept = e.coverage.unwrap();
        assert_eq!(
            (kept.k, kept.n),
            (2, 4),
            "both 0.8s are kept, whichever class"
        );
        let counts: Vec<usize> = e.reliability.iter().map(|b| b.count).collect();
        assert_eq!(
            counts,
            [0, 0, 0, 0, 0, 0, 0, 2, 2, 0],
            "0.7 in the bin from 0.7"
        );
    }

    #[test]
    fn failures_by_age_and_race_by_hand() {
        let e = evaluate(&six(), &opts());
        let got: Vec<(&str, &str, usize, usize, Vec<&str>)> = e
            .failures_by_group
            .iter()
            .map(|g| {
                let ids = g.failures.iter().map(|f| f.id.as_str()).collect();
                (g.by.as_str(), g.group.as_str(), g.wrong, g.n, ids)
            })
            .collect();
        // b (25, white, wrong) and d (1, black, wrong); groups without a failure left out.
        assert_eq!(
            got,
            [
                ("age", "0-2", 1, 2, vec!["d"]),
                ("age", "20-29", 1, 2, vec!["b"]),
                ("race", "white", 1, 3, vec!["b"]),
                ("race", "black", 1, 2, vec!["d"]),
            ]
        );
        let none = evaluate(
            &six(),
            &EvalOptions {
                failures_per_group: 0,
                ..opts()
            },
        );
        assert!(none.failures_by_group.is_empty());
    }

    #[test]
    fn empty_input_gives_no_numbers_and_no_panic() {
        let e = evaluate(&[], &opts());
        assert_eq!(e.accuracy.value, None);
        assert_eq!(e.roc_auc, None);
        assert_eq!(e.ece, None);
        assert_eq!(e.balanced_accuracy, None);
    }
}
