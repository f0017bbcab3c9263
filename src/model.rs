//! The Bayesian MLP and the interface every stochastic model offers the
//! trainer and the predictive.
//!
//! ```text
//! x -> BayesLinear -> act -> ... -> BayesLinear -> head -> likelihood
//! KL(q || p) = Σ_layers KL_layer   (a sum the compiler sees, not reflection)
//! ```

use std::collections::HashMap;
use std::fmt;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::layers::{Activation, BayesLinear, Estimator};
use crate::likelihood::{Likelihood, LikelihoodKind, NOISE_RHO_NAME};
use crate::noise::NoiseSource;
use crate::posterior::FactoredGaussian;
use crate::posterior::{KlTerms, DEFAULT_INIT_SCALE};
use crate::prior::Fan;
use crate::prior::Prior;
use crate::{Error, Result};

/// What the trainer ([`crate::train`]) and the predictive
/// ([`crate::predictive`]) need from a model: stochastic passes, a KL (the
/// regularizer of the ELBO), a likelihood and the trainable variables.
/// `Send + Sync`, because training and prediction run on a thread of
/// rayon's pool ([`crate::tuning::on_compute_pool`]).
pub trait StochasticModel: Send + Sync {
    /// `samples` stochastic passes in one batched evaluation.
    /// `xs: [B, in]` -> head outputs `[samples, B, head_dim]`.
    fn forward_samples(&self, xs: &Tensor, samples: usize) -> Result<Tensor>;

    /// `forward_samples` takes samples in multiples of this many: 1, unless
    /// a model's samples come in fixed groups (an ensemble's members).
    /// Prediction splits its passes into such groups.
    fn sample_group(&self) -> usize {
        1
    }

    /// How many minibatches a training step draws, each from its own
    /// shuffle of the rows: 1, unless the model's parts train on separate
    /// data orders (an ensemble's members, Lakshminarayanan et al. 2017,
    /// §2.4: "random initialization ... along with random shuffling of the
    /// data points"). With `k > 1`, [`Self::forward_train`] gets
    /// `[k, B, in]` and the likelihood `[k, B, 1]` targets.
    fn minibatch_streams(&self) -> usize {
        1
    }

    /// The stochastic pass the training loss is estimated with, `[B, in]`
    /// (or `[k, B, in]`, one minibatch per stream, see
    /// [`Self::minibatch_streams`]) -> `[S, B, head_dim]`: one sample by
    /// default; an ensemble runs every member on its own minibatch.
    fn forward_train(&self, xs: &Tensor) -> Result<Tensor> {
        self.forward_samples(xs, 1)
    }

    /// [`Self::forward_train`] and [`Self::kl`], in that order: what a
    /// training step needs. A model may compute the two together (BBB
    /// shares one pass over each `rho`); the values are the same.
    fn forward_train_with_kl(&self, xs: &Tensor) -> Result<(Tensor, KlTerms)> {
        let head = self.forward_train(xs)?;
        Ok((head, self.kl()?))
    }

    /// The deterministic pass (posterior means), `[B, in]` -> `[B, head_dim]`.
    fn forward_mean(&self, xs: &Tensor) -> Result<Tensor>;

    /// `KL(q || p)`, split into its L2 part and the rest.
    fn kl(&self) -> Result<KlTerms>;

    /// The likelihood the head feeds.
    fn likelihood(&self) -> &Likelihood;

    /// All trainable variables by name (the names are checkpoint keys and
    /// appear in training errors).
    fn named_vars(&self) -> Vec<(String, Var)>;

    /// Called by the trainer once training ends, with the training rows
    /// (`xs [N, in]`, `ys [N, 1]`): a model may set here what its training
    /// loss estimates with a bias (MC dropout's homoscedastic noise,
    /// [`crate::noise_fit::refit_noise`]). Nothing by default.
    fn finish_training(&self, _xs: &Tensor, _ys: &Tensor) -> Result<()> {
        Ok(())
    }

