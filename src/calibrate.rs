//! Recalibration fitted on a held-out calibration set, carried by the model.
//!
//! A predictive that is miscalibrated on held-out data (intervals that cover
//! too little or too much) is corrected by a map fitted on a calibration set
//! of predictive distributions and targets that training never saw:
//!
//! ```text
//! variance scaling   sigma_t -> s · sigma_t,   s = argmin_s NLL_cal(s)          (one factor)
//! isotonic           F -> R ∘ F,  R monotone, R(p) ≈ P̂_cal(PIT <= p)           (Kuleshov et al. 2018)
//! split conformal    mean ± q_a · std,  q_a = ⌈(n+1)a⌉-th smallest |y-mean|/std (Lei et al. 2018)
//! temperature        p_k -> p_k^{1/T} / Σ_j p_j^{1/T},  T = argmin_T NLL_cal(T) (Guo et al. 2017)
//! ```
//!
//! A fitted [`Recalibration`] serializes (serde), so a saved model can carry
//! it. All three regression kinds are invariant under
//! [`GaussianMixture::affine`] (NLL-optimal `s`, PIT values and
//! std-normalized scores do not change when targets are shifted and
//! scaled): one fitted in standardized units applies in original units.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::metrics::PROB_FLOOR;
use crate::ops::log_mean_exp;
use crate::predictive::{CategoricalMixture, GaussianMixture, Intervals};
use crate::{Error, Result};

/// The bracket searched for the variance factor `s`; an NLL minimum on its
/// edge is reported as an error rather than returned.
pub const SCALE_BRACKET: (f64, f64) = (1e-6, 1e6);

/// The bracket searched for the temperature `T`; an NLL minimum on its edge
/// is reported as an error rather than returned.
pub const TEMPERATURE_BRACKET: (f64, f64) = (1e-3, 1e3);

/// Isotonic recalibration maps levels into `[PIT_CLAMP, 1 - PIT_CLAMP]`
/// before asking the original predictive for a quantile: a calibration map
/// with `R⁻¹(τ) = 0` or `1` (targets beyond every predicted tail) would
/// otherwise ask for an infinite bound.
pub const PIT_CLAMP: f64 = 1e-12;

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// Which recalibration [`fit`] performs; parses from `scale`, `isotonic`,
/// `conformal` (the CLI's spelling).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecalibrationMethod {
    /// One factor on every component std, by calibration-set NLL.
    Scale,
    /// A monotone map of PIT values, by pool-adjacent-violators.
    Isotonic,
    /// Split-conformal intervals with std-normalized scores.
    Conformal,
}

impl FromStr for RecalibrationMethod {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s {
            "scale" => Ok(Self::Scale),
            "isotonic" => Ok(Self::Isotonic),
            "conformal" => Ok(Self::Conformal),
            other => Err(Error::invalid(
                "recalibration method",
                format!("'{other}'"),
                "one of scale, isotonic, conformal",
            )),
        }
    }
}

impl fmt::Display for RecalibrationMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Scale => "scale",
            Self::Isotonic => "isotonic",
            Self::Conformal => "conformal",
        })
    }
}

/// A fitted recalibration of regression predictives. Serialized with a
/// `kind` tag: `{"kind":"variance_scaling","s":2.0}`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Recalibration {
    /// The predictive as it is.
    #[default]
    None,
    /// Every component std multiplied by `s > 0`:
    /// `(1/T) Σ_t N(mu_t, (s sigma_t)²)`.
    VarianceScaling {
        /// The factor on the standard deviations (variances scale by `s²`).
        s: f64,
    },
    /// The piecewise-linear monotone map `R` through the knots
    /// `(pit_in[j], pit_out[j])`, from predicted CDF level to observed
    /// frequency; `pit_in` rises strictly from 0 to 1, `pit_out` is
    /// non-decreasing in [0, 1] and ends at 1.
    Isotonic {
        /// Predicted CDF levels `p`, strictly increasing, from 0 to 1.
        pit_in: Vec<f64>,
        /// Observed frequencies `R(p) = P̂(PIT <= p)`, non-decreasing.
        pit_out: Vec<f64>,
    },
    /// Split conformal: the calibration set's std-normalized scores
    /// `|y_i - mean_i| / std_i`, sorted ascending (`n = scores.len()`), so
    /// that any level can be asked for at prediction time.
    Conformal {
        /// Sorted non-negative scores of the calibration rows.
        scores: Vec<f64>,
    },
}

