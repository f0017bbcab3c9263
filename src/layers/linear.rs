//! `BayesLinear`: a linear layer with a factored Gaussian posterior on its
//! weights and bias, and three ways to sample its output.
//!
//! With `W ~ q` (`[out_dim, in_dim]`, `W = mu + sigma ⊙ E`) and `b ~ q_b`:
//!
//! ```text
//! Reparam       y = x Wᵀ + b,  one W per sample, shared by the minibatch
//!               (Blundell et al. 2015)
//! LocalReparam  y = x muᵀ + mu_b + sqrt(x² (sigma²)ᵀ + sigma_b²) ⊙ eps
//!               pre-activations sampled directly, independent per example
//!               (Kingma, Salimans & Welling 2015, "Variational Dropout and
//!               the Local Reparameterization Trick")
//! Flipout       y = x muᵀ + ((x ⊙ s) (sigma ⊙ E)ᵀ) ⊙ r + b,  s, r random signs
//!               per example, one E per sample: pseudo-independent weight
//!               perturbations per example (Wen et al. 2018, "Flipout")
//! ```
//!
//! All three have the same marginal for one example: `y_j ~ N(x·mu_j + mu_bj,
//! Σ_i x_i² sigma_ji² + sigma_bj²)`; they differ in the correlation across the
//! minibatch, and so in the variance of the gradient.
//!
//! # Shapes
//! Input `[batch, in_dim]` -> output `[batch, out_dim]` (one sample), or input
//! `[samples, batch, in_dim]` -> output `[samples, batch, out_dim]` (`samples`
//! independent posterior draws in one batched pass).

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Module, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::layers::Activation;
use crate::noise::NoiseSource;
use crate::ops::shared_matmul;
use crate::posterior::{FactoredGaussian, KlTerms};
use crate::prior::{Fan, LayerPrior, Prior};
use crate::{Error, Result};

/// How a forward pass turns the weight posterior into a sampled output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Estimator {
    /// One weight draw per sample, shared by the minibatch.
    Reparam,
    /// Sample pre-activations; lowest-variance gradients for dense layers.
    #[default]
    LocalReparam,
    /// Sign-flipped shared perturbation, decorrelated across examples.
    Flipout,
}

impl fmt::Display for Estimator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Estimator::Reparam => "reparam",
            Estimator::LocalReparam => "local",
            Estimator::Flipout => "flipout",
        })
    }
}

impl FromStr for Estimator {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "reparam" => Ok(Estimator::Reparam),
            "local" => Ok(Estimator::LocalReparam),
            "flipout" => Ok(Estimator::Flipout),
            _ => Err(Error::invalid(
                "estimator",
                format!("'{s}'"),
                "reparam | local | flipout",
            )),
        }
    }
}

/// The standard-normal and sign noise one forward pass of a [`BayesLinear`]
/// consumes. Drawn by [`BayesLinear::draw_noise`]; built by hand in tests to
/// inject known noise. `S` = samples, `B` = batch.
#[derive(Debug, Clone)]
pub enum LayerNoise {
    /// `weight: [S, out, in]`, `bias: [S, 1, out]`.
    Reparam {
        /// Weight noise `E`.
        weight: Tensor,
        /// Bias noise.
        bias: Tensor,
    },
    /// `output: [S, B, out]`, the pre-activation noise.
    LocalReparam {
        /// Pre-activation noise `eps`.
        output: Tensor,
    },
    /// `weight: [S, out, in]`, `bias: [S, 1, out]`, `sign_in: [S, B, in]`,
    /// `sign_out: [S, B, out]`.
    Flipout {
        /// Shared weight perturbation noise `E`.
        weight: Tensor,
        /// Bias noise.
        bias: Tensor,
        /// Input signs `s`.
        sign_in: Tensor,
        /// Output signs `r`.
        sign_out: Tensor,
    },
}

/// A linear layer `y = x Wᵀ + b` with `W ~ N(mu, sigma²)`, `b ~ N(mu_b, sigma_b²)`.
#[derive(Debug, Clone)]
pub struct BayesLinear {
    weight: FactoredGaussian,
    bias: FactoredGaussian,
    prior: LayerPrior,
    /// Per-weight prior means `(weight [out, in], bias [out])` replacing the
    /// Gaussian prior's scalar mean, when centred ([`Self::with_prior_mean`]).
    prior_mean: Option<(Tensor, Tensor)>,
    estimator: Estimator,
    noise: NoiseSource,
}

