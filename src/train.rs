//! Minibatch training of a [`StochasticModel`] by maximizing its ELBO.
//!
//! Each step: draw a minibatch (shuffled from the seed; one per member for
//! an ensemble, see [`StochasticModel::minibatch_streams`]), one stochastic
//! forward pass, `loss = nll / T + beta · KL / N` ([`crate::elbo`]), backprop,
//! and an Adam step ([`crate::adam`]) with no decoupled weight decay: the KL
//! already is the weight decay.
//!
//! A guard checks the NLL, the KL and every gradient before each update; a
//! non-finite value stops training with [`Error::NonFinite`] naming the term
//! and the step, and the parameters keep their last finite values. The guard
//! is one fused sum read once per step; the loss terms of the epoch summary
//! are summed on the device and read once per epoch.

use std::ops::ControlFlow;
use std::time::Instant;

use candle_core::{DType, Tensor, Var};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::adam::Adam;
use crate::elbo::{Elbo, ElboTerms, ElboValues, KlSchedule};
use crate::model::{check_targets, StochasticModel};
use crate::tuning::on_compute_pool;
use crate::{Error, Result};

/// A weighted `beta KL / N` this many times larger than |NLL| (and than 1
/// nat) triggers the "prior dominates" warning: the posterior will then
/// barely leave the prior.
const KL_DOMINANCE_RATIO: f64 = 10.0;

/// Optimization settings.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `epochs` | 100 | passes over the data | ≥ 1 |
/// | `batch_size` | 32 | rows per step | ≥ 1 |
/// | `lr` | 1e-2 | Adam learning rate | > 0 |
/// | `seed` | 0 | minibatch order | any |
/// | `kl_schedule` | constant 1 | KL weight over time | see [`KlSchedule`] |
/// | `temperature` | 1 | likelihood temperature | > 0 |
/// | `progress` | true | progress bar (only drawn on a terminal) | |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Number of epochs.
    pub epochs: usize,
    /// Minibatch size (the last batch of an epoch may be smaller).
    pub batch_size: usize,
    /// Learning rate.
    pub lr: f64,
    /// Seed of the minibatch shuffles.
    pub seed: u64,
    /// KL weight schedule.
    pub kl_schedule: KlSchedule,
    /// Likelihood temperature.
    pub temperature: f64,
    /// Show a progress bar on a terminal. A display choice, not part of a
    /// saved model (loaded configs show it).
    #[serde(skip, default = "show_progress")]
    pub progress: bool,
}

fn show_progress() -> bool {
    true
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 100,
            batch_size: 32,
            lr: 1e-2,
            seed: 0,
            kl_schedule: KlSchedule::default(),
            temperature: 1.0,
            progress: show_progress(),
        }
    }
}

impl TrainConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", 0, "at least 1"));
        }
        if self.batch_size == 0 {
            return Err(Error::invalid("batch_size", 0, "at least 1"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid("lr", self.lr, "a finite number > 0"));
        }
        Ok(())
    }
}

/// Mean loss terms over one epoch's steps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct EpochSummary {
    /// 0-based epoch.
    pub epoch: usize,
    /// KL weight at the epoch's last step.
    pub beta: f64,
    /// Mean terms.
    pub terms: ElboValues,
}

/// What a training run did.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct TrainReport {
    /// One summary per epoch.
    pub epochs: Vec<EpochSummary>,
    /// Optimizer steps taken.
    pub steps: usize,
    /// Wall time in seconds. Not serialized: a saved model must not depend
    /// on how busy the machine was (same seed -> byte-identical files).
    #[serde(skip_serializing, default)]
    pub seconds: f64,
    /// Wall time of each epoch in seconds (not serialized, as `seconds`).
    #[serde(skip_serializing, default)]
    pub epoch_seconds: Vec<f64>,
    /// Warnings raised (also printed to stderr once).
    pub warnings: Vec<String>,
}

impl TrainReport {
    /// The last epoch's summary.
    pub fn last(&self) -> Option<&EpochSummary> {
        self.epochs.last()
    }
}

