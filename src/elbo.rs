//! The evidence lower bound as a per-example loss, with its KL split.
//!
//! ```text
//! loss = (1/T) · mean_i[ -ln p(y_i | x_i, w) ]  +  beta · KL(q || p) / N
//!      = nll / T + beta · (kl_l2 + kl_rest) / N
//! ```
//!
//! `N` is the training-set size (the KL is paid once per dataset, the NLL once
//! per example, hence the division), `beta` comes from a [`KlSchedule`]
//! (1 is the true ELBO; warm-up starts near 0), and `T` is the likelihood
//! temperature: `p(y | w)^(1/T)`, so `T < 1` sharpens the likelihood against
//! the prior (a cold posterior, Wenzel et al. 2020) and `T = 1` is Bayes.
//!
//! With a Gaussian prior, `kl_l2 / N = Σ (mu - m)² / (2 sigma_p² N)`: exactly
//! L2 weight decay with coefficient [`gaussian_prior_weight_decay`].

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::posterior::KlTerms;
use crate::{Error, Result};

/// The L2 coefficient `lambda` that a Gaussian prior `N(m, sigma_p²)` puts on
/// the means in the per-example loss: the ELBO's `kl_l2 / N` equals
/// `lambda · Σ (mu - m)²` with
///
/// ```text
/// lambda = 1 / (2 sigma_p² N)
/// ```
pub fn gaussian_prior_weight_decay(sigma_p: f64, n_data: usize) -> Result<f64> {
    if !(sigma_p.is_finite() && sigma_p > 0.0) {
        return Err(Error::invalid(
            "prior sigma",
            sigma_p,
            "a finite number > 0",
        ));
    }
    if n_data == 0 {
        return Err(Error::invalid(
            "n_data",
            0,
            "the training-set size, at least 1",
        ));
    }
    Ok(1.0 / (2.0 * sigma_p * sigma_p * n_data as f64))
}

/// The L1 coefficient that a Laplace prior `p(w) = exp(-|w|/b) / (2b)` puts
/// on the weights of a MAP fit in the per-example loss: `-ln p(w) / N` equals
/// `lambda_1 · Σ |w|` plus a constant, with
///
/// ```text
/// lambda_1 = 1 / (b N)
/// ```
///
/// (Tibshirani 1996: the lasso estimate is the posterior mode under a Laplace prior).
pub fn laplace_prior_l1_decay(b: f64, n_data: usize) -> Result<f64> {
    if !(b.is_finite() && b > 0.0) {
        return Err(Error::invalid("prior b", b, "a finite number > 0"));
    }
    if n_data == 0 {
        return Err(Error::invalid(
            "n_data",
            0,
            "the training-set size, at least 1",
        ));
    }
    Ok(1.0 / (b * n_data as f64))
}

/// The weight decay of MC dropout (Gal & Ghahramani 2016, eq. 7 and the UCI
/// experiments): with prior length-scale `l`, dropout rate `p`, model
/// precision `tau` and `N` training rows,
///
/// ```text
/// lambda = l² (1 - p) / (2 N tau)
/// ```
///
/// is the L2 coefficient on the weights when the loss is written as
/// `MSE/2 + lambda Σ ||W||²`, i.e. the MC-dropout ELBO
/// ([`crate::mc_dropout`]) divided by `tau`.
pub fn mc_dropout_weight_decay(length_scale: f64, p: f64, n_data: usize, tau: f64) -> Result<f64> {
    if !(length_scale.is_finite() && length_scale >= 0.0) {
        return Err(Error::invalid(
            "length_scale",
            length_scale,
            "a finite number >= 0",
        ));
    }
    if !(0.0..1.0).contains(&p) {
        return Err(Error::invalid("dropout", p, "a rate in [0, 1)"));
    }
    if !(tau.is_finite() && tau > 0.0) {
        return Err(Error::invalid("tau", tau, "a finite precision > 0"));
    }
    if n_data == 0 {
        return Err(Error::invalid(
            "n_data",
            0,
            "the training-set size, at least 1",
        ));
    }
    Ok(length_scale * length_scale * (1.0 - p) / (2.0 * n_data as f64 * tau))
}

/// How the KL weight `beta` evolves over training.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum KlSchedule {
    /// A fixed `beta` (1 = the ELBO).
    Constant {
        /// The weight, ≥ 0.
        beta: f64,
    },
    /// `beta = min(1, e / epochs)` after `e` (fractional) epochs: the KL is
    /// phased in so that the means fit the data before the prior pulls.
    LinearWarmup {
        /// Epochs until `beta` reaches 1, > 0.
        epochs: f64,
    },
}

