//! A Bayesian regressor that works in the user's units: it z-scores features
//! and target on the training data, trains a network of any family
//! ([`Network`]: BBB, MC dropout, ensemble), and returns predictive
//! distributions mapped back to the original scale.
//!
//! ```text
//! x' = (x - mean_x) / s_x,   y' = (y - mean_y) / s_y      (ddof = 0; s = 1 if constant)
//! p(y | x) = p'(y' | x') / s_y   ->   means: mean_y + s_y mu'_t,  stds: s_y sigma'_t
//! ```

use candle_core::{Device, Tensor};

use crate::calibrate::{self, Recalibration, RecalibrationMethod};
use crate::data::{Dataset, Standardizer};
use crate::early_stopping::{first_checkpoint, fit_early_stopped, EarlyStopping, DEFAULT_PATIENCE};
use crate::likelihood::LikelihoodKind;
use crate::network::{Network, NetworkSpec};
use crate::predictive::{predict, GaussianMixture, Intervals};
use crate::train::{fit, progress_bar, TrainConfig, TrainReport};
use crate::{Error, Result};

/// A trained regressor: the model, the scalings and names of its training
/// data, and how it was trained.
#[derive(Debug, Clone)]
pub struct BayesRegressor {
    model: Network,
    x_scaler: Standardizer,
    y_scaler: Standardizer,
    feature_names: Vec<String>,
    target_name: String,
    train: TrainConfig,
    report: TrainReport,
    recalibration: Recalibration,
}

/// Added to the training seed to seed the noise of a fitted model's
/// predictions (regressors and classifiers), so prediction draws are a
/// stream of their own, the same in every process.
pub(crate) const PREDICT_STREAM: u64 = 0x9E37_79B9_7F4A_7C15;

impl BayesRegressor {
    /// Standardizes `data`, builds the network of `spec` (e.g. a
    /// [`crate::BayesMlpConfig`]; its `input_dim` must equal the number of
    /// features and its head must be Gaussian) and trains it. The one
    /// `train.seed` drives the initialization, the forward-pass noise and the
    /// minibatch order.
    pub fn fit(
        data: &Dataset,
        spec: impl Into<NetworkSpec>,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        let (mut regressor, xs, ys) = Self::untrained(data, spec.into(), train, device)?;
        regressor.report = fit(&regressor.model, &xs, &ys, train)?;
        Ok(regressor)
    }

    /// [`Self::fit`] for a length chosen by early stopping. A seeded
    /// `validation_fraction` of the rows is held out; a model trains on the
    /// rest while the held-out log-likelihood (from `samples` draws) is read
    /// at the doubling checkpoints [`first_checkpoint`]`(epochs), …, epochs`
    /// of [`EarlyStopping`], stopping after [`DEFAULT_PATIENCE`]
    /// checkpoints without improvement. The regressor is then fitted on all
    /// of `data` for the best checkpoint's epochs (its
    /// `train_config().epochs`). The checkpoints score the model as it
    /// trains, before [`crate::StochasticModel::finish_training`] (MC
    /// dropout's noise refit), which only the final fit gets.
    pub fn fit_early_stopped(
        data: &Dataset,
        spec: impl Into<NetworkSpec>,
        train: &TrainConfig,
        (validation_fraction, samples): (f64, usize),
        device: &Device,
    ) -> Result<Self> {
        let spec = spec.into();
        let (fit_part, validation) = data.train_test_split(validation_fraction, train.seed)?;
        let (probe, xs, ys) = Self::untrained(&fit_part, spec.clone(), train, device)?;
        let stopping = EarlyStopping::doubling(
            first_checkpoint(train.epochs),
            train.epochs,
            DEFAULT_PATIENCE,
        )?;
        let bar = progress_bar(train);
        let (epochs, _) =
            fit_early_stopped(&probe.model, (&xs, &ys), train, stopping, &bar, || {
                // From the training noise stream: reseeding it at every
                // checkpoint would replay the same noise after each one.
                let ld = probe
                    .predict_from_stream(&validation.x, samples)?
                    .log_density(&validation.y)?;
                Ok(ld.iter().sum::<f64>() / ld.len() as f64)
            })?;
        bar.finish_and_clear();
        let chosen = TrainConfig {
            epochs,
            ..train.clone()
        };
        Self::fit(data, spec, &chosen, device)
    }