/// Trains `model` on `xs: [N, in]`, `ys: [N, 1]` (standardized or not: the
/// model sees what it is given). `N` is also the ELBO's dataset size. When
/// the epochs end, [`StochasticModel::finish_training`] gets the same rows.
pub fn fit<M: StochasticModel + ?Sized>(
    model: &M,
    xs: &Tensor,
    ys: &Tensor,
    config: &TrainConfig,
) -> Result<TrainReport> {
    let bar = progress_bar(config);
    let report = fit_with_progress(model, xs, ys, config, &bar);
    bar.finish_and_clear();
    report
}

/// [`fit`], advancing a caller's progress bar by one per epoch (for work
/// made of many fits, such as a benchmark over splits); `config.progress`
/// is ignored.
pub fn fit_with_progress<M: StochasticModel + ?Sized>(
    model: &M,
    xs: &Tensor,
    ys: &Tensor,
    config: &TrainConfig,
    bar: &ProgressBar,
) -> Result<TrainReport> {
    fit_observed(model, xs, ys, config, bar, |_| {
        Ok(ControlFlow::Continue(()))
    })
}

/// [`fit_with_progress`], calling `observe` after every epoch with that
/// epoch's summary, while the model holds the epoch's final parameters
/// (studies that follow a quantity over training: a weight mean, the exact
/// KL, a test score). `ControlFlow::Break` from `observe` ends training
/// after that epoch (early stopping: the report then holds the epochs run);
/// an error from `observe` stops training and is returned.
pub fn fit_observed<M: StochasticModel + ?Sized>(
    model: &M,
    xs: &Tensor,
    ys: &Tensor,
    config: &TrainConfig,
    bar: &ProgressBar,
    observe: impl FnMut(&EpochSummary) -> Result<ControlFlow<()>> + Send,
) -> Result<TrainReport> {
    on_compute_pool(|| fit_here(model, xs, ys, config, bar, observe))
}

