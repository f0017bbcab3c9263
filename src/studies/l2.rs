//! The KL term as weight decay, checked two ways.
//!
//! 1. **Gradient.** For a Gaussian prior `N(0, sigma_p²)`, autodiff of the
//!    closed-form `KL(q || p)` with respect to every mean must give
//!
//!    ```text
//!    dKL / dmu = mu / sigma_p²
//!    ```
//!
//! 2. **Trajectory.** MAP training with the prior,
//!    `L_MAP(w) = mean_i nll_i(w) - ln p(w) / N`, and plain training with
//!    L2 decay, `L_L2(w) = mean_i nll_i(w) + lambda Σ w²` with
//!    `lambda = 1 / (2 sigma_p² N)` ([`crate::elbo::gaussian_prior_weight_decay`]),
//!    have equal gradients, so from the same init and data, SGD follows the
//!    same path; they may differ only by float rounding.

use candle_core::{Device, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use serde::{Deserialize, Serialize};

use crate::elbo::gaussian_prior_weight_decay;
use crate::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use crate::noise::NoiseSource;
use crate::prior::Prior;
use crate::{Error, Result};

/// Settings of the study.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct L2StudyConfig {
    /// Prior standard deviation `sigma_p`.
    pub prior_sigma: f64,
    /// Number of synthetic training rows `N`.
    pub n_data: usize,
    /// SGD steps of each trajectory (full batch).
    pub steps: usize,
    /// SGD learning rate.
    pub lr: f64,
    /// Seed of the data and the shared initialization.
    pub seed: u64,
}

impl Default for L2StudyConfig {
    fn default() -> Self {
        Self {
            prior_sigma: 0.7,
            n_data: 100,
            steps: 200,
            lr: 0.05,
            seed: 0,
        }
    }
}

/// What the study measured (the fields of `bnn study l2 --json`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct L2StudyResult {
    /// Max over all means of `|dKL/dmu - mu / sigma_p²|`.
    pub kl_grad_max_abs_diff: f64,
    /// Max parameter difference after `steps` between the MAP and L2 runs.
    pub map_vs_l2_max_abs_diff: f64,
    /// Largest parameter change of either run, for scale: the runs moved.
    pub max_param_change: f64,
    /// `lambda = 1 / (2 sigma_p² N)`.
    pub weight_decay: f64,
    /// `sigma_p`.
    pub prior_sigma: f64,
    /// `N`.
    pub n_data: usize,
    /// SGD steps taken.
    pub steps: usize,
}

const INPUT_DIM: usize = 4;
const HIDDEN: usize = 16;

fn network(config: &L2StudyConfig) -> Result<BayesMlp> {
    let prior = Prior::gaussian(config.prior_sigma)?;
    BayesMlp::new(
        BayesMlpConfig {
            prior,
            ..BayesMlpConfig::new(INPUT_DIM, &[HIDDEN])
        },
        config.seed,
        &Device::Cpu,
    )
}

fn mean_vars(model: &BayesMlp) -> Vec<Var> {
    model
        .named_vars()
        .into_iter()
        .filter(|(name, _)| name.ends_with(".mu"))
        .map(|(_, v)| v)
        .collect()
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok((a - b)?.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64)
}

/// Runs both checks.
pub fn run(config: &L2StudyConfig) -> Result<L2StudyResult> {
    if config.steps == 0 {
        return Err(Error::invalid("steps", 0, "at least 1"));
    }
    let weight_decay = gaussian_prior_weight_decay(config.prior_sigma, config.n_data)?;
    let sp2 = config.prior_sigma * config.prior_sigma;

    // 1. Autodiff of the KL against mu / sigma_p².
    let model = network(config)?;
    let grads = model.kl()?.total()?.backward()?;
    let mut kl_grad_max_abs_diff: f64 = 0.0;
    for mu in mean_vars(&model) {
        let g = grads.get(&mu).ok_or_else(|| Error::Shape {
            context: "l2 study".into(),
            message: "the KL has no gradient with respect to a mean".into(),
        })?;
        kl_grad_max_abs_diff = kl_grad_max_abs_diff.max(max_abs_diff(g, &(mu.as_tensor() / sp2)?)?);
    }

    // 2. MAP with the prior vs L2 decay: same init (same seed), same data.
    let noise = NoiseSource::new(config.seed.wrapping_add(1));
    let xs = noise.standard_normal((config.n_data, INPUT_DIM), &Device::Cpu)?;
    let ys = (xs.sin()?.sum_keepdim(1)?
        + (noise.standard_normal((config.n_data, 1), &Device::Cpu)? * 0.1)?)?;
    let n = config.n_data as f64;
    let trajectory =
        |penalty: &dyn Fn(&BayesMlp) -> Result<Tensor>| -> Result<(Vec<Tensor>, Vec<Tensor>)> {
            let model = network(config)?;
            let vars = mean_vars(&model);
            let init: Vec<Tensor> = vars
                .iter()
                .map(|v| v.as_tensor().copy())
                .collect::<candle_core::Result<_>>()?;
            let mut sgd = SGD::new(vars.clone(), config.lr)?;
            for _ in 0..config.steps {
                let residual = (model.forward_mean(&xs)? - &ys)?;
                let nll = (residual.sqr()?.mean_all()? * 0.5)?;
                sgd.backward_step(&(nll + penalty(&model)?)?)?;
            }
            Ok((init, vars.iter().map(|v| v.as_tensor().clone()).collect()))
        };
    let neg_log_prior = |m: &BayesMlp| -> Result<Tensor> {
        let mut total = Tensor::new(0f32, &Device::Cpu)?;
        for layer in m.layers() {
            for post in [layer.weight(), layer.bias()] {
                total = (total - layer.prior().log_prob(post.mu().as_tensor())?)?;
            }
        }
        Ok((total / n)?)
    };
    let l2_decay = |m: &BayesMlp| -> Result<Tensor> {
        let mut total = Tensor::new(0f32, &Device::Cpu)?;
        for mu in mean_vars(m) {
            total = (total + mu.as_tensor().sqr()?.sum_all()?)?;
        }
        Ok((total * weight_decay)?)
    };
    let (init, map) = trajectory(&neg_log_prior)?;
    let (_, l2) = trajectory(&l2_decay)?;
    let mut map_vs_l2_max_abs_diff: f64 = 0.0;
    let mut max_param_change: f64 = 0.0;
    for ((a, b), w0) in map.iter().zip(&l2).zip(&init) {
        map_vs_l2_max_abs_diff = map_vs_l2_max_abs_diff.max(max_abs_diff(a, b)?);
        max_param_change = max_param_change.max(max_abs_diff(a, w0)?);
    }
    Ok(L2StudyResult {
        kl_grad_max_abs_diff,
        map_vs_l2_max_abs_diff,
        max_param_change,
        weight_decay,
        prior_sigma: config.prior_sigma,
        n_data: config.n_data,
        steps: config.steps,
    })
}
