//! Why `sigma_p = 1`? A sweep over the prior's scale, which is also the
//! initializer's (Blundell et al. 2015 use fixed-sigma priors; He et al.
//! 2015 scale the initializer by the fan).
//!
//! Two families, each used as prior *and* initializer of a BBB network:
//!
//! ```text
//! fixed      N(0, sigma²)              sigma ∈ {0.1, 0.3, 1, 3}       (gaussian:SIGMA)
//! fan-in     N(0, c² / fan_in)         c ∈ {0.5, 1, 2}; He is c = √2   (fanin:C)
//! ```
//!
//! For each setting and each of the first K published splits of a UCI
//! dataset, the study trains BBB ([`crate::train`]) and reports the UCI test
//! scores ([`crate::uci`]: log-likelihood, RMSE, 95% coverage in original
//! units), the balance of the ELBO's two terms at the end of training,
//! `(KL / N) / NLL` (NLL: the last epoch's mean per-example expected
//! negative log-likelihood, standardized units), and beside them the signal
//! propagation statistic of the initialized network: the ratio of the
//! last layer's to the first layer's pre-activation second moment on the
//! standardized training inputs,
//!
//! ```text
//! q_l = mean_{i,j} z_l,ij²,  z_l = h_{l-1} mu_lᵀ + mu_b,l,   ratio = q_L / q_1
//! ```
//!
//! For ReLU, symmetric zero-mean pre-activations give `E[relu(z)²] = q/2`,
//! so with weight and bias prior variance `s²` (He et al. 2015, eq. 10;
//! Poole et al. 2016 for the mean-field view)
//!
//! ```text
//! q_{l+1} ≈ fan_in s² q_l / 2 + s²
//! fan-in (s² = c²/fan_in):  q_{l+1}/q_l ≈ c²/2   (He, c = √2: 1)
//! fixed  (s = sigma):       q_{l+1}/q_l ≈ fan_in sigma² / 2
//! ```

use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::data::SplitDir;
use crate::model::BayesMlp;
use crate::prior::{Fan, Prior};
use crate::studies::{StudySplit, StudyTraining};
use crate::train::fit_with_progress;
use crate::uci::mean_and_se;
use crate::{Error, Result};

/// Settings of the study.
///
/// | Field | Default | Purpose |
/// |---|---|---|
/// | `sigmas` | 0.1, 0.3, 1, 3 | fixed prior standard deviations |
/// | `gains` | 0.5, 1, 2 | fan-in gains `c` |
/// | `splits` | 3 | the first K published splits |
/// | `epochs` | 200 | per fit |
/// | `training` | [`StudyTraining::default`] | batch size, learning rate, test samples, seed (split `k` uses `seed + k`) |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigmaConfig {
    /// Fixed prior standard deviations.
    pub sigmas: Vec<f64>,
    /// Fan-in gains `c`.
    pub gains: Vec<f64>,
    /// Number of splits.
    pub splits: usize,
    /// Epochs per fit.
    pub epochs: usize,
    /// Minibatches, test samples and seed (split `k` uses `seed + k`).
    #[serde(flatten)]
    pub training: StudyTraining,
}

impl Default for SigmaConfig {
    fn default() -> Self {
        Self {
            sigmas: vec![0.1, 0.3, 1.0, 3.0],
            gains: vec![0.5, 1.0, 2.0],
            splits: 3,
            epochs: 200,
            training: StudyTraining::default(),
        }
    }
}

/// The scores of one prior, averaged over splits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigmaSetting {
    /// The prior as the CLI spells it (`gaussian:0.3`, `fanin:2`).
    pub prior: String,
    /// `fixed` or `fan-in`.
    pub family: String,
    /// `sigma` (fixed) or `c` (fan-in).
    pub value: f64,
    /// The first layer's prior standard deviation (`c / √fan_in` for fan-in).
    pub first_layer_sigma: f64,
    /// Mean test log-likelihood over splits.
    pub ll_mean: f64,
    /// Its standard error (ddof = 0).
    pub ll_se: f64,
    /// Mean test RMSE.
    pub rmse_mean: f64,
    /// Its standard error.
    pub rmse_se: f64,
    /// Mean coverage of the 95% intervals.
    pub picp95_mean: f64,
    /// Mean `KL / N` of the last epoch.
    pub kl_per_example: f64,
    /// Mean per-example NLL of the last epoch (standardized units).
    pub train_nll: f64,
    /// `kl_per_example / train_nll`.
    pub kl_nll_ratio: f64,
    /// Mean over splits of `q_L / q_1` at initialization.
    pub signal_ratio: f64,
}

/// What the study measured (the fields of `bnn study sigma --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SigmaResult {
    /// Dataset (the split directory's name).
    pub dataset: String,
    /// Splits per setting.
    pub splits: usize,
    /// Epochs per fit.
    pub epochs: usize,
    /// Hidden units (one hidden layer, the protocol's).
    pub hidden: usize,
    /// One row per prior: the fixed sigmas, then the fan-in gains.
    pub settings: Vec<SigmaSetting>,
    /// Wall time in seconds.
    pub seconds: f64,
}

/// The second moment `q_l = mean(z_l²)` of every layer's pre-activation when
/// `xs: [B, in]` passes through the posterior means, input layer first.
pub fn preactivation_second_moments(model: &BayesMlp, xs: &Tensor) -> Result<Vec<f64>> {
    let layers = model.layers();
    let mut h = xs.clone();
    let mut q = Vec::with_capacity(layers.len());
    for (i, layer) in layers.iter().enumerate() {
        let z = layer.forward_mean(&h)?;
        q.push(z.sqr()?.mean_all()?.to_scalar::<f32>()? as f64);
        if i + 1 < layers.len() {
            h = model.config().activation.apply(&z)?;
        }
    }
    Ok(q)
}

