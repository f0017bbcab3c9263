//! `bnn eval`: score a saved model (regressor or classifier) on a labelled
//! CSV file.

use std::path::PathBuf;

use candle_bnn::calibrate::Recalibration;
use candle_bnn::checkpoint::{self, SavedModel};
use candle_bnn::classifier::class_labels;
use candle_bnn::data::{read_csv, Dataset};
use candle_bnn::figures::{
    plot_calibration_curve, plot_predicted_vs_actual, plot_reliability_diagram,
};
use candle_bnn::metrics::{
    calibration_curve_from_pit, calibration_levels, mpiw, nll, picp, reliability_diagram, rmse,
    ClassificationReport, ECE_BINS,
};
use candle_bnn::predictive::GaussianMixture;
use candle_bnn::{BayesClassifier, BayesRegressor, Result};
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
    /// Write figures to this folder. Regression: the calibration curve
    /// (before and after the model's recalibration) and predicted vs actual
    /// with 90% intervals; classification: the reliability diagram.
    #[arg(long)]
    plots: Option<PathBuf>,
}

pub fn run(args: &EvalArgs) -> Result<()> {
    check_level_and_samples(0.5, args.samples)?;
    let model = checkpoint::load(&args.model, &Device::Cpu)?;
    let target = args.target.as_deref().unwrap_or(model.target_name());
    let data = read_csv(&args.data, target, Some(model.feature_names()))?;
    match &model {
        SavedModel::Regressor(r) => eval_regression(args, r, &data),
        SavedModel::Classifier(c) => eval_classification(args, c, &data),
    }
}

/// Accuracy, NLL, Brier, ECE/MCE, entropy and mutual information; with
/// `--plots`, the reliability diagram (after the temperature, if fitted).
fn eval_classification(
    args: &EvalArgs,
    classifier: &BayesClassifier,
    data: &Dataset,
) -> Result<()> {
    let labels = class_labels(&data.y, classifier.classes())?;
    let dist = classifier.predict(&data.x, args.samples)?;
    let report = ClassificationReport::new(&dist, &labels)?;
    if let Some(dir) = &args.plots {
        let bins = reliability_diagram(&dist, &labels, ECE_BINS)?;
        let path = dir.join("reliability.png");
        plot_reliability_diagram(&path, "Reliability diagram", &bins, report.ece)?;
        eprintln!("figures written to {}", dir.display());
    }
    let target = &data.target_name;
    if args.json {
        let mut out = serde_json::to_value(report)?;
        out["n"] = json!(data.len());
        out["target"] = json!(target);
        out["samples"] = json!(args.samples);
        out["temperature"] = json!(classifier.temperature());
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} rows of {}, label '{target}', {} classes, {} posterior samples",
        data.len(),
        args.data.display(),
        classifier.classes(),
        args.samples
    );
    if let Some(t) = classifier.temperature() {
        println!("  probabilities tempered with T = {t:.4} (fitted on held-out rows)");
    }
    let rows = [
        ("accuracy", report.accuracy),
        ("NLL (nats)", report.nll),
        ("Brier score", report.brier),
        ("ECE (15 bins)", report.ece),
        ("MCE (15 bins)", report.mce),
        ("mean predictive entropy (nats)", report.entropy),
        ("mean mutual information (nats)", report.mutual_information),
    ];
    for (name, value) in rows {
        println!("  {name:<34} {value:>10.4}");
    }
    Ok(())
}

/// RMSE, log-likelihood, PICP and MPIW; with `--plots`, the calibration
/// curve and predicted vs actual.
fn eval_regression(args: &EvalArgs, regressor: &BayesRegressor, data: &Dataset) -> Result<()> {
    let target = &data.target_name;
    let dist = regressor.predict(&data.x, args.samples)?;
    let rmse = rmse(&dist.mean(), &data.y)?;
    let ll = -nll(&dist, &data.y)?;
    let mut coverage = Vec::new();
    for level in LEVELS {
        let iv = regressor.intervals(&dist, level)?;
        coverage.push((level, picp(&iv, &data.y)?, mpiw(&iv)));
    }
    if let Some(dir) = &args.plots {
        let raw = regressor.predict_raw(&data.x, args.samples)?;
        write_plots(dir, regressor, &data.y, &raw, &dist)?;
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

/// The calibration curve of the raw model and, when it carries one, after
/// its recalibration; and predicted against actual with 90% intervals.
fn write_plots(
    dir: &std::path::Path,
    regressor: &BayesRegressor,
    ys: &[f64],
    raw_dist: &GaussianMixture,
    dist: &GaussianMixture,
) -> Result<()> {
    let levels = calibration_levels();
    let curve = |r: &Recalibration, d: &GaussianMixture| -> Result<Vec<(f64, f64)>> {
        let points = calibration_curve_from_pit(&r.pit(d, ys)?, &levels)?;
        Ok(points.iter().map(|p| (p.nominal, p.observed)).collect())
    };
    let recalibration = regressor.recalibration();
    let raw = curve(&Recalibration::None, raw_dist)?;
    let mut curves: Vec<(String, Vec<(f64, f64)>)> = vec![("model".into(), raw)];
    if let Some(method) = recalibration.method() {
        curves[0].0 = "before recalibration".into();
        curves.push((format!("after {method}"), curve(recalibration, dist)?));
    }
    let named: Vec<(&str, &[(f64, f64)])> = curves
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    plot_calibration_curve(&dir.join("calibration.png"), "Interval calibration", &named)?;
    let iv = regressor.intervals(dist, 0.9)?;
    plot_predicted_vs_actual(
        &dir.join("predicted_vs_actual.png"),
        "Predicted vs actual",
        ys,
        &dist.mean(),
        &iv.lower,
        &iv.upper,
        0.9,
    )?;
    eprintln!("figures written to {}", dir.display());
    Ok(())
}
