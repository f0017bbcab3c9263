//! Predictive distributions: T posterior samples per input, evaluated in one
//! batched pass, kept as the mixture they define.
//!
//! For regression, sample `t` gives `N(mu_t(x), sigma_t(x)²)`; the predictive
//! is their uniform mixture
//!
//! ```text
//! p(y | x) ≈ (1/T) Σ_t N(y; mu_t, sigma_t²)
//! mean        = (1/T) Σ_t mu_t
//! aleatoric   = (1/T) Σ_t sigma_t²               (noise the model expects)
//! epistemic   = (1/T) Σ_t (mu_t - mean)²         (disagreement of the samples)
//! variance    = aleatoric + epistemic            (exact mixture variance)
//! quantile(p) = F⁻¹(p),  F(y) = (1/T) Σ_t Φ((y - mu_t) / sigma_t)   (bisection)
//! ln p(y | x) = log-mean-exp_t ln N(y; mu_t, sigma_t²)
//! ```
//!
//! For classification, sample `t` gives probabilities `p_t`; the predictive is
//! their mean, with total entropy `H[mean_t p_t]`, expected (aleatoric)
//! entropy `mean_t H[p_t]`, and mutual information (epistemic, BALD; Houlsby
//! et al. 2011) their difference.
//!
//! All summaries are computed in f64.

use candle_core::{DType, Tensor};

use crate::likelihood::OutputDistribution;
use crate::model::StochasticModel;
use crate::ops::{log_mean_exp, std_normal_cdf, std_normal_pdf, std_normal_quantile};
use crate::tuning::on_compute_pool;
use crate::{Error, Result};

/// At most this many values in one activation tensor of a prediction pass:
/// `rows × samples × width ≤ 2^22` f32, 16 MiB. This bounds memory, keeps
/// each buffer below glibc's largest `mmap` threshold (32 MiB, so freed
/// buffers can be reused instead of returned to the system and faulted in
/// again), and the pass's working set near the cache; see [`predict`] for
/// how larger requests are split.
pub const MAX_VALUES_PER_PASS: usize = 1 << 22;

/// (row × sample) pairs per prediction pass of `model`:
/// `max(1, MAX_VALUES_PER_PASS / width)`, `width` the largest dimension of
/// any of its parameters (an MLP's widest layer, inputs included).
pub fn rows_per_pass<M: StochasticModel + ?Sized>(model: &M) -> usize {
    let width = model
        .vars()
        .iter()
        .flat_map(|v| v.dims().to_vec())
        .max()
        .unwrap_or(1);
    (MAX_VALUES_PER_PASS / width.max(1)).max(1)
}

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// A predictive distribution per input row.
#[derive(Debug, Clone, PartialEq)]
pub enum PredictiveDistribution {
    /// Regression: a Gaussian mixture per row.
    Regression(GaussianMixture),
    /// Classification: T probability vectors per row.
    Classification(CategoricalMixture),
}

impl PredictiveDistribution {
    /// The regression mixture, or an error for a classifier.
    pub fn into_regression(self) -> Result<GaussianMixture> {
        match self {
            PredictiveDistribution::Regression(m) => Ok(m),
            PredictiveDistribution::Classification(_) => Err(Error::invalid(
                "likelihood",
                "categorical",
                "a Gaussian likelihood for a regression predictive",
            )),
        }
    }

    /// The classification mixture, or an error for a regressor.
    pub fn into_classification(self) -> Result<CategoricalMixture> {
        match self {
            PredictiveDistribution::Classification(m) => Ok(m),
            PredictiveDistribution::Regression(_) => Err(Error::invalid(
                "likelihood",
                "gaussian",
                "a categorical likelihood for a classification predictive",
            )),
        }
    }
}

/// Draws `samples` stochastic passes of `model` over `xs: [N, in]`, batched,
/// and returns the predictive per row.
///
/// Passes are split samples first, so that one pass sees as many rows as
/// possible: with `P = rows_per_pass(model)` ([`rows_per_pass`]) and
/// `R = min(N, P)` rows per pass,
///
/// ```text
/// samples per pass  S_p = max(g, g · floor(P / (R g)))
/// passes            ceil(N / R) · ceil(samples / S_p)
/// ```
///
/// (`g` is the model's [`StochasticModel::sample_group`]). When `N ≤ P`
/// every row is in every pass, so each sample is one
/// function draw over all rows, and weight noise (one draw per sample for
/// the reparameterization estimator) is drawn once per sample, however many
/// rows. Each row's predictive is distributed the same for any split, though
/// the exact numbers depend on it.
pub fn predict<M: StochasticModel + ?Sized>(
    model: &M,
    xs: &Tensor,
    samples: usize,
) -> Result<PredictiveDistribution> {
    on_compute_pool(|| predict_here(model, xs, samples))
}

