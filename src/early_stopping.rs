//! Choosing the training length by early stopping on a validation score.
//!
//! How long to train is a hyperparameter like any other, and for a network
//! with a learned (heteroscedastic) noise head it decides the calibration:
//! stopped early, the noise head still covers the mean's large residuals;
//! trained long, it fits the training rows' residuals, which on a small
//! noisy dataset are smaller than the test rows' (Prechelt 1998, "Early
//! Stopping — But When?", for the rule below).
//!
//! One training run visits every candidate length in turn. The validation
//! score is read after the checkpoint epochs
//!
//! ```text
//! c_1 = first,  c_{k+1} = 2 c_k  (while below last),  then last
//! ```
//!
//! and training stops once `patience` checkpoints in a row have failed to
//! beat the best score so far, or at the last checkpoint. The chosen length
//! is the best checkpoint's. Doubling matches how scores move with training
//! (on the scale of log epochs), and keeps the reading cheap: each checkpoint
//! costs as much training as all the ones before it together.
//!
//! With [`crate::train::fit_observed`], whose observer may end training
//! (`bnn uci --method ensemble --grid` does this, then refits on all rows):
//!
//! ```
//! use candle_bnn::early_stopping::EarlyStopping;
//! use candle_bnn::train::{fit_observed, TrainConfig};
//! use candle_bnn::{predict, DeepEnsemble};
//! use candle_core::{Device, Tensor};
//! use indicatif::ProgressBar;
//!
//! # fn main() -> candle_bnn::Result<()> {
//! let device = Device::Cpu;
//! // A smooth curve, y = sin 3x + 0.1 cos 17x: 64 training rows, 32 validation rows.
//! let rows = |n: usize, phase: f32| -> candle_bnn::Result<(Tensor, Tensor, Vec<f64>)> {
//!     let x: Vec<f32> = (0..n).map(|i| 2.0 * i as f32 / n as f32 - 1.0 + phase).collect();
//!     let y: Vec<f32> = x.iter().map(|x| (3.0 * x).sin() + 0.1 * (17.0 * x).cos()).collect();
//!     let ys = y.iter().map(|&v| v as f64).collect();
//!     Ok((Tensor::from_vec(x, (n, 1), &device)?, Tensor::from_vec(y, (n, 1), &device)?, ys))
//! };
//! let (xs, ys, _) = rows(64, 0.0)?;
//! let (x_val, _, y_val) = rows(32, 0.01)?;
//! let ensemble = DeepEnsemble::new(1, &[16], 3, 0, &device)?;
//!
//! let mut stopping = EarlyStopping::doubling(5, 80, 2)?;
//! let config = TrainConfig { epochs: stopping.max_epochs(), progress: false, ..TrainConfig::default() };
//! let report = fit_observed(&ensemble, &xs, &ys, &config, &ProgressBar::hidden(), |s| {
//!     stopping.after_epochs(s.epoch + 1, || {
//!         let dist = predict(&ensemble, &x_val, 3)?.into_regression()?;
//!         Ok(dist.log_density(&y_val)?.iter().sum::<f64>() / y_val.len() as f64)
//!     })
//! })?;
//! let (best, _) = stopping.best().expect("a score that is not NaN");
//! assert!(stopping.checkpoints().contains(&best));
//! assert!(report.epochs.len() <= 80);
//! # Ok(())
//! # }
//! ```

use std::ops::ControlFlow;

use candle_core::Tensor;
use indicatif::ProgressBar;

use crate::model::StochasticModel;
use crate::train::{fit_observed, TrainConfig, TrainReport};
use crate::{Error, Result};

/// Trains `model` on `xs`, `ys` for up to `stopping`'s last checkpoint
/// (`config.epochs` is ignored), reading `validation_score` (higher is
/// better) at each checkpoint and stopping as [`EarlyStopping`] says.
/// Returns the best checkpoint's epochs and the report of the epochs run;
/// the model is left as it was when training stopped. `bar` advances one
/// per epoch run and should count the last checkpoint's epochs: those not
/// run come off its length.
pub fn fit_early_stopped<M: StochasticModel + ?Sized>(
    model: &M,
    (xs, ys): (&Tensor, &Tensor),
    config: &TrainConfig,
    mut stopping: EarlyStopping,
    bar: &ProgressBar,
    mut validation_score: impl FnMut() -> Result<f64> + Send,
) -> Result<(usize, TrainReport)> {
    let config = TrainConfig {
        epochs: stopping.max_epochs(),
        ..config.clone()
    };
    let report = fit_observed(model, xs, ys, &config, bar, |summary| {
        stopping.after_epochs(summary.epoch + 1, &mut validation_score)
    })?;
    bar.dec_length((config.epochs - report.epochs.len()) as u64);
    let (epochs, _) = stopping.best().ok_or_else(|| {
        Error::invalid(
            "validation score",
            "NaN at every checkpoint",
            "a number at one checkpoint at least",
        )
    })?;
    Ok((epochs, report))
}

