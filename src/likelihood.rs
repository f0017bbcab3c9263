//! Likelihoods `p(y | x, w)`: what the network's head outputs mean.
//!
//! ```text
//! FixedNoise       y ~ N(f(x), s²),  s given (e.g. MC dropout's tau^-1/2)
//! Homoscedastic    y ~ N(f(x), s²),  s = softplus(rho_s) + floor, one learned s
//! Heteroscedastic  y ~ N(f_1(x), s(x)²),  s(x) = softplus(f_2(x)) + floor
//!                  (Nix & Weigend 1994; Lakshminarayanan et al. 2017)
//! Categorical      y ~ Cat(softmax(f(x)))
//!
//! Gaussian NLL:    -ln N(y; m, s²) = ½ ln 2π + ln s + (y - m)² / (2 s²)
//! Categorical NLL: -ln softmax(f(x))_y
//! ```
//!
//! The learned homoscedastic noise is a point estimate (type-II maximum
//! likelihood), not a random variable with a KL term.
//!
//! # Shapes
//! Head outputs are `[samples, batch, head_dim]`; targets `[batch, 1]` (class
//! indices stored as floats for the categorical case).

use candle_core::{DType, Device, Tensor, Var, D};
use serde::{Deserialize, Serialize};

use crate::ops::{inverse_softplus_f64, softplus};
use crate::{Error, Result};

/// Lower bound on any predicted standard deviation, in standardized target
/// units: keeps `ln s` finite when the network is (over)confident.
pub const SCALE_FLOOR: f64 = 1e-3;

/// Initial homoscedastic noise standard deviation, in standardized target
/// units: the target's own spread, so the first steps fit the mean before the
/// noise shrinks to the residual level.
pub const INITIAL_NOISE_STD: f64 = 1.0;

/// Checkpoint name of the homoscedastic noise parameter.
pub const NOISE_RHO_NAME: &str = "likelihood.noise_rho";

const HALF_LN_2PI: f64 = 0.918_938_533_204_672_7;

/// Which likelihood a model's head feeds (serializable configuration).
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum LikelihoodKind {
    /// Gaussian with a fixed, known noise standard deviation.
    FixedNoise {
        /// The noise standard deviation (standardized target units), > 0.
        sigma: f64,
    },
    /// Gaussian with one learned noise scale.
    #[default]
    Homoscedastic,
    /// Gaussian with an input-dependent scale from a second head output.
    Heteroscedastic,
    /// Softmax over `classes` logits.
    Categorical {
        /// Number of classes, ≥ 2.
        classes: usize,
    },
}

impl LikelihoodKind {
    /// Number of head outputs this likelihood reads: 1, 2 or `classes`.
    pub fn head_dim(&self) -> usize {
        match self {
            LikelihoodKind::FixedNoise { .. } | LikelihoodKind::Homoscedastic => 1,
            LikelihoodKind::Heteroscedastic => 2,
            LikelihoodKind::Categorical { classes } => *classes,
        }
    }

    /// Validates the class count and the fixed noise.
    pub fn validate(&self) -> Result<()> {
        match self {
            LikelihoodKind::FixedNoise { sigma } if !(sigma.is_finite() && *sigma > 0.0) => {
                Err(Error::invalid("noise sigma", sigma, "a finite number > 0"))
            }
            LikelihoodKind::Categorical { classes } if *classes < 2 => {
                Err(Error::invalid("classes", classes, "at least 2"))
            }
            _ => Ok(()),
        }
    }
}

/// The per-sample parameters of the output distribution.
#[derive(Debug, Clone)]
pub enum OutputDistribution {
    /// Gaussian: `mean` and `scale`, each `[S, B]`.
    Gaussian {
        /// Predicted means.
        mean: Tensor,
        /// Predicted standard deviations.
        scale: Tensor,
    },
    /// Categorical: log-probabilities `[S, B, K]`.
    Categorical {
        /// `log softmax` of the logits.
        log_probs: Tensor,
    },
}

/// A likelihood with its own trainable state (the homoscedastic noise).
#[derive(Debug, Clone)]
pub struct Likelihood {
    kind: LikelihoodKind,
    noise_rho: Option<Var>,
}

