//! `bnn train`: fit a model to a CSV file and save it as a model directory.

use std::path::PathBuf;

use candle_bnn::calibrate::RecalibrationMethod;
use candle_bnn::checkpoint;
use candle_bnn::data::read_csv;
use candle_bnn::elbo::KlSchedule;
use candle_bnn::likelihood::LikelihoodKind;
use candle_bnn::model::BayesMlpConfig;
use candle_bnn::posterior::DEFAULT_INIT_SCALE;
use candle_bnn::train::TrainConfig;
use candle_bnn::{Activation, BayesRegressor, Error, Estimator, Prior, Result};
use candle_core::Device;
use clap::{Args, ValueEnum};
use serde_json::json;

/// The model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Bayes by Backprop: factored Gaussian posterior per weight.
    Bbb,
    /// Monte Carlo dropout (not yet supported).
    McDropout,
    /// Deep ensemble (not yet supported).
    Ensemble,
}

/// The noise model of the regression head.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum NoiseModel {
    /// One learned noise level for every input.
    Homoscedastic,
    /// An input-dependent noise level from a second output.
    Heteroscedastic,
}

#[derive(Args)]
pub struct TrainArgs {
    /// CSV file with a header row.
    #[arg(long)]
    data: PathBuf,
    /// Name of the target column.
    #[arg(long)]
    target: String,
    /// Model directory to write (created, or replaced atomically if it holds a model).
    #[arg(long)]
    out: PathBuf,
    /// Feature columns, comma-separated [default: every other column].
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Model family.
    #[arg(long, value_enum, default_value_t = Method::Bbb)]
    method: Method,
    /// Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    hidden: Vec<usize>,
    /// Hidden nonlinearity: relu | tanh | selu | erf.
    #[arg(long, default_value = "relu")]
    activation: Activation,
    /// Prior over weights, also their initializer: he | glorot | lecun |
    /// gaussian:SIGMA or gaussian:SIGMA@MEAN | laplace:B | mixture:PI,SIGMA1,SIGMA2.
    #[arg(long, default_value = "he")]
    prior: Prior,
    /// How outputs are sampled: reparam | local | flipout.
    #[arg(long, default_value = "local")]
    estimator: Estimator,
    /// Noise model of the likelihood.
    #[arg(long, value_enum, default_value_t = NoiseModel::Homoscedastic)]
    likelihood: NoiseModel,
    /// Initial posterior std as a fraction of the prior std.
    #[arg(long, allow_negative_numbers = true, default_value_t = DEFAULT_INIT_SCALE)]
    init_scale: f64,
    /// Passes over the training data.
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Rows per optimizer step.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, allow_negative_numbers = true, default_value_t = TrainConfig::default().lr)]
    lr: f64,
    /// Phase the KL weight in linearly over this many epochs [default: none].
    #[arg(long, allow_negative_numbers = true)]
    kl_warmup: Option<f64>,
    /// Hold out this fraction of the rows (seeded) for recalibration, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    calibration_fraction: f64,
    /// Recalibration fitted on the held-out rows and saved with the model:
    /// scale | isotonic | conformal (needs --calibration-fraction > 0).
    #[arg(long)]
    recalibrate: Option<RecalibrationMethod>,
    /// Posterior samples per prediction when recalibrating.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Seed of the initialization, all noise and the minibatch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &TrainArgs) -> Result<()> {
    if args.method != Method::Bbb {
        let name = args
            .method
            .to_possible_value()
            .map_or(String::new(), |v| v.get_name().to_string());
        return Err(Error::invalid(
            "method",
            name,
            "bbb (mc-dropout and ensemble are not yet supported)",
        ));
    }
    let train = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        kl_schedule: match args.kl_warmup {
            Some(epochs) => KlSchedule::LinearWarmup { epochs },
            None => KlSchedule::default(),
        },
        progress: !args.json,
        ..TrainConfig::default()
    };
    // Every hyperparameter is checked before the data is read.
    train.validate()?;
    if let Some(epochs) = args.kl_warmup {
        if !(epochs.is_finite() && epochs > 0.0) {
            return Err(Error::invalid(
                "kl-warmup",
                epochs,
                "a number of epochs > 0",
            ));
        }
    }
    let likelihood = match args.likelihood {
        NoiseModel::Homoscedastic => LikelihoodKind::Homoscedastic,
        NoiseModel::Heteroscedastic => LikelihoodKind::Heteroscedastic,
    };
    let with_input = |input_dim| BayesMlpConfig {
        activation: args.activation,
        prior: args.prior,
        estimator: args.estimator,
        likelihood,
        init_scale: args.init_scale,
        ..BayesMlpConfig::new(input_dim, &args.hidden)
    };
    with_input(1).validate()?;
    let fraction = args.calibration_fraction;
    if !(0.0..1.0).contains(&fraction) {
        return Err(Error::invalid(
            "calibration-fraction",
            fraction,
            "a fraction in [0, 1)",
        ));
    }
    if args.recalibrate.is_some() != (fraction > 0.0) {
        return Err(Error::invalid(
            "recalibrate",
            args.recalibrate.map_or("none".into(), |m| m.to_string()),
            "a method together with --calibration-fraction > 0, or neither",
        ));
    }

    let all = read_csv(&args.data, &args.target, args.features.as_deref())?;
    let (data, held_out) = match args.recalibrate {
        Some(_) => {
            let (data, held_out) = all.train_test_split(fraction, args.seed)?;
            (data, Some(held_out))
        }
        None => (all, None),
    };
    let mut regressor =
        BayesRegressor::fit(&data, with_input(data.n_features()), &train, &Device::Cpu)?;
    if let (Some(method), Some(held_out)) = (args.recalibrate, &held_out) {
        regressor.calibrate(method, held_out, args.samples)?;
    }
    for j in regressor.x_scaler().constant_columns() {
        eprintln!(
            "warning: feature '{}' is constant in {}; it was kept with scale 1 and carries no information",
            data.feature_names[j],
            args.data.display()
        );
    }
    checkpoint::save(&regressor, &args.out)?;

    let report = regressor.report();
    let terms = report.last().map(|e| e.terms);
    if args.json {
        let out = json!({
            "method": "bbb",
            "epochs": args.epochs,
            "seconds": report.seconds,
            "seconds_per_epoch": report.seconds / args.epochs as f64,
            "final": terms,
            "n_train": data.len(),
            "n_calibration": held_out.as_ref().map_or(0, |h| h.len()),
            "recalibration": args.recalibrate.map(|m| m.to_string()),
            "features": data.feature_names,
            "target": data.target_name,
            "out": args.out.display().to_string(),
            "warnings": report.warnings,
        });
        println!("{out}");
    } else {
        println!(
            "trained {} on {} rows x {} features in {:.1} s",
            regressor.model(),
            data.len(),
            data.n_features(),
            report.seconds
        );
        if let Some(t) = terms {
            println!(
                "final epoch: loss {:.4}  nll {:.4}  KL {:.1} = L2 part {:.1} + variance part {:.1}",
                t.loss, t.nll, t.kl, t.kl_l2, t.kl_rest
            );
        }
        println!("saved to {}", args.out.display());
    }
    Ok(())
}