impl BayesLinear {
    /// A fresh layer whose means are drawn from `prior` (resolved for this
    /// layer's fan) and whose scales start at `init_scale · std(prior)`.
    /// The bias has the same prior as the weights.
    pub fn new(
        in_dim: usize,
        out_dim: usize,
        prior: &Prior,
        estimator: Estimator,
        init_scale: f64,
        noise: NoiseSource,
        device: &Device,
    ) -> Result<Self> {
        let layer_prior = prior.resolve(Fan {
            fan_in: in_dim,
            fan_out: out_dim,
        })?;
        let weight = layer_prior.sample((out_dim, in_dim), &noise, device)?;
        let bias = layer_prior.sample(out_dim, &noise, device)?;
        Self::from_means(&weight, &bias, layer_prior, estimator, init_scale, noise)
    }

    /// A fresh layer whose means start at given tensors (weight `[out, in]`,
    /// bias `[out]`; copied) instead of a draw from `prior`, with scales at
    /// `init_scale · std(prior)`: a pretrained start, or an initializer that
    /// differs from the prior the KL is taken against.
    pub fn from_means(
        weight: &Tensor,
        bias: &Tensor,
        prior: LayerPrior,
        estimator: Estimator,
        init_scale: f64,
        noise: NoiseSource,
    ) -> Result<Self> {
        Self::from_posteriors(
            FactoredGaussian::from_mean(weight, &prior, init_scale)?,
            FactoredGaussian::from_mean(bias, &prior, init_scale)?,
            prior,
            estimator,
            noise,
        )
    }

    /// From existing posteriors (weight `[out, in]`, bias `[out]`), e.g. loaded
    /// from a checkpoint.
    pub fn from_posteriors(
        weight: FactoredGaussian,
        bias: FactoredGaussian,
        prior: LayerPrior,
        estimator: Estimator,
        noise: NoiseSource,
    ) -> Result<Self> {
        let (w, b) = (weight.mu().dims(), bias.mu().dims());
        if w.len() != 2 || b != [w[0]] {
            return Err(Error::Shape {
                context: "BayesLinear".into(),
                message: format!("weight must be [out, in] and bias [out]; got {w:?} and {b:?}"),
            });
        }
        Ok(Self {
            weight,
            bias,
            prior,
            prior_mean: None,
            estimator,
            noise,
        })
    }

    /// Centres the layer's Gaussian prior on per-weight means (copied):
    /// `p(W_ij) = N(M_ij, sigma_p²)`, `p(b_j) = N(m_j, sigma_p²)`, replacing the
    /// prior's scalar mean. The KL's `l2` part becomes decay toward them
    /// ([`FactoredGaussian::kl_closed_form_centred`]), e.g. toward pretrained
    /// weights as in MOPED (Krishnan et al. 2020). Errors unless the prior is
    /// Gaussian and the shapes are `[out, in]` and `[out]`.
    pub fn with_prior_mean(mut self, weight: &Tensor, bias: &Tensor) -> Result<Self> {
        if !matches!(self.prior, LayerPrior::Gaussian { .. }) {
            return Err(Error::invalid(
                "prior",
                format!("{:?}", self.prior),
                "a Gaussian prior to centre on per-weight means",
            ));
        }
        let want = [self.weight.mu().dims(), self.bias.mu().dims()];
        if [weight.dims(), bias.dims()] != want {
            return Err(Error::Shape {
                context: "BayesLinear::with_prior_mean".into(),
                message: format!(
                    "prior means are {:?} and {:?}, the layer's weight and bias are {:?} and {:?}",
                    weight.dims(),
                    bias.dims(),
                    want[0],
                    want[1]
                ),
            });
        }
        let own = |t: &Tensor| -> Result<Tensor> {
            Ok(t.detach().to_dtype(candle_core::DType::F32)?.copy()?)
        };
        self.prior_mean = Some((own(weight)?, own(bias)?));
        Ok(self)
    }

    /// The per-weight prior means `(weight, bias)`, when centred.
    pub fn prior_mean(&self) -> Option<(&Tensor, &Tensor)> {
        self.prior_mean.as_ref().map(|(w, b)| (w, b))
    }

    /// Number of inputs.
    pub fn in_dim(&self) -> usize {
        self.weight.mu().dims()[1]
    }

    /// Number of outputs.
    pub fn out_dim(&self) -> usize {
        self.weight.mu().dims()[0]
    }

    /// The weight posterior.
    pub fn weight(&self) -> &FactoredGaussian {
        &self.weight
    }

    /// The bias posterior.
    pub fn bias(&self) -> &FactoredGaussian {
        &self.bias
    }

    /// The prior this layer was initialized from and is regularized toward.
    pub fn prior(&self) -> &LayerPrior {
        &self.prior
    }

    /// The sampling estimator.
    pub fn estimator(&self) -> Estimator {
        self.estimator
    }

