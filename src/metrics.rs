//! Scores of predictive distributions against observed targets, in f64.
//!
//! Regression (a [`GaussianMixture`] per row against real targets `y_i`):
//!
//! ```text
//! RMSE       sqrt( mean_i (y_i - mean_i)² )
//! MAE        mean_i |y_i - mean_i|
//! NLL        -mean_i ln p(y_i | x_i)                         (mixture density)
//! CRPS       mean_i ∫ (F_i(z) - 1[z >= y_i])² dz             (closed form for mixtures;
//!                                                             Grimit et al. 2006)
//! PICP_a     mean_i 1[lower_i <= y_i <= upper_i]             (coverage at level a)
//! MPIW_a     mean_i (upper_i - lower_i)                      (mean interval width)
//! IS_a       mean_i (u-l) + (2/α)(l-y)1[y<l] + (2/α)(y-u)1[y>u],  α = 1 - a
//!                                                            (Gneiting & Raftery 2007)
//! calibration curve  observed PICP against nominal level a_j (central intervals)
//! calibration error  Σ_j w_j (a_j - PICP_j)²,  w_j = 1/J by default (Kuleshov et al. 2018)
//! miscalibration area ∫_0^1 |PICP(a) - a| da                 (Chung et al. 2021)
//! sharpness  sqrt( mean_i Var_i )                            (RMS predictive std)
//! ```
//!
//! Classification (a [`CategoricalMixture`] per row against labels `y_i`,
//! scored on the mean probabilities `p̄_i = mean_t p_it`):
//!
//! ```text
//! accuracy   mean_i 1[argmax_k p̄_ik = y_i]
//! NLL        -mean_i ln p̄_{i,y_i}
//! Brier      mean_i Σ_k (p̄_ik - 1[y_i = k])²                 (Brier 1950; range [0, 2])
//! ECE        Σ_b (n_b / n) |acc_b - conf_b|                  (Guo et al. 2017, 15 bins)
//! MCE        max_b |acc_b - conf_b|
//! ```

use serde::{Deserialize, Serialize};
use statrs::function::erf::erf;

use crate::ops::std_normal_pdf;
use crate::predictive::{CategoricalMixture, GaussianMixture, Intervals};
use crate::{Error, Result};

/// The number of equal-width confidence bins of [`ece`] and [`mce`] in the
/// reports, as in Guo et al. (2017), "On Calibration of Modern Neural Networks".
pub const ECE_BINS: usize = 15;

/// Smallest probability whose logarithm the classification NLL takes: a
/// probability of exactly 0 for the observed label costs `-ln(2.2e-308) ≈
/// 708.4` nats instead of an infinity (which JSON cannot carry).
pub const PROB_FLOOR: f64 = f64::MIN_POSITIVE;

/// `1/√π`.
const FRAC_1_SQRT_PI: f64 = 0.564_189_583_547_756_3;

/// The nominal levels of the calibration curve: 0.05, 0.10, …, 0.95.
pub fn calibration_levels() -> Vec<f64> {
    (1..=19).map(|j| j as f64 * 0.05).collect()
}

fn check_lengths(what: &str, a: usize, b: usize) -> Result<()> {
    if a != b || a == 0 {
        return Err(Error::Shape {
            context: what.into(),
            message: format!("{a} predictions for {b} targets (need equal, non-zero counts)"),
        });
    }
    Ok(())
}

fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid("level", level, "a coverage in (0, 1)"))
    }
}

// ---------------------------------------------------------------------------
// Regression: point and proper scores
// ---------------------------------------------------------------------------

/// Root mean squared error of point predictions.
///
/// ```text
/// RMSE = sqrt( mean_i (y_i - ŷ_i)² )
/// ```
pub fn rmse(predicted: &[f64], ys: &[f64]) -> Result<f64> {
    check_lengths("rmse", predicted.len(), ys.len())?;
    let mse = predicted
        .iter()
        .zip(ys)
        .map(|(p, y)| (p - y).powi(2))
        .sum::<f64>()
        / ys.len() as f64;
    Ok(mse.sqrt())
}