impl Likelihood {
    /// A fresh likelihood; the homoscedastic noise starts at [`INITIAL_NOISE_STD`].
    pub fn new(kind: LikelihoodKind, device: &Device) -> Result<Self> {
        kind.validate()?;
        let noise_rho = match kind {
            LikelihoodKind::Homoscedastic => {
                let rho = inverse_softplus_f64(INITIAL_NOISE_STD - SCALE_FLOOR) as f32;
                Some(Var::from_tensor(&Tensor::new(&[rho], device)?)?)
            }
            _ => None,
        };
        Ok(Self { kind, noise_rho })
    }

    /// From a saved noise parameter (`[1]`), for the homoscedastic kind.
    pub fn from_noise_rho(kind: LikelihoodKind, noise_rho: Option<Var>) -> Result<Self> {
        kind.validate()?;
        if matches!(kind, LikelihoodKind::Homoscedastic) != noise_rho.is_some() {
            return Err(Error::Shape {
                context: "Likelihood".into(),
                message:
                    "a noise parameter is required for, and only for, the homoscedastic likelihood"
                        .into(),
            });
        }
        Ok(Self { kind, noise_rho })
    }

    /// The configuration.
    pub fn kind(&self) -> LikelihoodKind {
        self.kind
    }

    /// Trainable variables by checkpoint name: [`NOISE_RHO_NAME`] for the
    /// homoscedastic noise parameter, nothing for the other kinds.
    pub fn named_vars(&self) -> Vec<(String, Var)> {
        self.noise_rho
            .iter()
            .map(|v| (NOISE_RHO_NAME.to_string(), v.clone()))
            .collect()
    }

    /// The unconstrained homoscedastic noise parameter, if any.
    pub fn noise_rho(&self) -> Option<&Var> {
        self.noise_rho.as_ref()
    }

    /// The homoscedastic noise standard deviation, learned or fixed
    /// (standardized units); `None` for the other kinds.
    pub fn noise_std(&self) -> Result<Option<f64>> {
        if let LikelihoodKind::FixedNoise { sigma } = self.kind {
            return Ok(Some(sigma));
        }
        match &self.noise_rho {
            Some(rho) => {
                let s = (softplus(rho.as_tensor())? + SCALE_FLOOR)?;
                Ok(Some(s.flatten_all()?.to_vec1::<f32>()?[0] as f64))
            }
            None => Ok(None),
        }
    }

    /// Sets the homoscedastic noise standard deviation (standardized units)
    /// to `std`, or to just above [`SCALE_FLOOR`] if `std` is below it:
    /// `rho = softplus⁻¹(std - floor)`. An error for the other kinds, whose
    /// noise is fixed or per-input, and for a `std` that is not finite and ≥ 0.
    pub fn set_noise_std(&self, std: f64) -> Result<()> {
        let Some(rho) = &self.noise_rho else {
            return Err(Error::invalid(
                "likelihood",
                format!("{:?}", self.kind),
                "the homoscedastic likelihood: only its noise is a parameter to set",
            ));
        };
        if !(std.is_finite() && std >= 0.0) {
            return Err(Error::invalid("noise std", std, "a finite number >= 0"));
        }
        // f32's softplus resolves ln(1e-12) = -27.6 to 1e-12: above the floor, barely.
        let above_floor = (std - SCALE_FLOOR).max(1e-12);
        let value = inverse_softplus_f64(above_floor) as f32;
        rho.set(&Tensor::new(&[value], rho.device())?)?;
        Ok(())
    }

