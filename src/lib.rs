//! # candle-bnn
//!
//! Bayesian neural networks on [candle](https://github.com/huggingface/candle):
//! train them, get calibrated predictive intervals, and study how the prior
//! over weights and the initializer are one object.
//!
//! ## The six ideas, and where they live
//!
//! 1. **A factored Gaussian posterior per weight** ([`posterior`]; Blundell et
//!    al. 2015). `q(w) = N(mu, sigma²)`, `sigma = softplus(rho)`, sampled with
//!    the reparameterization trick `w = mu + sigma ⊙ eps`; [`layers::BayesLinear`]
//!    also samples pre-activations directly (local reparameterization, Kingma
//!    et al. 2015) or with sign-flipped shared noise (Flipout, Wen et al. 2018).
//! 2. **The prior is the initializer** ([`prior`]). `mu` starts as a draw from
//!    the prior: He (`sigma_p² = 2/fan_in`), Glorot (`2/(fan_in+fan_out)`) and
//!    LeCun (`1/fan_in`) *are* Gaussian priors with fan-dependent scale; a
//!    fixed `N(0, 1)` is the fixed-sigma case. There is no separate init setting.
//! 3. **The KL is L2 decay plus a variance part** ([`posterior::KlTerms`],
//!    [`elbo`]). For `p = N(m, sigma_p²)`:
//!    ```text
//!    KL(q || p) = Σ (mu - m)² / (2 sigma_p²)  +  Σ [ ln(sigma_p/sigma) + sigma²/(2 sigma_p²) - ½ ]
//!                 └──── kl_l2: L2 decay ────┘    └──────────────── kl_rest ─────────────────┘
//!    loss = mean_i[-ln p(y_i | x_i, w)] / T + beta · KL / N
//!    ```
//!    so the per-example loss decays the means with `lambda = 1/(2 sigma_p² N)`
//!    ([`elbo::gaussian_prior_weight_decay`]).
//! 4. **MC dropout** (Gal & Ghahramani 2016) is the second model family
//!    ([`mc_dropout::McDropoutMlp`]): dropout kept on at prediction, its KL
//!    reduced to L2 with `lambda = l²(1-p)/(2N tau)`
//!    ([`elbo::mc_dropout_weight_decay`]). It implements
//!    [`model::StochasticModel`], the trait that training ([`train::fit`]) and
//!    prediction ([`predictive::predict`]) are written against, as do deep
//!    ensembles ([`ensemble::DeepEnsemble`]). [`uci`] runs all three on the
//!    published UCI regression splits.
//! 5. **Predictions are distributions** ([`predictive`]). `T` posterior samples,
//!    evaluated in one batched pass, form a Gaussian mixture per input with
//!    ```text
//!    mean = mean_t mu_t,   variance = mean_t sigma_t² (aleatoric) + var_t mu_t (epistemic)
//!    quantiles by bisection on F(y) = mean_t Φ((y - mu_t)/sigma_t),  ln p(y) = log-mean-exp_t ln N(y; mu_t, sigma_t²)
//!    ```
//! 6. **Calibration is measured, and fixed when off** ([`metrics`],
//!    [`calibrate`]): RMSE, NLL, CRPS, interval coverage (PICP) and width
//!    (MPIW), the calibration curve and its error; ECE, Brier and mutual
//!    information for classifiers ([`classifier`]); recalibration by variance
//!    scaling, isotonic regression of PIT values, split conformal intervals and
//!    temperature scaling, carried by a saved model.
//!
//! ## Example
//!
//! ```
//! use candle_bnn::data::toy_gap;
//! use candle_bnn::metrics::RegressionReport;
//! use candle_bnn::model::BayesMlpConfig;
//! use candle_bnn::prior::Prior;
//! use candle_bnn::regressor::BayesRegressor;
//! use candle_bnn::train::TrainConfig;
//! use candle_core::Device;
//!
//! # fn main() -> candle_bnn::Result<()> {
//! let data = toy_gap(200, 0.2, 0)?; // y = sin(2x) + x/2 + noise, no x in (-1, 1)
//! let config = BayesMlpConfig { prior: Prior::He, ..BayesMlpConfig::new(1, &[32]) };
//! let train = TrainConfig { epochs: 20, progress: false, ..TrainConfig::default() };
//! let model = BayesRegressor::fit(&data, config, &train, &Device::Cpu)?;
//!
//! let fresh = toy_gap(100, 0.2, 1)?;
//! let predictive = model.predict(&fresh.x, 100)?; // 100 posterior samples, one batched pass
//! let interval = predictive.interval(0.9)?;
//! assert!(interval.lower[0] < predictive.mean()[0] && predictive.mean()[0] < interval.upper[0]);
//! let report = RegressionReport::new(&predictive, &fresh.y)?;
//! assert!(report.rmse.is_finite() && (0.0..=1.0).contains(&report.picp90));
//! let kl = model.report().last().map(|e| e.terms).expect("trained one epoch at least");
//! assert!((kl.kl - (kl.kl_l2 + kl.kl_rest)).abs() < 1e-3 * kl.kl.abs().max(1.0));
//! # Ok(())
//! # }
//! ```
//!
//! ## Conventions
//! Every tensor-producing function takes its [`candle_core::Device`]; all
//! randomness flows from explicit seeds through [`noise::NoiseSource`] (same
//! seed, same machine, same numbers); parameters are f32, summaries f64;
//! errors are [`Error`] values that name the parameter, file, line or column.
//!
//! ## Speed on CPU
//! Call [`tuning::tune_process`] first in `main` (the `bnn` binary does): it
//! keeps freed tensor memory for reuse and keeps candle's elementwise thread
//! pool from fighting its matmul pool. On 2 cores that is worth up to 30× on
//! training and 3× on prediction (docs/performance.md).
#![warn(missing_docs)]

pub mod adam;
pub mod bench;
mod bias_relu;
pub mod calibrate;
pub mod checkpoint;
pub mod classifier;
pub mod data;
pub mod early_stopping;
pub mod elbo;
pub mod ensemble;
pub mod error;
pub mod figures;
mod fused;
mod fused_sample;
pub mod grid_search;
pub mod layers;
pub mod likelihood;
pub mod mc_dropout;
pub mod metrics;
pub mod model;
pub mod network;
pub mod noise;
pub mod noise_fit;
pub mod ops;
pub mod posterior;
pub mod predictive;
pub mod prior;
pub mod regressor;
mod row_sum;
pub mod studies;
pub mod train;
pub mod tuning;
pub mod uci;

pub use error::{Error, Result};

/// The README's code runs as a doctest, so it cannot drift from the API.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
pub use classifier::BayesClassifier;
pub use ensemble::DeepEnsemble;
pub use layers::{Activation, BayesLinear, Estimator};
pub use mc_dropout::{McDropoutConfig, McDropoutInit, McDropoutMlp};
pub use model::{BayesMlp, BayesMlpConfig, StochasticModel};
pub use network::{Network, NetworkSpec};
pub use noise_fit::NoiseFit;
pub use predictive::{predict, GaussianMixture, PredictiveDistribution};
pub use prior::Prior;
pub use regressor::BayesRegressor;
pub use train::{fit, TrainConfig};