/// Checkpoints in a row without a better validation score before training
/// stops, for the library's callers (`bnn uci --grid` for ensembles,
/// [`crate::BayesRegressor::fit_early_stopped`]): two, so that one noisy
/// reading (Boston's 91 validation rows) does not end it.
pub const DEFAULT_PATIENCE: usize = 2;

/// The first checkpoint below a training length of `epochs`: `epochs / 16`
/// (at least 1), so that four doublings reach `epochs`. The library's
/// callers start there: the shortest training that still scores differs by
/// an order of magnitude between datasets (Boston's ensembles peak near 100
/// of 400 epochs, docs/benchmarks.md).
pub fn first_checkpoint(epochs: usize) -> usize {
    (epochs / 16).max(1)
}

/// Early stopping at checkpoints spaced by doubling (see the module docs).
#[derive(Debug, Clone, PartialEq)]
pub struct EarlyStopping {
    checkpoints: Vec<usize>,
    patience: usize,
    best: Option<(usize, f64)>,
    misses: usize,
}

impl EarlyStopping {
    /// Checkpoints `first, 2 first, 4 first, …, last` (`last` included even
    /// when it is no doubling of `first`); stop after `patience` checkpoints
    /// in a row without a better score.
    pub fn doubling(first: usize, last: usize, patience: usize) -> Result<Self> {
        if first == 0 {
            return Err(Error::invalid("first checkpoint", 0, "at least 1 epoch"));
        }
        if last < first {
            return Err(Error::invalid(
                "last checkpoint",
                last,
                format!("at least the first checkpoint ({first} epochs)"),
            ));
        }
        if patience == 0 {
            return Err(Error::invalid(
                "patience",
                0,
                "at least 1 checkpoint without improvement",
            ));
        }
        let mut checkpoints: Vec<usize> = std::iter::successors(Some(first), |&c| c.checked_mul(2))
            .take_while(|&c| c < last)
            .collect();
        checkpoints.push(last);
        Ok(Self {
            checkpoints,
            patience,
            best: None,
            misses: 0,
        })
    }

    /// The checkpoint epochs, ascending.
    pub fn checkpoints(&self) -> &[usize] {
        &self.checkpoints
    }

    /// The longest training this can ask for: the last checkpoint.
    pub fn max_epochs(&self) -> usize {
        self.checkpoints[self.checkpoints.len() - 1]
    }

    /// Called after each epoch with the number of epochs done so far; reads
    /// `score` (higher is better) only at a checkpoint. Returns `Break` when
    /// training should stop: `patience` checkpoints without improvement, or
    /// the last checkpoint reached. A NaN score never counts as the best;
    /// an error from `score` is returned.
    pub fn after_epochs(
        &mut self,
        epochs: usize,
        score: impl FnOnce() -> Result<f64>,
    ) -> Result<ControlFlow<()>> {
        if self.checkpoints.binary_search(&epochs).is_err() {
            return Ok(ControlFlow::Continue(()));
        }
        let value = score()?;
        let improves = match self.best {
            None => !value.is_nan(),
            Some((_, best)) => value > best,
        };
        if improves {
            self.best = Some((epochs, value));
            self.misses = 0;
        } else {
            self.misses += 1;
        }
        Ok(
            if self.misses >= self.patience || epochs >= self.max_epochs() {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            },
        )
    }