/// [`predict`] on the calling thread.
fn predict_here<M: StochasticModel + ?Sized>(
    model: &M,
    xs: &Tensor,
    samples: usize,
) -> Result<PredictiveDistribution> {
    if samples == 0 {
        return Err(Error::invalid("samples", 0, "at least 1"));
    }
    let n = xs.dim(0)?;
    let pairs = rows_per_pass(model);
    let rows_per_pass = n.clamp(1, pairs);
    let group = model.sample_group().max(1);
    let samples_per_pass = (pairs / (rows_per_pass * group)).max(1) * group;
    let mut gaussian: Option<(Vec<f64>, Vec<f64>)> = None;
    let mut categorical: Option<(usize, Vec<f64>)> = None;
    for start in (0..n).step_by(rows_per_pass) {
        let rows = xs.narrow(0, start, rows_per_pass.min(n - start))?;
        // Per-pass heads, concatenated along the sample axis: [samples, B, k].
        // Detached, so that a pass's graph (every intermediate activation,
        // kept alive for a backward pass that prediction never runs) is freed
        // before the next pass.
        let heads = (0..samples)
            .step_by(samples_per_pass)
            .map(|s| {
                let head = model.forward_samples(&rows, samples_per_pass.min(samples - s))?;
                Ok(head.detach())
            })
            .collect::<Result<Vec<_>>>()?;
        let head = Tensor::cat(&heads, 0)?;
        match model.likelihood().distribution(&head)? {
            OutputDistribution::Gaussian { mean, scale } => {
                // [S, B] -> point-major [B, S]
                let to_rows = |t: Tensor| -> Result<Vec<f64>> {
                    Ok(t.t()?
                        .contiguous()?
                        .to_dtype(DType::F64)?
                        .flatten_all()?
                        .to_vec1::<f64>()?)
                };
                let (m, s) = gaussian.get_or_insert_with(|| (Vec::new(), Vec::new()));
                m.extend(to_rows(mean)?);
                s.extend(to_rows(scale)?);
            }
            OutputDistribution::Categorical { log_probs } => {
                let k = log_probs.dim(2)?;
                let p = log_probs.exp()?.transpose(0, 1)?.contiguous()?; // [B, S, K]
                let (_, v) = categorical.get_or_insert_with(|| (k, Vec::new()));
                v.extend(p.to_dtype(DType::F64)?.flatten_all()?.to_vec1::<f64>()?);
            }
        }
    }
    match (gaussian, categorical) {
        (Some((m, s)), None) => Ok(PredictiveDistribution::Regression(GaussianMixture::new(
            n, samples, m, s,
        )?)),
        (None, Some((k, p))) => Ok(PredictiveDistribution::Classification(
            CategoricalMixture::new(n, samples, k, p)?,
        )),
        _ => Err(Error::invalid(
            "xs",
            "0 rows",
            "at least one row to predict",
        )),
    }
}

/// Central interval bounds per row.
#[derive(Debug, Clone, PartialEq)]
pub struct Intervals {
    /// The nominal coverage, in (0, 1).
    pub level: f64,
    /// Lower bounds, the `(1 - level)/2` quantiles.
    pub lower: Vec<f64>,
    /// Upper bounds, the `(1 + level)/2` quantiles.
    pub upper: Vec<f64>,
}

/// A uniform mixture of `T` Gaussians per row: `(1/T) Σ_t N(mu_t, sigma_t²)`.
#[derive(Debug, Clone, PartialEq)]
pub struct GaussianMixture {
    n_points: usize,
    n_components: usize,
    means: Vec<f64>,
    stds: Vec<f64>,
}