    /// All trainable variables.
    fn vars(&self) -> Vec<Var> {
        self.named_vars().into_iter().map(|(_, v)| v).collect()
    }
}

/// Checks that `xs` is `[batch, input_dim]` and returns the batch size.
pub(crate) fn check_input(xs: &Tensor, input_dim: usize, model: &str) -> Result<usize> {
    match xs.dims() {
        [b, d] if *d == input_dim => Ok(*b),
        d => Err(Error::Shape {
            context: format!("{model} input"),
            message: format!("expected [batch, {input_dim}], got {d:?}"),
        }),
    }
}

/// Checks that the targets `ys` of `n` rows are `[n, 1]`.
pub(crate) fn check_targets(ys: &Tensor, n: usize, context: &str) -> Result<()> {
    if ys.dims() == [n, 1] {
        return Ok(());
    }
    Err(Error::Shape {
        context: context.into(),
        message: format!(
            "xs has {n} rows, so ys must be [{n}, 1]; got {:?}",
            ys.dims()
        ),
    })
}

/// Checks `xs: [B, input_dim]` and `samples ≥ 1`, and stacks `samples`
/// copies of it, `[samples, B, input_dim]`: the input of one batched pass.
pub(crate) fn replicate_input(
    xs: &Tensor,
    input_dim: usize,
    samples: usize,
    model: &str,
) -> Result<Tensor> {
    let b = check_input(xs, input_dim, model)?;
    if samples == 0 {
        return Err(Error::invalid("samples", 0, "at least 1"));
    }
    Ok(xs
        .unsqueeze(0)?
        .broadcast_as((samples, b, input_dim))?
        .contiguous()?)
}

/// Tensors by checkpoint name, handed out one at a time with their shapes
/// checked, so that a model rebuilt from a file gets exactly the tensors its
/// architecture needs: none missing, none misshapen, none left over.
pub(crate) struct TensorStore {
    tensors: HashMap<String, Tensor>,
}

impl TensorStore {
    pub(crate) fn new(tensors: HashMap<String, Tensor>) -> Self {
        Self { tensors }
    }

    /// Removes the tensor `name`, checks it has `shape`, and makes it a
    /// trainable f32 variable.
    pub(crate) fn take(&mut self, name: &str, shape: &[usize]) -> Result<Var> {
        let t = self.tensors.remove(name).ok_or_else(|| Error::Shape {
            context: "model tensors".into(),
            message: format!("tensor '{name}' is missing"),
        })?;
        if t.dims() != shape {
            return Err(Error::Shape {
                context: "model tensors".into(),
                message: format!(
                    "tensor '{name}' has shape {:?}, the architecture needs {shape:?}",
                    t.dims()
                ),
            });
        }
        Ok(Var::from_tensor(&t.to_dtype(candle_core::DType::F32)?)?)
    }

    /// The likelihood of kind `kind`, taking its learned noise (named
    /// `prefix` + [`NOISE_RHO_NAME`]) when it has one.
    pub(crate) fn take_likelihood(
        &mut self,
        kind: LikelihoodKind,
        prefix: &str,
    ) -> Result<Likelihood> {
        let noise_rho = match kind {
            LikelihoodKind::Homoscedastic => {
                Some(self.take(&format!("{prefix}{NOISE_RHO_NAME}"), &[1])?)
            }
            _ => None,
        };
        Likelihood::from_noise_rho(kind, noise_rho)
    }

    /// Succeeds only if every tensor was taken.
    pub(crate) fn finish(self) -> Result<()> {
        match self.tensors.keys().min() {
            Some(extra) => Err(Error::Shape {
                context: "model tensors".into(),
                message: format!("unexpected tensor '{extra}' for this architecture"),
            }),
            None => Ok(()),
        }
    }
}