impl fmt::Display for Recalibration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => write!(f, "None"),
            Self::VarianceScaling { s } => write!(f, "VarianceScaling {{s: {s}}}"),
            Self::Isotonic { pit_in, .. } => write!(f, "Isotonic {{knots: {}}}", pit_in.len()),
            Self::Conformal { scores } => write!(f, "Conformal {{n: {}}}", scores.len()),
        }
    }
}

/// Fits `method` on a calibration set: predictive rows `dist` and their
/// targets `ys` (held out from training).
///
/// - [`RecalibrationMethod::Scale`] runs [`fit_variance_scaling`].
/// - [`RecalibrationMethod::Isotonic`] runs [`fit_isotonic`].
/// - [`RecalibrationMethod::Conformal`] runs [`fit_conformal`].
pub fn fit(
    method: RecalibrationMethod,
    dist: &GaussianMixture,
    ys: &[f64],
) -> Result<Recalibration> {
    match method {
        RecalibrationMethod::Scale => Ok(Recalibration::VarianceScaling {
            s: fit_variance_scaling(dist, ys)?,
        }),
        RecalibrationMethod::Isotonic => fit_isotonic(dist, ys),
        RecalibrationMethod::Conformal => fit_conformal(dist, ys),
    }
}

fn check_calibration_set(dist: &GaussianMixture, ys: &[f64]) -> Result<()> {
    dist.check_targets(ys)?;
    if ys.is_empty() {
        return Err(Error::invalid(
            "calibration set",
            "0 rows",
            "at least one held-out row",
        ));
    }
    Ok(())
}

/// Minimizes `f` over `[lo, hi]`: a grid of `GRID` points finds the best
/// cell (robust to several local minima), golden-section search refines it
/// to `TOL`. Returns `None` when the grid's best point is on an edge (the
/// minimum may lie outside the bracket).
fn minimize_on_bracket(f: impl Fn(f64) -> f64, lo: f64, hi: f64) -> Option<f64> {
    const GRID: usize = 121;
    const TOL: f64 = 1e-10;
    let step = (hi - lo) / (GRID - 1) as f64;
    let values: Vec<f64> = (0..GRID).map(|j| f(lo + j as f64 * step)).collect();
    let best = (0..GRID).fold(0, |b, j| if values[j] < values[b] { j } else { b });
    if best == 0 || best == GRID - 1 || !values[best].is_finite() {
        return None;
    }
    let (mut a, mut b) = (lo + (best - 1) as f64 * step, lo + (best + 1) as f64 * step);
    let inv_phi = (5f64.sqrt() - 1.0) / 2.0;
    let (mut c, mut d) = (b - inv_phi * (b - a), a + inv_phi * (b - a));
    let (mut fc, mut fd) = (f(c), f(d));
    while b - a > TOL {
        if fc < fd {
            (b, d, fd) = (d, c, fc);
            c = b - inv_phi * (b - a);
            fc = f(c);
        } else {
            (a, c, fc) = (c, d, fd);
            d = a + inv_phi * (b - a);
            fd = f(d);
        }
    }
    Some(0.5 * (a + b))
}

/// The variance factor `s` minimizing the calibration-set NLL of the mixture
/// with every component std multiplied by `s` (the regression analogue of
/// temperature scaling; Levi et al. 2022, "Evaluating and Calibrating
/// Uncertainty Prediction in Regression Tasks"; Laves et al. 2020,
/// "Well-Calibrated Regression Uncertainty in Medical Imaging with Deep
/// Learning", σ scaling). One-dimensional: a grid on `ln s` over
/// [`SCALE_BRACKET`], then golden-section search.
///
/// ```text
/// NLL(s) = ln s + ½ ln 2π - mean_i log-mean-exp_t( -ln sigma_it - z_it² / (2 s²) ),
///          z_it = (y_i - mu_it) / sigma_it
/// T = 1:   s² = mean_i z_i²                                  (closed form)
/// ```
pub fn fit_variance_scaling(dist: &GaussianMixture, ys: &[f64]) -> Result<f64> {
    check_calibration_set(dist, ys)?;
    let (n, t) = (dist.len(), dist.n_components());
    let mut half_z2 = Vec::with_capacity(n * t);
    let mut neg_ln_sigma = Vec::with_capacity(n * t);
    for (i, y) in ys.iter().enumerate() {
        for (m, s) in dist.component_means(i).iter().zip(dist.component_stds(i)) {
            half_z2.push(0.5 * ((y - m) / s).powi(2));
            neg_ln_sigma.push(-s.ln());
        }
    }
    let nll = |u: f64| -> f64 {
        let inv_s2 = (-2.0 * u).exp();
        let mut terms = vec![0.0; t];
        let mut total = 0.0;
        for i in 0..n {
            for (k, term) in terms.iter_mut().enumerate() {
                *term = neg_ln_sigma[i * t + k] - half_z2[i * t + k] * inv_s2;
            }
            total += log_mean_exp(&terms);
        }
        u + HALF_LN_2PI - total / n as f64
    };
    let (lo, hi) = (SCALE_BRACKET.0.ln(), SCALE_BRACKET.1.ln());
    minimize_on_bracket(nll, lo, hi)
        .map(f64::exp)
        .ok_or_else(|| {
            Error::invalid(
                "variance scale s",
                "a calibration NLL minimum outside the bracket",
                format!(
                    "an NLL-optimal s inside [{}, {}] (are the targets in the predictive's units?)",
                    SCALE_BRACKET.0, SCALE_BRACKET.1
                ),
            )
        })
}

