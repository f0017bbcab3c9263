//! Weight migration: a non-zero-mean initializer against a zero-mean prior.
//!
//! The prior is the initializer here by default ([`crate::prior`]); this study
//! separates the two roles. With a zero-mean Gaussian prior `N(0, sigma_p²)`
//! (per layer), the posterior means start either at a prior draw or at a
//! draw shifted by `m = shift · sigma_p`,
//!
//! ```text
//! zero-mean init   mu_0 = sigma_p z
//! shifted init     mu_0 = m + sigma_p z        (the same z: a paired comparison)
//! ```
//!
//! so the KL's L2 part starts higher by
//!
//! ```text
//! Δ KL_0 = Σ [(m + sigma_p z)² - (sigma_p z)²] / (2 sigma_p²) = Σ (shift z + shift²/2),
//! E[Δ KL_0] = n_params · shift² / 2
//! ```
//!
//! and its gradient `(mu - 0) / sigma_p²` (per example: `/ N`) pulls the
//! means back toward 0. The textbook claim is that the penalty starts "higher
//! than necessary" and the weights must *slowly* migrate to zero: under plain
//! gradient descent on the decay alone, `mu_t = mu_0 (1 - lr / (sigma_p² N))^t`.
//! Both runs are trained by BBB ([`crate::train`], Adam) on one UCI split with
//! the same seed (minibatches, forward noise), and followed epoch by epoch:
//! the mean of `mu / sigma_p` over all weights and biases, the exact KL and
//! its split, and the test log-likelihood. At the end, per tensor: how far
//! the data moved the means, `||mu_T - mu_0|| / ||mu_0||`, and how much of
//! the prior's spread the posterior kept, `mean(sigma_T) / sigma_p`.

use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::data::SplitDir;
use crate::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use crate::noise::NoiseSource;
use crate::prior::{Fan, LayerPrior, Prior};
use crate::studies::{StudySplit, StudyTraining, TestScores};
use crate::train::fit_observed;
use crate::{Error, Result};

/// Settings of the study.
///
/// | Field | Default | Purpose |
/// |---|---|---|
/// | `prior` | He | zero-mean Gaussian prior (and the unshifted initializer) |
/// | `shift` | 0.5 | initial mean `m = shift · sigma_p` of the shifted run |
/// | `split` | 0 | published split |
/// | `epochs` | 400 | the UCI protocol's 10 × 40 |
/// | `training` | [`StudyTraining::default`] | batch size, learning rate, test samples, seed |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MigrationConfig {
    /// Zero-mean Gaussian prior the KL is taken against.
    pub prior: Prior,
    /// Initial mean of the shifted run, in prior standard deviations.
    pub shift: f64,
    /// Split index.
    pub split: usize,
    /// Training epochs.
    pub epochs: usize,
    /// Minibatches, test samples and seed.
    #[serde(flatten)]
    pub training: StudyTraining,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            prior: Prior::He,
            shift: 0.5,
            split: 0,
            epochs: 400,
            training: StudyTraining::default(),
        }
    }
}

/// The state of a run after `epoch` epochs (0: at initialization).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MigrationEpoch {
    /// Epochs trained.
    pub epoch: usize,
    /// Mean of `mu / sigma_p` over all weights and biases.
    pub weight_mean: f64,
    /// Exact `KL(q || p)` at the epoch's end.
    pub kl: f64,
    /// Its L2 part, `Σ mu² / (2 sigma_p²)`.
    pub kl_l2: f64,
    /// Its variance part.
    pub kl_rest: f64,
    /// Average test log-likelihood (original units).
    pub test_ll: f64,
}

/// Where training took one tensor of means and scales.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TensorMovement {
    /// Checkpoint name without the `.mu` suffix, e.g. `l0.weight`.
    pub name: String,
    /// `||mu_T - mu_0|| / ||mu_0||`.
    pub relative_change: f64,
    /// `||mu_T|| / ||mu_0||`: near 0 where the KL pulled the means back to
    /// the prior's 0 (the data did not need them).
    pub norm_ratio: f64,
    /// `mean(sigma_T) / sigma_p`: near 1 where the data left the prior's
    /// spread in place, small where the data pinned the weight down.
    pub sigma_over_prior: f64,
    /// Mean of `mu_0 / sigma_p`.
    pub initial_mean: f64,
    /// Mean of `mu_T / sigma_p`.
    pub final_mean: f64,
}

/// One training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationRun {
    /// `zero-mean init` or `shifted init`.
    pub label: String,
    /// Initial mean in prior standard deviations (0 or `shift`).
    pub init_shift: f64,
    /// Epoch 0 (init) to `epochs`.
    pub history: Vec<MigrationEpoch>,
    /// Test scores after training.
    pub scores: TestScores,
    /// Per tensor, input layer first.
    pub tensors: Vec<TensorMovement>,
}