/// [`fit_observed`] on the calling thread.
fn fit_here<M: StochasticModel + ?Sized>(
    model: &M,
    xs: &Tensor,
    ys: &Tensor,
    config: &TrainConfig,
    bar: &ProgressBar,
    mut observe: impl FnMut(&EpochSummary) -> Result<ControlFlow<()>>,
) -> Result<TrainReport> {
    config.validate()?;
    let n = xs.dim(0)?;
    check_targets(ys, n, "fit")?;
    let elbo = Elbo::new(n)?
        .with_schedule(config.kl_schedule)?
        .with_temperature(config.temperature)?;
    let (names, vars): (Vec<String>, Vec<Var>) = model.named_vars().into_iter().unzip();
    let mut optimizer = Adam::new(vars.clone(), config.lr)?;
    let steps_per_epoch = n.div_ceil(config.batch_size);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let streams = model.minibatch_streams();
    if streams == 0 {
        return Err(Error::invalid(
            "minibatch_streams",
            0,
            "at least 1 (the model's StochasticModel::minibatch_streams)",
        ));
    }
    let mut orders: Vec<Vec<u32>> = vec![(0..n as u32).collect(); streams];
    let start = Instant::now();
    let mut report = TrainReport {
        // Grown as epochs end: early stopping may end training before
        // `config.epochs`, and a huge `epochs` must not reserve memory up front.
        epochs: Vec::new(),
        steps: 0,
        seconds: 0.0,
        epoch_seconds: Vec::new(),
        warnings: Vec::new(),
    };

    for epoch in 0..config.epochs {
        let epoch_start = Instant::now();
        for order in &mut orders {
            order.shuffle(&mut rng);
        }
        // Σ over the epoch's steps of [loss, nll, kl, kl_l2, kl_rest], in f64
        // on the device: read once per epoch, not once per step.
        let mut sum = Tensor::zeros(5, DType::F64, xs.device())?;
        let mut beta = 0.0;
        for b in 0..steps_per_epoch {
            let rows = b * config.batch_size..((b + 1) * config.batch_size).min(n);
            let (xb, yb) = minibatch(xs, ys, &orders, rows)?;
            let (head, kl) = model.forward_train_with_kl(&xb)?;
            let nll = model.likelihood().nll(&head, &yb)?;
            let epochs_done = epoch as f64 + (b + 1) as f64 / steps_per_epoch as f64;
            let terms = elbo.terms(&nll, &kl, epochs_done)?;
            let grads = terms.loss.backward()?;
            let summary = Tensor::stack(
                &[
                    &terms.loss,
                    &terms.nll,
                    &terms.kl,
                    &terms.kl_l2,
                    &terms.kl_rest,
                ]
                .map(Tensor::detach),
                0,
            )?;
            let step = report.steps;
            if !guard(&summary, &vars, &grads)?.is_finite() {
                // Something is not finite (or the guard's sum overflowed):
                // name it, term by term and gradient by gradient.
                check_terms(&terms, step, epoch)?;
                check_gradients(&vars, &names, &grads, step, epoch)?;
            }
            optimizer.step(&grads)?;
            report.steps += 1;
            beta = terms.beta;
            sum = (sum + summary.to_dtype(DType::F64)?)?;
        }
        let sum = sum.to_vec1::<f64>()?;
        let m = |i: usize| sum[i] / steps_per_epoch as f64;
        let terms = ElboValues {
            loss: m(0),
            nll: m(1),
            kl: m(2),
            kl_l2: m(3),
            kl_rest: m(4),
        };
        let summary = EpochSummary { epoch, beta, terms };
        let flow = observe(&summary)?;
        report.epochs.push(summary);
        report
            .epoch_seconds
            .push(epoch_start.elapsed().as_secs_f64());
        bar.set_message(format!(
            "loss {:.4}  nll {:.4}  kl/N {:.4}",
            terms.loss,
            terms.nll,
            terms.kl / n as f64
        ));
        bar.inc(1);
        // At the end only: early on the KL is inflated by the small initial
        // posterior variance, and says nothing yet about the fit.
        if epoch + 1 == config.epochs || flow.is_break() {
            if let Some(w) = kl_dominance_warning(&terms, beta, n) {
                bar.suspend(|| eprintln!("warning: {w}"));
                report.warnings.push(w);
            }
        }
        if flow.is_break() {
            break;
        }
    }
    model.finish_training(xs, ys)?;
    report.seconds = start.elapsed().as_secs_f64();
    Ok(report)
}

/// The rows at positions `rows` of each order: `[B, in]` and `[B, 1]` for
/// one order, `[k, B, in]` and `[k, B, 1]` for `k` (one minibatch per
/// stream).
fn minibatch(
    xs: &Tensor,
    ys: &Tensor,
    orders: &[Vec<u32>],
    rows: std::ops::Range<usize>,
) -> Result<(Tensor, Tensor)> {
    let idx: Vec<u32> = orders
        .iter()
        .flat_map(|order| order[rows.clone()].iter().copied())
        .collect();
    let idx = Tensor::from_vec(idx, orders.len() * rows.len(), xs.device())?;
    let (xb, yb) = (xs.index_select(&idx, 0)?, ys.index_select(&idx, 0)?);
    if orders.len() == 1 {
        return Ok((xb, yb));
    }
    let (streams, batch) = (orders.len(), rows.len());
    Ok((
        xb.reshape((streams, batch, xs.dim(1)?))?,
        yb.reshape((streams, batch, 1))?,
    ))
}