/// Weighted least-squares isotonic (non-decreasing) regression by
/// pool-adjacent-violators (Ayer et al. 1955; Barlow et al. 1972): adjacent
/// blocks that violate the order are merged into their weighted mean until
/// none does. `O(n)` amortized. Weights must be finite and `> 0`.
///
/// ```text
/// fit = argmin_{f_1 <= … <= f_n} Σ_i w_i (f_i - v_i)²
/// ```
pub fn pool_adjacent_violators(values: &[f64], weights: &[f64]) -> Result<Vec<f64>> {
    if values.len() != weights.len() {
        return Err(Error::Shape {
            context: "pool_adjacent_violators".into(),
            message: format!("{} values for {} weights", values.len(), weights.len()),
        });
    }
    if let Some(i) = (0..values.len())
        .find(|&i| !(values[i].is_finite() && weights[i].is_finite() && weights[i] > 0.0))
    {
        return Err(Error::invalid(
            format!("value/weight {i}"),
            format!("{} / {}", values[i], weights[i]),
            "a finite value and a finite weight > 0",
        ));
    }
    // Blocks: (weighted mean, total weight, number of points).
    let mut blocks: Vec<(f64, f64, usize)> = Vec::with_capacity(values.len());
    for (v, w) in values.iter().zip(weights) {
        blocks.push((*v, *w, 1));
        while blocks.len() >= 2 {
            let (m2, w2, c2) = blocks[blocks.len() - 1];
            let (m1, w1, c1) = blocks[blocks.len() - 2];
            if m1 <= m2 {
                break;
            }
            blocks.pop();
            let last = blocks.len() - 1;
            blocks[last] = ((w1 * m1 + w2 * m2) / (w1 + w2), w1 + w2, c1 + c2);
        }
    }
    Ok(blocks
        .iter()
        .flat_map(|(m, _, c)| std::iter::repeat_n(*m, *c))
        .collect())
}

/// Isotonic recalibration of PIT values (Kuleshov, Fenner & Ermon 2018,
/// "Accurate Uncertainties for Deep Learning Using Calibrated Regression",
/// Algorithm 1): on the calibration set, pair each PIT value `u_i = F_i(y_i)`
/// with the observed frequency of PIT values at or below it, and fit a
/// non-decreasing `R` by [`pool_adjacent_violators`] (weights: how many rows
/// share a PIT value).
///
/// ```text
/// knots: (0, 0), (u_(j), P̂(u <= u_(j))) over distinct sorted PIT values, (1, 1)
/// R: linear between knots;   recalibrated F_i(y) = R(F_i(y))
/// ```
///
/// The empirical frequency is already non-decreasing in `u`, so on this
/// target PAV only guarantees the invariant (it changes nothing); it is what
/// Kuleshov et al. run (scikit-learn's `IsotonicRegression`). PIT values of
/// exactly 0 or 1 (targets far in a tail) replace the end knots.
pub fn fit_isotonic(dist: &GaussianMixture, ys: &[f64]) -> Result<Recalibration> {
    check_calibration_set(dist, ys)?;
    let mut pit = dist.pit(ys)?;
    if let Some(i) = pit.iter().position(|u| !(0.0..=1.0).contains(u)) {
        return Err(Error::invalid(
            format!("PIT of calibration row {i}"),
            pit[i],
            "a CDF value in [0, 1]",
        ));
    }
    pit.sort_by(f64::total_cmp);
    let n = pit.len() as f64;
    // Distinct PIT values with the frequency at or below each and their multiplicity.
    let (mut xs, mut freq, mut weight) = (Vec::new(), Vec::new(), Vec::new());
    let mut j = 0;
    while j < pit.len() {
        let mut k = j;
        while k < pit.len() && pit[k] == pit[j] {
            k += 1;
        }
        xs.push(pit[j]);
        freq.push(k as f64 / n);
        weight.push((k - j) as f64);
        j = k;
    }
    let fitted = pool_adjacent_violators(&freq, &weight)?;
    let (mut pit_in, mut pit_out) = (Vec::with_capacity(xs.len() + 2), Vec::new());
    if xs.first().is_some_and(|x| *x > 0.0) {
        pit_in.push(0.0);
        pit_out.push(0.0);
    }
    pit_in.extend(&xs);
    pit_out.extend(fitted.iter().map(|v| v.clamp(0.0, 1.0)));
    if xs.last().is_some_and(|x| *x < 1.0) {
        pit_in.push(1.0);
        pit_out.push(1.0);
    }
    let recal = Recalibration::Isotonic { pit_in, pit_out };
    recal.validate()?;
    Ok(recal)
}

