//! `bnn demo`: Bayes by Backprop on embedded real data, end to end.

use std::path::PathBuf;

use candle_bnn::data::{diabetes, toy_gap, Dataset};
use candle_bnn::elbo::gaussian_prior_weight_decay;
use candle_bnn::figures::{
    plot_calibration_curve, plot_predicted_vs_actual, plot_predictive_1d, Band,
};
use candle_bnn::metrics::{calibration_curve, calibration_levels, RegressionReport};
use candle_bnn::model::BayesMlpConfig;
use candle_bnn::prior::LayerPrior;
use candle_bnn::regressor::BayesRegressor;
use candle_bnn::train::TrainConfig;
use candle_bnn::{Network, Result};
use candle_core::Device;
use clap::Args;
use serde_json::json;

const TEST_FRACTION: f64 = 0.2;
const HIDDEN: usize = 50;
/// The toy: enough rows that the full-KL ELBO fits the function (with a few
/// hundred, mean-field BBB settles on a near-linear fit), two hidden layers
/// (one hidden layer of a mean-field net cannot raise its variance between
/// data clusters; Foong et al. 2019, "In-Between Uncertainty in BNNs").
const TOY_ROWS: usize = 1000;
const TOY_NOISE: f64 = 0.2;
const TOY_EPOCHS: usize = 300;
const TOY_BATCH: usize = 64;

#[derive(Args)]
pub struct DemoArgs {
    /// Folder for the PNG figures.
    #[arg(long, default_value = "bnn-out")]
    out: PathBuf,
    /// Training epochs.
    #[arg(long, default_value_t = 400)]
    epochs: usize,
    /// Posterior samples per prediction.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Seed of the split, the initialization and all noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    json: bool,
}

impl Default for DemoArgs {
    fn default() -> Self {
        Self {
            out: "bnn-out".into(),
            epochs: 400,
            samples: 200,
            seed: 0,
            json: false,
        }
    }
}

