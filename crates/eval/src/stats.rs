//! Small statistics: Wilson intervals, ROC AUC, calibration bins. Written here rather than pulled from
//! a crate because each is a few lines and the tests pin them to hand-computed values.

use serde::Serialize;

/// A proportion with its 95% Wilson score interval. The Wilson interval stays inside [0, 1] and behaves
/// for tiny groups (n = 1) and for proportions of 0 or 1, where the normal approximation does not.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Proportion {
    pub k: usize,
    pub n: usize,
    /// `k / n`, or `None` for an empty group.
    pub value: Option<f64>,
    pub ci95: Option<[f64; 2]>,
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.959_963_984_540_054;

impl Proportion {
    pub fn new(k: usize, n: usize) -> Proportion {
        if n == 0 {
            return Proportion {
                k,
                n,
                value: None,
                ci95: None,
            };
        }
        let (nf, p) = (n as f64, k as f64 / n as f64);
        let z2 = Z95 * Z95;
        let centre = (p + z2 / (2.0 * nf)) / (1.0 + z2 / nf);
        let half = Z95 / (1.0 + z2 / nf) * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt();
        Proportion {
            k,
            n,
            value: Some(p),
            ci95: Some([(centre - half).max(0.0), (centre + half).min(1.0)]),
        }
    }
}

/// Area under the ROC curve for scores of the positive class: the probability that a random positive
/// scores above a random negative, ties counting half (the Mann-Whitney form). `None` when either
/// class is absent.
pub fn roc_auc(scores: &[f64], positive: &[bool]) -> Option<f64> {
    let mut order: Vec<usize> = (0..scores.len()).collect();
    order.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties.
    let mut ranks = vec![0.0; scores.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && scores[order[j + 1]] == scores[order[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        for &o in &order[i..=j] {
            ranks[o] = avg;
        }
        i = j + 1;
    }
    let n_pos = positive.iter().filter(|&&p| p).count() as f64;
    let n_neg = positive.len() as f64 - n_pos;
    if n_pos == 0.0 || n_neg == 0.0 {
        return None;
    }
    let rank_sum: f64 = ranks
        .iter()
        .zip(positive)
        .filter(|(_, p)| **p)
        .map(|(r, _)| r)
        .sum();
    Some((rank_sum - n_pos * (n_pos + 1.0) / 2.0) / (n_pos * n_neg))
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReliabilityBin {
    pub lower: f64,
    pub upper: f64,
    pub count: usize,
    /// Mean confidence of the predictions in the bin.
    pub confidence: Option<f64>,
    /// Their accuracy.
    pub accuracy: Option<f64>,
}

/// Expected calibration error over `bins` equal-width bins of the predicted class's confidence
/// (the usual top-label ECE), with the bins for the diagram. Confidence 1.0 falls in the last bin.
pub fn calibration(
    confidence: &[f64],
    correct: &[bool],
    bins: usize,
) -> (Option<f64>, Vec<ReliabilityBin>) {
    let bins = bins.max(1);
    let mut sum_conf = vec![0.0; bins];
    let mut sum_acc = vec![0.0; bins];
    let mut count = vec![0usize; bins];
    for (&c, &ok) in confidence.iter().zip(correct) {
        // The bin is found at the models' precision, f32: their 0.7 widened to f64 is
        // 0.69999998807907, which is 0.7 and belongs in the bin from 0.7, not the one below.
        let b = (((c * bins as f64) as f32) as usize).min(bins - 1);
        sum_conf[b] += c;
        sum_acc[b] += ok as u8 as f64;
        count[b] += 1;
    }
    let n = confidence.len();
    let ece = (n > 0).then(|| {
        (0..bins)
            .filter(|&b| count[b] > 0)
            .map(|b| (sum_acc[b] - sum_conf[b]).abs() / n as f64)
            .sum()
    });
    let diagram = (0..bins)
        .map(|b| ReliabilityBin {
            lower: b as f64 / bins as f64,
            upper: (b + 1) as f64 / bins as f64,
            count: count[b],
            confidence: (count[b] > 0).then(|| sum_conf[b] / count[b] as f64),
            accuracy: (count[b] > 0).then(|| sum_acc[b] / count[b] as f64),
        })
        .collect();
    (ece, diagram)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-4
    }

    #[test]
    fn wilson_matches_hand_computed_values() {
        // k=8, n=10: centre (0.8 + 3.8415/20) / (1 + 3.8415/10) = 0.99207/1.38415 = 0.71674;
        // half = 1.95996/1.38415 * sqrt(0.016 + 3.8415/400) = 1.41600 * 0.16004 = 0.22662.
        let p = Proportion::new(8, 10);
        let [lo, hi] = p.ci95.unwrap();
        assert!(close(lo, 0.4902), "{lo}");
        assert!(close(hi, 0.9433), "{hi}");
        // A group of one, right: [0.2065, 1].
        let [lo, hi] = Proportion::new(1, 1).ci95.unwrap();
        assert!(close(lo, 0.2065), "{lo}");
        assert!(close(hi, 1.0));
        // Zero of five: [0, 0.4345].
        let [lo, hi] = Proportion::new(0, 5).ci95.unwrap();
        assert!(close(lo, 0.0) && close(hi, 0.4345), "{hi}");
        // An empty group has no value and no interval.
        assert_eq!(Proportion::new(0, 0).value, None);
        assert_eq!(Proportion::new(0, 0).ci95, None);
    }

    #[test]
    fn auc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: pairs (0.9>0.5, 0.9>0.1, 0.4<0.5, 0.4>0.1) = 3/4.
        let auc = roc_auc(&[0.9, 0.4, 0.5, 0.1], &[true, true, false, false]).unwrap();
        assert!(close(auc, 0.75));
        // A tie counts half: positive 0.5 vs negative 0.5.
        let auc = roc_auc(&[0.5, 0.5], &[true, false]).unwrap();
        assert!(close(auc, 0.5));
        assert_eq!(roc_auc(&[0.3, 0.2], &[true, true]), None);
        assert!(close(roc_auc(&[0.9, 0.1], &[true, false]).unwrap(), 1.0));
    }

    #[test]
    fn ece_by_hand() {
        // Two bins. Bin 0 (conf < 0.5) is empty by construction of top-label confidence >= 0.5;
        // bin 1: confidences 0.6, 0.8, 1.0 with 2 right: |2 - 2.4| / 3 = 0.1333.
        let (ece, bins) = calibration(&[0.6, 0.8, 1.0], &[true, false, true], 2);
        assert!(close(ece.unwrap(), 0.4 / 3.0));
        assert_eq!(bins[1].count, 3);
        assert!(close(bins[1].confidence.unwrap(), 0.8));
        assert!(close(bins[1].accuracy.unwrap(), 2.0 / 3.0));
        assert_eq!(bins[0].accuracy, None);
        // Ten bins: 0.55 right (bin 5: |1-0.55| = 0.45), 0.95 wrong (bin 9: 0.95) -> (0.45+0.95)/2.
        let (ece, _) = calibration(&[0.55, 0.95], &[true, false], 10);
        assert!(close(ece.unwrap(), 0.7));
        assert_eq!(calibration(&[], &[], 10).0, None);
    }
}