fn check_layer_count(context: &str, got: usize, want: usize) -> Result<()> {
    if got == want {
        Ok(())
    } else {
        Err(Error::Shape {
            context: context.into(),
            message: format!("{got} (weight, bias) pairs for {want} layers"),
        })
    }
}

/// Architecture and prior of a [`BayesMlp`]; serializable, so a saved run can
/// be rebuilt from it.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `input_dim` | required | features per example | ≥ 1 |
/// | `hidden` | required | units per hidden layer | each ≥ 1 (may be empty) |
/// | `activation` | ReLU | hidden nonlinearity | relu, tanh, selu |
/// | `prior` | He | prior = initializer of every layer | see [`Prior`] |
/// | `estimator` | local reparameterization | how outputs are sampled | see [`Estimator`] |
/// | `likelihood` | homoscedastic Gaussian | head and loss | see [`LikelihoodKind`] |
/// | `init_scale` | [`DEFAULT_INIT_SCALE`] | initial posterior std / prior std | > 0 |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BayesMlpConfig {
    /// Number of input features.
    pub input_dim: usize,
    /// Width of each hidden layer.
    pub hidden: Vec<usize>,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Prior over every layer's weights and biases (also their initializer).
    pub prior: Prior,
    /// Output-sampling estimator of every layer.
    pub estimator: Estimator,
    /// Likelihood head.
    pub likelihood: LikelihoodKind,
    /// Initial posterior standard deviation as a fraction of the prior's.
    pub init_scale: f64,
}

