//! `bnn calibrate`: fit a recalibration on held-out labelled rows and save it
//! with the model, so every later `predict` and `eval` uses it.

use std::path::PathBuf;

use candle_bnn::calibrate::RecalibrationMethod;
use candle_bnn::checkpoint;
use candle_bnn::data::read_csv;
use candle_bnn::Result;
use candle_core::Device;
use clap::Args;

use crate::predict::check_level_and_samples;

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
    /// scale (variance scaling) | isotonic (PIT recalibration) | conformal (split conformal).
    #[arg(long)]
    method: RecalibrationMethod,
    /// Posterior samples per row.
    #[arg(long, default_value_t = 100)]
    samples: usize,
}

pub fn run(args: &CalibrateArgs) -> Result<()> {
    check_level_and_samples(0.5, args.samples)?;
    let mut regressor = checkpoint::load(&args.model, &Device::Cpu)?;
    let target = args
        .target
        .clone()
        .unwrap_or_else(|| regressor.target_name().to_string());
    let data = read_csv(&args.data, &target, Some(regressor.feature_names()))?;
    regressor.calibrate(args.method, &data, args.samples)?;
    checkpoint::save(&regressor, &args.model)?;
    println!(
        "{} recalibration fitted on {} rows of {}; saved to {}",
        args.method,
        data.len(),
        args.data.display(),
        args.model.display()
    );
    Ok(())
}