impl GaussianMixture {
    /// From point-major component means and standard deviations
    /// (`means[i * T + t]`); every std must be > 0 and every value finite.
    pub fn new(
        n_points: usize,
        n_components: usize,
        means: Vec<f64>,
        stds: Vec<f64>,
    ) -> Result<Self> {
        let len = n_points * n_components;
        if n_components == 0 || means.len() != len || stds.len() != len {
            return Err(Error::Shape {
                context: "GaussianMixture::new".into(),
                message: format!(
                    "{n_points} points x {n_components} components need {len} means and stds, got {} and {}",
                    means.len(),
                    stds.len()
                ),
            });
        }
        if let Some(i) =
            (0..len).find(|&i| !(means[i].is_finite() && stds[i].is_finite() && stds[i] > 0.0))
        {
            return Err(Error::invalid(
                format!(
                    "component {} of point {}",
                    i % n_components,
                    i / n_components
                ),
                format!("mean {} std {}", means[i], stds[i]),
                "a finite mean and a finite std > 0",
            ));
        }
        Ok(Self {
            n_points,
            n_components,
            means,
            stds,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n_points
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.n_points == 0
    }

    /// Number of mixture components (posterior samples) per row.
    pub fn n_components(&self) -> usize {
        self.n_components
    }

    /// The component means `mu_t` of row `i`.
    pub fn component_means(&self, i: usize) -> &[f64] {
        &self.means[i * self.n_components..(i + 1) * self.n_components]
    }

    /// The component standard deviations `sigma_t` of row `i`.
    pub fn component_stds(&self, i: usize) -> &[f64] {
        &self.stds[i * self.n_components..(i + 1) * self.n_components]
    }

    fn per_point(&self, f: impl Fn(&[f64], &[f64]) -> f64) -> Vec<f64> {
        (0..self.n_points)
            .map(|i| f(self.component_means(i), self.component_stds(i)))
            .collect()
    }

    /// Predictive means.
    pub fn mean(&self) -> Vec<f64> {
        self.per_point(|m, _| m.iter().sum::<f64>() / m.len() as f64)
    }

    /// Aleatoric variance, `mean_t sigma_t²`.
    pub fn aleatoric_var(&self) -> Vec<f64> {
        self.per_point(|_, s| s.iter().map(|v| v * v).sum::<f64>() / s.len() as f64)
    }

    /// Epistemic variance, `mean_t (mu_t - mean)²`.
    pub fn epistemic_var(&self) -> Vec<f64> {
        self.per_point(|m, _| {
            let mean = m.iter().sum::<f64>() / m.len() as f64;
            m.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / m.len() as f64
        })
    }

    /// Total predictive variance, aleatoric + epistemic.
    pub fn variance(&self) -> Vec<f64> {
        self.aleatoric_var()
            .iter()
            .zip(self.epistemic_var())
            .map(|(a, e)| a + e)
            .collect()
    }

    /// Total predictive standard deviation.
    pub fn std(&self) -> Vec<f64> {
        self.variance().into_iter().map(f64::sqrt).collect()
    }

    /// Mixture CDF of row `i` at `y`.
    pub fn cdf(&self, i: usize, y: f64) -> f64 {
        let (m, s) = (self.component_means(i), self.component_stds(i));
        m.iter()
            .zip(s)
            .map(|(m, s)| std_normal_cdf((y - m) / s))
            .sum::<f64>()
            / m.len() as f64
    }

    /// Mixture density of row `i` at `y`, `(1/T) Σ_t N(y; mu_t, sigma_t²)`.
    pub fn pdf(&self, i: usize, y: f64) -> f64 {
        let (m, s) = (self.component_means(i), self.component_stds(i));
        m.iter()
            .zip(s)
            .map(|(m, s)| std_normal_pdf((y - m) / s) / s)
            .sum::<f64>()
            / m.len() as f64
    }

    /// Probability integral transform `u_i = F_i(y_i)` of each target. A
    /// target is inside the central `a`-interval iff `|u_i - ½| ≤ a/2`, so one
    /// CDF per row scores every level of a calibration curve.
    pub fn pit(&self, ys: &[f64]) -> Result<Vec<f64>> {
        self.check_targets(ys)?;
        Ok(ys
            .iter()
            .enumerate()
            .map(|(i, y)| self.cdf(i, *y))
            .collect())
    }

    /// The `p`-quantile of row `i`: bisection on the mixture CDF, accelerated
    /// by Newton steps whenever they stay inside the bracket.
    ///
    /// ```text
    /// bracket: min_t q_t <= F⁻¹(p) <= max_t q_t,   q_t = mu_t + sigma_t Φ⁻¹(p)
    /// ```
    ///
    /// (at `min_t q_t` every component's CDF is ≤ p, so their mean is too; at
    /// `max_t q_t` likewise ≥ p). For T = 1 the bracket is the exact answer.
    pub fn quantile(&self, i: usize, p: f64) -> Result<f64> {
        if !(p > 0.0 && p < 1.0) {
            return Err(Error::invalid(
                "quantile level",
                p,
                "a probability in (0, 1)",
            ));
        }
        let z = std_normal_quantile(p);
        let (m, s) = (self.component_means(i), self.component_stds(i));
        let q = m.iter().zip(s).map(|(m, s)| m + s * z);
        let (mut lo, mut hi) = q.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| {
            (lo.min(v), hi.max(v))
        });
        // Stop once the step is below 1e-13 of the narrowest component.
        let tol = 1e-13 * s.iter().copied().fold(f64::INFINITY, f64::min);
        let mut x = 0.5 * (lo + hi);
        for _ in 0..200 {
            if hi - lo <= tol {
                break;
            }
            let f = self.cdf(i, x) - p;
            if f == 0.0 {
                return Ok(x);
            }
            if f < 0.0 {
                lo = x;
            } else {
                hi = x;
            }
            let newton = x - f / self.pdf(i, x);
            let next = if newton > lo && newton < hi {
                newton
            } else {
                0.5 * (lo + hi)
            };
            if (next - x).abs() <= tol {
                return Ok(next);
            }
            x = next;
        }
        Ok(x.clamp(lo, hi))
    }

    /// Central intervals at nominal coverage `level` in (0, 1).
    pub fn interval(&self, level: f64) -> Result<Intervals> {
        if !(level > 0.0 && level < 1.0) {
            return Err(Error::invalid("level", level, "a coverage in (0, 1)"));
        }
        let (a, b) = ((1.0 - level) / 2.0, (1.0 + level) / 2.0);
        let mut lower = Vec::with_capacity(self.n_points);
        let mut upper = Vec::with_capacity(self.n_points);
        for i in 0..self.n_points {
            lower.push(self.quantile(i, a)?);
            upper.push(self.quantile(i, b)?);
        }
        Ok(Intervals {
            level,
            lower,
            upper,
        })
    }

    /// Log predictive density of each `ys[i]` under row `i`'s mixture.
    pub fn log_density(&self, ys: &[f64]) -> Result<Vec<f64>> {
        self.check_targets(ys)?;
        Ok((0..self.n_points)
            .map(|i| {
                let terms: Vec<f64> = self
                    .component_means(i)
                    .iter()
                    .zip(self.component_stds(i))
                    .map(|(m, s)| -HALF_LN_2PI - s.ln() - 0.5 * ((ys[i] - m) / s).powi(2))
                    .collect();
                log_mean_exp(&terms)
            })
            .collect())
    }

    /// The rows `range` as a mixture of their own (e.g. to split one batched
    /// prediction into calibration and test rows).
    pub fn rows(&self, range: std::ops::Range<usize>) -> Result<Self> {
        if range.start > range.end || range.end > self.n_points {
            return Err(Error::invalid(
                "rows",
                format!("{range:?}"),
                format!("a range within 0..{}", self.n_points),
            ));
        }
        let t = self.n_components;
        Self::new(
            range.len(),
            t,
            self.means[range.start * t..range.end * t].to_vec(),
            self.stds[range.start * t..range.end * t].to_vec(),
        )
    }

    /// The same predictive for `y' = shift + scale · y` (e.g. back from
    /// standardized to original units): means map affinely, stds scale.
    pub fn affine(&self, shift: f64, scale: f64) -> Result<Self> {
        if !(scale.is_finite() && scale > 0.0 && shift.is_finite()) {
            return Err(Error::invalid(
                "affine scale",
                scale,
                "a finite scale > 0 and a finite shift",
            ));
        }
        Ok(Self {
            n_points: self.n_points,
            n_components: self.n_components,
            means: self.means.iter().map(|m| shift + scale * m).collect(),
            stds: self.stds.iter().map(|s| scale * s).collect(),
        })
    }

    /// Errors unless `ys` has one finite target per row.
    pub fn check_targets(&self, ys: &[f64]) -> Result<()> {
        if ys.len() != self.n_points {
            return Err(Error::Shape {
                context: "targets".into(),
                message: format!("{} targets for {} predictive rows", ys.len(), self.n_points),
            });
        }
        match ys.iter().position(|y| !y.is_finite()) {
            Some(i) => Err(Error::invalid(
                format!("target[{i}]"),
                ys[i],
                "a finite number",
            )),
            None => Ok(()),
        }
    }
}

/// `T` probability vectors over `K` classes per row.
#[derive(Debug, Clone, PartialEq)]
pub struct CategoricalMixture {
    n_points: usize,
    n_samples: usize,
    n_classes: usize,
    probs: Vec<f64>,
}

/// `-Σ_k p_k ln p_k`, with `0 ln 0 = 0`.
fn entropy(p: &[f64]) -> f64 {
    -p.iter()
        .filter(|v| **v > 0.0)
        .map(|v| v * v.ln())
        .sum::<f64>()
}

impl CategoricalMixture {
    /// From probabilities laid out `[row][sample][class]`.
    pub fn new(
        n_points: usize,
        n_samples: usize,
        n_classes: usize,
        probs: Vec<f64>,
    ) -> Result<Self> {
        if probs.len() != n_points * n_samples * n_classes || n_samples == 0 || n_classes == 0 {
            return Err(Error::Shape {
                context: "CategoricalMixture::new".into(),
                message: format!(
                    "{} probabilities for {n_points} x {n_samples} x {n_classes}",
                    probs.len()
                ),
            });
        }
        Ok(Self {
            n_points,
            n_samples,
            n_classes,
            probs,
        })
    }

