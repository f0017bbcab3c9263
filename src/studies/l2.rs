//! The KL term (or the prior) as weight decay, checked four ways.
//!
//! 1. **Gaussian gradient.** For a Gaussian prior `N(0, sigma_p²)`, autodiff
//!    of the closed-form `KL(q || p)` with respect to every mean must give
//!
//!    ```text
//!    dKL / dmu = mu / sigma_p²
//!    ```
//!
//! 2. **Gaussian trajectory.** MAP training with the prior,
//!    `L_MAP(w) = mean_i nll_i(w) - ln p(w) / N`, and plain training with
//!    L2 decay, `L_L2(w) = mean_i nll_i(w) + lambda Σ w²` with
//!    `lambda = 1 / (2 sigma_p² N)` ([`crate::elbo::gaussian_prior_weight_decay`]),
//!    have equal gradients, so from the same init and data, SGD follows the
//!    same path; they may differ only by float rounding.
//!
//! 3. **Laplace trajectory.** The same with a Laplace prior
//!    `p(w) = exp(-|w|/b) / (2b)` and L1 decay: `-ln p(w) / N = Σ|w| / (bN) + const`,
//!    so MAP equals `mean_i nll_i(w) + lambda_1 Σ |w|` with
//!    `lambda_1 = 1 / (bN)` ([`crate::elbo::laplace_prior_l1_decay`]; the lasso
//!    as a posterior mode, Tibshirani 1996).
//!
//! 4. **MC dropout** (Gal & Ghahramani 2016, §4 and appendix). The KL of the
//!    dropout approximation to a prior of length-scale `l`, divided by `N tau`,
//!    is L2 decay with
//!
//!    ```text
//!    lambda = l² (1 - p) / (2 N tau)    on the weights,   l² / (2 N tau) on the biases
//!    d(KL / (N tau)) / dW = 2 lambda W
//!    (nll + KL / N) / tau = MSE/2 + lambda Σ ||W||² + lambda_b Σ ||b||² + const
//!    ```
//!
//!    ([`crate::elbo::mc_dropout_weight_decay`]): checked by autodiff of the
//!    model's KL, and of its whole ELBO (the [`crate::elbo::Elbo`] loss, one
//!    fixed dropout mask) against the MSE + L2 objective.

use candle_core::{Device, Tensor, Var};
use candle_nn::{Optimizer, SGD};
use serde::{Deserialize, Serialize};

use crate::elbo::{
    gaussian_prior_weight_decay, laplace_prior_l1_decay, mc_dropout_weight_decay, Elbo,
};
use crate::likelihood::LikelihoodKind;
use crate::mc_dropout::{McDropoutConfig, McDropoutMlp};
use crate::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use crate::noise::NoiseSource;
use crate::prior::Prior;
use crate::{Error, Result};

/// Settings of the study.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct L2StudyConfig {
    /// Gaussian prior standard deviation `sigma_p`.
    pub prior_sigma: f64,
    /// Laplace prior scale `b`.
    pub laplace_b: f64,
    /// MC dropout's prior length-scale `l`.
    pub length_scale: f64,
    /// MC dropout's rate `p`.
    pub dropout: f64,
    /// MC dropout's model precision `tau`.
    pub tau: f64,
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
            laplace_b: 0.5,
            length_scale: 1.0,
            dropout: 0.1,
            tau: 3.0,
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
    /// Laplace scale `b`.
    pub laplace_b: f64,
    /// `lambda_1 = 1 / (b N)`.
    pub l1_decay: f64,
    /// Max parameter difference after `steps` between the Laplace-MAP and L1 runs.
    pub map_laplace_vs_l1_max_abs_diff: f64,
    /// Largest parameter change of the Laplace-MAP run, for scale.
    pub laplace_max_param_change: f64,
    /// MC dropout's `lambda = l² (1 - p) / (2 N tau)` on the weights.
    pub mc_dropout_weight_decay: f64,
    /// MC dropout's `l² / (2 N tau)` on the biases.
    pub mc_dropout_bias_decay: f64,
    /// Max over all weights and biases of `|d(KL/(N tau))/dW - 2 lambda W|`.
    pub mc_dropout_kl_grad_max_abs_diff: f64,
    /// Max gradient difference between the MC-dropout ELBO over `tau` and
    /// `MSE/2 + lambda Σ||W||² + lambda_b Σ||b||²`, on the same dropout mask.
    pub mc_dropout_objective_grad_max_abs_diff: f64,
    /// Largest gradient entry of that objective, for scale.
    pub mc_dropout_max_grad: f64,
    /// `l`, `p` and `tau` of the MC-dropout check.
    pub length_scale: f64,
    /// Dropout rate `p`.
    pub dropout: f64,
    /// Model precision `tau`.
    pub tau: f64,
}

const INPUT_DIM: usize = 4;
const HIDDEN: usize = 16;