pub fn run(args: &DemoArgs) -> Result<()> {
    let device = Device::Cpu;
    let data = diabetes();
    let (train, test) = data.train_test_split(TEST_FRACTION, args.seed)?;
    if !args.json {
        println!(
            "candle-bnn demo: Bayes by Backprop on the diabetes data ({} patients x {} features, embedded)",
            data.len(),
            data.n_features()
        );
    }
    let config = BayesMlpConfig::new(train.n_features(), &[HIDDEN]);
    let train_config = TrainConfig {
        epochs: args.epochs,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let regressor = BayesRegressor::fit(&train, config, &train_config, &device)?;
    let dist = regressor.predict(&test.x, args.samples)?;
    let report = RegressionReport::new(&dist, &test.y)?;
    let baseline = baseline_rmse(&train, &test);
    let last = regressor.report().last().map(|e| e.terms);

    let figures = write_figures(args, &test, &dist)?;
    let toy = toy_story(args, &device)?;

    if args.json {
        let kl = last.map(|t| json!({"kl": t.kl, "kl_l2": t.kl_l2, "kl_rest": t.kl_rest}));
        let out = json!({
            "dataset": "diabetes", "n_train": train.len(), "n_test": test.len(),
            "epochs": args.epochs, "samples": args.samples, "seconds": regressor.report().seconds,
            "metrics": report, "baseline_rmse": baseline, "kl": kl,
            "toy_std_gap": toy.std_in_gap, "toy_std_data": toy.std_on_data,
            "figures": figures.iter().chain(std::slice::from_ref(&toy.figure)).map(|p| p.display().to_string()).collect::<Vec<_>>(),
        });
        println!("{out}");
        return Ok(());
    }
    println!("  model  {}", regressor.model());
    println!(
        "  train  {} rows, {} epochs in {:.1} s;  test {} rows;  {} posterior samples per prediction\n",
        train.len(),
        args.epochs,
        regressor.report().seconds,
        test.len(),
        args.samples
    );
    println!("  {:<22} {:>10}", "test metric", "value");
    println!(
        "  {:<22} {:>10.2}   (predicting the training mean: {baseline:.2})",
        "RMSE", report.rmse
    );
    println!("  {:<22} {:>10.3}", "NLL (per patient)", report.nll);
    println!("  {:<22} {:>10.3}", "PICP 90%", report.picp90);
    println!("  {:<22} {:>10.2}", "MPIW 90%", report.mpiw90);
    println!("  {:<22} {:>10.3}", "PICP 95%", report.picp95);
    println!("  {:<22} {:>10.2}", "MPIW 95%", report.mpiw95);
    println!(
        "  {:<22} {:>10.4}",
        "calibration error", report.calibration_error
    );
    if let Some(t) = last {
        println!(
            "\n  KL(q || p) = {:.1} = L2 part {:.1} + variance part {:.1}  (last epoch mean)",
            t.kl, t.kl_l2, t.kl_rest
        );
        print_weight_decay(&regressor, train.len())?;
    }
    println!(
        "\n  toy regression with no data in (-1, 1): mean predictive std {:.3} in the gap vs {:.3} on the data",
        toy.std_in_gap, toy.std_on_data
    );
    println!("  figures:");
    for f in figures.iter().chain(&[toy.figure]) {
        println!("    {}", f.display());
    }
    Ok(())
}

/// The RMSE of predicting the training mean for every test row.
fn baseline_rmse(train: &Dataset, test: &Dataset) -> f64 {
    let mean = train.y.iter().sum::<f64>() / train.len() as f64;
    (test.y.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / test.len() as f64).sqrt()
}

fn print_weight_decay(regressor: &BayesRegressor, n: usize) -> Result<()> {
    let Network::Bbb(model) = regressor.model() else {
        return Ok(());
    };
    print!("  the L2 part is weight decay lambda = 1/(2 sigma_p² N) on the means:");
    for (i, layer) in model.layers().iter().enumerate() {
        if let LayerPrior::Gaussian { sigma, .. } = *layer.prior() {
            print!(
                "  layer {i}: {:.2e}",
                gaussian_prior_weight_decay(sigma, n)?
            );
        }
    }
    println!();
    Ok(())
}

fn write_figures(
    args: &DemoArgs,
    test: &Dataset,
    dist: &candle_bnn::predictive::GaussianMixture,
) -> Result<Vec<PathBuf>> {
    let curve: Vec<(f64, f64)> = calibration_curve(dist, &test.y, &calibration_levels())?
        .iter()
        .map(|c| (c.nominal, c.observed))
        .collect();
    let calibration = args.out.join("calibration.png");
    plot_calibration_curve(
        &calibration,
        "Diabetes test set: interval calibration",
        &[("BBB", &curve)],
    )?;
    let iv = dist.interval(0.9)?;
    let scatter = args.out.join("diabetes_predicted_vs_actual.png");
    plot_predicted_vs_actual(
        &scatter,
        "Diabetes test set",
        &test.y,
        &dist.mean(),
        &iv.lower,
        &iv.upper,
        0.9,
    )?;
    Ok(vec![calibration, scatter])
}

struct ToyStory {
    std_in_gap: f64,
    std_on_data: f64,
    figure: PathBuf,
}

/// Trains on the 1-D toy with a gap and plots the widening bands.
fn toy_story(args: &DemoArgs, device: &Device) -> Result<ToyStory> {
    let data = toy_gap(TOY_ROWS, TOY_NOISE, args.seed)?;
    let config = BayesMlpConfig::new(1, &[HIDDEN, HIDDEN]);
    let train = TrainConfig {
        epochs: TOY_EPOCHS,
        batch_size: TOY_BATCH,
        seed: args.seed,
        ..TrainConfig::default()
    };
    let regressor = BayesRegressor::fit(&data, config, &train, device)?;
    let grid: Vec<f64> = (0..=240).map(|i| -4.0 + 8.0 * i as f64 / 240.0).collect();
    let dist = regressor.predict(&grid, args.samples)?;
    let (i50, i90) = (dist.interval(0.5)?, dist.interval(0.9)?);
    let figure = args.out.join("toy_regression.png");
    plot_predictive_1d(
        &figure,
        "BBB on sin(2x) + x/2 + noise, no data in (-1, 1)",
        &data.x,
        &data.y,
        &grid,
        &dist.mean(),
        &[
            Band {
                level: 0.9,
                lower: &i90.lower,
                upper: &i90.upper,
            },
            Band {
                level: 0.5,
                lower: &i50.lower,
                upper: &i50.upper,
            },
        ],
    )?;
    let std = dist.std();
    let mean_where = |pred: &dyn Fn(f64) -> bool| {
        let v: Vec<f64> = grid
            .iter()
            .zip(&std)
            .filter(|(x, _)| pred(**x))
            .map(|(_, s)| *s)
            .collect();
        v.iter().sum::<f64>() / v.len().max(1) as f64
    };
    Ok(ToyStory {
        std_in_gap: mean_where(&|x| x.abs() < 0.8),
        std_on_data: mean_where(&|x| (1.0..=3.0).contains(&x.abs())),
        figure,
    })
}