    /// Number of rows.
    pub fn len(&self) -> usize {
        self.n_points
    }

    /// Whether there are no rows.
    pub fn is_empty(&self) -> bool {
        self.n_points == 0
    }

    /// Number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    fn sample_probs(&self, i: usize) -> impl Iterator<Item = &[f64]> {
        let stride = self.n_samples * self.n_classes;
        self.probs[i * stride..(i + 1) * stride].chunks(self.n_classes)
    }

    /// Mean probabilities of row `i`, `mean_t p_t`.
    pub fn mean_probs(&self, i: usize) -> Vec<f64> {
        let mut mean = vec![0.0; self.n_classes];
        for p in self.sample_probs(i) {
            for (m, v) in mean.iter_mut().zip(p) {
                *m += v / self.n_samples as f64;
            }
        }
        mean
    }

    /// Most probable class per row under the mean probabilities.
    pub fn predicted_class(&self) -> Vec<usize> {
        (0..self.n_points)
            .map(|i| {
                let p = self.mean_probs(i);
                (0..p.len()).fold(0, |best, k| if p[k] > p[best] { k } else { best })
            })
            .collect()
    }

    /// Predictive (total) entropy per row, `H[mean_t p_t]`.
    pub fn entropy(&self) -> Vec<f64> {
        (0..self.n_points)
            .map(|i| entropy(&self.mean_probs(i)))
            .collect()
    }

