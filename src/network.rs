//! Any of the three model families behind one type, so that the regressor,
//! the classifier, checkpoints and the CLI are written once:
//!
//! | `method` | spec | network | posterior over functions |
//! |---|---|---|---|
//! | `bbb` | [`BayesMlpConfig`] | [`BayesMlp`] | factored Gaussian weights (Blundell et al. 2015) |
//! | `mc-dropout` | [`McDropoutConfig`] | [`McDropoutMlp`] | dropout masks (Gal & Ghahramani 2016) |
//! | `ensemble` | [`EnsembleConfig`] | [`DeepEnsemble`] | uniform over members (Lakshminarayanan et al. 2017) |
//!
//! A [`NetworkSpec`] serializes as `{"method": "bbb", "model": {...}}`, the
//! two fields a model directory's `model.json` starts with.

use std::collections::HashMap;
use std::fmt;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::ensemble::{DeepEnsemble, EnsembleConfig};
use crate::likelihood::{Likelihood, LikelihoodKind};
use crate::mc_dropout::{McDropoutConfig, McDropoutMlp};
use crate::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use crate::posterior::KlTerms;
use crate::Result;

/// The architecture of a network of any family (serializable).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", content = "model", rename_all = "kebab-case")]
pub enum NetworkSpec {
    /// Bayes by Backprop.
    Bbb(BayesMlpConfig),
    /// MC dropout.
    McDropout(McDropoutConfig),
    /// A deep ensemble.
    Ensemble(EnsembleConfig),
}

impl From<BayesMlpConfig> for NetworkSpec {
    fn from(config: BayesMlpConfig) -> Self {
        NetworkSpec::Bbb(config)
    }
}

impl From<McDropoutConfig> for NetworkSpec {
    fn from(config: McDropoutConfig) -> Self {
        NetworkSpec::McDropout(config)
    }
}

impl From<EnsembleConfig> for NetworkSpec {
    fn from(config: EnsembleConfig) -> Self {
        NetworkSpec::Ensemble(config)
    }
}

impl NetworkSpec {
    /// `"bbb"`, `"mc-dropout"` or `"ensemble"`, as the CLI's `--method`
    /// and `model.json` spell them.
    pub fn method(&self) -> &'static str {
        match self {
            NetworkSpec::Bbb(_) => "bbb",
            NetworkSpec::McDropout(_) => "mc-dropout",
            NetworkSpec::Ensemble(_) => "ensemble",
        }
    }

    /// Number of input features.
    pub fn input_dim(&self) -> usize {
        match self {
            NetworkSpec::Bbb(c) => c.input_dim,
            NetworkSpec::McDropout(c) => c.input_dim,
            NetworkSpec::Ensemble(c) => c.member.input_dim,
        }
    }

    /// The likelihood head.
    pub fn likelihood(&self) -> LikelihoodKind {
        match self {
            NetworkSpec::Bbb(c) => c.likelihood,
            NetworkSpec::McDropout(c) => c.likelihood,
            NetworkSpec::Ensemble(c) => c.member.likelihood,
        }
    }

    /// The same architecture with the likelihood head `kind` (e.g. a
    /// `classes`-way softmax for a classifier).
    pub fn with_likelihood(mut self, kind: LikelihoodKind) -> Self {
        match &mut self {
            NetworkSpec::Bbb(c) => c.likelihood = kind,
            NetworkSpec::McDropout(c) => c.likelihood = kind,
            NetworkSpec::Ensemble(c) => c.member.likelihood = kind,
        }
        self
    }

    /// Checks every field; errors name the field and its valid range.
    pub fn validate(&self) -> Result<()> {
        match self {
            NetworkSpec::Bbb(c) => c.validate(),
            NetworkSpec::McDropout(c) => c.validate(),
            NetworkSpec::Ensemble(c) => c.validate(),
        }
    }

    /// A fresh, untrained network whose initialization and noise come from
    /// `seed`.
    pub fn build(&self, seed: u64, device: &Device) -> Result<Network> {
        Ok(match self {
            NetworkSpec::Bbb(c) => Network::Bbb(BayesMlp::new(c.clone(), seed, device)?),
            NetworkSpec::McDropout(c) => {
                Network::McDropout(McDropoutMlp::new(c.clone(), seed, device)?)
            }
            NetworkSpec::Ensemble(c) => {
                Network::Ensemble(DeepEnsemble::from_config(c.clone(), seed, device)?)
            }
        })
    }

    /// Rebuilds the network from its tensors by checkpoint name (see
    /// [`StochasticModel::named_vars`]): every tensor present, with the right
    /// shape, none left over. `seed` starts the forward-pass noise.
    pub fn from_named_tensors(
        &self,
        tensors: HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<Network> {
        Ok(match self {
            NetworkSpec::Bbb(c) => {
                Network::Bbb(BayesMlp::from_named_tensors(c.clone(), tensors, seed)?)
            }
            NetworkSpec::McDropout(c) => {
                Network::McDropout(McDropoutMlp::from_named_tensors(c.clone(), tensors, seed)?)
            }
            NetworkSpec::Ensemble(c) => {
                Network::Ensemble(DeepEnsemble::from_named_tensors(c.clone(), tensors, seed)?)
            }
        })
    }
}

