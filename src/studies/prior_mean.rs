//! A non-zero prior mean: decay toward pretrained weights instead of 0.
//!
//! MOPED (Krishnan, Subedar & Tickoo 2020, "Specifying Weight Priors in
//! Bayesian Deep Neural Networks with Empirical Bayes") first trains a
//! deterministic network, `mu_M`, then a variational one whose prior *and*
//! initial posterior means are `mu_M`:
//!
//! ```text
//! p(w) = N(mu_M, sigma_p²),   mu_0 = mu_M
//! KL   = Σ (mu - mu_M)² / (2 sigma_p²)  +  Σ [ ln(sigma_p/sigma) + sigma²/(2 sigma_p²) - ½ ]
//!        └─ l2: decay toward mu_M ─┘       └──────────── rest (unchanged) ────────────┘
//! ```
//!
//! ([`crate::posterior::FactoredGaussian::kl_closed_form_centred`]; sigma_p
//! here is the configured prior's, e.g. He's `√(2/fan_in)`, where MOPED
//! scales it per weight by `|mu_M|`). On one UCI split the study pretrains a
//! plain network by maximum likelihood (an [`McDropoutMlp`] with no dropout
//! and no decay, learned noise), then trains three BBB networks on the same
//! data:
//!
//! ```text
//! zero-mean prior          p = N(0, sigma_p²),     mu_0 ~ p          (plain BBB)
//! pretrained init          p = N(0, sigma_p²),     mu_0 = mu_M       (warm start only)
//! MOPED                    p = N(mu_M, sigma_p²),  mu_0 = mu_M
//! ```
//!
//! and reports their test scores ([`crate::uci`] protocol) and how many
//! epochs each needed to converge: the first epoch whose value is within
//! `tolerance · max(|F|, 1)` of the final level `F` (the mean of the last
//! 10 epochs), for the training loss and for the test log-likelihood.

use std::collections::HashMap;
use std::ops::ControlFlow;

use candle_core::{Device, Tensor};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::data::SplitDir;
use crate::likelihood::LikelihoodKind;
use crate::mc_dropout::{McDropoutConfig, McDropoutMlp};
use crate::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use crate::prior::Prior;
use crate::studies::{StudySplit, StudyTraining, TestScores};
use crate::train::{fit_observed, fit_with_progress};
use crate::{Error, Result};

/// Epochs averaged for the final level of a convergence criterion.
const FINAL_WINDOW: usize = 10;

/// Settings of the study.
///
/// | Field | Default | Purpose |
/// |---|---|---|
/// | `prior` | He | the prior's scale (its mean is 0 or `mu_M`) |
/// | `split` | 0 | published split |
/// | `pretrain_epochs` | 400 | maximum-likelihood pretraining |
/// | `epochs` | 400 | each BBB run |
/// | `tolerance` | 0.01 | relative band of the convergence criterion |
/// | `training` | [`StudyTraining::default`] | batch size, learning rate, test samples, seed |
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriorMeanConfig {
    /// Gaussian prior whose scale every run uses.
    pub prior: Prior,
    /// Split index.
    pub split: usize,
    /// Epochs of the deterministic pretraining.
    pub pretrain_epochs: usize,
    /// Epochs of each BBB run.
    pub epochs: usize,
    /// Relative tolerance of the convergence criterion.
    pub tolerance: f64,
    /// Minibatches, test samples and seed.
    #[serde(flatten)]
    pub training: StudyTraining,
}

impl Default for PriorMeanConfig {
    fn default() -> Self {
        Self {
            prior: Prior::He,
            split: 0,
            pretrain_epochs: 400,
            epochs: 400,
            tolerance: 0.01,
            training: StudyTraining::default(),
        }
    }
}

/// One epoch of one run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ArmEpoch {
    /// Epochs trained (1-based).
    pub epoch: usize,
    /// Mean training loss (negative ELBO per example) over the epoch's steps.
    pub loss: f64,
    /// Average test log-likelihood after the epoch (original units).
    pub test_ll: f64,
}