    /// The regressor of `spec` for `data`'s scalings and names, untrained,
    /// with `data` standardized as tensors `(xs [N, d], ys [N, 1])`.
    fn untrained(
        data: &Dataset,
        spec: NetworkSpec,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<(Self, Tensor, Tensor)> {
        check_gaussian_head(&spec)?;
        if spec.input_dim() != data.n_features() {
            return Err(Error::invalid(
                "input_dim",
                spec.input_dim(),
                format!("the number of features, {}", data.n_features()),
            ));
        }
        let (x_scaler, y_scaler) = Standardizer::fit_dataset(data)?;
        let scaled = data.standardized(&x_scaler, &y_scaler);
        let regressor = Self {
            model: spec.build(train.seed, device)?,
            x_scaler,
            y_scaler,
            feature_names: data.feature_names.clone(),
            target_name: data.target_name.clone(),
            train: train.clone(),
            report: TrainReport::default(),
            recalibration: Recalibration::None,
        };
        Ok((
            regressor,
            scaled.x_tensor(device)?,
            scaled.y_tensor(device)?,
        ))
    }

    /// Reassembles a trained regressor (e.g. from a checkpoint), checking that
    /// the scalers and names fit the model's input.
    pub fn from_parts(
        model: Network,
        (x_scaler, y_scaler): (Standardizer, Standardizer),
        (feature_names, target_name): (Vec<String>, String),
        train: TrainConfig,
        report: TrainReport,
    ) -> Result<Self> {
        let spec = model.spec();
        check_gaussian_head(&spec)?;
        let d = spec.input_dim();
        if x_scaler.n_cols() != d || feature_names.len() != d || y_scaler.n_cols() != 1 {
            return Err(Error::Shape {
                context: "BayesRegressor::from_parts".into(),
                message: format!(
                    "the model reads {d} features, but there are {} feature names, {} feature scalings and {} target scalings (expected 1)",
                    feature_names.len(),
                    x_scaler.n_cols(),
                    y_scaler.n_cols()
                ),
            });
        }
        Ok(Self {
            model,
            x_scaler,
            y_scaler,
            feature_names,
            target_name,
            train,
            report,
            recalibration: Recalibration::None,
        })
    }

    /// The predictive distribution of each row of `x` (row-major, original
    /// units), from `samples` posterior draws, in the target's original units,
    /// with the model's variance-scaling recalibration applied (if any; see
    /// [`Self::intervals`] for the interval-level ones).
    ///
    /// The draws come from a stream seeded by the training seed, so the same
    /// model (in memory or reloaded) gives the same predictions every call.
    /// The stream is the model's own: predict from one thread at a time per
    /// model (clone the regressor for parallel use) to keep that guarantee.
    pub fn predict(&self, x: &[f64], samples: usize) -> Result<GaussianMixture> {
        self.recalibration
            .apply_to_mixture(&self.predict_raw(x, samples)?)
    }

    /// [`Self::predict`] without any recalibration.
    pub fn predict_raw(&self, x: &[f64], samples: usize) -> Result<GaussianMixture> {
        self.predict_with_seed(x, samples, self.train.seed.wrapping_add(PREDICT_STREAM))
    }

    /// Central intervals of a predictive from [`Self::predict`], through the
    /// model's recalibration (isotonic quantiles or conformal bands when
    /// fitted; the mixture's own quantiles otherwise).
    pub fn intervals(&self, dist: &GaussianMixture, level: f64) -> Result<Intervals> {
        self.recalibration.interval(dist, level)
    }

    /// Fits a recalibration on held-out rows (never the training rows) and
    /// keeps it: every later prediction and interval uses it.
    pub fn calibrate(
        &mut self,
        method: RecalibrationMethod,
        held_out: &Dataset,
        samples: usize,
    ) -> Result<()> {
        let dist = self.predict_raw(&held_out.x, samples)?;
        self.recalibration = calibrate::fit(method, &dist, &held_out.y)?;
        Ok(())
    }

    /// The recalibration in use ([`Recalibration::None`] until calibrated).
    pub fn recalibration(&self) -> &Recalibration {
        &self.recalibration
    }

    /// With a given recalibration (e.g. loaded from a checkpoint).
    pub fn with_recalibration(mut self, recalibration: Recalibration) -> Result<Self> {
        recalibration.validate()?;
        self.recalibration = recalibration;
        Ok(self)
    }

    /// [`predict`](Self::predict) with the posterior draws seeded by `seed`.
    pub fn predict_with_seed(
        &self,
        x: &[f64],
        samples: usize,
        seed: u64,
    ) -> Result<GaussianMixture> {
        self.model.reseed(seed);
        self.predict_from_stream(x, samples)
    }

    /// The raw predictive of `x`, its draws taken from the model's noise
    /// stream where it stands.
    fn predict_from_stream(&self, x: &[f64], samples: usize) -> Result<GaussianMixture> {
        let xs = self.x_scaler.transform_tensor(x, self.model.device())?;
        predict(&self.model, &xs, samples)?
            .into_regression()?
            .affine(self.y_scaler.mean[0], self.y_scaler.scale[0])
    }

    /// The trained network (in standardized units).
    pub fn model(&self) -> &Network {
        &self.model
    }

    /// The feature scaling fitted on the training data.
    pub fn x_scaler(&self) -> &Standardizer {
        &self.x_scaler
    }

    /// The target scaling fitted on the training data.
    pub fn y_scaler(&self) -> &Standardizer {
        &self.y_scaler
    }

    /// Names of the feature columns, in model input order.
    pub fn feature_names(&self) -> &[String] {
        &self.feature_names
    }

    /// Name of the target column.
    pub fn target_name(&self) -> &str {
        &self.target_name
    }

    /// How the model was trained (its seed seeds the predictions too).
    pub fn train_config(&self) -> &TrainConfig {
        &self.train
    }

    /// What training did.
    pub fn report(&self) -> &TrainReport {
        &self.report
    }
}

/// A regressor needs a Gaussian head; a categorical one is a classifier's.
fn check_gaussian_head(spec: &NetworkSpec) -> Result<()> {
    match spec.likelihood() {
        LikelihoodKind::Categorical { classes } => Err(Error::invalid(
            "likelihood",
            format!("Categorical {{ classes: {classes} }}"),
            "a Gaussian head for a regressor (use BayesClassifier for classes)",
        )),
        _ => Ok(()),
    }
}
