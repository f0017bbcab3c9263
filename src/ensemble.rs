//! Deep ensembles (Lakshminarayanan, Pritzel & Blundell 2017, "Simple and
//! Scalable Predictive Uncertainty Estimation using Deep Ensembles").
//!
//! `M` networks with a heteroscedastic Gaussian head, each from its own random
//! initialization, trained on the Gaussian NLL; the predictive is their
//! uniform mixture, so it goes through the same [`GaussianMixture`] as BBB
//! and MC dropout:
//!
//! ```text
//! p(y | x) = (1/M) Σ_m N(y; mu_m(x), sigma_m(x)²)
//! ```
//!
//! A member is an [`McDropoutMlp`] with dropout 0 and length-scale 0: a plain
//! deterministic MLP. All members train together, each step on one
//! minibatch per member, drawn from the member's own shuffle of the rows
//! (the loss is the mean of their NLLs, so their gradients stay separate).
//! The paper's diversity comes from both: "random initialization of the
//! network parameters along with random shuffling of the data points"
//! (§2.4).
//!
//! [`GaussianMixture`]: crate::predictive::GaussianMixture

use std::collections::HashMap;
use std::fmt;

use candle_core::{Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::likelihood::{Likelihood, LikelihoodKind};
use crate::mc_dropout::{McDropoutConfig, McDropoutMlp};
use crate::model::{StochasticModel, TensorStore};
use crate::posterior::KlTerms;
use crate::{Error, Result};

/// Members of the published experiments.
pub const DEFAULT_MEMBERS: usize = 5;

/// Architecture of a [`DeepEnsemble`] (serializable).
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `member` | deterministic, heteroscedastic | every member's network | dropout and length-scale 0 for the paper's members |
/// | `members` | [`DEFAULT_MEMBERS`] | networks `M` | ≥ 1 |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleConfig {
    /// The architecture every member shares.
    pub member: McDropoutConfig,
    /// Number of members `M`.
    pub members: usize,
}

impl EnsembleConfig {
    /// `members` plain MLPs (dropout 0, length-scale 0) of `hidden` units on
    /// `input_dim` features with a heteroscedastic head, as in the paper.
    pub fn new(input_dim: usize, hidden: &[usize], members: usize) -> Self {
        Self {
            member: McDropoutConfig {
                dropout: 0.0,
                length_scale: 0.0,
                likelihood: LikelihoodKind::Heteroscedastic,
                ..McDropoutConfig::new(input_dim, hidden)
            },
            members,
        }
    }

    /// Checks the member architecture and that there is at least one member.
    pub fn validate(&self) -> Result<()> {
        if self.members == 0 {
            return Err(Error::invalid("members", 0, "at least 1 network"));
        }
        self.member.validate()
    }
}

/// `M` independently initialized deterministic networks, each trained on its
/// own shuffle of the rows ([`StochasticModel::minibatch_streams`]).
#[derive(Debug, Clone)]
pub struct DeepEnsemble {
    config: EnsembleConfig,
    members: Vec<McDropoutMlp>,
}

impl DeepEnsemble {
    /// `members` networks of `hidden` units on `input_dim` features, with a
    /// heteroscedastic head ([`EnsembleConfig::new`]); member `m` is
    /// initialized from `seed + m`.
    pub fn new(
        input_dim: usize,
        hidden: &[usize],
        members: usize,
        seed: u64,
        device: &Device,
    ) -> Result<Self> {
        Self::from_config(
            EnsembleConfig::new(input_dim, hidden, members),
            seed,
            device,
        )
    }