/// Mean absolute error of point predictions (the reports pass the
/// predictive mean, as uncertainty-toolbox does).
///
/// ```text
/// MAE = mean_i |y_i - ŷ_i|
/// ```
pub fn mae(predicted: &[f64], ys: &[f64]) -> Result<f64> {
    check_lengths("mae", predicted.len(), ys.len())?;
    Ok(predicted
        .iter()
        .zip(ys)
        .map(|(p, y)| (p - y).abs())
        .sum::<f64>()
        / ys.len() as f64)
}

/// Average negative log predictive density (the mixture's, exactly).
///
/// ```text
/// NLL = -mean_i ln( (1/T) Σ_t N(y_i; mu_it, sigma_it²) )     (log-mean-exp over t)
/// ```
pub fn nll(dist: &GaussianMixture, ys: &[f64]) -> Result<f64> {
    check_lengths("nll", dist.len(), ys.len())?;
    let ld = dist.log_density(ys)?;
    Ok(-ld.iter().sum::<f64>() / ld.len() as f64)
}

/// `A(mu, sigma²) = E|X|` for `X ~ N(mu, sigma²)`, the building block of the
/// closed-form CRPS of Gaussian mixtures (Grimit et al. 2006):
///
/// ```text
/// A(mu, sigma²) = 2 sigma φ(mu/sigma) + mu (2 Φ(mu/sigma) - 1),   2Φ(z) - 1 = erf(z/√2)
/// ```
fn crps_a(mu: f64, sigma: f64) -> f64 {
    let z = mu / sigma;
    2.0 * sigma * std_normal_pdf(z) + mu * erf(z / std::f64::consts::SQRT_2)
}

/// CRPS of row `i` of `dist` at `y`; the double sum uses the symmetry of `A`
/// (`A(-mu, ·) = A(mu, ·)`) and `A(0, 2 sigma²) = 2 sigma / √π` on the diagonal.
fn crps_row(means: &[f64], stds: &[f64], y: f64) -> f64 {
    let t = means.len() as f64;
    let first: f64 = means
        .iter()
        .zip(stds)
        .map(|(m, s)| crps_a(y - m, *s))
        .sum::<f64>()
        / t;
    let mut pairs = 0.0;
    for a in 0..means.len() {
        pairs += 2.0 * stds[a] * FRAC_1_SQRT_PI;
        for b in a + 1..means.len() {
            let s = stds[a].hypot(stds[b]);
            pairs += 2.0 * crps_a(means[a] - means[b], s);
        }
    }
    first - 0.5 * pairs / (t * t)
}

/// Mean continuous ranked probability score of the Gaussian mixtures, in
/// closed form (Grimit, Gneiting, Berrocal & Johnson 2006, "The continuous
/// ranked probability score for circular variables and its application to
/// mesoscale forecast ensemble verification"; weights `w_t = 1/T`):
///
/// ```text
/// CRPS(F, y) = ∫ (F(z) - 1[z >= y])² dz = E|X - y| - ½ E|X - X'|
///            = Σ_t w_t A(y - mu_t, sigma_t²) - ½ Σ_t Σ_s w_t w_s A(mu_t - mu_s, sigma_t² + sigma_s²)
/// A(mu, sigma²) = 2 sigma φ(mu/sigma) + mu (2Φ(mu/sigma) - 1)
/// ```
///
/// For `T = 1` this is Gneiting et al. (2005)'s
/// `sigma [z (2Φ(z) - 1) + 2 φ(z) - 1/√π]`, `z = (y - mu)/sigma`. Lower is
/// better; the unit is the target's. The double sum costs `O(T²)` per row
/// (`T(T+1)/2` evaluations of `A`): fine for `T` up to a few hundred.
pub fn crps(dist: &GaussianMixture, ys: &[f64]) -> Result<f64> {
    check_lengths("crps", dist.len(), ys.len())?;
    dist.check_targets(ys)?;
    let total: f64 = ys
        .iter()
        .enumerate()
        .map(|(i, y)| crps_row(dist.component_means(i), dist.component_stds(i), *y))
        .sum();
    Ok(total / ys.len() as f64)
}

// ---------------------------------------------------------------------------
// Regression: intervals
// ---------------------------------------------------------------------------