/// What one setting measured, one value per split.
#[derive(Default)]
struct Tally {
    ll: Vec<f64>,
    rmse: Vec<f64>,
    picp95: Vec<f64>,
    kl_per_example: Vec<f64>,
    train_nll: Vec<f64>,
    signal_ratio: Vec<f64>,
}

fn mean(values: &[f64]) -> f64 {
    mean_and_se(values).0
}

/// Runs the sweep on `dir`, advancing `bar` by one per training epoch.
pub fn run(
    dir: &SplitDir,
    config: &SigmaConfig,
    device: &Device,
    bar: &ProgressBar,
) -> Result<SigmaResult> {
    let start = Instant::now();
    if config.splits == 0 || config.splits > dir.n_splits() {
        return Err(Error::invalid(
            "splits",
            config.splits,
            format!("1 to the {} splits of {}", dir.n_splits(), dir.name),
        ));
    }
    config.training.validate()?;
    let mut priors = Vec::new();
    for &sigma in &config.sigmas {
        priors.push(("fixed", sigma, Prior::gaussian(sigma)?));
    }
    for &c in &config.gains {
        let prior = Prior::FanIn { c };
        prior.validate()?;
        priors.push(("fan-in", c, prior));
    }
    if priors.is_empty() {
        return Err(Error::invalid(
            "sigmas",
            "none",
            "at least one sigma or gain",
        ));
    }
    let splits = (0..config.splits)
        .map(|k| StudySplit::load(dir, k, device))
        .collect::<Result<Vec<_>>>()?;
    let (d, hidden) = (splits[0].test.n_features(), splits[0].hidden);
    bar.set_length((priors.len() * config.splits * config.epochs) as u64);

    let mut settings = Vec::with_capacity(priors.len());
    for (family, value, prior) in priors {
        let model_config = splits[0].bbb_config(prior)?;
        let mut t = Tally::default();
        for (k, split) in splits.iter().enumerate() {
            bar.set_message(format!("{prior} split {}/{}", k + 1, config.splits));
            let seed = config.training.seed.wrapping_add(k as u64);
            let model = BayesMlp::new(model_config.clone(), seed, device)?;
            let q = preactivation_second_moments(&model, &split.train.xs)?;
            t.signal_ratio.push(q[q.len() - 1] / q[0]);
            let train = StudyTraining {
                seed,
                ..config.training
            }
            .fit_config(config.epochs);
            let report = fit_with_progress(&model, &split.train.xs, &split.train.ys, &train, bar)?;
            if let Some(last) = report.last() {
                t.kl_per_example.push(last.terms.kl / split.n_train as f64);
                t.train_nll.push(last.terms.nll);
            }
            let scores = split.scores(&model, config.training.samples)?;
            t.ll.push(scores.ll);
            t.rmse.push(scores.rmse);
            t.picp95.push(scores.picp95);
        }
        let ((ll_mean, ll_se), (rmse_mean, rmse_se)) = (mean_and_se(&t.ll), mean_and_se(&t.rmse));
        let (kl_per_example, train_nll) = (mean(&t.kl_per_example), mean(&t.train_nll));
        let first = prior.resolve(Fan {
            fan_in: d,
            fan_out: hidden,
        })?;
        settings.push(SigmaSetting {
            prior: prior.to_string(),
            family: family.into(),
            value,
            first_layer_sigma: first.std(),
            ll_mean,
            ll_se,
            rmse_mean,
            rmse_se,
            picp95_mean: mean(&t.picp95),
            kl_per_example,
            train_nll,
            kl_nll_ratio: kl_per_example / train_nll,
            signal_ratio: mean(&t.signal_ratio),
        });
    }
    Ok(SigmaResult {
        dataset: dir.name.clone(),
        splits: config.splits,
        epochs: config.epochs,
        hidden,
        settings,
        seconds: start.elapsed().as_secs_f64(),
    })
}

/// Writes `sigma_test_ll.png` into `dir`: mean test log-likelihood against
/// `log10` of the first layer's prior standard deviation, one line per
/// family. Returns its path.
pub fn write_figures(
    result: &SigmaResult,
    dir: &std::path::Path,
) -> Result<Vec<std::path::PathBuf>> {
    use crate::figures::{plot_lines, Line};
    let family = |name: &str| -> Vec<(f64, f64)> {
        result
            .settings
            .iter()
            .filter(|s| s.family == name)
            .map(|s| (s.first_layer_sigma.log10(), s.ll_mean))
            .collect()
    };
    let (fixed, fan) = (family("fixed"), family("fan-in"));
    let lines: Vec<Line> = [
        ("fixed N(0, sigma²)", &fixed),
        ("fan-in N(0, c²/fan_in)", &fan),
    ]
    .into_iter()
    .filter(|(_, p)| !p.is_empty())
    .map(|(label, points)| Line { label, points })
    .collect();
    let path = dir.join("sigma_test_ll.png");
    let title = format!(
        "Test log-likelihood against the prior's scale ({}, {} splits)",
        result.dataset, result.splits
    );
    plot_lines(
        &path,
        &title,
        (
            "log10 of the first layer's prior sigma",
            "test log-likelihood",
        ),
        &lines,
    )?;
    Ok(vec![path])
}
