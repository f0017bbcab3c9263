//! A Bayesian MLP regressor that works in the user's units: it z-scores
//! features and target on the training data, trains, and returns predictive
//! distributions mapped back to the original scale.
//!
//! ```text
//! x' = (x - mean_x) / s_x,   y' = (y - mean_y) / s_y      (ddof = 0; s = 1 if constant)
//! p(y | x) = p'(y' | x') / s_y   ->   means: mean_y + s_y mu'_t,  stds: s_y sigma'_t
//! ```

use candle_core::{Device, Tensor};

use crate::data::{Dataset, Standardizer};
use crate::model::{BayesMlp, BayesMlpConfig};
use crate::predictive::{predict, GaussianMixture};
use crate::train::{fit, TrainConfig, TrainReport};
use crate::{Error, Result};

/// A trained regressor: the model plus the scalings of its training data.
#[derive(Debug, Clone)]
pub struct BayesRegressor {
    model: BayesMlp,
    x_scaler: Standardizer,
    y_scaler: Standardizer,
    report: TrainReport,
}

impl BayesRegressor {
    /// Standardizes `data`, builds a [`BayesMlp`] from `config` (whose
    /// `input_dim` must equal the number of features) and trains it. The one
    /// `train.seed` drives the initialization, the forward-pass noise and the
    /// minibatch order.
    pub fn fit(
        data: &Dataset,
        config: BayesMlpConfig,
        train: &TrainConfig,
        device: &Device,
    ) -> Result<Self> {
        if config.input_dim != data.n_features() {
            return Err(Error::invalid(
                "input_dim",
                config.input_dim,
                format!("the number of features, {}", data.n_features()),
            ));
        }
        let (x_scaler, y_scaler) = Standardizer::fit_dataset(data)?;
        let scaled = data.standardized(&x_scaler, &y_scaler);
        let model = BayesMlp::new(config, train.seed, device)?;
        let report = fit(
            &model,
            &scaled.x_tensor(device)?,
            &scaled.y_tensor(device)?,
            train,
        )?;
        Ok(Self::from_parts(model, x_scaler, y_scaler, report))
    }

    /// Reassembles a trained regressor (e.g. from a checkpoint).
    pub fn from_parts(
        model: BayesMlp,
        x_scaler: Standardizer,
        y_scaler: Standardizer,
        report: TrainReport,
    ) -> Self {
        Self {
            model,
            x_scaler,
            y_scaler,
            report,
        }
    }

    /// The predictive distribution of each row of `x` (row-major, original
    /// units), from `samples` posterior draws, in the target's original units.
    pub fn predict(&self, x: &[f64], samples: usize) -> Result<GaussianMixture> {
        let d = self.x_scaler.n_cols();
        if x.len() % d != 0 {
            return Err(Error::Shape {
                context: "BayesRegressor::predict".into(),
                message: format!(
                    "{} values is not a whole number of rows of {d} features",
                    x.len()
                ),
            });
        }
        let scaled: Vec<f32> = self
            .x_scaler
            .transform(x)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let xs = Tensor::from_vec(scaled, (x.len() / d, d), self.model_device())?;
        predict(&self.model, &xs, samples)?
            .into_regression()?
            .affine(self.y_scaler.mean[0], self.y_scaler.scale[0])
    }

    fn model_device(&self) -> &Device {
        self.model.layers()[0].weight().mu().device()
    }

    /// The trained network (in standardized units).
    pub fn model(&self) -> &BayesMlp {
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

    /// What training did.
    pub fn report(&self) -> &TrainReport {
        &self.report
    }
}