/// Split-conformal calibration with std-normalized nonconformity scores
/// (Lei, G'Sell, Rinaldo, Tibshirani & Wasserman 2018, "Distribution-Free
/// Predictive Inference for Regression", §5.2; Angelopoulos & Bates 2021, "A
/// Gentle Introduction to Conformal Prediction", §2.3), using the
/// predictive's mean and total std. Stores the sorted scores, so the level
/// is chosen at prediction time ([`Recalibration::interval`]).
///
/// ```text
/// score_i = |y_i - mean_i| / std_i
/// q_a = ⌈(n+1) a⌉-th smallest score     (error if ⌈(n+1) a⌉ > n)
/// interval = mean ± q_a · std,   a <= P(y in interval) <= a + 1/(n+1)   (exchangeable rows, no ties)
/// ```
pub fn fit_conformal(dist: &GaussianMixture, ys: &[f64]) -> Result<Recalibration> {
    check_calibration_set(dist, ys)?;
    let mut scores: Vec<f64> = dist
        .mean()
        .iter()
        .zip(dist.std())
        .zip(ys)
        .map(|((m, s), y)| (y - m).abs() / s)
        .collect();
    scores.sort_by(f64::total_cmp);
    let recal = Recalibration::Conformal { scores };
    recal.validate()?;
    Ok(recal)
}

/// The conformal threshold for level `a` from sorted scores: the
/// `k = ⌈(n+1)a⌉`-th smallest, with `(n+1)a` within 1e-9 of an integer
/// counted as that integer (so 0.9 · 20 = 18, not 19, despite rounding).
fn conformal_threshold(scores: &[f64], level: f64) -> Result<f64> {
    let n = scores.len();
    let k = ((n as f64 + 1.0) * level - 1e-9).ceil().max(0.0) as usize;
    if k == 0 {
        return Ok(0.0);
    }
    if k > n {
        // The largest level this set supports: ⌈(n+1)a⌉ <= n  <=>  a <= n/(n+1).
        return Err(Error::invalid(
            "level",
            level,
            format!(
                "a level <= n/(n+1) = {:.6} for a conformal calibration set of n = {n} rows (⌈(n+1)·level⌉ = {k} exceeds n; use more calibration rows or a lower level)",
                n as f64 / (n as f64 + 1.0)
            ),
        ));
    }
    Ok(scores[k - 1])
}

fn check_level(level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid("level", level, "a coverage in (0, 1)"))
    }
}

/// `R(p)`, linear between knots (`p` clamped to [0, 1]).
fn isotonic_map(pit_in: &[f64], pit_out: &[f64], p: f64) -> f64 {
    let p = p.clamp(0.0, 1.0);
    let j = pit_in.partition_point(|x| *x < p);
    if j == 0 {
        return pit_out[0];
    }
    if j == pit_in.len() {
        return pit_out[pit_out.len() - 1];
    }
    let (x0, x1, y0, y1) = (pit_in[j - 1], pit_in[j], pit_out[j - 1], pit_out[j]);
    y0 + (p - x0) / (x1 - x0) * (y1 - y0)
}

/// `R⁻¹(τ) = inf{p : R(p) >= τ}`, linear between knots.
fn isotonic_inverse(pit_in: &[f64], pit_out: &[f64], tau: f64) -> f64 {
    let j = pit_out.partition_point(|y| *y < tau);
    if j == 0 {
        return pit_in[0];
    }
    if j == pit_out.len() {
        return pit_in[pit_in.len() - 1];
    }
    let (x0, x1, y0, y1) = (pit_in[j - 1], pit_in[j], pit_out[j - 1], pit_out[j]);
    x0 + (tau - y0) / (y1 - y0) * (x1 - x0)
}