/// Prediction interval coverage probability: the fraction of targets inside.
///
/// ```text
/// PICP = mean_i 1[lower_i <= y_i <= upper_i]
/// ```
pub fn picp(intervals: &Intervals, ys: &[f64]) -> Result<f64> {
    check_lengths("picp", intervals.lower.len(), ys.len())?;
    check_lengths("picp", intervals.upper.len(), ys.len())?;
    let inside = ys
        .iter()
        .zip(intervals.lower.iter().zip(&intervals.upper))
        .filter(|(y, (lo, hi))| *lo <= *y && *y <= *hi)
        .count();
    Ok(inside as f64 / ys.len() as f64)
}

/// Mean prediction interval width (0 for no intervals).
///
/// ```text
/// MPIW = mean_i (upper_i - lower_i)
/// ```
pub fn mpiw(intervals: &Intervals) -> f64 {
    let n = intervals.lower.len().max(1) as f64;
    intervals
        .upper
        .iter()
        .zip(&intervals.lower)
        .map(|(u, l)| u - l)
        .sum::<f64>()
        / n
}

/// Mean interval score of central `(1 - α)` intervals, `α = 1 - intervals.level`
/// (Gneiting & Raftery 2007, "Strictly Proper Scoring Rules, Prediction, and
/// Estimation", §6.2). A proper score: width plus a penalty of `2/α` per
/// unit that a target falls outside. Lower is better; equals [`mpiw`] when
/// every target is inside.
///
/// ```text
/// IS_α(l, u; y) = (u - l) + (2/α)(l - y) 1[y < l] + (2/α)(y - u) 1[y > u]
/// ```
pub fn interval_score(intervals: &Intervals, ys: &[f64]) -> Result<f64> {
    check_lengths("interval_score", intervals.lower.len(), ys.len())?;
    check_lengths("interval_score", intervals.upper.len(), ys.len())?;
    check_level(intervals.level)?;
    let penalty = 2.0 / (1.0 - intervals.level);
    let total: f64 = ys
        .iter()
        .zip(intervals.lower.iter().zip(&intervals.upper))
        .map(|(y, (l, u))| (u - l) + penalty * (l - y).max(0.0) + penalty * (y - u).max(0.0))
        .sum();
    Ok(total / ys.len() as f64)
}

/// Coverage, width and interval score of one set of central intervals.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct IntervalMetrics {
    /// Nominal coverage `a` of the intervals, in (0, 1).
    pub level: f64,
    /// [`picp`]: observed fraction of targets inside.
    pub picp: f64,
    /// [`mpiw`]: mean width.
    pub mpiw: f64,
    /// [`interval_score`] with `α = 1 - level`.
    pub interval_score: f64,
}

impl IntervalMetrics {
    /// Scores given intervals (e.g. recalibrated ones) against `ys`.
    pub fn of(intervals: &Intervals, ys: &[f64]) -> Result<Self> {
        Ok(Self {
            level: intervals.level,
            picp: picp(intervals, ys)?,
            mpiw: mpiw(intervals),
            interval_score: interval_score(intervals, ys)?,
        })
    }
}

/// [`IntervalMetrics`] of the mixture's central intervals at each level.
pub fn interval_metrics(
    dist: &GaussianMixture,
    ys: &[f64],
    levels: &[f64],
) -> Result<Vec<IntervalMetrics>> {
    dist.check_targets(ys)?;
    levels
        .iter()
        .map(|&level| IntervalMetrics::of(&dist.interval(level)?, ys))
        .collect()
}

/// Root mean predictive variance, the sharpness of uncertainty-toolbox
/// (Chung et al. 2021, "Uncertainty Toolbox", `metrics_calibration.sharpness`:
/// `sqrt(mean(y_std²))`). It summarizes "sharpness" in the sense of Gneiting,
/// Balabdaoui & Raftery (2007) — concentration of the predictive, the smaller
/// the better subject to calibration — and is the square root of Kuleshov et
/// al. (2018)'s `mean_i Var(F_i)`. Uses the total (aleatoric + epistemic)
/// mixture variance.
///
/// ```text
/// sharpness = sqrt( mean_i Var_i ),   Var_i = mean_t sigma_it² + var_t mu_it
/// ```
pub fn sharpness(dist: &GaussianMixture) -> Result<f64> {
    if dist.is_empty() {
        return Err(Error::invalid(
            "dist",
            "0 rows",
            "at least one predictive row",
        ));
    }
    let var = dist.variance();
    Ok((var.iter().sum::<f64>() / var.len() as f64).sqrt())
}