impl Default for KlSchedule {
    fn default() -> Self {
        KlSchedule::Constant { beta: 1.0 }
    }
}

impl KlSchedule {
    /// `beta` after `epochs_done` (fractional) epochs.
    pub fn beta(&self, epochs_done: f64) -> f64 {
        match *self {
            KlSchedule::Constant { beta } => beta,
            KlSchedule::LinearWarmup { epochs } => (epochs_done / epochs).clamp(0.0, 1.0),
        }
    }

    pub(crate) fn validate(&self) -> Result<()> {
        match *self {
            KlSchedule::Constant { beta } if !(beta.is_finite() && beta >= 0.0) => {
                Err(Error::invalid("kl_beta", beta, "a finite number >= 0"))
            }
            KlSchedule::LinearWarmup { epochs } if !(epochs.is_finite() && epochs > 0.0) => {
                Err(Error::invalid("kl warm-up epochs", epochs, "a number > 0"))
            }
            _ => Ok(()),
        }
    }
}

/// The terms of one ELBO evaluation (scalar tensors; `loss` carries the graph).
#[derive(Debug, Clone)]
pub struct ElboTerms {
    /// `nll / T + beta · kl / N`: what the optimizer minimizes.
    pub loss: Tensor,
    /// Mean negative log-likelihood per example.
    pub nll: Tensor,
    /// `KL(q || p)` for the whole network (not divided by N).
    pub kl: Tensor,
    /// Its L2 weight-decay part.
    pub kl_l2: Tensor,
    /// Its remaining (variance, or Monte Carlo) part.
    pub kl_rest: Tensor,
    /// The KL weight used.
    pub beta: f64,
}

/// [`ElboTerms`] read out as numbers.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ElboValues {
    /// The loss.
    pub loss: f64,
    /// Mean NLL per example.
    pub nll: f64,
    /// Total KL.
    pub kl: f64,
    /// L2 part of the KL.
    pub kl_l2: f64,
    /// Rest of the KL.
    pub kl_rest: f64,
}

impl ElboTerms {
    /// The terms as f64 numbers.
    pub fn values(&self) -> Result<ElboValues> {
        let v = |t: &Tensor| -> Result<f64> {
            Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
        };
        Ok(ElboValues {
            loss: v(&self.loss)?,
            nll: v(&self.nll)?,
            kl: v(&self.kl)?,
            kl_l2: v(&self.kl_l2)?,
            kl_rest: v(&self.kl_rest)?,
        })
    }
}

/// The ELBO of a dataset of `n_data` examples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Elbo {
    n_data: usize,
    schedule: KlSchedule,
    temperature: f64,
}

impl Elbo {
    /// The plain ELBO (`beta = 1`, `T = 1`) for a training set of `n_data` rows.
    pub fn new(n_data: usize) -> Result<Self> {
        if n_data == 0 {
            return Err(Error::invalid(
                "n_data",
                0,
                "the training-set size, at least 1",
            ));
        }
        Ok(Self {
            n_data,
            schedule: KlSchedule::default(),
            temperature: 1.0,
        })
    }

    /// With a KL schedule.
    pub fn with_schedule(mut self, schedule: KlSchedule) -> Result<Self> {
        schedule.validate()?;
        self.schedule = schedule;
        Ok(self)
    }

    /// With a likelihood temperature `T > 0`.
    pub fn with_temperature(mut self, temperature: f64) -> Result<Self> {
        if !(temperature.is_finite() && temperature > 0.0) {
            return Err(Error::invalid(
                "temperature",
                temperature,
                "a finite number > 0",
            ));
        }
        self.temperature = temperature;
        Ok(self)
    }

    /// Training-set size `N`.
    pub fn n_data(&self) -> usize {
        self.n_data
    }

    /// The KL schedule.
    pub fn schedule(&self) -> KlSchedule {
        self.schedule
    }

    /// Combines a mean NLL and a KL split into the loss, `epochs_done`
    /// (fractional) epochs into training.
    pub fn terms(&self, nll: &Tensor, kl: &KlTerms, epochs_done: f64) -> Result<ElboTerms> {
        let beta = self.schedule.beta(epochs_done);
        let total = kl.total()?;
        let loss = ((nll / self.temperature)? + (&total * (beta / self.n_data as f64))?)?;
        Ok(ElboTerms {
            loss,
            nll: nll.clone(),
            kl: total,
            kl_l2: kl.l2.clone(),
            kl_rest: kl.rest.clone(),
            beta,
        })
    }
}