impl Recalibration {
    /// Which method fitted it (`None` for [`Recalibration::None`]).
    pub fn method(&self) -> Option<RecalibrationMethod> {
        match self {
            Self::None => None,
            Self::VarianceScaling { .. } => Some(RecalibrationMethod::Scale),
            Self::Isotonic { .. } => Some(RecalibrationMethod::Isotonic),
            Self::Conformal { .. } => Some(RecalibrationMethod::Conformal),
        }
    }

    /// Errors unless the parameters are valid (as [`fit`] returns them): a
    /// finite `s > 0`; isotonic knots of equal number (≥ 2), `pit_in`
    /// strictly increasing from 0 to 1, `pit_out` non-decreasing in [0, 1]
    /// and ending at 1; conformal scores non-empty, finite, ≥ 0 and sorted.
    /// Every method below calls it, so a hand-edited or corrupted saved
    /// recalibration is reported, never applied.
    pub fn validate(&self) -> Result<()> {
        match self {
            Self::None => Ok(()),
            Self::VarianceScaling { s } => {
                if s.is_finite() && *s > 0.0 {
                    Ok(())
                } else {
                    Err(Error::invalid("variance scale s", s, "a finite s > 0"))
                }
            }
            Self::Isotonic { pit_in, pit_out } => {
                let bad = |what: &str| {
                    Err(Error::invalid(
                        "isotonic recalibration knots",
                        what,
                        "pit_in strictly increasing from 0 to 1, pit_out non-decreasing in [0, 1] ending at 1, equal lengths >= 2",
                    ))
                };
                if pit_in.len() != pit_out.len() || pit_in.len() < 2 {
                    return bad(&format!(
                        "{} pit_in and {} pit_out values",
                        pit_in.len(),
                        pit_out.len()
                    ));
                }
                if pit_in[0] != 0.0 || pit_in[pit_in.len() - 1] != 1.0 {
                    return bad("pit_in does not span [0, 1]");
                }
                if pit_in.iter().any(|x| !x.is_finite()) || pit_in.windows(2).any(|w| w[0] >= w[1])
                {
                    return bad("pit_in not strictly increasing");
                }
                if pit_out.iter().any(|y| !(0.0..=1.0).contains(y))
                    || pit_out.windows(2).any(|w| w[0] > w[1])
                    || pit_out[pit_out.len() - 1] != 1.0
                {
                    return bad("pit_out not non-decreasing in [0, 1] up to 1");
                }
                Ok(())
            }
            Self::Conformal { scores } => {
                if scores.is_empty() {
                    return Err(Error::invalid(
                        "conformal scores",
                        "none",
                        "at least one calibration score",
                    ));
                }
                if let Some(i) = scores.iter().position(|s| !(s.is_finite() && *s >= 0.0)) {
                    return Err(Error::invalid(
                        format!("conformal score {i}"),
                        scores[i],
                        "a finite score >= 0",
                    ));
                }
                if scores.windows(2).any(|w| w[0] > w[1]) {
                    return Err(Error::invalid(
                        "conformal scores",
                        "unsorted",
                        "scores sorted ascending",
                    ));
                }
                Ok(())
            }
        }
    }

    /// The predictive with every component std multiplied by `s` for
    /// [`Recalibration::VarianceScaling`] (so that every metric sees the
    /// recalibration); an unchanged copy for the other kinds, which act on
    /// intervals and CDF values instead.
    ///
    /// ```text
    /// (1/T) Σ_t N(mu_t, sigma_t²)  ->  (1/T) Σ_t N(mu_t, s² sigma_t²)
    /// ```
    pub fn apply_to_mixture(&self, dist: &GaussianMixture) -> Result<GaussianMixture> {
        self.validate()?;
        match self {
            Self::VarianceScaling { s } => {
                let (n, t) = (dist.len(), dist.n_components());
                let mut means = Vec::with_capacity(n * t);
                let mut stds = Vec::with_capacity(n * t);
                for i in 0..n {
                    means.extend_from_slice(dist.component_means(i));
                    stds.extend(dist.component_stds(i).iter().map(|v| v * s));
                }
                GaussianMixture::new(n, t, means, stds)
            }
            _ => Ok(dist.clone()),
        }
    }