// ---------------------------------------------------------------------------
// Regression: calibration
// ---------------------------------------------------------------------------

/// One point of a calibration curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    /// Nominal central-interval coverage.
    pub nominal: f64,
    /// Observed fraction of targets inside.
    pub observed: f64,
}

/// The calibration curve from PIT values `u_i = F_i(y_i)`: a target is inside
/// the central `a`-interval iff its PIT lies within `a/2` of ½, so
///
/// ```text
/// observed(a) = mean_i 1[ |u_i - ½| <= a/2 ]
/// ```
///
/// Works for any predictive CDF, e.g. a recalibrated one
/// (`calibrate::Recalibration::pit`).
pub fn calibration_curve_from_pit(pit: &[f64], levels: &[f64]) -> Result<Vec<CalibrationPoint>> {
    if pit.is_empty() {
        return Err(Error::invalid("pit", "0 values", "at least one PIT value"));
    }
    if let Some(i) = pit.iter().position(|u| !(0.0..=1.0).contains(u)) {
        return Err(Error::invalid(
            format!("pit[{i}]"),
            pit[i],
            "a probability in [0, 1]",
        ));
    }
    let n = pit.len() as f64;
    levels
        .iter()
        .map(|&nominal| {
            check_level(nominal)?;
            let inside = pit
                .iter()
                .filter(|u| (*u - 0.5).abs() <= 0.5 * nominal)
                .count();
            Ok(CalibrationPoint {
                nominal,
                observed: inside as f64 / n,
            })
        })
        .collect()
}

/// Observed coverage of central intervals at each nominal level, computed
/// from one CDF evaluation per row ([`calibration_curve_from_pit`]) rather
/// than two quantile bisections per row and level; equal to counting targets
/// inside [`GaussianMixture::interval`] up to targets within the bisection
/// tolerance of a bound.
pub fn calibration_curve(
    dist: &GaussianMixture,
    ys: &[f64],
    levels: &[f64],
) -> Result<Vec<CalibrationPoint>> {
    calibration_curve_from_pit(&dist.pit(ys)?, levels)
}

/// Mean squared gap between nominal and observed coverage over a curve
/// (equal weights `w_j = 1/J` of [`calibration_error_weighted`]; 0 for an
/// empty curve).
///
/// ```text
/// cal = (1/J) Σ_j (a_j - observed_j)²
/// ```
pub fn calibration_error(curve: &[CalibrationPoint]) -> f64 {
    curve
        .iter()
        .map(|c| (c.nominal - c.observed).powi(2))
        .sum::<f64>()
        / curve.len().max(1) as f64
}

/// Weighted calibration error of Kuleshov, Fenner & Ermon (2018), "Accurate
/// Uncertainties for Deep Learning Using Calibrated Regression"; they
/// suggest `w_j = 1` or weights proportional to the number of targets near
/// level `j`. Weights must be finite, non-negative and one per point.
///
/// ```text
/// cal = Σ_j w_j (a_j - observed_j)²
/// ```
pub fn calibration_error_weighted(curve: &[CalibrationPoint], weights: &[f64]) -> Result<f64> {
    if weights.len() != curve.len() {
        return Err(Error::Shape {
            context: "calibration_error_weighted".into(),
            message: format!(
                "{} weights for {} curve points (need one each)",
                weights.len(),
                curve.len()
            ),
        });
    }
    if let Some(j) = weights.iter().position(|w| !(w.is_finite() && *w >= 0.0)) {
        return Err(Error::invalid(
            format!("weights[{j}]"),
            weights[j],
            "a finite weight >= 0",
        ));
    }
    Ok(curve
        .iter()
        .zip(weights)
        .map(|(c, w)| w * (c.nominal - c.observed).powi(2))
        .sum())
}