/// One number that is finite only if every loss term and every gradient is:
/// the f32 sum
///
/// ```text
/// guard = Σ_g Σ g²  +  (loss + nll + kl + kl_l2 + kl_rest)
/// ```
///
/// A NaN or infinity anywhere makes it non-finite, and so does a sum of
/// squares that overflows (which [`check_gradients`] reports as a divergence
/// too): one read per step instead of one per term. A finite guard implies
/// that [`check_terms`] and [`check_gradients`] pass; a non-finite one sends
/// the step through them, to name the culprit.
fn guard(summary: &Tensor, vars: &[Var], grads: &candle_core::backprop::GradStore) -> Result<f64> {
    let mut total = Tensor::zeros((), DType::F32, summary.device())?;
    for g in vars.iter().filter_map(|v| grads.get(v)) {
        total = (total + g.detach().sqr()?.sum_all()?)?;
    }
    let guard = (total + summary.sum_all()?)?;
    Ok(guard.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

/// Errors naming the first non-finite term of `nll`, `kl`, `loss`.
fn check_terms(terms: &ElboTerms, step: usize, epoch: usize) -> Result<()> {
    let v = terms.values()?;
    for (name, value) in [("nll", v.nll), ("kl", v.kl), ("loss", v.loss)] {
        if !value.is_finite() {
            return Err(Error::NonFinite {
                term: name.into(),
                value,
                step,
                epoch,
            });
        }
    }
    Ok(())
}

/// Errors if any gradient holds a NaN or an infinity. One fused reduction for
/// the common (finite) case; the culprit is located only on failure.
fn check_gradients(
    vars: &[Var],
    names: &[String],
    grads: &candle_core::backprop::GradStore,
    step: usize,
    epoch: usize,
) -> Result<()> {
    let sq_norm = |g: &Tensor| -> Result<f64> {
        Ok(g.sqr()?
            .sum_all()?
            .to_dtype(DType::F64)?
            .to_scalar::<f64>()?)
    };
    let present: Vec<(usize, &Tensor)> = vars
        .iter()
        .enumerate()
        .filter_map(|(i, v)| grads.get(v).map(|g| (i, g)))
        .collect();
    let mut total = Tensor::new(
        0f32,
        vars.first()
            .map_or(&candle_core::Device::Cpu, |v| v.device()),
    )?;
    for (_, g) in &present {
        total = (total + g.sqr()?.sum_all()?)?;
    }
    if total.to_dtype(DType::F64)?.to_scalar::<f64>()?.is_finite() {
        return Ok(());
    }
    for (i, g) in present {
        let value = sq_norm(g)?;
        if !value.is_finite() {
            return Err(Error::NonFinite {
                term: format!("gradient of {}", names[i]),
                value,
                step,
                epoch,
            });
        }
    }
    // The sum overflowed although every part is finite: gradients this large
    // are a divergence too.
    Err(Error::NonFinite {
        term: "gradient norm".into(),
        value: f64::INFINITY,
        step,
        epoch,
    })
}

/// The "prior dominates" warning, when the KL term of the loss, `beta KL /
/// N`, exceeds [`KL_DOMINANCE_RATIO`] × max(|NLL|, 1).
fn kl_dominance_warning(terms: &ElboValues, beta: f64, n: usize) -> Option<String> {
    let weighted_kl = beta * terms.kl / n as f64;
    let scale = terms.nll.abs().max(1.0);
    (weighted_kl > KL_DOMINANCE_RATIO * scale).then(|| {
        format!(
            "the KL term beta KL/N = {weighted_kl:.3} (beta {beta}) is over {KL_DOMINANCE_RATIO}x the NLL ({:.3}): the prior dominates and the posterior will stay close to it (underfit). More data, a wider prior, a KL warm-up or a KL weight below 1 may help.",
            terms.nll
        )
    })
}

/// The bar [`fit`] draws: one step per epoch on a terminal when
/// `config.progress`, hidden otherwise.
pub(crate) fn progress_bar(config: &TrainConfig) -> ProgressBar {
    if !config.progress {
        return ProgressBar::hidden();
    }
    terminal_progress_bar(config.epochs as u64, "epoch")
}

/// A progress bar of `len` steps named `unit`, drawn on stderr only when
/// stderr is a terminal (quiet in pipes, logs and CI).
pub fn terminal_progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    let template = format!("{{elapsed_precise}} [{{bar:30}}] {unit} {{pos}}/{{len}} {{msg}}");
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}