    /// The ensemble of `config`; member `m` is initialized from `seed + m`.
    pub fn from_config(config: EnsembleConfig, seed: u64, device: &Device) -> Result<Self> {
        config.validate()?;
        let members = (0..config.members as u64)
            .map(|m| McDropoutMlp::new(config.member.clone(), seed.wrapping_add(m), device))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { config, members })
    }

    /// Rebuilds an ensemble from its tensors by checkpoint name
    /// (`m{k}.` + the member's names, see [`StochasticModel::named_vars`]),
    /// checking that every tensor is present with the right shape and that
    /// none is left over.
    pub fn from_named_tensors(
        config: EnsembleConfig,
        tensors: HashMap<String, Tensor>,
        seed: u64,
    ) -> Result<Self> {
        config.validate()?;
        let mut store = TensorStore::new(tensors);
        let members = (0..config.members)
            .map(|k| {
                McDropoutMlp::take_from(
                    config.member.clone(),
                    &mut store,
                    &format!("m{k}."),
                    seed.wrapping_add(k as u64),
                )
            })
            .collect::<Result<Vec<_>>>()?;
        store.finish()?;
        Ok(Self { config, members })
    }

    /// The configuration.
    pub fn config(&self) -> &EnsembleConfig {
        &self.config
    }

    /// The member networks.
    pub fn members(&self) -> &[McDropoutMlp] {
        &self.members
    }
}

impl fmt::Display for DeepEnsemble {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "DeepEnsemble {{members: {}, member: ",
            self.members.len()
        )?;
        fmt::Display::fmt(&self.members[0], f)?;
        write!(f, "}}")
    }
}

impl StochasticModel for DeepEnsemble {
    /// Sample `t` is member `t mod M` (deterministic), so `samples = M` gives
    /// each member once: `[M, B, 2]`. `samples` must be a multiple of `M`,
    /// so that every member weighs the same in the mixture.
    fn forward_samples(&self, xs: &Tensor, samples: usize) -> Result<Tensor> {
        let m = self.members.len();
        if samples == 0 || samples % m != 0 {
            return Err(Error::invalid(
                "samples",
                samples,
                format!("a positive multiple of the {m} members (each member is one equally weighted component)"),
            ));
        }
        let heads = (0..samples)
            .map(|t| self.members[t % self.members.len()].forward_mean(xs))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&heads, 0)?)
    }

    /// One sample per member: `M`.
    fn sample_group(&self) -> usize {
        self.members.len()
    }

    /// One minibatch order per member.
    fn minibatch_streams(&self) -> usize {
        self.members.len()
    }

    /// Every member: member `m` on `xs[m]` when `xs` is `[M, B, in]` (its own
    /// minibatch), or all on the same `[B, in]`.
    fn forward_train(&self, xs: &Tensor) -> Result<Tensor> {
        let m = self.members.len();
        if xs.rank() != 3 {
            return self.forward_samples(xs, m);
        }
        if xs.dim(0)? != m {
            return Err(Error::Shape {
                context: "DeepEnsemble::forward_train".into(),
                message: format!(
                    "one minibatch per member: expected [{m}, batch, input_dim], got {:?}",
                    xs.dims()
                ),
            });
        }
        let heads = self
            .members
            .iter()
            .enumerate()
            .map(|(k, member)| member.forward_mean(&xs.get(k)?))
            .collect::<Result<Vec<_>>>()?;
        Ok(Tensor::stack(&heads, 0)?)
    }

    /// The members' average output.
    fn forward_mean(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(self.forward_samples(xs, self.members.len())?.mean(0)?)
    }

    /// Zero: ensemble members carry no prior term.
    fn kl(&self) -> Result<KlTerms> {
        KlTerms::zeros(self.members[0].device())
    }

    /// The members' shared (stateless, heteroscedastic) likelihood.
    fn likelihood(&self) -> &Likelihood {
        self.members[0].likelihood()
    }

    /// `m{k}.l{i}.weight`, `m{k}.l{i}.bias` for member `k`.
    fn named_vars(&self) -> Vec<(String, Var)> {
        self.members
            .iter()
            .enumerate()
            .flat_map(|(k, m)| {
                m.named_vars()
                    .into_iter()
                    .map(move |(n, v)| (format!("m{k}.{n}"), v))
            })
            .collect()
    }
}