    /// The trainable variables: weight mu, weight rho, bias mu, bias rho.
    pub fn vars(&self) -> Vec<Var> {
        [&self.weight, &self.bias]
            .into_iter()
            .flat_map(|p| [p.mu().clone(), p.rho().clone()])
            .collect()
    }

    /// `KL(q || p)` of weights and bias: closed form for a Gaussian prior
    /// (centred on the per-weight means when set), a fresh one-sample Monte
    /// Carlo estimate otherwise.
    pub fn kl(&self) -> Result<KlTerms> {
        match (&self.prior_mean, self.prior) {
            (Some((w, b)), LayerPrior::Gaussian { sigma, .. }) => self
                .weight
                .kl_closed_form_centred(w, sigma)?
                .add(&self.bias.kl_closed_form_centred(b, sigma)?),
            _ => self
                .weight
                .kl_to(&self.prior, &self.noise)?
                .add(&self.bias.kl_to(&self.prior, &self.noise)?),
        }
    }

    /// Draws the noise for `samples` posterior draws over a batch of `batch` rows.
    pub fn draw_noise(&self, samples: usize, batch: usize) -> Result<LayerNoise> {
        let (n, o, i) = (&self.noise, self.out_dim(), self.in_dim());
        let dev = self.weight.mu().device();
        Ok(match self.estimator {
            Estimator::Reparam => LayerNoise::Reparam {
                weight: n.standard_normal((samples, o, i), dev)?,
                bias: n.standard_normal((samples, 1, o), dev)?,
            },
            Estimator::LocalReparam => LayerNoise::LocalReparam {
                output: n.standard_normal((samples, batch, o), dev)?,
            },
            Estimator::Flipout => LayerNoise::Flipout {
                weight: n.standard_normal((samples, o, i), dev)?,
                bias: n.standard_normal((samples, 1, o), dev)?,
                sign_in: n.rademacher((samples, batch, i), dev)?,
                sign_out: n.rademacher((samples, batch, o), dev)?,
            },
        })
    }

    /// Sampled forward pass with fresh noise. `xs`: `[B, in]` or `[S, B, in]`.
    pub fn forward_sample(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_sample_then(xs, None)
    }

    /// [`Self::forward_sample`] followed by `activation`, which takes the bias
    /// add along when it can ([`Activation::apply_after_bias`]).
    pub fn forward_sample_then(
        &self,
        xs: &Tensor,
        activation: Option<Activation>,
    ) -> Result<Tensor> {
        let (s, b) = match xs.dims() {
            [b, _] => (1, *b),
            [s, b, _] => (*s, *b),
            d => return Err(self.rank_error(d)),
        };
        let noise = self.draw_noise(s, b)?;
        self.forward_with_noise_then(xs, &noise, activation)
    }

    /// Sampled forward pass with the given noise (see [`LayerNoise`] shapes).
    pub fn forward_with_noise(&self, xs: &Tensor, noise: &LayerNoise) -> Result<Tensor> {
        self.forward_with_noise_then(xs, noise, None)
    }

    /// [`Self::forward_with_noise`] followed by `activation`.
    fn forward_with_noise_then(
        &self,
        xs: &Tensor,
        noise: &LayerNoise,
        activation: Option<Activation>,
    ) -> Result<Tensor> {
        Ok(self.pass(xs, noise, activation, false)?.0)
    }

    /// Whether [`Self::forward_sample_with_kl`] takes the KL along with the
    /// sample: a Gaussian prior without per-weight means (its KL is closed
    /// form and draws no noise).
    pub(crate) fn samples_with_kl(&self) -> bool {
        self.prior_mean.is_none() && matches!(self.prior, LayerPrior::Gaussian { .. })
    }

    /// [`Self::forward_sample_then`] and [`Self::kl`] together: the weight
    /// and bias samples and their KL share one pass over each `rho`
    /// ([`FactoredGaussian::sample_and_kl`]), with the same values as the
    /// two calls. Only for layers with [`Self::samples_with_kl`].
    pub(crate) fn forward_sample_with_kl(
        &self,
        xs: &Tensor,
        activation: Option<Activation>,
    ) -> Result<(Tensor, KlTerms)> {
        let batch = match xs.dims() {
            [s, b, _] if *s == 1 => *b,
            d => return Err(self.rank_error(d)),
        };
        let noise = self.draw_noise(1, batch)?;
        let (ys, kl) = self.pass(xs, &noise, activation, true)?;
        match kl {
            Some(kl) => Ok((ys, kl)),
            None => Ok((ys, self.kl()?)),
        }
    }