/// Area between the calibration curve and the diagonal (Chung, Char, Guo,
/// Schneider & Neiswanger 2021, "Uncertainty Toolbox",
/// `miscalibration_area`), in [0, ½].
///
/// The curve is sorted by level, extended with `(0, 0)` and `(1, 1)` (a
/// central interval of level 0 or 1 holds no target or every target,
/// whatever the predictive), and the gap `g(a) = observed(a) - a` is
/// integrated as the piecewise-linear function through the points — the
/// trapezoid rule on `|g|`, except that a segment on which `g` changes sign
/// is split at its zero, so the result is the exact polygon area:
///
/// ```text
/// area = Σ_j ∫_{a_j}^{a_{j+1}} |g|,   a segment: (a_{j+1} - a_j)(|g_j| + |g_{j+1}|)/2       (same sign)
///                                                (a_{j+1} - a_j)(g_j² + g_{j+1}²)/(2(|g_j| + |g_{j+1}|))  (crossing)
/// ```
pub fn miscalibration_area(curve: &[CalibrationPoint]) -> Result<f64> {
    if let Some(j) = curve
        .iter()
        .position(|c| !((0.0..=1.0).contains(&c.nominal) && (0.0..=1.0).contains(&c.observed)))
    {
        return Err(Error::invalid(
            format!("curve[{j}]"),
            format!("({}, {})", curve[j].nominal, curve[j].observed),
            "nominal and observed coverage in [0, 1]",
        ));
    }
    let mut points: Vec<(f64, f64)> = Vec::with_capacity(curve.len() + 2);
    points.push((0.0, 0.0));
    points.extend(curve.iter().map(|c| (c.nominal, c.observed - c.nominal)));
    points.push((1.0, 0.0));
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(points
        .windows(2)
        .map(|w| {
            let ((a0, g0), (a1, g1)) = (w[0], w[1]);
            let width = a1 - a0;
            if g0 * g1 >= 0.0 {
                0.5 * width * (g0.abs() + g1.abs())
            } else {
                0.5 * width * (g0 * g0 + g1 * g1) / (g0.abs() + g1.abs())
            }
        })
        .sum())
}

// ---------------------------------------------------------------------------
// Classification
// ---------------------------------------------------------------------------

fn check_labels(dist: &CategoricalMixture, labels: &[usize]) -> Result<()> {
    check_lengths("labels", dist.len(), labels.len())?;
    let k = dist.n_classes();
    match labels.iter().position(|&y| y >= k) {
        Some(i) => Err(Error::invalid(
            format!("label[{i}]"),
            labels[i],
            format!("a class index in 0..{k}"),
        )),
        None => Ok(()),
    }
}

/// `(argmax_k p̄_k, max_k p̄_k)` of one row of mean probabilities (first
/// maximum on ties, as [`CategoricalMixture::predicted_class`]).
fn top_class(p: &[f64]) -> (usize, f64) {
    let best = (0..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best });
    (best, p.get(best).copied().unwrap_or(0.0))
}

/// Fraction of rows whose most probable class (under the mean probabilities)
/// is the label.
///
/// ```text
/// accuracy = mean_i 1[argmax_k p̄_ik = y_i]
/// ```
pub fn accuracy(dist: &CategoricalMixture, labels: &[usize]) -> Result<f64> {
    check_labels(dist, labels)?;
    let hits = dist
        .predicted_class()
        .iter()
        .zip(labels)
        .filter(|(p, y)| p == y)
        .count();
    Ok(hits as f64 / labels.len() as f64)
}

/// Average negative log probability of the labels under the mean
/// probabilities (the predictive's, which is what a BNN predicts), with
/// probabilities floored at [`PROB_FLOOR`].
///
/// ```text
/// NLL = -mean_i ln max(p̄_{i,y_i}, PROB_FLOOR),   p̄_i = mean_t p_it
/// ```
pub fn categorical_nll(dist: &CategoricalMixture, labels: &[usize]) -> Result<f64> {
    check_labels(dist, labels)?;
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &y)| -dist.mean_probs(i)[y].max(PROB_FLOOR).ln())
        .sum();
    Ok(total / labels.len() as f64)
}