    /// Interprets head outputs `[S, B, head_dim]` as distribution parameters.
    pub fn distribution(&self, head: &Tensor) -> Result<OutputDistribution> {
        let k = head.dim(D::Minus1)?;
        if k != self.kind.head_dim() {
            return Err(Error::Shape {
                context: "Likelihood::distribution".into(),
                message: format!(
                    "head has {k} outputs, the likelihood reads {}",
                    self.kind.head_dim()
                ),
            });
        }
        Ok(match (&self.kind, &self.noise_rho) {
            (LikelihoodKind::FixedNoise { sigma }, _) => {
                let mean = head.squeeze(D::Minus1)?;
                let scale = Tensor::full(*sigma as f32, mean.shape(), mean.device())?;
                OutputDistribution::Gaussian { mean, scale }
            }
            (LikelihoodKind::Homoscedastic, Some(rho)) => {
                let mean = head.squeeze(D::Minus1)?;
                let s = (softplus(rho.as_tensor())? + SCALE_FLOOR)?;
                let scale = s.broadcast_as(mean.shape())?;
                OutputDistribution::Gaussian { mean, scale }
            }
            (LikelihoodKind::Heteroscedastic, _) => OutputDistribution::Gaussian {
                mean: head.narrow(D::Minus1, 0, 1)?.squeeze(D::Minus1)?,
                scale: (softplus(&head.narrow(D::Minus1, 1, 1)?.squeeze(D::Minus1)?)?
                    + SCALE_FLOOR)?,
            },
            (LikelihoodKind::Categorical { .. }, _) => OutputDistribution::Categorical {
                log_probs: candle_nn::ops::log_softmax(head, D::Minus1)?,
            },
            (LikelihoodKind::Homoscedastic, None) => {
                return Err(Error::Shape {
                    context: "Likelihood".into(),
                    message: "homoscedastic likelihood without its noise parameter".into(),
                })
            }
        })
    }