/// One BBB run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorMeanArm {
    /// `zero-mean prior`, `pretrained init` or `MOPED`.
    pub label: String,
    /// Test scores after training.
    pub scores: TestScores,
    /// The KL's L2 part after training (decay toward the prior's mean).
    pub kl_l2: f64,
    /// The KL's variance part after training.
    pub kl_rest: f64,
    /// First epoch whose training loss is within tolerance of its final level.
    pub epochs_to_converge_loss: Option<usize>,
    /// First epoch whose test log-likelihood is within tolerance of its final level.
    pub epochs_to_converge_ll: Option<usize>,
    /// Every epoch.
    pub history: Vec<ArmEpoch>,
}

/// What the study measured (the fields of `bnn study prior-mean --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorMeanResult {
    /// Dataset (the split directory's name).
    pub dataset: String,
    /// Split index.
    pub split: usize,
    /// The prior's scale, as the CLI spells it.
    pub prior: String,
    /// Epochs of the pretraining.
    pub pretrain_epochs: usize,
    /// Epochs of each BBB run.
    pub epochs: usize,
    /// Training rows `N`.
    pub n_train: usize,
    /// Relative tolerance of the convergence criterion.
    pub tolerance: f64,
    /// Test scores of the pretrained deterministic network (learned noise).
    pub pretrained: TestScores,
    /// The three BBB runs.
    pub arms: Vec<PriorMeanArm>,
}

/// The first epoch (1-based) whose value is within
/// `tolerance · max(|F|, 1)` of `F`, the mean of the last 10 values (all
/// of them when there are fewer); `None` for no values.
pub fn epochs_to_converge(values: &[f64], tolerance: f64) -> Option<usize> {
    let window = &values[values.len().saturating_sub(FINAL_WINDOW)..];
    if window.is_empty() {
        return None;
    }
    let level = window.iter().sum::<f64>() / window.len() as f64;
    let band = tolerance * level.abs().max(1.0);
    values
        .iter()
        .position(|v| (v - level).abs() <= band)
        .map(|i| i + 1)
}

/// The means `(weight, bias)` per layer of a plain network trained by
/// maximum likelihood (no dropout, no decay) on the split.
fn pretrain(
    model_config: &BayesMlpConfig,
    config: &PriorMeanConfig,
    split: &StudySplit,
    device: &Device,
    bar: &ProgressBar,
) -> Result<(Vec<(Tensor, Tensor)>, TestScores)> {
    let net = McDropoutMlp::new(
        McDropoutConfig {
            dropout: 0.0,
            length_scale: 0.0,
            prior: config.prior,
            activation: model_config.activation,
            likelihood: LikelihoodKind::Homoscedastic,
            ..McDropoutConfig::new(model_config.input_dim, &model_config.hidden)
        },
        config.training.seed,
        device,
    )?;
    let train = config.training.fit_config(config.pretrain_epochs);
    fit_with_progress(&net, &split.train.xs, &split.train.ys, &train, bar)?;
    let vars: HashMap<String, Tensor> = net
        .named_vars()
        .into_iter()
        .map(|(name, v)| (name, v.as_tensor().detach()))
        .collect();
    let take = |name: String| -> Result<Tensor> {
        vars.get(&name).cloned().ok_or_else(|| Error::Shape {
            context: "prior-mean study".into(),
            message: format!("the pretrained network has no tensor '{name}'"),
        })
    };
    let means = (0..model_config.layer_sizes().len() - 1)
        .map(|i| Ok((take(format!("l{i}.weight"))?, take(format!("l{i}.bias"))?)))
        .collect::<Result<Vec<_>>>()?;
    // No dropout: every pass is the same, one sample is the predictive.
    Ok((means, split.scores(&net, 1)?))
}