/// A network of any family.
#[derive(Debug, Clone)]
pub enum Network {
    /// A Bayes-by-Backprop MLP.
    Bbb(BayesMlp),
    /// An MC-dropout MLP.
    McDropout(McDropoutMlp),
    /// A deep ensemble.
    Ensemble(DeepEnsemble),
}

impl From<BayesMlp> for Network {
    fn from(model: BayesMlp) -> Self {
        Network::Bbb(model)
    }
}

impl From<McDropoutMlp> for Network {
    fn from(model: McDropoutMlp) -> Self {
        Network::McDropout(model)
    }
}

impl From<DeepEnsemble> for Network {
    fn from(model: DeepEnsemble) -> Self {
        Network::Ensemble(model)
    }
}

impl Network {
    /// The architecture it was built from.
    pub fn spec(&self) -> NetworkSpec {
        match self {
            Network::Bbb(m) => NetworkSpec::Bbb(m.config().clone()),
            Network::McDropout(m) => NetworkSpec::McDropout(m.config().clone()),
            Network::Ensemble(m) => NetworkSpec::Ensemble(m.config().clone()),
        }
    }

    /// The model as the trait training and prediction are written against.
    pub fn as_stochastic(&self) -> &dyn StochasticModel {
        match self {
            Network::Bbb(m) => m,
            Network::McDropout(m) => m,
            Network::Ensemble(m) => m,
        }
    }

    /// Restarts the forward-pass noise at `seed`, so that the following
    /// passes replay exactly (an ensemble's passes are deterministic).
    pub fn reseed(&self, seed: u64) {
        match self {
            Network::Bbb(m) => m.noise().reseed(seed),
            Network::McDropout(m) => m.noise().reseed(seed),
            Network::Ensemble(_) => {}
        }
    }

    /// The device its parameters live on.
    pub fn device(&self) -> &Device {
        match self {
            Network::Bbb(m) => m.layers()[0].weight().mu().device(),
            Network::McDropout(m) => m.device(),
            Network::Ensemble(m) => m.members()[0].device(),
        }
    }
}

/// Every method forwards to the family's own, defaults included: a method
/// left to the trait's default here would silently drop the family's
/// override (an ensemble's sample groups, say).
impl StochasticModel for Network {
    fn forward_samples(&self, xs: &Tensor, samples: usize) -> Result<Tensor> {
        self.as_stochastic().forward_samples(xs, samples)
    }

    fn sample_group(&self) -> usize {
        self.as_stochastic().sample_group()
    }

    fn minibatch_streams(&self) -> usize {
        self.as_stochastic().minibatch_streams()
    }

    fn forward_train(&self, xs: &Tensor) -> Result<Tensor> {
        self.as_stochastic().forward_train(xs)
    }

    fn forward_train_with_kl(&self, xs: &Tensor) -> Result<(Tensor, KlTerms)> {
        self.as_stochastic().forward_train_with_kl(xs)
    }

    fn forward_mean(&self, xs: &Tensor) -> Result<Tensor> {
        self.as_stochastic().forward_mean(xs)
    }

    fn kl(&self) -> Result<KlTerms> {
        self.as_stochastic().kl()
    }

    fn likelihood(&self) -> &Likelihood {
        self.as_stochastic().likelihood()
    }

    fn named_vars(&self) -> Vec<(String, Var)> {
        self.as_stochastic().named_vars()
    }

    fn finish_training(&self, xs: &Tensor, ys: &Tensor) -> Result<()> {
        self.as_stochastic().finish_training(xs, ys)
    }
}

impl fmt::Display for Network {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Network::Bbb(m) => fmt::Display::fmt(m, f),
            Network::McDropout(m) => fmt::Display::fmt(m, f),
            Network::Ensemble(m) => fmt::Display::fmt(m, f),
        }
    }
}
