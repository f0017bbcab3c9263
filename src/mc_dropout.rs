//! The MC dropout MLP: the second model family (Gal & Ghahramani 2016,
//! "Dropout as a Bayesian Approximation").
//!
//! Dropout before every weight layer (the input layer too), kept on at
//! prediction, makes each pass a draw from an approximate posterior over the
//! weights. Its KL to a Gaussian prior with length-scale `l` (prior precision
//! `l²`) reduces to L2 on the weights:
//!
//! ```text
//! KL ≈ (l² (1 - p) / 2) Σ ||W||²  +  (l² / 2) Σ ||b||²        (all in kl_l2)
//! loss = nll + KL / N,   nll = -ln N(y; f(x), 1/tau)  (FixedNoise likelihood)
//! ```
//!
//! Divided by `tau`, this loss is `MSE/2 + lambda Σ ||W||² + …` with
//! `lambda = l² (1 - p) / (2 N tau)`, the weight decay of the paper
//! ([`crate::elbo::mc_dropout_weight_decay`]). With `p = 0` and `l = 0` the
//! model is a plain deterministic MLP (what a deep-ensemble member is).
//!
//! With the homoscedastic likelihood, the noise the ELBO learns also holds
//! the dropout variance, which the predictive adds again; by default it is
//! refitted when training ends so that it counts once
//! ([`crate::noise_fit`]).
//!
//! # Shapes
//! `forward_samples`: `[B, in]` -> `[S, B, head_dim]`, with `S` independent
//! dropout masks per layer drawn in one call (one batched evaluation).

use std::collections::HashMap;
use std::fmt;

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, McDropout};
use crate::likelihood::{Likelihood, LikelihoodKind};
use crate::model::{check_input, replicate_input, StochasticModel, TensorStore};
use crate::noise::NoiseSource;
use crate::noise_fit::{refit_noise, NoiseFit};
use crate::ops::shared_matmul;
use crate::posterior::KlTerms;
use crate::prior::{Fan, Prior};
use crate::{Error, Result};

/// Architecture and regularization of an [`McDropoutMlp`] (serializable).
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `input_dim` | required | features per example | ≥ 1 |
/// | `hidden` | required | units per hidden layer | each ≥ 1 |
/// | `activation` | ReLU | hidden nonlinearity | relu, tanh, selu |
/// | `dropout` | 0.05 | rate `p` before every weight layer | [0, 1) |
/// | `length_scale` | 1e-2 | prior length-scale `l` (Gal's UCI code) | ≥ 0 |
/// | `prior` | He | scale of the initial weights | see [`Prior`] |
/// | `init` | from the prior | how the weights and biases start | see [`McDropoutInit`] |
/// | `likelihood` | homoscedastic | head and loss | see [`LikelihoodKind`] |
/// | `noise_fit` | residual | the homoscedastic noise after training | see [`NoiseFit`] |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct McDropoutConfig {
    /// Number of input features.
    pub input_dim: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Dropout rate `p`.
    pub dropout: f64,
    /// Prior length-scale `l`.
    pub length_scale: f64,
    /// Initializer: the prior the starting weights are drawn from, or
    /// whose variance they take ([`McDropoutInit`]).
    pub prior: Prior,
    /// How the weights and biases start.
    #[serde(default)]
    pub init: McDropoutInit,
    /// Likelihood head.
    pub likelihood: LikelihoodKind,
    /// How the homoscedastic noise is set when training ends (configs saved
    /// before this field existed trained with [`NoiseFit::Elbo`]).
    #[serde(default)]
    pub noise_fit: NoiseFit,
}

impl McDropoutConfig {
    /// A config with the required fields and the defaults of the table above.
    pub fn new(input_dim: usize, hidden: &[usize]) -> Self {
        Self {
            input_dim,
            hidden: hidden.to_vec(),
            activation: Activation::default(),
            dropout: 0.05,
            length_scale: 1e-2,
            prior: Prior::default(),
            init: McDropoutInit::default(),
            likelihood: LikelihoodKind::default(),
            noise_fit: NoiseFit::Residual,
        }
    }

    /// Checks every field; errors name the field and its valid range.
    pub fn validate(&self) -> Result<()> {
        if self.input_dim == 0 {
            return Err(Error::invalid("input_dim", 0, "at least 1 feature"));
        }
        if let Some(i) = self.hidden.iter().position(|h| *h == 0) {
            return Err(Error::invalid(
                format!("hidden[{i}]"),
                0,
                "at least 1 unit per hidden layer",
            ));
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(Error::invalid("dropout", self.dropout, "a rate in [0, 1)"));
        }
        if !(self.length_scale.is_finite() && self.length_scale >= 0.0) {
            return Err(Error::invalid(
                "length_scale",
                self.length_scale,
                "a finite number >= 0",
            ));
        }
        self.prior.validate()?;
        self.likelihood.validate()
    }