/// What the study measured (the fields of `bnn study migration --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MigrationResult {
    /// Dataset (the split directory's name).
    pub dataset: String,
    /// Split index.
    pub split: usize,
    /// The prior, as the CLI spells it.
    pub prior: String,
    /// `shift`.
    pub shift: f64,
    /// Epochs trained.
    pub epochs: usize,
    /// Training rows `N`.
    pub n_train: usize,
    /// Weights and biases (means) of the network.
    pub n_params: usize,
    /// Measured `KL_0(shifted) - KL_0(zero-mean)`.
    pub initial_kl_excess: f64,
    /// Its expectation `n_params · shift² / 2`.
    pub expected_kl_excess: f64,
    /// First epoch at which the gap between the runs' weight means is at
    /// most half its initial value (`None`: never within `epochs`).
    pub half_gap_epoch: Option<usize>,
    /// The zero-mean run, then the shifted run.
    pub runs: Vec<MigrationRun>,
}

/// Per layer, the zero-mean Gaussian prior's standard deviation; an error
/// for any other prior.
pub(crate) fn layer_sigmas(config: &BayesMlpConfig) -> Result<Vec<f64>> {
    config
        .layer_sizes()
        .windows(2)
        .map(|io| {
            match config.prior.resolve(Fan {
                fan_in: io[0],
                fan_out: io[1],
            })? {
                LayerPrior::Gaussian { mean: 0.0, sigma } => Ok(sigma),
                other => Err(Error::invalid(
                    "prior",
                    format!("{other:?}"),
                    "a zero-mean Gaussian prior: he, glorot, lecun, fanin:C or gaussian:SIGMA",
                )),
            }
        })
        .collect()
}

/// Initial means `shift · sigma_p + sigma_p z` per layer (weight, then bias,
/// input layer first), `z ~ N(0, 1)` from `seed`: the same `z` for every
/// `shift`.
pub fn shifted_init(
    config: &BayesMlpConfig,
    shift: f64,
    seed: u64,
    device: &Device,
) -> Result<Vec<(Tensor, Tensor)>> {
    if !shift.is_finite() {
        return Err(Error::invalid("shift", shift, "a finite number"));
    }
    let noise = NoiseSource::new(seed);
    let sizes = config.layer_sizes();
    sizes
        .windows(2)
        .zip(layer_sigmas(config)?)
        .map(|(io, sigma)| {
            let init = LayerPrior::Gaussian {
                mean: shift * sigma,
                sigma,
            };
            Ok((
                init.sample((io[1], io[0]), &noise, device)?,
                init.sample(io[1], &noise, device)?,
            ))
        })
        .collect()
}

/// Mean of `mu / sigma_p` over all weights and biases.
fn weight_mean(model: &BayesMlp, sigmas: &[f64]) -> Result<f64> {
    let (mut sum, mut n) = (0.0, 0usize);
    for (layer, sigma) in model.layers().iter().zip(sigmas) {
        for post in [layer.weight(), layer.bias()] {
            let mu = post.mu().as_tensor();
            sum += mu.sum_all()?.to_scalar::<f32>()? as f64 / sigma;
            n += mu.elem_count();
        }
    }
    Ok(sum / n.max(1) as f64)
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_scalar::<f32>()? as f64)
}

fn norm(t: &Tensor) -> Result<f64> {
    Ok(scalar(&t.sqr()?.sum_all()?)?.sqrt())
}

fn snapshot(
    model: &BayesMlp,
    sigmas: &[f64],
    split: &StudySplit,
    samples: usize,
    epoch: usize,
) -> Result<MigrationEpoch> {
    let kl = model.kl()?;
    Ok(MigrationEpoch {
        epoch,
        weight_mean: weight_mean(model, sigmas)?,
        kl: scalar(&kl.total()?)?,
        kl_l2: scalar(&kl.l2)?,
        kl_rest: scalar(&kl.rest)?,
        test_ll: split.scores(model, samples)?.ll,
    })
}