fn network(prior: Prior, seed: u64, device: &Device) -> Result<BayesMlp> {
    BayesMlp::new(
        BayesMlpConfig {
            prior,
            ..BayesMlpConfig::new(INPUT_DIM, &[HIDDEN])
        },
        seed,
        device,
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

fn max_abs(t: &Tensor) -> Result<f64> {
    Ok(t.abs()?.flatten_all()?.max(0)?.to_scalar::<f32>()? as f64)
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> Result<f64> {
    max_abs(&(a - b)?)
}

fn missing_gradient(name: &str) -> Error {
    Error::Shape {
        context: "l2 study".into(),
        message: format!("the objective has no gradient with respect to {name}"),
    }
}

/// How far two SGD runs ended apart, and how far they moved.
struct Agreement {
    max_abs_diff: f64,
    max_param_change: f64,
}

/// The penalty a decay run adds to the data term: `coefficient · Σ f(w)`.
#[derive(Clone, Copy)]
enum Decay {
    /// `Σ w²`.
    L2,
    /// `Σ |w|`.
    L1,
}

/// Full-batch SGD on the means from `prior`'s initialization, minimizing
/// `MSE/2 + penalty`: once with the MAP penalty `-Σ ln p(mu) / N`, once with
/// `coefficient · Σ f(mu)`; how far apart the two end.
fn map_vs_decay(
    config: &L2StudyConfig,
    prior: Prior,
    (decay, coefficient): (Decay, f64),
    (xs, ys): (&Tensor, &Tensor),
    device: &Device,
) -> Result<Agreement> {
    let n = config.n_data as f64;
    let trajectory =
        |penalty: &dyn Fn(&BayesMlp) -> Result<Tensor>| -> Result<Vec<(Tensor, Tensor)>> {
            let model = network(prior, config.seed, device)?;
            let vars = mean_vars(&model);
            let init: Vec<Tensor> = vars
                .iter()
                .map(|v| v.as_tensor().copy())
                .collect::<candle_core::Result<_>>()?;
            let mut sgd = SGD::new(vars.clone(), config.lr)?;
            for _ in 0..config.steps {
                let residual = (model.forward_mean(xs)? - ys)?;
                let nll = (residual.sqr()?.mean_all()? * 0.5)?;
                sgd.backward_step(&(nll + penalty(&model)?)?)?;
            }
            Ok(init
                .into_iter()
                .zip(vars.iter().map(|v| v.as_tensor().clone()))
                .collect())
        };
    let neg_log_prior = |m: &BayesMlp| -> Result<Tensor> {
        let mut total = Tensor::new(0f32, device)?;
        for layer in m.layers() {
            for post in [layer.weight(), layer.bias()] {
                total = (total - layer.prior().log_prob(post.mu().as_tensor())?)?;
            }
        }
        Ok((total / n)?)
    };
    let decay_penalty = |m: &BayesMlp| -> Result<Tensor> {
        let mut total = Tensor::new(0f32, device)?;
        for mu in mean_vars(m) {
            let t = mu.as_tensor();
            let f = match decay {
                Decay::L2 => t.sqr()?,
                Decay::L1 => t.abs()?,
            };
            total = (total + f.sum_all()?)?;
        }
        Ok((total * coefficient)?)
    };
    let map = trajectory(&neg_log_prior)?;
    let decayed = trajectory(&decay_penalty)?;
    let mut agreement = Agreement {
        max_abs_diff: 0.0,
        max_param_change: 0.0,
    };
    for ((w0, a), (_, b)) in map.iter().zip(&decayed) {
        agreement.max_abs_diff = agreement.max_abs_diff.max(max_abs_diff(a, b)?);
        agreement.max_param_change = agreement.max_param_change.max(max_abs_diff(a, w0)?);
    }
    Ok(agreement)
}

/// The MC-dropout checks: `(kl_grad_max_abs_diff, objective_grad_max_abs_diff,
/// max_grad)`, with `lambda` on weights and `lambda_b` on biases.
fn mc_dropout_checks(
    config: &L2StudyConfig,
    (lambda, lambda_b): (f64, f64),
    (xs, ys): (&Tensor, &Tensor),
    device: &Device,
) -> Result<(f64, f64, f64)> {
    let tau = config.tau;
    let model = McDropoutMlp::new(
        McDropoutConfig {
            dropout: config.dropout,
            length_scale: config.length_scale,
            likelihood: LikelihoodKind::FixedNoise {
                sigma: 1.0 / tau.sqrt(),
            },
            ..McDropoutConfig::new(INPUT_DIM, &[HIDDEN])
        },
        config.seed,
        device,
    )?;
    let params: Vec<(String, Var, f64)> = model
        .named_vars()
        .into_iter()
        .filter_map(|(name, v)| {
            let decay = if name.ends_with(".weight") {
                lambda
            } else if name.ends_with(".bias") {
                lambda_b
            } else {
                return None;
            };
            Some((name, v, decay))
        })
        .collect();
    let l2_form = |decayed: &Tensor| -> Result<Tensor> {
        let mut total = decayed.clone();
        for (_, v, decay) in &params {
            total = (total + (v.as_tensor().sqr()?.sum_all()? * *decay)?)?;
        }
        Ok(total)
    };
    let n = config.n_data as f64;

    // d(KL / (N tau)) / dW against the closed form 2 lambda W.
    let grads = (model.kl()?.total()? / (n * tau))?.backward()?;
    let mut kl_diff: f64 = 0.0;
    for (name, v, decay) in &params {
        let g = grads.get(v).ok_or_else(|| missing_gradient(name))?;
        kl_diff = kl_diff.max(max_abs_diff(g, &(v.as_tensor() * (2.0 * decay))?)?);
    }

    // The whole ELBO over tau against MSE/2 + L2, on one dropout mask.
    let masks = model.draw_masks(1, config.n_data)?;
    let head = model.forward_with_masks(&xs.unsqueeze(0)?, &masks)?;
    let nll = model.likelihood().nll(&head, ys)?;
    let elbo = Elbo::new(config.n_data)?.terms(&nll, &model.kl()?, 0.0)?;
    let elbo_grads = (elbo.loss / tau)?.backward()?;
    let mse_half = ((head.squeeze(0)? - ys)?.sqr()?.mean_all()? * 0.5)?;
    let l2_grads = l2_form(&mse_half)?.backward()?;
    let (mut objective_diff, mut max_grad): (f64, f64) = (0.0, 0.0);
    for (name, v, _) in &params {
        let a = elbo_grads.get(v).ok_or_else(|| missing_gradient(name))?;
        let b = l2_grads.get(v).ok_or_else(|| missing_gradient(name))?;
        objective_diff = objective_diff.max(max_abs_diff(a, b)?);
        max_grad = max_grad.max(max_abs(a)?);
    }
    Ok((kl_diff, objective_diff, max_grad))
}

/// Runs all four checks on `device`.
pub fn run(config: &L2StudyConfig, device: &Device) -> Result<L2StudyResult> {
    if config.steps == 0 {
        return Err(Error::invalid("steps", 0, "at least 1"));
    }
    let weight_decay = gaussian_prior_weight_decay(config.prior_sigma, config.n_data)?;
    let l1_decay = laplace_prior_l1_decay(config.laplace_b, config.n_data)?;
    let mc_lambda = mc_dropout_weight_decay(
        config.length_scale,
        config.dropout,
        config.n_data,
        config.tau,
    )?;
    let mc_lambda_b = mc_dropout_weight_decay(config.length_scale, 0.0, config.n_data, config.tau)?;
    let sp2 = config.prior_sigma * config.prior_sigma;
    let gaussian = Prior::gaussian(config.prior_sigma)?;
    let laplace = Prior::Laplace {
        b: config.laplace_b,
    };
    laplace.validate()?;

    // 1. Autodiff of the KL against mu / sigma_p².
    let model = network(gaussian, config.seed, device)?;
    let grads = model.kl()?.total()?.backward()?;
    let mut kl_grad_max_abs_diff: f64 = 0.0;
    for mu in mean_vars(&model) {
        let g = grads.get(&mu).ok_or_else(|| missing_gradient("a mean"))?;
        kl_grad_max_abs_diff = kl_grad_max_abs_diff.max(max_abs_diff(g, &(mu.as_tensor() / sp2)?)?);
    }

    // 2-3. MAP with the prior vs decay: same init (same seed), same data.
    let noise = NoiseSource::new(config.seed.wrapping_add(1));
    let xs = noise.standard_normal((config.n_data, INPUT_DIM), device)?;
    let ys =
        (xs.sin()?.sum_keepdim(1)? + (noise.standard_normal((config.n_data, 1), device)? * 0.1)?)?;
    let data = (&xs, &ys);
    let l2 = map_vs_decay(config, gaussian, (Decay::L2, weight_decay), data, device)?;
    let l1 = map_vs_decay(config, laplace, (Decay::L1, l1_decay), data, device)?;

    // 4. MC dropout.
    let (mc_kl, mc_objective, mc_max_grad) =
        mc_dropout_checks(config, (mc_lambda, mc_lambda_b), data, device)?;

    Ok(L2StudyResult {
        kl_grad_max_abs_diff,
        map_vs_l2_max_abs_diff: l2.max_abs_diff,
        max_param_change: l2.max_param_change,
        weight_decay,
        prior_sigma: config.prior_sigma,
        n_data: config.n_data,
        steps: config.steps,
        laplace_b: config.laplace_b,
        l1_decay,
        map_laplace_vs_l1_max_abs_diff: l1.max_abs_diff,
        laplace_max_param_change: l1.max_param_change,
        mc_dropout_weight_decay: mc_lambda,
        mc_dropout_bias_decay: mc_lambda_b,
        mc_dropout_kl_grad_max_abs_diff: mc_kl,
        mc_dropout_objective_grad_max_abs_diff: mc_objective,
        mc_dropout_max_grad: mc_max_grad,
        length_scale: config.length_scale,
        dropout: config.dropout,
        tau: config.tau,
    })
}