/// Multi-class Brier score of the mean probabilities (Brier 1950,
/// "Verification of forecasts expressed in terms of probability"), in
/// [0, 2]; lower is better.
///
/// ```text
/// Brier = mean_i Σ_k (p̄_ik - 1[y_i = k])²
/// ```
pub fn brier(dist: &CategoricalMixture, labels: &[usize]) -> Result<f64> {
    check_labels(dist, labels)?;
    let total: f64 = labels
        .iter()
        .enumerate()
        .map(|(i, &y)| {
            dist.mean_probs(i)
                .iter()
                .enumerate()
                .map(|(k, p)| (p - if k == y { 1.0 } else { 0.0 }).powi(2))
                .sum::<f64>()
        })
        .sum();
    Ok(total / labels.len() as f64)
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge (exclusive, except 0 for the first bin).
    pub lower: f64,
    /// Upper edge (inclusive).
    pub upper: f64,
    /// Number of rows whose confidence falls in the bin.
    pub count: usize,
    /// Mean confidence `max_k p̄_k` of those rows (0 when empty).
    pub confidence: f64,
    /// Their accuracy (0 when empty).
    pub accuracy: f64,
}

/// Reliability diagram over `n_bins` equal-width confidence bins (Guo, Pleiss,
/// Sun & Weinberger 2017, "On Calibration of Modern Neural Networks", §2):
/// row `i` with confidence `c_i = max_k p̄_ik` goes to bin `b` with
/// `b/B < c_i <= (b+1)/B` (a confidence of 0 to bin 0).
///
/// ```text
/// conf_b = mean_{i in b} c_i,   acc_b = mean_{i in b} 1[argmax_k p̄_ik = y_i]
/// ```
pub fn reliability_diagram(
    dist: &CategoricalMixture,
    labels: &[usize],
    n_bins: usize,
) -> Result<Vec<ReliabilityBin>> {
    check_labels(dist, labels)?;
    if n_bins == 0 {
        return Err(Error::invalid("n_bins", 0, "at least 1 bin"));
    }
    let b = n_bins as f64;
    let mut bins: Vec<ReliabilityBin> = (0..n_bins)
        .map(|j| ReliabilityBin {
            lower: j as f64 / b,
            upper: (j + 1) as f64 / b,
            count: 0,
            confidence: 0.0,
            accuracy: 0.0,
        })
        .collect();
    for (i, &y) in labels.iter().enumerate() {
        let (class, conf) = top_class(&dist.mean_probs(i));
        // ceil(c·B) - 1 puts c in ((j)/B, (j+1)/B]; clamp for c = 0 and for
        // probabilities a hair above 1 from rounding.
        let j = ((conf * b).ceil() as usize).clamp(1, n_bins) - 1;
        let bin = &mut bins[j];
        bin.count += 1;
        bin.confidence += conf;
        bin.accuracy += if class == y { 1.0 } else { 0.0 };
    }
    for bin in bins.iter_mut().filter(|bin| bin.count > 0) {
        bin.confidence /= bin.count as f64;
        bin.accuracy /= bin.count as f64;
    }
    Ok(bins)
}

/// Expected calibration error over `n_bins` equal-width confidence bins (Guo
/// et al. 2017, §2; the reports use [`ECE_BINS`] = 15). For a calibrated
/// classifier it is not exactly 0 on finite data: each bin's `|acc_b -
/// conf_b|` has sampling sd up to `sqrt(¼ / n_b)`, so `E[ECE] <= ½ sqrt(B/n)`.
///
/// ```text
/// ECE = Σ_b (n_b / n) |acc_b - conf_b|
/// ```
pub fn ece(dist: &CategoricalMixture, labels: &[usize], n_bins: usize) -> Result<f64> {
    let n = labels.len() as f64;
    Ok(reliability_diagram(dist, labels, n_bins)?
        .iter()
        .map(|bin| bin.count as f64 / n * (bin.accuracy - bin.confidence).abs())
        .sum())
}

/// Maximum calibration error over the non-empty bins of
/// [`reliability_diagram`] (Guo et al. 2017, §2; Naeini et al. 2015).
///
/// ```text
/// MCE = max_{b: n_b > 0} |acc_b - conf_b|
/// ```
pub fn mce(dist: &CategoricalMixture, labels: &[usize], n_bins: usize) -> Result<f64> {
    Ok(reliability_diagram(dist, labels, n_bins)?
        .iter()
        .filter(|bin| bin.count > 0)
        .map(|bin| (bin.accuracy - bin.confidence).abs())
        .fold(0.0, f64::max))
}