fn train_run(
    label: &str,
    shift: f64,
    model_config: &BayesMlpConfig,
    config: &MigrationConfig,
    split: &StudySplit,
    device: &Device,
    bar: &ProgressBar,
) -> Result<MigrationRun> {
    let sigmas = layer_sigmas(model_config)?;
    let training = &config.training;
    let means = shifted_init(model_config, shift, training.seed, device)?;
    // Forward noise from a stream of its own, not a replay of the init draws.
    let noise_seed = training.seed.wrapping_add(1);
    let model = BayesMlp::from_means(model_config.clone(), &means, noise_seed, device)?;
    let mut history = vec![snapshot(&model, &sigmas, split, training.samples, 0)?];
    let train = training.fit_config(config.epochs);
    fit_observed(
        &model,
        &split.train.xs,
        &split.train.ys,
        &train,
        bar,
        |summary| {
            history.push(snapshot(
                &model,
                &sigmas,
                split,
                training.samples,
                summary.epoch + 1,
            )?);
            Ok(ControlFlow::Continue(()))
        },
    )?;
    let mut tensors = Vec::new();
    for (i, (layer, sigma)) in model.layers().iter().zip(&sigmas).enumerate() {
        for (part, post, mu_0) in [
            ("weight", layer.weight(), &means[i].0),
            ("bias", layer.bias(), &means[i].1),
        ] {
            let mu_t = post.mu().as_tensor();
            let n = mu_t.elem_count() as f64;
            tensors.push(TensorMovement {
                name: format!("l{i}.{part}"),
                relative_change: norm(&(mu_t - mu_0)?)? / norm(mu_0)?,
                norm_ratio: norm(mu_t)? / norm(mu_0)?,
                sigma_over_prior: scalar(&post.sigma()?.sum_all()?)? / n / sigma,
                initial_mean: scalar(&mu_0.sum_all()?)? / n / sigma,
                final_mean: scalar(&mu_t.sum_all()?)? / n / sigma,
            });
        }
    }
    Ok(MigrationRun {
        label: label.into(),
        init_shift: shift,
        history,
        scores: split.scores(&model, training.samples)?,
        tensors,
    })
}

/// Runs the study on split `config.split` of `dir`, advancing `bar` by one
/// per training epoch (two runs).
pub fn run(
    dir: &SplitDir,
    config: &MigrationConfig,
    device: &Device,
    bar: &ProgressBar,
) -> Result<MigrationResult> {
    config.training.validate()?;
    if !config.shift.is_finite() {
        return Err(Error::invalid("shift", config.shift, "a finite number"));
    }
    let split = StudySplit::load(dir, config.split, device)?;
    let model_config = split.bbb_config(config.prior)?;
    layer_sigmas(&model_config)?;
    bar.set_length(2 * config.epochs as u64);
    let runs = [("zero-mean init", 0.0), ("shifted init", config.shift)]
        .into_iter()
        .map(|(label, shift)| train_run(label, shift, &model_config, config, &split, device, bar))
        .collect::<Result<Vec<_>>>()?;
    let n_params: usize = model_config
        .layer_sizes()
        .windows(2)
        .map(|io| io[0] * io[1] + io[1])
        .sum();
    let gaps: Vec<f64> = runs[1]
        .history
        .iter()
        .zip(&runs[0].history)
        .map(|(s, z)| s.weight_mean - z.weight_mean)
        .collect();
    let half_gap_epoch = gaps
        .iter()
        .position(|g| *g <= 0.5 * gaps[0])
        .map(|i| runs[0].history[i].epoch);
    Ok(MigrationResult {
        dataset: dir.name.clone(),
        split: config.split,
        prior: config.prior.to_string(),
        shift: config.shift,
        epochs: config.epochs,
        n_train: split.n_train,
        n_params,
        initial_kl_excess: runs[1].history[0].kl - runs[0].history[0].kl,
        expected_kl_excess: n_params as f64 * config.shift * config.shift / 2.0,
        half_gap_epoch,
        runs,
    })
}

/// Writes `migration_weight_mean.png` and `migration_kl.png` (both runs
/// against the epoch) into `dir`; returns their paths.
pub fn write_figures(
    result: &MigrationResult,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::figures::{plot_lines, Line};
    let series = |f: fn(&MigrationEpoch) -> f64| -> Vec<Vec<(f64, f64)>> {
        result
            .runs
            .iter()
            .map(|r| r.history.iter().map(|e| (e.epoch as f64, f(e))).collect())
            .collect()
    };
    let mut paths = Vec::new();
    for (file, title, y_label, f) in [
        (
            "migration_weight_mean.png",
            "Mean of the weights, in prior standard deviations",
            "mean of mu / sigma_p",
            (|e: &MigrationEpoch| e.weight_mean) as fn(&MigrationEpoch) -> f64,
        ),
        (
            "migration_kl.png",
            "KL(q || p) against the zero-mean prior",
            "KL (nats)",
            |e: &MigrationEpoch| e.kl,
        ),
    ] {
        let points = series(f);
        let lines: Vec<Line> = result
            .runs
            .iter()
            .zip(&points)
            .map(|(r, p)| Line {
                label: &r.label,
                points: p,
            })
            .collect();
        let path = dir.join(file);
        let title = format!("{title} ({}, {})", result.dataset, result.prior);
        plot_lines(&path, &title, ("epoch", y_label), &lines)?;
        paths.push(path);
    }
    Ok(paths)
}
