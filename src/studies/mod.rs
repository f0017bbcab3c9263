//! Studies of how the prior over weights and the initializer are one object.
//! Each is a library function returning a serializable result, run from the
//! CLI as `bnn study NAME`.
//!
//! - [`signal`]: pre-activation variance and gradients through depth, per
//!   prior, against the mean-field recursion ([`mean_field`]);
//! - [`nngp`]: finite networks converging to the NNGP kernel
//!   ([`nngp_kernel`]), and exact GP regression with it ([`gp`]) next to BBB;
//! - [`prior_predictive`]: function draws under each prior with the NNGP
//!   band, and the differential entropy of priors at equal variance;
//! - [`l2`]: the KL (or the prior) as weight decay: Gaussian ↔ L2, Laplace ↔
//!   L1, MC dropout's `lambda = l²(1-p)/(2N tau)`;
//! - [`migration`]: a non-zero-mean initializer against a zero-mean prior;
//! - [`sigma`]: why `sigma_p = 1`? Fixed and fan-scaled priors on UCI data;
//! - [`prior_mean`]: a prior centred on pretrained weights (MOPED).
//!
//! [`random_mlp`] draws the networks at initialization that the first three
//! measure; [`gauss_hermite`] computes their Gaussian expectations. The
//! UCI-based studies share [`StudySplit`]: one published split, z-scored
//! on its training rows, scored on its test rows in the original units, with
//! the protocol's network ([`StudySplit::bbb_config`]) trained as
//! [`StudyTraining`] says. [`parallel`] spreads independent jobs over the cores.

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, SplitDir};
use crate::metrics::{nll, picp, rmse};
use crate::model::{BayesMlpConfig, StochasticModel};
use crate::prior::Prior;
use crate::train::TrainConfig;
use crate::uci::{ScaledTrain, DEFAULT_HIDDEN};
use crate::{Error, Result};

pub mod gauss_hermite;
pub mod gp;
pub mod l2;
pub mod mean_field;
pub mod migration;
pub mod nngp;
pub mod nngp_kernel;
pub mod parallel;
pub mod prior_mean;
pub mod prior_predictive;
pub mod random_mlp;
pub mod sigma;
pub mod signal;

/// Test scores of a regression model in the target's original units, as the
/// UCI protocol reports them ([`crate::uci`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TestScores {
    /// Root mean squared error of the predictive mean.
    pub rmse: f64,
    /// Average test log-likelihood, `mean_i ln p(y_i | x_i)`.
    pub ll: f64,
    /// Coverage of the central 95% intervals.
    pub picp95: f64,
}

/// One published split of a UCI directory, ready for a study.
#[derive(Debug, Clone)]
pub struct StudySplit {
    /// The training rows, z-scored on themselves.
    pub train: ScaledTrain,
    /// The test rows, original units.
    pub test: Dataset,
    /// Number of training rows `N`.
    pub n_train: usize,
    /// Hidden units of the protocol (`n_hidden.txt`, else 50).
    pub hidden: usize,
}

impl StudySplit {
    /// Split `split` of `dir`, its training rows standardized onto `device`.
    pub fn load(dir: &SplitDir, split: usize, device: &Device) -> Result<Self> {
        let (train, test) = dir.split(split)?;
        Ok(Self {
            train: ScaledTrain::new(&train, device)?,
            n_train: train.len(),
            test,
            hidden: dir.n_hidden.unwrap_or(DEFAULT_HIDDEN),
        })
    }

    /// The protocol's network for this split: one hidden layer of
    /// [`hidden`](Self::hidden) units on the split's features, under `prior`
    /// (validated).
    pub fn bbb_config(&self, prior: Prior) -> Result<BayesMlpConfig> {
        let config = BayesMlpConfig {
            prior,
            ..BayesMlpConfig::new(self.test.n_features(), &[self.hidden])
        };
        config.validate()?;
        Ok(config)
    }

    /// Scores `model` on the test rows from `samples` stochastic passes.
    pub fn scores<M: StochasticModel + ?Sized>(
        &self,
        model: &M,
        samples: usize,
    ) -> Result<TestScores> {
        let dist = self.train.predictive(model, &self.test.x, samples)?;
        let ys = &self.test.y;
        Ok(TestScores {
            rmse: rmse(&dist.mean(), ys)?,
            ll: -nll(&dist, ys)?,
            picp95: picp(&dist.interval(0.95)?, ys)?,
        })
    }
}

/// How the UCI-based studies train and score their networks: Adam over
/// minibatches as `bnn uci`'s short protocol does
/// ([`crate::uci::Protocol::SHORT`]), and posterior samples per test
/// evaluation.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `batch_size` | 32 | minibatch size | ≥ 1 |
/// | `lr` | 1e-2 | Adam learning rate | > 0 |
/// | `samples` | 100 | posterior samples per test evaluation | ≥ 1 |
/// | `seed` | 0 | initialization, forward noise and minibatches | any |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StudyTraining {
    /// Minibatch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Posterior samples per test evaluation.
    pub samples: usize,
    /// Seed.
    pub seed: u64,
}

impl Default for StudyTraining {
    fn default() -> Self {
        let short = crate::uci::Protocol::SHORT;
        Self {
            batch_size: short.batch_size,
            lr: short.lr,
            samples: short.samples,
            seed: 0,
        }
    }
}

impl StudyTraining {
    /// Refuses `samples == 0`: the test scores need at least one posterior
    /// sample. (The rest is checked where training starts.)
    pub fn validate(&self) -> Result<()> {
        if self.samples == 0 {
            return Err(Error::invalid("samples", 0, "at least 1"));
        }
        Ok(())
    }

    /// The settings of one fit: `epochs` of these, without a progress bar of
    /// its own (the study advances its one bar), the rest as
    /// [`TrainConfig::default`].
    pub fn fit_config(&self, epochs: usize) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            seed: self.seed,
            progress: false,
            ..TrainConfig::default()
        }
    }
}