// ---------------------------------------------------------------------------
// Reports
// ---------------------------------------------------------------------------

/// The regression scores of one predictive against targets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// Root mean squared error of the predictive mean ([`rmse`]).
    pub rmse: f64,
    /// Mean absolute error of the predictive mean ([`mae`]).
    pub mae: f64,
    /// Average negative log predictive density ([`nll`]).
    pub nll: f64,
    /// Mean continuous ranked probability score ([`crps`]).
    pub crps: f64,
    /// Coverage of the central 50% intervals.
    pub picp50: f64,
    /// Mean width of the 50% intervals.
    pub mpiw50: f64,
    /// Coverage of the central 90% intervals.
    pub picp90: f64,
    /// Mean width of the 90% intervals.
    pub mpiw90: f64,
    /// Coverage of the central 95% intervals.
    pub picp95: f64,
    /// Mean width of the 95% intervals.
    pub mpiw95: f64,
    /// Mean interval score of the 95% intervals ([`interval_score`], α = 0.05).
    pub interval_score95: f64,
    /// Calibration error over the levels 0.05…0.95 ([`calibration_error`]).
    pub calibration_error: f64,
    /// Area between the calibration curve over 0.05…0.95 and the diagonal
    /// ([`miscalibration_area`]).
    pub miscalibration_area: f64,
    /// Root mean predictive variance ([`sharpness`]).
    pub sharpness: f64,
}

impl RegressionReport {
    /// Scores `dist` against `ys`. Costs 6 quantile bisections, one CDF and
    /// `O(T²)` CRPS terms per row.
    pub fn new(dist: &GaussianMixture, ys: &[f64]) -> Result<Self> {
        dist.check_targets(ys)?;
        let mean = dist.mean();
        let at = |level: f64| -> Result<IntervalMetrics> {
            IntervalMetrics::of(&dist.interval(level)?, ys)
        };
        let (i50, i90, i95) = (at(0.50)?, at(0.90)?, at(0.95)?);
        let curve = calibration_curve(dist, ys, &calibration_levels())?;
        Ok(Self {
            rmse: rmse(&mean, ys)?,
            mae: mae(&mean, ys)?,
            nll: nll(dist, ys)?,
            crps: crps(dist, ys)?,
            picp50: i50.picp,
            mpiw50: i50.mpiw,
            picp90: i90.picp,
            mpiw90: i90.mpiw,
            picp95: i95.picp,
            mpiw95: i95.mpiw,
            interval_score95: i95.interval_score,
            calibration_error: calibration_error(&curve),
            miscalibration_area: miscalibration_area(&curve)?,
            sharpness: sharpness(dist)?,
        })
    }
}

/// The classification scores of one predictive against labels.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// [`accuracy`] of the most probable class.
    pub accuracy: f64,
    /// [`categorical_nll`] of the mean probabilities.
    pub nll: f64,
    /// [`brier`] score of the mean probabilities.
    pub brier: f64,
    /// [`ece`] with [`ECE_BINS`] bins.
    pub ece: f64,
    /// [`mce`] with [`ECE_BINS`] bins.
    pub mce: f64,
    /// Mean predictive (total) entropy, `mean_i H[p̄_i]`, in nats.
    pub entropy: f64,
    /// Mean mutual information between label and weights (BALD, epistemic),
    /// `mean_i (H[p̄_i] - mean_t H[p_it])`, in nats.
    pub mutual_information: f64,
}