    /// Recalibrated central intervals at nominal coverage `level` in (0, 1)
    /// of `dist`, the predictive **after** [`Self::apply_to_mixture`] (so a
    /// variance scaling is applied exactly once, wherever the mixture goes).
    ///
    /// ```text
    /// None               F_i⁻¹((1 ∓ a)/2)
    /// VarianceScaling    the same, on the already scaled mixture
    /// Isotonic           F_i⁻¹(R⁻¹((1 ∓ a)/2)),  R⁻¹ clamped to [PIT_CLAMP, 1 - PIT_CLAMP]
    /// Conformal          mean_i ∓ q_a std_i     (error if the set is too small for a)
    /// ```
    pub fn interval(&self, dist: &GaussianMixture, level: f64) -> Result<Intervals> {
        self.validate()?;
        check_level(level)?;
        match self {
            Self::None => dist.interval(level),
            Self::VarianceScaling { .. } => dist.interval(level),
            Self::Isotonic { pit_in, pit_out } => {
                let at = |tau: f64| {
                    isotonic_inverse(pit_in, pit_out, tau).clamp(PIT_CLAMP, 1.0 - PIT_CLAMP)
                };
                let (p_lo, p_hi) = (at(0.5 * (1.0 - level)), at(0.5 * (1.0 + level)));
                let mut lower = Vec::with_capacity(dist.len());
                let mut upper = Vec::with_capacity(dist.len());
                for i in 0..dist.len() {
                    lower.push(dist.quantile(i, p_lo)?);
                    upper.push(dist.quantile(i, p_hi)?);
                }
                Ok(Intervals {
                    level,
                    lower,
                    upper,
                })
            }
            Self::Conformal { scores } => {
                let q = conformal_threshold(scores, level)?;
                let (mean, std) = (dist.mean(), dist.std());
                Ok(Intervals {
                    level,
                    lower: mean.iter().zip(&std).map(|(m, s)| m - q * s).collect(),
                    upper: mean.iter().zip(&std).map(|(m, s)| m + q * s).collect(),
                })
            }
        }
    }

    /// Recalibrated CDF of row `i` at `y`, on the predictive after
    /// [`Self::apply_to_mixture`].
    ///
    /// ```text
    /// None               F_i(y) = (1/T) Σ_t Φ((y - mu_t)/sigma_t)
    /// VarianceScaling    the same, on the already scaled mixture
    /// Isotonic           R(F_i(y))
    /// Conformal          ½ + ½ sign(y - mean_i) Ĝ(|y - mean_i| / std_i),
    ///                    Ĝ(r) = #{scores <= r} / (n + 1)
    /// ```
    ///
    /// The conformal CDF is the one whose central `a`-interval is the
    /// conformal interval (a step function: the conformal predictive
    /// distribution of Vovk et al. 2017, symmetrized).
    pub fn cdf(&self, dist: &GaussianMixture, i: usize, y: f64) -> Result<f64> {
        self.validate()?;
        if i >= dist.len() {
            return Err(Error::invalid(
                "row",
                i,
                format!("a row index below {}", dist.len()),
            ));
        }
        if !y.is_finite() {
            return Err(Error::invalid("y", y, "a finite number"));
        }
        Ok(match self {
            Self::None | Self::VarianceScaling { .. } => dist.cdf(i, y),
            Self::Isotonic { pit_in, pit_out } => isotonic_map(pit_in, pit_out, dist.cdf(i, y)),
            Self::Conformal { scores } => {
                let (m, sd) = (dist.component_means(i), dist.component_stds(i));
                let t = m.len() as f64;
                let mean = m.iter().sum::<f64>() / t;
                let var = sd
                    .iter()
                    .zip(m)
                    .map(|(s, mu)| s * s + (mu - mean).powi(2))
                    .sum::<f64>()
                    / t;
                let r = (y - mean).abs() / var.sqrt();
                let g = scores.partition_point(|s| *s <= r) as f64 / (scores.len() as f64 + 1.0);
                if y == mean {
                    0.5
                } else {
                    0.5 + 0.5 * (y - mean).signum() * g
                }
            }
        })
    }

    /// Recalibrated probability integral transform of each target,
    /// `u_i = cdf(i, y_i)`; feed it to
    /// [`crate::metrics::calibration_curve_from_pit`] to score the
    /// recalibrated predictive.
    pub fn pit(&self, dist: &GaussianMixture, ys: &[f64]) -> Result<Vec<f64>> {
        dist.check_targets(ys)?;
        ys.iter()
            .enumerate()
            .map(|(i, y)| self.cdf(dist, i, *y))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Classifiers
// ---------------------------------------------------------------------------

pub(crate) fn check_temperature(temperature: f64) -> Result<()> {
    if temperature.is_finite() && temperature > 0.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            "temperature",
            temperature,
            "a finite temperature > 0",
        ))
    }
}