    /// Expected (aleatoric) entropy per row, `mean_t H[p_t]`.
    pub fn expected_entropy(&self) -> Vec<f64> {
        (0..self.n_points)
            .map(|i| self.sample_probs(i).map(entropy).sum::<f64>() / self.n_samples as f64)
            .collect()
    }

    /// Mutual information between the label and the weights (BALD) per row:
    /// total entropy minus expected entropy, ≥ 0.
    pub fn mutual_information(&self) -> Vec<f64> {
        self.entropy()
            .iter()
            .zip(self.expected_entropy())
            .map(|(h, e)| (h - e).max(0.0))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variance_decomposes_into_aleatoric_and_epistemic() -> Result<()> {
        let m = GaussianMixture::new(1, 2, vec![0.0, 2.0], vec![1.0, 3.0])?;
        assert_eq!(m.mean(), vec![1.0]);
        assert_eq!(m.aleatoric_var(), vec![5.0]);
        assert_eq!(m.epistemic_var(), vec![1.0]);
        assert_eq!(m.variance(), vec![6.0]);
        Ok(())
    }

    #[test]
    fn mutual_information_is_zero_when_samples_agree_and_positive_when_not() -> Result<()> {
        let agree = CategoricalMixture::new(1, 2, 2, vec![0.7, 0.3, 0.7, 0.3])?;
        assert!(agree.mutual_information()[0].abs() < 1e-15);
        let disagree = CategoricalMixture::new(1, 2, 2, vec![1.0, 0.0, 0.0, 1.0])?;
        assert!((disagree.mutual_information()[0] - 2f64.ln()).abs() < 1e-12);
        assert_eq!(disagree.predicted_class(), vec![0]);
        Ok(())
    }

    #[test]
    fn invalid_mixtures_are_rejected() {
        assert!(GaussianMixture::new(1, 2, vec![0.0, 1.0], vec![1.0, 0.0]).is_err());
        assert!(GaussianMixture::new(1, 2, vec![0.0], vec![1.0]).is_err());
    }
}