    fn layer_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.input_dim];
        sizes.extend(&self.hidden);
        sizes.push(self.likelihood.head_dim());
        sizes
    }
}

/// How an [`McDropoutMlp`]'s weights and biases start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum McDropoutInit {
    /// Weights and biases drawn from the prior: the library's convention,
    /// the prior is the initializer ([`crate::prior`]).
    #[default]
    FromPrior,
    /// Keras's `Dense` default, which Gal's UCI experiments ran with:
    /// weights uniform around zero with the prior's variance, biases zero:
    ///
    /// ```text
    /// W ~ U(-a, a),  a = √3 sigma_p      (variance a²/3 = sigma_p²)
    /// b = 0
    /// ```
    ///
    /// With [`Prior::Glorot`] this is Keras's `glorot_uniform`,
    /// `a = √(6 / (fan_in + fan_out))` (Glorot & Bengio 2010, eq. 16).
    Keras,
}

/// An MLP with MC dropout before every weight layer.
#[derive(Debug, Clone)]
pub struct McDropoutMlp {
    config: McDropoutConfig,
    /// `(weight [out, in], bias [out])` per layer, input first.
    layers: Vec<(Var, Var)>,
    dropout: McDropout,
    likelihood: Likelihood,
    noise: NoiseSource,
}

impl McDropoutMlp {
    /// A fresh network: weights and biases drawn as `config.init` says,
    /// then masks and noise from the same `seed`.
    pub fn new(config: McDropoutConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let noise = NoiseSource::new(seed);
        let layers = config
            .layer_sizes()
            .windows(2)
            .map(|io| {
                let prior = config.prior.resolve(Fan {
                    fan_in: io[0],
                    fan_out: io[1],
                })?;
                let (w, b) = match config.init {
                    McDropoutInit::FromPrior => (
                        prior.sample((io[1], io[0]), &noise, device)?,
                        prior.sample(io[1], &noise, device)?,
                    ),
                    McDropoutInit::Keras => (
                        noise.uniform((io[1], io[0]), 3f64.sqrt() * prior.std(), device)?,
                        Tensor::zeros(io[1], DType::F32, device)?,
                    ),
                };
                Ok((Var::from_tensor(&w)?, Var::from_tensor(&b)?))
            })
            .collect::<Result<Vec<_>>>()?;
        let likelihood = Likelihood::new(config.likelihood, device)?;
        Self::assemble(config, layers, likelihood, noise)
    }

    /// The network of trained or fresh parts; the masks come from `noise`.
    fn assemble(
        config: McDropoutConfig,
        layers: Vec<(Var, Var)>,
        likelihood: Likelihood,
        noise: NoiseSource,
    ) -> Result<Self> {
        let dropout = McDropout::new(config.dropout, noise.clone())?;
        Ok(Self {
            config,
            layers,
            dropout,
            likelihood,
            noise,
        })
    }

