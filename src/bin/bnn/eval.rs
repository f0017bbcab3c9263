//! `bnn eval`: score a saved model on a labelled CSV file.

use std::path::PathBuf;

use candle_bnn::checkpoint;
use candle_bnn::data::read_csv;
use candle_bnn::metrics::{mpiw, nll, picp, rmse};
use candle_bnn::Result;
use candle_core::Device;
use clap::Args;
use serde_json::json;

use crate::predict::check_level_and_samples;

const LEVELS: [f64; 3] = [0.5, 0.9, 0.95];

#[derive(Args)]
pub struct EvalArgs {
    /// Model directory written by `bnn train`.
    #[arg(long)]
    model: PathBuf,
    /// CSV file with the model's feature columns and the target.
    #[arg(long)]
    data: PathBuf,
    /// Target column [default: the one the model was trained on].
    #[arg(long)]
    target: Option<String>,
    /// Posterior samples per row.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    check_level_and_samples(0.5, args.samples)?;
    let regressor = checkpoint::load(&args.model, &Device::Cpu)?;
    let target = args.target.as_deref().unwrap_or(regressor.target_name());
    let data = read_csv(&args.data, target, Some(regressor.feature_names()))?;
    let dist = regressor.predict(&data.x, args.samples)?;
    let rmse = rmse(&dist.mean(), &data.y)?;
    let ll = -nll(&dist, &data.y)?;
    let mut coverage = Vec::new();
    for level in LEVELS {
        let iv = regressor.intervals(&dist, level)?;
        coverage.push((level, picp(&iv, &data.y)?, mpiw(&iv)));
    }
    if args.json {
        let recalibration = regressor.recalibration().method().map(|m| m.to_string());
        let mut out = json!({"n": data.len(), "target": target, "samples": args.samples, "rmse": rmse, "ll": ll, "recalibration": recalibration});
        for (level, p, w) in &coverage {
            let pct = (level * 100.0).round();
            out[format!("picp{pct}")] = json!(p);
            out[format!("mpiw{pct}")] = json!(w);
        }
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} rows of {}, target '{target}', {} posterior samples",
        data.len(),
        args.data.display(),
        args.samples
    );
    if let Some(method) = regressor.recalibration().method() {
        println!("  intervals recalibrated with {method} (fitted on held-out rows)");
    }
    println!("  {:<34} {:>10.4}", "RMSE", rmse);
    println!("  {:<34} {:>10.4}", "average log-likelihood", ll);
    for (level, p, w) in &coverage {
        let pct = level * 100.0;
        println!(
            "  {:<34} {:>10.3}",
            format!("PICP {pct:.0}% (nominal {level})"),
            p
        );
        println!("  {:<34} {:>10.4}", format!("MPIW {pct:.0}%"), w);
    }
    Ok(())
}