/// Tempers one probability vector in place of `out`: `q_k ∝ p_k^{1/T}`,
/// via `ln max(p_k, PROB_FLOOR) / T` with the maximum subtracted.
fn temper_row(p: &[f64], inv_t: f64, out: &mut Vec<f64>) {
    let start = out.len();
    let logits = p.iter().map(|v| v.max(PROB_FLOOR).ln() * inv_t);
    out.extend(logits);
    let row = &mut out[start..];
    let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let mut sum = 0.0;
    for v in row.iter_mut() {
        *v = (*v - max).exp();
        sum += *v;
    }
    for v in row.iter_mut() {
        *v /= sum;
    }
}

/// Temperature scaling of probability vectors laid out `[...][class]`
/// (every chunk of `n_classes` values is one distribution, e.g. the
/// `[row][sample][class]` layout of [`CategoricalMixture::new`]): the
/// log-probabilities are divided by `T` and renormalized, which for
/// probabilities that came from a softmax is exactly softmax(logits / T)
/// (Guo et al. 2017, §4.2). Probabilities must be finite and ≥ 0; they are
/// floored at [`PROB_FLOOR`] before the logarithm.
///
/// ```text
/// q_k = exp(ln p_k / T) / Σ_j exp(ln p_j / T) = p_k^{1/T} / Σ_j p_j^{1/T}
/// ```
pub fn temper_probs(probs: &[f64], n_classes: usize, temperature: f64) -> Result<Vec<f64>> {
    check_temperature(temperature)?;
    if n_classes == 0 || probs.len() % n_classes != 0 {
        return Err(Error::Shape {
            context: "temper_probs".into(),
            message: format!(
                "{} probabilities are not whole vectors of {n_classes} classes",
                probs.len()
            ),
        });
    }
    if let Some(i) = probs.iter().position(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err(Error::invalid(
            format!("probability {i}"),
            probs[i],
            "a finite probability >= 0",
        ));
    }
    let mut out = Vec::with_capacity(probs.len());
    for row in probs.chunks(n_classes) {
        temper_row(row, 1.0 / temperature, &mut out);
    }
    Ok(out)
}

/// The mean probabilities of every row, `[row][class]`.
fn mean_probs_all(dist: &CategoricalMixture) -> Vec<f64> {
    (0..dist.len()).flat_map(|i| dist.mean_probs(i)).collect()
}

/// Temperature scaling (Guo, Pleiss, Sun & Weinberger 2017, "On Calibration
/// of Modern Neural Networks", §4.2): the `T > 0` minimizing the
/// calibration-set NLL of the tempered predictive probabilities, searched on
/// `ln T` over [`TEMPERATURE_BRACKET`] (grid, then golden section; the NLL is
/// convex in `1/T`, so the minimum is unique). `T > 1` softens an
/// overconfident classifier.
///
/// ```text
/// T = argmin_T -mean_i ln q_{i,y_i}(T),   q_i(T) = softmax(ln p̄_i / T)
/// ```
///
/// Applied to the mean probabilities `p̄_i = mean_t p_it`: the per-sample
/// probabilities `p_it` are private to [`CategoricalMixture`], so for
/// `T_samples > 1` this tempers the predictive rather than each sample (the
/// two agree for one sample). With raw `[row][sample][class]` probabilities
/// at hand, [`temper_probs`] tempers each sample.
pub fn fit_temperature(dist: &CategoricalMixture, labels: &[usize]) -> Result<f64> {
    let k = dist.n_classes();
    if labels.len() != dist.len() || labels.is_empty() {
        return Err(Error::Shape {
            context: "fit_temperature".into(),
            message: format!(
                "{} predictive rows for {} labels (need equal, non-zero counts)",
                dist.len(),
                labels.len()
            ),
        });
    }
    if let Some(i) = labels.iter().position(|&y| y >= k) {
        return Err(Error::invalid(
            format!("label[{i}]"),
            labels[i],
            format!("a class index in 0..{k}"),
        ));
    }
    let probs = mean_probs_all(dist);
    if let Some(i) = probs.iter().position(|p| !(p.is_finite() && *p >= 0.0)) {
        return Err(Error::invalid(
            format!("mean probability of row {}, class {}", i / k, i % k),
            probs[i],
            "a finite probability >= 0",
        ));
    }
    let log_p: Vec<f64> = probs.iter().map(|p| p.max(PROB_FLOOR).ln()).collect();
    let nll = |u: f64| -> f64 {
        let inv_t = (-u).exp();
        let mut total = 0.0;
        for (row, &y) in log_p.chunks(k).zip(labels) {
            let max = row.iter().copied().fold(f64::NEG_INFINITY, f64::max) * inv_t;
            let lse = max
                + row
                    .iter()
                    .map(|v| (v * inv_t - max).exp())
                    .sum::<f64>()
                    .ln();
            total += lse - row[y] * inv_t;
        }
        total / labels.len() as f64
    };
    let (lo, hi) = (TEMPERATURE_BRACKET.0.ln(), TEMPERATURE_BRACKET.1.ln());
    minimize_on_bracket(nll, lo, hi)
        .map(f64::exp)
        .ok_or_else(|| {
            Error::invalid(
                "temperature",
                "a calibration NLL minimum outside the bracket",
                format!(
                    "an NLL-optimal temperature inside [{}, {}] (a perfectly separating or constant classifier has none)",
                    TEMPERATURE_BRACKET.0, TEMPERATURE_BRACKET.1
                ),
            )
        })
}