fn train_arm(
    label: &str,
    model: &BayesMlp,
    config: &PriorMeanConfig,
    split: &StudySplit,
    bar: &ProgressBar,
) -> Result<PriorMeanArm> {
    let (train, samples) = (
        config.training.fit_config(config.epochs),
        config.training.samples,
    );
    let mut history = Vec::new();
    fit_observed(model, &split.train.xs, &split.train.ys, &train, bar, |s| {
        history.push(ArmEpoch {
            epoch: s.epoch + 1,
            loss: s.terms.loss,
            test_ll: split.scores(model, samples)?.ll,
        });
        Ok(ControlFlow::Continue(()))
    })?;
    let kl = model.kl()?;
    let column = |f: fn(&ArmEpoch) -> f64| history.iter().map(f).collect::<Vec<_>>();
    Ok(PriorMeanArm {
        label: label.into(),
        scores: split.scores(model, samples)?,
        kl_l2: kl.l2.to_scalar::<f32>()? as f64,
        kl_rest: kl.rest.to_scalar::<f32>()? as f64,
        epochs_to_converge_loss: epochs_to_converge(&column(|e| e.loss), config.tolerance),
        epochs_to_converge_ll: epochs_to_converge(&column(|e| e.test_ll), config.tolerance),
        history,
    })
}

/// Runs the study on split `config.split` of `dir`, advancing `bar` by one
/// per training epoch (pretraining and three runs).
pub fn run(
    dir: &SplitDir,
    config: &PriorMeanConfig,
    device: &Device,
    bar: &ProgressBar,
) -> Result<PriorMeanResult> {
    config.training.validate()?;
    if !(config.tolerance.is_finite() && config.tolerance > 0.0) {
        return Err(Error::invalid(
            "tolerance",
            config.tolerance,
            "a finite number > 0",
        ));
    }
    let split = StudySplit::load(dir, config.split, device)?;
    let model_config = split.bbb_config(config.prior)?;
    bar.set_length((config.pretrain_epochs + 3 * config.epochs) as u64);
    let (means, pretrained) = pretrain(&model_config, config, &split, device, bar)?;

    let seed = config.training.seed;
    let plain = BayesMlp::new(model_config.clone(), seed, device)?;
    let warm = BayesMlp::from_means(model_config.clone(), &means, seed, device)?;
    let moped =
        BayesMlp::from_means(model_config, &means, seed, device)?.with_prior_means(&means)?;
    let arms = vec![
        train_arm("zero-mean prior", &plain, config, &split, bar)?,
        train_arm("pretrained init", &warm, config, &split, bar)?,
        train_arm("MOPED", &moped, config, &split, bar)?,
    ];
    Ok(PriorMeanResult {
        dataset: dir.name.clone(),
        split: config.split,
        prior: config.prior.to_string(),
        pretrain_epochs: config.pretrain_epochs,
        epochs: config.epochs,
        n_train: split.n_train,
        tolerance: config.tolerance,
        pretrained,
        arms,
    })
}

/// Writes `prior_mean_test_ll.png` into `dir`: each run's test
/// log-likelihood against the epoch, with the pretrained network's as a
/// level. Returns its path.
pub fn write_figures(
    result: &PriorMeanResult,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::figures::{plot_lines, Line};
    let curves: Vec<Vec<(f64, f64)>> = result
        .arms
        .iter()
        .map(|a| {
            a.history
                .iter()
                .map(|e| (e.epoch as f64, e.test_ll))
                .collect()
        })
        .collect();
    let level = [
        (1.0, result.pretrained.ll),
        (result.epochs as f64, result.pretrained.ll),
    ];
    let mut lines: Vec<Line> = result
        .arms
        .iter()
        .zip(&curves)
        .map(|(a, points)| Line {
            label: &a.label,
            points,
        })
        .collect();
    lines.push(Line {
        label: "pretrained (deterministic)",
        points: &level,
    });
    let path = dir.join("prior_mean_test_ll.png");
    let title = format!(
        "Test log-likelihood during BBB training ({}, split {}, {})",
        result.dataset, result.split, result.prior
    );
    plot_lines(&path, &title, ("epoch", "test log-likelihood"), &lines)?;
    Ok(vec![path])
}