impl ClassificationReport {
    /// Scores `dist` against `labels` (class indices in `0..K`).
    pub fn new(dist: &CategoricalMixture, labels: &[usize]) -> Result<Self> {
        check_labels(dist, labels)?;
        let n = labels.len() as f64;
        Ok(Self {
            accuracy: accuracy(dist, labels)?,
            nll: categorical_nll(dist, labels)?,
            brier: brier(dist, labels)?,
            ece: ece(dist, labels, ECE_BINS)?,
            mce: mce(dist, labels, ECE_BINS)?,
            entropy: dist.entropy().iter().sum::<f64>() / n,
            mutual_information: dist.mutual_information().iter().sum::<f64>() / n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_scores() -> Result<()> {
        assert!((rmse(&[1.0, 2.0], &[2.0, 4.0])? - (2.5f64).sqrt()).abs() < 1e-15);
        assert_eq!(mae(&[1.0, 2.0], &[2.0, 4.0])?, 1.5);
        let iv = Intervals {
            level: 0.9,
            lower: vec![0.0, 0.0, 0.0, 0.0],
            upper: vec![1.0, 1.0, 2.0, 2.0],
        };
        assert_eq!(picp(&iv, &[0.5, 1.5, 1.5, -0.1])?, 0.5);
        assert_eq!(mpiw(&iv), 1.5);
        let curve = [
            CalibrationPoint {
                nominal: 0.5,
                observed: 0.4,
            },
            CalibrationPoint {
                nominal: 0.9,
                observed: 0.9,
            },
        ];
        assert!((calibration_error(&curve) - 0.005).abs() < 1e-15);
        assert!(rmse(&[1.0], &[1.0, 2.0]).is_err());
        assert!(mae(&[], &[]).is_err());
        Ok(())
    }

    /// The PIT shortcut of the calibration curve agrees with counting targets
    /// inside the bisected intervals, level by level (ties aside: a target
    /// within the bisection tolerance of a bound could flip; none is here).
    #[test]
    fn calibration_curve_from_pit_equals_interval_coverage() -> Result<()> {
        let (n, t) = (200, 3);
        let means: Vec<f64> = (0..n * t)
            .map(|k| ((k * 37) % 11) as f64 * 0.3 - 1.5)
            .collect();
        let stds: Vec<f64> = (0..n * t)
            .map(|k| 0.2 + ((k * 13) % 7) as f64 * 0.1)
            .collect();
        let dist = GaussianMixture::new(n, t, means, stds)?;
        let ys: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 101) as f64 / 25.0 - 2.0)
            .collect();
        let levels = calibration_levels();
        for (point, level) in calibration_curve(&dist, &ys, &levels)?.iter().zip(&levels) {
            assert_eq!(
                point.observed,
                picp(&dist.interval(*level)?, &ys)?,
                "level {level}"
            );
        }
        Ok(())
    }

    /// `A(mu, sigma²) = E|X|` is even in `mu`, equals `2 sigma φ(0)` at 0 and
    /// tends to `|mu|` when `sigma` is negligible.
    #[test]
    fn crps_building_block_is_the_mean_absolute_value_of_a_gaussian() {
        for (mu, s) in [(0.3, 1.0), (-2.0, 0.5), (5.0, 3.0)] {
            assert_eq!(crps_a(mu, s), crps_a(-mu, s));
        }
        assert!((crps_a(0.0, 2.0) - 4.0 * std_normal_pdf(0.0)).abs() < 1e-15);
        assert!((crps_a(3.0, 1e-9) - 3.0).abs() < 1e-12);
    }

    /// A sign-changing segment contributes two triangles, not a trapezoid of
    /// |g|: gaps 0, +0.1, -0.1, 0 at 0, 0.25, 0.75, 1 give
    /// 0.0125 + 0.5·0.5·0.02/0.2 + 0.0125 = 0.05 (the trapezoid would say 0.075).
    #[test]
    fn miscalibration_area_splits_crossing_segments() -> Result<()> {
        let curve = [
            CalibrationPoint {
                nominal: 0.75,
                observed: 0.65,
            },
            CalibrationPoint {
                nominal: 0.25,
                observed: 0.35,
            },
        ];
        assert!((miscalibration_area(&curve)? - 0.05).abs() < 1e-15);
        Ok(())
    }

    #[test]
    fn reliability_bins_are_right_closed() -> Result<()> {
        // Confidences exactly on edges: 0.5 -> bin (0.4, 0.5], 1.0 -> last bin.
        let dist = CategoricalMixture::new(2, 1, 2, vec![0.5, 0.5, 1.0, 0.0])?;
        let bins = reliability_diagram(&dist, &[1, 0], 10)?;
        assert_eq!(bins[4].count, 1);
        assert_eq!(bins[9].count, 1);
        assert_eq!(bins[4].accuracy, 0.0); // ties go to class 0; label 1
        assert_eq!(bins[9].accuracy, 1.0);
        Ok(())
    }
}