/// The tempered predictive: one sample per row holding
/// `softmax(ln p̄_i / T)` (see [`fit_temperature`] for why the mean
/// probabilities; its mutual information is therefore 0).
pub fn apply_temperature(
    dist: &CategoricalMixture,
    temperature: f64,
) -> Result<CategoricalMixture> {
    let probs = temper_probs(&mean_probs_all(dist), dist.n_classes(), temperature)?;
    CategoricalMixture::new(dist.len(), 1, dist.n_classes(), probs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pav_pools_violators_into_weighted_means() -> Result<()> {
        // 3, 1 (w 1, 3) pool to 1.5; then 1.5 <= 2.
        let fit = pool_adjacent_violators(&[3.0, 1.0, 2.0], &[1.0, 3.0, 1.0])?;
        assert_eq!(fit, vec![1.5, 1.5, 2.0]);
        // A cascade: 1, 5, 4, 0 -> [1, 3, 3, 3] after merging 5,4 -> 4.5 then with 0 -> 3.
        assert_eq!(
            pool_adjacent_violators(&[1.0, 5.0, 4.0, 0.0], &[1.0; 4])?,
            vec![1.0, 3.0, 3.0, 3.0]
        );
        assert!(pool_adjacent_violators(&[1.0], &[0.0]).is_err());
        Ok(())
    }

    #[test]
    fn isotonic_map_and_inverse_agree() {
        let (x, y) = (vec![0.0, 0.2, 0.6, 1.0], vec![0.0, 0.5, 0.5, 1.0]);
        assert!((isotonic_map(&x, &y, 0.1) - 0.25).abs() < 1e-15);
        assert!((isotonic_map(&x, &y, 0.8) - 0.75).abs() < 1e-15);
        assert!((isotonic_inverse(&x, &y, 0.25) - 0.1).abs() < 1e-15);
        // A flat stretch at τ: the generalized inverse takes its left end.
        assert!((isotonic_inverse(&x, &y, 0.5) - 0.2).abs() < 1e-15);
        assert!((isotonic_inverse(&x, &y, 0.75) - 0.8).abs() < 1e-15);
    }

    #[test]
    fn conformal_threshold_rank_and_too_small_sets() -> Result<()> {
        let scores: Vec<f64> = (1..=19).map(f64::from).collect();
        // (19+1)·0.9 = 18 exactly -> the 18th smallest, despite 0.9's rounding.
        assert_eq!(conformal_threshold(&scores, 0.9)?, 18.0);
        assert_eq!(conformal_threshold(&scores, 0.91)?, 19.0);
        assert!(conformal_threshold(&scores, 0.96).is_err());
        Ok(())
    }

    #[test]
    fn tempering_is_softmax_of_scaled_logits() -> Result<()> {
        let logits = [1.0f64, 2.0, -0.5];
        let softmax = |t: f64| {
            let e: Vec<f64> = logits.iter().map(|z| (z / t).exp()).collect();
            let s: f64 = e.iter().sum();
            e.into_iter().map(|v| v / s).collect::<Vec<_>>()
        };
        let q = temper_probs(&softmax(1.0), 3, 2.5)?;
        for (a, b) in q.iter().zip(softmax(2.5)) {
            assert!((a - b).abs() < 1e-15);
        }
        Ok(())
    }
}
