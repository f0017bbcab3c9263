//! `bnn calibrate`: fit a recalibration on held-out labelled rows and save it
//! with the model, so every later `predict` and `eval` uses it.

use std::path::PathBuf;

use candle_bnn::calibrate::RecalibrationMethod;
use candle_bnn::checkpoint::{self, SavedModel};
use candle_bnn::data::read_csv;
use candle_bnn::{Error, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};

use crate::predict::check_level_and_samples;

/// A recalibration of either task, as the command line spells it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum CalibrationMethod {
    /// Regression: one factor on every predictive std, by held-out NLL.
    Scale,
    /// Regression: a monotone map of the PIT values (Kuleshov et al. 2018).
    Isotonic,
    /// Regression: split-conformal intervals with std-normalized scores.
    Conformal,
    /// Classification: temperature scaling (Guo et al. 2017).
    Temperature,
}

impl CalibrationMethod {
    /// The regression recalibration, or `None` for temperature scaling.
    pub fn for_regression(self) -> Option<RecalibrationMethod> {
        match self {
            Self::Scale => Some(RecalibrationMethod::Scale),
            Self::Isotonic => Some(RecalibrationMethod::Isotonic),
            Self::Conformal => Some(RecalibrationMethod::Conformal),
            Self::Temperature => None,
        }
    }

    /// As the command line spells it.
    pub fn name(self) -> String {
        self.to_possible_value()
            .map_or(String::new(), |v| v.get_name().to_string())
    }
}

/// Fits `method` on `held_out` and keeps it in `model`; the error names
/// `flag` when the method does not fit the model's task.
pub fn calibrate(
    model: &mut SavedModel,
    method: CalibrationMethod,
    held_out: &candle_bnn::data::Dataset,
    samples: usize,
    flag: &str,
) -> Result<()> {
    match (model, method.for_regression()) {
        (SavedModel::Regressor(r), Some(m)) => r.calibrate(m, held_out, samples),
        (SavedModel::Classifier(c), None) => c.calibrate(held_out, samples),
        (SavedModel::Regressor(_), None) => Err(Error::invalid(
            flag,
            method.name(),
            "scale, isotonic or conformal for a regression model",
        )),
        (SavedModel::Classifier(_), Some(_)) => Err(Error::invalid(
            flag,
            method.name(),
            "temperature for a classification model",
        )),
    }
}

#[derive(Args)]
pub struct CalibrateArgs {
    /// Model directory written by `bnn train` (updated atomically).
    #[arg(long)]
    model: PathBuf,
    /// Held-out CSV file (not the training rows) with the features and target.
    #[arg(long)]
    data: PathBuf,
    /// Target column [default: the one the model was trained on].
    #[arg(long)]
    target: Option<String>,
    /// Regression: scale | isotonic | conformal; classification: temperature.
    #[arg(long, value_enum)]
    method: CalibrationMethod,
    /// Posterior samples per row.
    #[arg(long, default_value_t = 100)]
    samples: usize,
}

pub fn run(args: &CalibrateArgs) -> Result<()> {
    check_level_and_samples(0.5, args.samples)?;
    let mut model = checkpoint::load(&args.model, &Device::Cpu)?;
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| model.target_name().to_string());
    let data = read_csv(&args.data, &target, Some(model.feature_names()))?;
    calibrate(&mut model, args.method, &data, args.samples, "method")?;
    checkpoint::save(&model, &args.model)?;
    println!(
        "{} recalibration fitted on {} rows of {}; saved to {}",
        args.method.name(),
        data.len(),
        args.data.display(),
        args.model.display()
    );
    Ok(())
}