    /// The sampled pass; with `with_kl`, also the weight and bias KL (weight
    /// first, as [`Self::kl`]) where the estimator samples `w` or its
    /// perturbation ([`FactoredGaussian::sample_and_kl`]); `None` otherwise.
    fn pass(
        &self,
        xs: &Tensor,
        noise: &LayerNoise,
        activation: Option<Activation>,
        with_kl: bool,
    ) -> Result<(Tensor, Option<KlTerms>)> {
        let squeeze = xs.rank() == 2;
        let xs = match xs.rank() {
            2 => xs.unsqueeze(0)?,
            3 => xs.clone(),
            _ => return Err(self.rank_error(xs.dims())),
        };
        // `mu + sigma ⊙ eps` (or `sigma ⊙ eps`), with its KL when asked for.
        let sample = |posterior: &FactoredGaussian, eps: &Tensor, with_mean: bool| {
            if with_kl {
                let (t, kl) = posterior.sample_and_kl(eps, with_mean, &self.prior)?;
                return Ok::<_, Error>((t, Some(kl)));
            }
            let t = match with_mean {
                true => posterior.sample_with(eps)?,
                false => posterior.scaled_noise(eps)?,
            };
            Ok((t, None))
        };
        let both = |w: Option<KlTerms>, b: Option<KlTerms>| match (w, b) {
            (Some(w), Some(b)) => w.add(&b).map(Some),
            _ => Ok(None),
        };
        let (ys, kl) = match noise {
            LayerNoise::Reparam { weight, bias } => {
                let (w, kl_w) = sample(&self.weight, weight, true)?; // [S, out, in]
                let (b, kl_b) = sample(&self.bias, bias, true)?; // [S, 1, out]
                let ys = with_bias(&xs.matmul(&w.transpose(1, 2)?)?, &b, activation)?;
                (ys, both(kl_w, kl_b)?)
            }
            LayerNoise::LocalReparam { output } => {
                // The bias is inside the mean and the variance here.
                let mean = self.forward_mean(&xs)?;
                let var = shared_matmul(&xs.sqr()?, &self.weight.sigma()?.sqr()?)?
                    .broadcast_add(&self.bias.sigma()?.sqr()?)?;
                let ys = (mean + (var.sqrt()? * output)?)?;
                let ys = match activation {
                    Some(activation) => activation.apply(&ys)?,
                    None => ys,
                };
                (ys, None)
            }
            LayerNoise::Flipout {
                weight,
                bias,
                sign_in,
                sign_out,
            } => {
                let mean = shared_matmul(&xs, self.weight.mu().as_tensor())?;
                let (delta, kl_w) = sample(&self.weight, weight, false)?; // [S, out, in]
                let perturbation = ((&xs * sign_in)?.matmul(&delta.transpose(1, 2)?)? * sign_out)?;
                let (b, kl_b) = sample(&self.bias, bias, true)?;
                let ys = with_bias(&(mean + perturbation)?, &b, activation)?;
                (ys, both(kl_w, kl_b)?)
            }
        };
        Ok((if squeeze { ys.squeeze(0)? } else { ys }, kl))
    }

    /// Deterministic pass through the posterior means, `x muᵀ + mu_b`, for an
    /// input of any rank ≥ 2 whose last dimension is `in_dim`.
    pub fn forward_mean(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_mean_then(xs, None)
    }

    /// [`Self::forward_mean`] followed by `activation`.
    pub fn forward_mean_then(&self, xs: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
        let pre = shared_matmul(xs, self.weight.mu().as_tensor())?;
        with_bias(&pre, self.bias.mu().as_tensor(), activation)
    }

    fn rank_error(&self, dims: &[usize]) -> Error {
        Error::Shape {
            context: "BayesLinear::forward".into(),
            message: format!(
                "input must be [batch, {0}] or [samples, batch, {0}], got {dims:?}",
                self.in_dim()
            ),
        }
    }
}

/// `activation(pre + bias)`, or `pre + bias` without an activation.
fn with_bias(pre: &Tensor, bias: &Tensor, activation: Option<Activation>) -> Result<Tensor> {
    match activation {
        Some(activation) => activation.apply_after_bias(pre, bias),
        None => Ok(pre.broadcast_add(bias)?),
    }
}

impl Module for BayesLinear {
    /// One posterior sample per call (candle's `Module`, so a `BayesLinear`
    /// drops into any candle model).
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        self.forward_sample(xs).map_err(|e| match e {
            Error::Candle(c) => c,
            other => candle_core::Error::Msg(other.to_string()),
        })
    }
}

impl fmt::Display for BayesLinear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (i, o) = (self.in_dim(), self.out_dim());
        write!(
            f,
            "BayesLinear {{in_dim: {i}, out_dim: {o}, estimator: {}, prior_std: {:.4}, params: {}}}",
            self.estimator,
            self.prior.std(),
            2 * (i * o + o)
        )
    }
}
