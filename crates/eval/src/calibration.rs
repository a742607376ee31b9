//! Temperature scaling (Guo et al., "On Calibration of Modern Neural Networks", 2017): one number
//! T, fitted on held-out predictions, divides the log-odds of `female` against `male`: the
//! probability p becomes σ(logit(p) / T). T > 1 makes an overconfident model less sure, T < 1 an
//! underconfident one surer; no prediction changes side, hence the accuracy does not change.
//!
//! The fit minimises the negative log-likelihood of the true labels over T. It is convex in 1/T,
//! so a one-dimensional search finds its minimum; a golden-section search on ln T is written here
//! rather than taking an optimisation crate for a single scalar.

use crate::metrics::Sample;
use crate::stats::calibration;
use gc_core::Gender;
use serde::{Deserialize, Serialize};

/// Probabilities are clamped this far from 0 and 1 before their logarithm, so that a model that
/// says exactly 0 or 1 gets a finite (large) logit rather than an infinite one.
const EPS: f64 = 1e-7;

/// The temperatures the fit searches between. Outside them a model is not miscalibrated but
/// broken (or, below, its predictions on the set were all right and the likelihood keeps rising
/// as T falls, which is no reason to trust it more elsewhere).
pub const MIN_TEMPERATURE: f64 = 0.05;
pub const MAX_TEMPERATURE: f64 = 20.0;

/// The log-odds of `female` of a probability, finite even for an exact 0 or 1.
fn logit(p: f64) -> f64 {
    let p = p.clamp(EPS, 1.0 - EPS);
    (p / (1.0 - p)).ln()
}

/// ln(1 + e^x) without overflow, so that -ln σ(z) = softplus(-z) stays exact far from 0.
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// `p` (a probability of `female`) with its log-odds divided by `temperature`.
pub fn scale_probability(p: f64, temperature: f64) -> f64 {
    let z = logit(p) / temperature;
    1.0 / (1.0 + (-z).exp())
}

/// Mean negative log-likelihood of the true labels, the probabilities scaled by `temperature`.
pub fn negative_log_likelihood(samples: &[Sample], temperature: f64) -> Option<f64> {
    if samples.is_empty() {
        return None;
    }
    let total: f64 = samples
        .iter()
        .map(|s| {
            let z = logit(s.p_female) / temperature;
            match s.truth {
                Gender::Female => softplus(-z),
                Gender::Male => softplus(z),
            }
        })
        .sum();
    Some(total / samples.len() as f64)
}

/// Expected calibration error (10 bins, as in the reports) of the probabilities scaled by
/// `temperature`.
pub fn scaled_ece(samples: &[Sample], temperature: f64) -> Option<f64> {
    let mut confidence = Vec::with_capacity(samples.len());
    let mut correct = Vec::with_capacity(samples.len());
    for s in samples {
        let p = scale_probability(s.p_female, temperature);
        confidence.push(p.max(1.0 - p));
        correct.push((p >= 0.5) == (s.truth == Gender::Female));
    }
    calibration(&confidence, &correct, 10).0
}

/// A fitted temperature and what it changed on the images it was fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TemperatureFit {
    pub temperature: f64,
    pub images: usize,
    pub nll_before: f64,
    pub nll_after: f64,
    pub ece_before: f64,
    pub ece_after: f64,
    /// The fit stopped at [`MIN_TEMPERATURE`] or [`MAX_TEMPERATURE`].
    pub at_bound: bool,
}