    /// Rebuilds a network from its tensors by checkpoint name (see
    /// [`StochasticModel::named_vars`]), checking that every tensor the config
    /// needs is present with the right shape and that none is left over.
    /// `seed` starts the mask stream.
    pub fn from_named_tensors(
        config: McDropoutConfig,
        tensors: HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<Self> {
        let mut store = TensorStore::new(tensors);
        let model = Self::take_from(config, &mut store, "", seed)?;
        store.finish()?;
        Ok(model)
    }

    /// Takes this architecture's tensors, each named `prefix` + its
    /// checkpoint name, out of `store`.
    pub(crate) fn take_from(
        config: McDropoutConfig,
        store: &mut TensorStore,
        prefix: &str,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let layers = config
            .layer_sizes()
            .windows(2)
            .enumerate()
            .map(|(i, io)| {
                let w = store.take(&format!("{prefix}l{i}.weight"), &[io[1], io[0]])?;
                let b = store.take(&format!("{prefix}l{i}.bias"), &[io[1]])?;
                Ok((w, b))
            })
            .collect::<Result<Vec<_>>>()?;
        let likelihood = store.take_likelihood(config.likelihood, prefix)?;
        Self::assemble(config, layers, likelihood, NoiseSource::new(seed))
    }

    /// The configuration.
    pub fn config(&self) -> &McDropoutConfig {
        &self.config
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        self.layers[0].0.device()
    }

    /// The shared noise stream (reseed it to replay masks).
    pub fn noise(&self) -> &NoiseSource {
        &self.noise
    }

    /// Draws one dropout mask per weight layer for `[S, B, in]` inputs:
    /// shapes `[S, B, width of the layer's input]`, entries 0 or 1/(1-p).
    pub fn draw_masks(&self, samples: usize, batch: usize) -> Result<Vec<Tensor>> {
        let sizes = self.config.layer_sizes();
        let device = self.device();
        sizes[..sizes.len() - 1]
            .iter()
            .map(|&d| self.dropout.draw_mask((samples, batch, d), device))
            .collect()
    }

    /// The stochastic pass with given masks (see [`Self::draw_masks`]):
    /// `xs: [S, B, in]` -> `[S, B, head_dim]`, layer `i`'s input multiplied
    /// by `masks[i]`. Sample `t` uses only slice `t` of every mask, so a
    /// batched pass equals `S` single passes with the same masks.
    pub fn forward_with_masks(&self, xs: &Tensor, masks: &[Tensor]) -> Result<Tensor> {
        if masks.len() != self.layers.len() {
            return Err(Error::Shape {
                context: "McDropoutMlp::forward_with_masks".into(),
                message: format!(
                    "{} masks for {} weight layers",
                    masks.len(),
                    self.layers.len()
                ),
            });
        }
        self.run(xs.clone(), Some(masks))
    }

    /// Runs the layers, multiplying each layer's input by its mask if given.
    fn run(&self, mut h: Tensor, masks: Option<&[Tensor]>) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        for (i, (w, b)) in self.layers.iter().enumerate() {
            if let Some(masks) = masks {
                h = (h * &masks[i])?;
            }
            let pre = shared_matmul(&h, w.as_tensor())?;
            h = if i < last {
                self.config
                    .activation
                    .apply_after_bias(&pre, b.as_tensor())?
            } else {
                pre.broadcast_add(b.as_tensor())?
            };
        }
        Ok(h)
    }
}

impl StochasticModel for McDropoutMlp {
    fn forward_samples(&self, xs: &Tensor, samples: usize) -> Result<Tensor> {
        let xs = replicate_input(xs, self.config.input_dim, samples, "McDropoutMlp")?;
        if self.config.dropout == 0.0 {
            return self.run(xs, None);
        }
        let masks = self.draw_masks(samples, xs.dim(1)?)?;
        self.run(xs, Some(&masks))
    }

    fn forward_mean(&self, xs: &Tensor) -> Result<Tensor> {
        check_input(xs, self.config.input_dim, "McDropoutMlp")?;
        self.run(xs.clone(), None)
    }

    /// `(l²(1-p)/2) Σ ||W||² + (l²/2) Σ ||b||²`, all in `l2`; `rest` is 0.
    fn kl(&self) -> Result<KlTerms> {
        let l2 = self.config.length_scale.powi(2);
        let device = self.layers[0].0.device();
        let mut total = Tensor::new(0f32, device)?;
        for (w, b) in &self.layers {
            let ww = (w.as_tensor().sqr()?.sum_all()? * (l2 * (1.0 - self.config.dropout) / 2.0))?;
            let bb = (b.as_tensor().sqr()?.sum_all()? * (l2 / 2.0))?;
            total = ((total + ww)? + bb)?;
        }
        Ok(KlTerms {
            l2: total,
            rest: Tensor::new(0f32, device)?,
        })
    }

    fn likelihood(&self) -> &Likelihood {
        &self.likelihood
    }

    /// [`refit_noise`] under [`NoiseFit::Residual`].
    fn finish_training(&self, xs: &Tensor, ys: &Tensor) -> Result<()> {
        if self.config.noise_fit == NoiseFit::Residual {
            refit_noise(self, xs, ys)?;
        }
        Ok(())
    }

    /// `l{i}.weight`, `l{i}.bias` per layer, then `likelihood.noise_rho`.
    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, (w, b)) in self.layers.iter().enumerate() {
            out.push((format!("l{i}.weight"), w.clone()));
            out.push((format!("l{i}.bias"), b.clone()));
        }
        out.extend(self.likelihood.named_vars());
        out
    }
}

impl fmt::Display for McDropoutMlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let params: usize = self.vars().iter().map(|v| v.elem_count()).sum();
        write!(
            f,
            "McDropoutMlp {{sizes: {:?}, activation: {}, dropout: {}, length_scale: {}, likelihood: {:?}, params: {params}}}",
            c.layer_sizes(),
            c.activation,
            c.dropout,
            c.length_scale,
            c.likelihood
        )
    }
}