impl BayesMlpConfig {
    /// A config with the required fields and the defaults of the table above.
    pub fn new(input_dim: usize, hidden: &[usize]) -> Self {
        Self {
            input_dim,
            hidden: hidden.to_vec(),
            activation: Activation::default(),
            prior: Prior::default(),
            estimator: Estimator::default(),
            likelihood: LikelihoodKind::default(),
            init_scale: DEFAULT_INIT_SCALE,
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
        if !(self.init_scale.is_finite() && self.init_scale > 0.0) {
            return Err(Error::invalid(
                "init_scale",
                self.init_scale,
                "a finite number > 0",
            ));
        }
        self.prior.validate()?;
        self.likelihood.validate()
    }

    /// `[input_dim, hidden..., head_dim]`.
    pub fn layer_sizes(&self) -> Vec<usize> {
        let mut sizes = vec![self.input_dim];
        sizes.extend(&self.hidden);
        sizes.push(self.likelihood.head_dim());
        sizes
    }
}

/// A multilayer perceptron of [`BayesLinear`] layers.
#[derive(Debug, Clone)]
pub struct BayesMlp {
    config: BayesMlpConfig,
    layers: Vec<BayesLinear>,
    likelihood: Likelihood,
    noise: NoiseSource,
}

impl BayesMlp {
    /// A fresh network: every layer's means drawn from the prior, in layer
    /// order, from `seed` (which then drives the forward-pass noise too).
    pub fn new(config: BayesMlpConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let noise = NoiseSource::new(seed);
        let sizes = config.layer_sizes();
        let layers = sizes
            .windows(2)
            .map(|io| {
                BayesLinear::new(
                    io[0],
                    io[1],
                    &config.prior,
                    config.estimator,
                    config.init_scale,
                    noise.clone(),
                    device,
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let likelihood = Likelihood::new(config.likelihood, device)?;
        Ok(Self {
            config,
            layers,
            likelihood,
            noise,
        })
    }

    /// A fresh network whose posterior means start at given tensors instead
    /// of a draw from the prior: `means[i] = (weight [out, in], bias [out])`
    /// of layer `i`, input first (copied). The scales start at
    /// `init_scale · std(prior)` and the KL is against `config.prior`, as in
    /// [`Self::new`]; `seed` starts the forward-pass noise. This separates
    /// the two roles of the prior when a study needs it: a pretrained start,
    /// or an initializer other than the prior.
    pub fn from_means(
        config: BayesMlpConfig,
        means: &[(Tensor, Tensor)],
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        config.validate()?;
        let sizes = config.layer_sizes();
        check_layer_count("BayesMlp::from_means", means.len(), sizes.len() - 1)?;
        let noise = NoiseSource::new(seed);
        let layers = sizes
            .windows(2)
            .zip(means)
            .map(|(io, (weight, bias))| {
                let prior = config.prior.resolve(Fan {
                    fan_in: io[0],
                    fan_out: io[1],
                })?;
                BayesLinear::from_means(
                    weight,
                    bias,
                    prior,
                    config.estimator,
                    config.init_scale,
                    noise.clone(),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        let likelihood = Likelihood::new(config.likelihood, device)?;
        Self::from_parts(config, layers, likelihood, noise)
    }

    /// Centres every layer's Gaussian prior on per-weight means,
    /// `means[i] = (weight [out, in], bias [out])` of layer `i`
    /// ([`BayesLinear::with_prior_mean`]): the KL's `l2` part becomes decay
    /// toward them. With [`Self::from_means`] on the same tensors this is
    /// MOPED (Krishnan et al. 2020): prior and initial posterior means at
    /// pretrained weights.
    pub fn with_prior_means(mut self, means: &[(Tensor, Tensor)]) -> Result<Self> {
        check_layer_count("BayesMlp::with_prior_means", means.len(), self.layers.len())?;
        self.layers = self
            .layers
            .into_iter()
            .zip(means)
            .map(|(layer, (weight, bias))| layer.with_prior_mean(weight, bias))
            .collect::<Result<Vec<_>>>()?;
        Ok(self)
    }

    /// Reassembles a network from its parts (checkpoint loading); layer
    /// shapes must match the config.
    pub fn from_parts(
        config: BayesMlpConfig,
        layers: Vec<BayesLinear>,
        likelihood: Likelihood,
        noise: NoiseSource,
    ) -> Result<Self> {
        config.validate()?;
        let sizes = config.layer_sizes();
        let got: Vec<(usize, usize)> = layers.iter().map(|l| (l.in_dim(), l.out_dim())).collect();
        let want: Vec<(usize, usize)> = sizes.windows(2).map(|w| (w[0], w[1])).collect();
        if got != want {
            return Err(Error::Shape {
                context: "BayesMlp::from_parts".into(),
                message: format!("layers are {got:?}, the config needs {want:?}"),
            });
        }
        Ok(Self {
            config,
            layers,
            likelihood,
            noise,
        })
    }

    /// Rebuilds a network from its tensors by checkpoint name (see
    /// [`StochasticModel::named_vars`]), checking that every tensor the config
    /// needs is present with the right shape and that none is left over.
    /// `seed` starts the forward-pass noise.
    pub fn from_named_tensors(
        config: BayesMlpConfig,
        tensors: HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let mut store = TensorStore::new(tensors);
        let mut take = |name: String, shape: &[usize]| store.take(&name, shape);
        let noise = NoiseSource::new(seed);
        let sizes = config.layer_sizes();
        let mut layers = Vec::with_capacity(sizes.len() - 1);
        for (i, io) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (io[0], io[1]);
            let mut posterior = |part: &str, shape: &[usize]| -> Result<FactoredGaussian> {
                FactoredGaussian::new(
                    take(format!("l{i}.{part}.mu"), shape)?,
                    take(format!("l{i}.{part}.rho"), shape)?,
                )
            };
            let weight = posterior("weight", &[fan_out, fan_in])?;
            let bias = posterior("bias", &[fan_out])?;
            let prior = config.prior.resolve(Fan { fan_in, fan_out })?;
            layers.push(BayesLinear::from_posteriors(
                weight,
                bias,
                prior,
                config.estimator,
                noise.clone(),
            )?);
        }
        let likelihood = store.take_likelihood(config.likelihood, "")?;
        store.finish()?;
        Self::from_parts(config, layers, likelihood, noise)
    }

    /// The configuration it was built from.
    pub fn config(&self) -> &BayesMlpConfig {
        &self.config
    }

    /// The layers, input first.
    pub fn layers(&self) -> &[BayesLinear] {
        &self.layers
    }

    /// The shared noise stream (reseed it to replay forward passes).
    pub fn noise(&self) -> &NoiseSource {
        &self.noise
    }

    /// Runs the layers; `layer_pass` applies the activation it is given
    /// (every layer's but the last).
    fn run(
        &self,
        xs: Tensor,
        mut layer_pass: impl FnMut(&BayesLinear, &Tensor, Option<Activation>) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let last = self.layers.len() - 1;
        let mut h = xs;
        for (i, layer) in self.layers.iter().enumerate() {
            let activation = (i < last).then_some(self.config.activation);
            h = layer_pass(layer, &h, activation)?;
        }
        Ok(h)
    }
}

impl StochasticModel for BayesMlp {
    fn forward_samples(&self, xs: &Tensor, samples: usize) -> Result<Tensor> {
        let xs = replicate_input(xs, self.config.input_dim, samples, "BayesMlp")?;
        self.run(xs, |layer, h, act| layer.forward_sample_then(h, act))
    }

    /// One sample pass with each layer's KL taken along
    /// (`BayesLinear::forward_sample_with_kl`) when every layer's prior
    /// is Gaussian; otherwise the pass, then [`Self::kl`] (a Monte Carlo KL
    /// draws its noise after the pass's).
    fn forward_train_with_kl(&self, xs: &Tensor) -> Result<(Tensor, KlTerms)> {
        if !self.layers.iter().all(BayesLinear::samples_with_kl) {
            let head = self.forward_train(xs)?;
            return Ok((head, self.kl()?));
        }
        let xs = replicate_input(xs, self.config.input_dim, 1, "BayesMlp")?;
        let mut kl = KlTerms::zeros(self.layers[0].weight().mu().device())?;
        let head = self.run(xs, |layer, h, act| {
            let (ys, layer_kl) = layer.forward_sample_with_kl(h, act)?;
            kl = kl.add(&layer_kl)?;
            Ok(ys)
        })?;
        Ok((head, kl))
    }

    fn forward_mean(&self, xs: &Tensor) -> Result<Tensor> {
        check_input(xs, self.config.input_dim, "BayesMlp")?;
        self.run(xs.clone(), |layer, h, act| layer.forward_mean_then(h, act))
    }

    fn kl(&self) -> Result<KlTerms> {
        let mut total = KlTerms::zeros(self.layers[0].weight().mu().device())?;
        for layer in &self.layers {
            total = total.add(&layer.kl()?)?;
        }
        Ok(total)
    }

    fn likelihood(&self) -> &Likelihood {
        &self.likelihood
    }

    /// `l{i}.weight.mu`, `l{i}.weight.rho`, `l{i}.bias.mu`, `l{i}.bias.rho`
    /// per layer, then `likelihood.noise_rho` (homoscedastic only).
    fn named_vars(&self) -> Vec<(String, Var)> {
        let mut out = Vec::new();
        for (i, layer) in self.layers.iter().enumerate() {
            for (part, post) in [("weight", layer.weight()), ("bias", layer.bias())] {
                out.push((format!("l{i}.{part}.mu"), post.mu().clone()));
                out.push((format!("l{i}.{part}.rho"), post.rho().clone()));
            }
        }
        out.extend(self.likelihood.named_vars());
        out
    }
}

impl fmt::Display for BayesMlp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = &self.config;
        let params: usize = self.vars().iter().map(|v| v.elem_count()).sum();
        write!(
            f,
            "BayesMlp {{sizes: {:?}, activation: {}, prior: {}, estimator: {}, likelihood: {:?}, params: {params}}}",
            c.layer_sizes(),
            c.activation,
            c.prior,
            c.estimator,
            c.likelihood
        )
    }
}