    /// The best checkpoint so far and its score, if any score was not NaN.
    pub fn best(&self) -> Option<(usize, f64)> {
        self.best
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds epochs 1, 2, … until `Break`, scoring checkpoint `c` with
    /// `curve(c)`; returns the epochs trained and the checkpoints scored.
    fn run(
        stopping: &mut EarlyStopping,
        curve: impl Fn(usize) -> f64,
    ) -> Result<(usize, Vec<usize>)> {
        let mut scored = Vec::new();
        for epoch in 1..=stopping.max_epochs() {
            let flow = stopping.after_epochs(epoch, || {
                scored.push(epoch);
                Ok(curve(epoch))
            })?;
            if flow.is_break() {
                return Ok((epoch, scored));
            }
        }
        Ok((stopping.max_epochs(), scored))
    }

    #[test]
    fn checkpoints_double_and_end_at_the_last() -> Result<()> {
        assert_eq!(
            EarlyStopping::doubling(25, 3200, 2)?.checkpoints(),
            [25, 50, 100, 200, 400, 800, 1600, 3200]
        );
        assert_eq!(
            EarlyStopping::doubling(3, 20, 1)?.checkpoints(),
            [3, 6, 12, 20]
        );
        assert_eq!(EarlyStopping::doubling(7, 7, 1)?.checkpoints(), [7]);
        Ok(())
    }

    #[test]
    fn stops_after_patience_checkpoints_past_the_peak() -> Result<()> {
        // A validation curve peaking at 100 epochs: with patience 2 training
        // goes on to 400 (two checkpoints worse), then stops there.
        let curve = |e: usize| -((e as f64).ln() - 100f64.ln()).powi(2);
        let mut stopping = EarlyStopping::doubling(25, 3200, 2)?;
        let (trained, scored) = run(&mut stopping, curve)?;
        assert_eq!(trained, 400);
        assert_eq!(scored, [25, 50, 100, 200, 400]);
        assert_eq!(stopping.best(), Some((100, 0.0)));

        // Patience 1 stops at the first checkpoint past the peak.
        let mut stopping = EarlyStopping::doubling(25, 3200, 1)?;
        assert_eq!(run(&mut stopping, curve)?.0, 200);
        assert_eq!(stopping.best().map(|b| b.0), Some(100));
        Ok(())
    }

    #[test]
    fn a_rising_curve_trains_to_the_last_checkpoint() -> Result<()> {
        let mut stopping = EarlyStopping::doubling(25, 3200, 2)?;
        let (trained, _) = run(&mut stopping, |e| e as f64)?;
        assert_eq!(trained, 3200);
        assert_eq!(stopping.best(), Some((3200, 3200.0)));
        Ok(())
    }

    #[test]
    fn a_miss_is_forgiven_by_a_later_improvement() -> Result<()> {
        // Worse at 50, better again at 100: one miss does not use up a
        // patience of 2, and the improvement resets the count.
        let scores = [(25, 1.0), (50, 0.5), (100, 2.0), (200, 1.5), (400, 1.0)];
        let curve = |e: usize| scores.iter().find(|s| s.0 == e).map_or(0.0, |s| s.1);
        let mut stopping = EarlyStopping::doubling(25, 400, 2)?;
        assert_eq!(run(&mut stopping, curve)?.0, 400);
        assert_eq!(stopping.best(), Some((100, 2.0)));
        Ok(())
    }

    #[test]
    fn nan_never_wins_and_minus_infinity_can_start() -> Result<()> {
        let mut stopping = EarlyStopping::doubling(1, 4, 5)?;
        run(&mut stopping, |_| f64::NAN)?;
        assert_eq!(stopping.best(), None);

        let curve = |e: usize| if e == 1 { f64::NEG_INFINITY } else { f64::NAN };
        let mut stopping = EarlyStopping::doubling(1, 4, 5)?;
        run(&mut stopping, curve)?;
        assert_eq!(stopping.best(), Some((1, f64::NEG_INFINITY)));
        Ok(())
    }

    #[test]
    fn errors_name_the_setting_and_propagate() -> Result<()> {
        for (first, last, patience, what) in [
            (0, 10, 1, "first checkpoint"),
            (10, 5, 1, "last checkpoint"),
            (1, 10, 0, "patience"),
        ] {
            let err = EarlyStopping::doubling(first, last, patience)
                .expect_err("an invalid schedule is refused")
                .to_string();
            assert!(err.contains(what), "{err}");
        }
        let mut stopping = EarlyStopping::doubling(1, 2, 1)?;
        let err = stopping
            .after_epochs(1, || Err(Error::invalid("score", "x", "a number")))
            .expect_err("the score's error comes back");
        assert!(err.to_string().contains("score"), "{err}");
        Ok(())
    }
}