/// The temperature that minimises the negative log-likelihood of `samples`; `None` without
/// samples.
pub fn fit_temperature(samples: &[Sample]) -> Option<TemperatureFit> {
    let nll = |ln_t: f64| negative_log_likelihood(samples, ln_t.exp()).unwrap_or(f64::INFINITY);
    let (mut lo, mut hi) = (MIN_TEMPERATURE.ln(), MAX_TEMPERATURE.ln());
    negative_log_likelihood(samples, 1.0)?;
    // The likelihood is unimodal in ln T (convex in 1/T, and ln T is monotone in 1/T), which is
    // all golden-section search needs; 80 steps shrink the interval to 1e-16 of its width.
    let g = (5f64.sqrt() - 1.0) / 2.0;
    let mut a = hi - g * (hi - lo);
    let mut b = lo + g * (hi - lo);
    let (mut fa, mut fb) = (nll(a), nll(b));
    for _ in 0..80 {
        if fa <= fb {
            hi = b;
            b = a;
            fb = fa;
            a = hi - g * (hi - lo);
            fa = nll(a);
        } else {
            lo = a;
            a = b;
            fa = fb;
            b = lo + g * (hi - lo);
            fb = nll(b);
        }
    }
    // Clamped: exp(ln t) may land an ulp outside the range that calibration files are held to.
    let mut temperature = (0.5 * (lo + hi))
        .exp()
        .clamp(MIN_TEMPERATURE, MAX_TEMPERATURE);
    // Never worse than leaving the model as it is; and where T changes nothing (every
    // prediction exactly 0.5), leave it at 1.
    if nll(temperature.ln()) >= nll(0.0) - 1e-12 {
        temperature = 1.0;
    }
    // A 1e-9 margin: the search converges onto a bound without ever evaluating it.
    let at_bound = temperature <= MIN_TEMPERATURE * (1.0 + 1e-9)
        || temperature >= MAX_TEMPERATURE * (1.0 - 1e-9);
    Some(TemperatureFit {
        temperature,
        images: samples.len(),
        nll_before: nll(0.0),
        nll_after: nll(temperature.ln()),
        ece_before: scaled_ece(samples, 1.0)?,
        ece_after: scaled_ece(samples, temperature)?,
        at_bound,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(truth: Gender, p_female: f64) -> Sample {
        Sample {
            id: String::new(),
            truth,
            p_female,
            age: None,
            race: None,
        }
    }

    /// `n` predictions that all say `female` with probability `p`, `right` of them correctly.
    fn set(p: f64, right: usize, n: usize) -> Vec<Sample> {
        (0..n)
            .map(|i| {
                let truth = if i < right {
                    Gender::Female
                } else {
                    Gender::Male
                };
                sample(truth, p)
            })
            .collect()
    }

    #[test]
    fn scaling_matches_hand_computed_values() {
        // logit(0.9) = ln 9 = 2.19722; / 2 = 1.09861 = ln 3, σ = 3/4.
        assert!((scale_probability(0.9, 2.0) - 0.75).abs() < 1e-12);
        assert!((scale_probability(0.1, 2.0) - 0.25).abs() < 1e-12);
        // T < 1 sharpens: ln 3 * 2 = ln 9.
        assert!((scale_probability(0.75, 0.5) - 0.9).abs() < 1e-12);
        assert!((scale_probability(0.37, 1.0) - 0.37).abs() < 1e-12);
        assert_eq!(scale_probability(0.5, 7.0), 0.5);
        // An exact 0 or 1 stays finite.
        let p = scale_probability(1.0, 2.0);
        assert!(p.is_finite() && p > 0.99 && p < 1.0, "{p}");
    }

    #[test]
    fn the_fit_finds_the_temperature_that_matches_the_hit_rate() {
        // Every prediction says 0.9 and 70% are right: the best T makes σ(ln 9 / T) = 0.7, so
        // T = ln 9 / ln(7/3) = 2.19722 / 0.84730 = 2.59322.
        let fit = fit_temperature(&set(0.9, 70, 100)).unwrap();
        assert!((fit.temperature - 2.59322).abs() < 1e-4, "{fit:?}");
        assert!(!fit.at_bound);
        // NLL before: -(0.7 ln 0.9 + 0.3 ln 0.1) = 0.0737524 + 0.6907755 = 0.764528;
        // after: -(0.7 ln 0.7 + 0.3 ln 0.3) = 0.610864.
        assert!((fit.nll_before - 0.764528).abs() < 1e-5, "{fit:?}");
        assert!((fit.nll_after - 0.610864).abs() < 1e-5, "{fit:?}");
        // One bin: |0.7 - 0.9| before, |0.7 - 0.7| after.
        assert!((fit.ece_before - 0.2).abs() < 1e-9, "{fit:?}");
        assert!(fit.ece_after < 1e-4, "{fit:?}");

        // Underconfident: 0.6 said, 90% right; T = ln 1.5 / ln 9 = 0.40547 / 2.19722 = 0.18454.
        let fit = fit_temperature(&set(0.6, 90, 100)).unwrap();
        assert!((fit.temperature - 0.18454).abs() < 1e-4, "{fit:?}");

        // Already calibrated: 0.8 said, 80% right.
        let fit = fit_temperature(&set(0.8, 80, 100)).unwrap();
        assert!((fit.temperature - 1.0).abs() < 1e-4, "{fit:?}");
        assert!((fit.nll_after - fit.nll_before).abs() < 1e-9);
    }

    #[test]
    fn edge_cases_are_bounded_not_broken() {
        assert!(fit_temperature(&[]).is_none());
        assert!(negative_log_likelihood(&[], 1.0).is_none());
        // All right: sharper is always likelier, so the fit stops at the lower bound and says so.
        let fit = fit_temperature(&set(0.8, 10, 10)).unwrap();
        assert!(fit.at_bound, "{fit:?}");
        assert!((fit.temperature - MIN_TEMPERATURE).abs() < 1e-6, "{fit:?}");
        // All wrong at 0.5-ish: flatter is likelier, up to the upper bound.
        let fit = fit_temperature(&set(0.55, 0, 10)).unwrap();
        assert!(
            fit.at_bound && (fit.temperature - MAX_TEMPERATURE).abs() < 1e-3,
            "{fit:?}"
        );
        // A group of one at exactly 0.5: no temperature changes anything, so T stays 1.
        let fit = fit_temperature(&[sample(Gender::Female, 0.5)]).unwrap();
        assert_eq!(fit.temperature, 1.0, "{fit:?}");
        assert!((fit.nll_before - 2f64.ln()).abs() < 1e-12, "{fit:?}");
    }
}