    /// Mean negative log-likelihood over samples and batch, a scalar tensor.
    /// `head`: `[S, B, head_dim]`; `ys`: `[B, 1]` (every sample scored on
    /// the same targets) or `[S, B, 1]` (sample `s` on its own minibatch's,
    /// see [`crate::model::StochasticModel::minibatch_streams`]).
    pub fn nll(&self, head: &Tensor, ys: &Tensor) -> Result<Tensor> {
        let ys = match ys.rank() {
            3 => ys.squeeze(D::Minus1)?, // [S, B]
            _ => ys.flatten_all()?,      // [B]
        };
        match self.distribution(head)? {
            OutputDistribution::Gaussian { mean, scale } => {
                let z = mean.broadcast_sub(&ys)?.div(&scale)?;
                let per = ((z.sqr()? * 0.5)? + scale.log()?)?;
                Ok((per.mean_all()? + HALF_LN_2PI)?)
            }
            OutputDistribution::Categorical { log_probs } => {
                let (s, b, _) = log_probs.dims3()?;
                let idx = ys
                    .to_dtype(DType::U32)?
                    .broadcast_as((s, b))?
                    .unsqueeze(D::Minus1)?
                    .contiguous()?;
                Ok(log_probs.gather(&idx, D::Minus1)?.mean_all()?.neg()?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gaussian_nll_matches_the_formula() -> Result<()> {
        let dev = Device::Cpu;
        let lik = Likelihood::new(LikelihoodKind::Heteroscedastic, &dev)?;
        // One sample, two examples: means 0.5 and -1, raw scales 0 and 1.
        let head = Tensor::new(&[[[0.5f32, 0.0], [-1.0, 1.0]]], &dev)?;
        let ys = Tensor::new(&[[1.0f32], [0.0]], &dev)?;
        let got = lik.nll(&head, &ys)?.to_scalar::<f32>()? as f64;
        let s = |r: f64| crate::ops::softplus_f64(r) + SCALE_FLOOR;
        let nll = |y: f64, m: f64, s: f64| HALF_LN_2PI + s.ln() + (y - m).powi(2) / (2.0 * s * s);
        let want = 0.5 * (nll(1.0, 0.5, s(0.0)) + nll(0.0, -1.0, s(1.0)));
        assert!((got - want).abs() < 1e-5, "{got} vs {want}");
        Ok(())
    }

    #[test]
    fn categorical_nll_is_minus_log_softmax_of_the_label() -> Result<()> {
        let dev = Device::Cpu;
        let lik = Likelihood::new(LikelihoodKind::Categorical { classes: 3 }, &dev)?;
        let head = Tensor::new(&[[[1.0f32, 2.0, 3.0]]], &dev)?;
        let ys = Tensor::new(&[[2.0f32]], &dev)?;
        let got = lik.nll(&head, &ys)?.to_scalar::<f32>()? as f64;
        let want = -(3f64.exp() / (1f64.exp() + 2f64.exp() + 3f64.exp())).ln();
        assert!((got - want).abs() < 1e-6);
        Ok(())
    }

    #[test]
    fn fixed_noise_nll_uses_the_given_sigma() -> Result<()> {
        let dev = Device::Cpu;
        let lik = Likelihood::new(LikelihoodKind::FixedNoise { sigma: 0.5 }, &dev)?;
        assert!(lik.named_vars().is_empty());
        let head = Tensor::new(&[[[1.0f32]]], &dev)?;
        let got = lik
            .nll(&head, &Tensor::new(&[[0.0f32]], &dev)?)?
            .to_scalar::<f32>()? as f64;
        let want = HALF_LN_2PI + 0.5f64.ln() + 1.0 / (2.0 * 0.25);
        assert!((got - want).abs() < 1e-6, "{got} vs {want}");
        let bad = Likelihood::new(LikelihoodKind::FixedNoise { sigma: 0.0 }, &dev).unwrap_err();
        assert!(bad.to_string().contains("noise sigma"));
        Ok(())
    }

    /// Targets `[S, B, 1]` score sample `s` on row `s`'s targets: the mean
    /// of the per-sample NLLs, for both the Gaussian and the categorical head.
    #[test]
    fn per_sample_targets_score_each_sample_on_its_own() -> Result<()> {
        let dev = Device::Cpu;
        let cases = [
            (
                LikelihoodKind::Heteroscedastic,
                Tensor::new(
                    &[[[0.5f32, 0.0], [-1.0, 1.0]], [[2.0, -1.0], [0.0, 0.5]]],
                    &dev,
                )?,
                Tensor::new(&[[[1.0f32], [0.0]], [[1.5], [-2.0]]], &dev)?,
            ),
            (
                LikelihoodKind::Categorical { classes: 3 },
                Tensor::new(
                    &[
                        [[1.0f32, 2.0, 3.0], [0.0, 1.0, 0.0]],
                        [[3.0, 1.0, 0.0], [0.5, 0.5, 2.0]],
                    ],
                    &dev,
                )?,
                Tensor::new(&[[[2.0f32], [1.0]], [[0.0], [0.0]]], &dev)?,
            ),
        ];
        for (kind, head, ys) in cases {
            let lik = Likelihood::new(kind, &dev)?;
            let got = lik.nll(&head, &ys)?.to_scalar::<f32>()?;
            let one = |s: usize| -> Result<f32> {
                let (h, y) = (head.get(s)?.unsqueeze(0)?, ys.get(s)?);
                Ok(lik.nll(&h, &y)?.to_scalar::<f32>()?)
            };
            let want = (one(0)? + one(1)?) / 2.0;
            assert!((got - want).abs() < 1e-6, "{kind:?}: {got} vs {want}");
            // Not what the first sample's targets for both would give.
            let shared = lik.nll(&head, &ys.get(0)?)?.to_scalar::<f32>()?;
            assert!((shared - want).abs() > 1e-2, "{kind:?}: {shared} vs {want}");
        }
        Ok(())
    }

    #[test]
    fn a_set_noise_std_reads_back_and_stays_above_the_floor() -> Result<()> {
        let lik = Likelihood::new(LikelihoodKind::Homoscedastic, &Device::Cpu)?;
        for (set, want) in [(0.37, 0.37), (2.5, 2.5), (SCALE_FLOOR / 2.0, SCALE_FLOOR)] {
            lik.set_noise_std(set)?;
            let got = lik.noise_std()?.unwrap_or(f64::NAN);
            // rho is f32: 1e-6 relative, plus the 1e-12 kept above the floor.
            assert!(
                (got - want).abs() <= 1e-6 * want,
                "set {set}: {got} vs {want}"
            );
        }
        for bad in [f64::NAN, -1.0, f64::INFINITY] {
            let e = lik.set_noise_std(bad).err().map(|e| e.to_string());
            assert!(e.is_some_and(|e| e.contains("noise std")), "{bad}");
        }
        let fixed = Likelihood::new(LikelihoodKind::FixedNoise { sigma: 0.5 }, &Device::Cpu)?;
        let e = fixed.set_noise_std(0.1).err().map(|e| e.to_string());
        assert!(
            e.is_some_and(|e| e.contains("homoscedastic")),
            "fixed noise"
        );
        assert_eq!(fixed.noise_std()?, Some(0.5));
        Ok(())
    }

    #[test]
    fn one_class_is_rejected() {
        let e =
            Likelihood::new(LikelihoodKind::Categorical { classes: 1 }, &Device::Cpu).unwrap_err();
        assert!(e.to_string().contains("classes"));
    }
}
