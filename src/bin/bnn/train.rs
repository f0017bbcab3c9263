//! `bnn train`: fit a model to a CSV file and save it as a model directory.

use std::path::{Path, PathBuf};

use candle_bnn::checkpoint::{self, SavedModel};
use candle_bnn::classifier::class_labels;
use candle_bnn::data::{read_csv, Dataset};
use candle_bnn::elbo::KlSchedule;
use candle_bnn::ensemble::{EnsembleConfig, DEFAULT_MEMBERS};
use candle_bnn::likelihood::LikelihoodKind;
use candle_bnn::model::BayesMlpConfig;
use candle_bnn::train::TrainConfig;
use candle_bnn::{
    Activation, BayesClassifier, BayesRegressor, Error, Estimator, McDropoutConfig, McDropoutInit,
    NetworkSpec, NoiseFit, Prior, Result,
};
use candle_core::Device;
use clap::{Args, ValueEnum};

use crate::calibrate::{calibrate, CalibrationMethod};
use serde_json::json;

/// The model family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Method {
    /// Bayes by Backprop: factored Gaussian posterior per weight.
    Bbb,
    /// Monte Carlo dropout: dropout kept on at prediction.
    McDropout,
    /// Deep ensemble: independently initialized networks, each trained on its own shuffle of the rows.
    Ensemble,
}

/// What the model predicts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Task {
    /// A real-valued target (Gaussian likelihood).
    Regress,
    /// Class labels 0..K-1 (categorical likelihood, K from the data).
    Classify,
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
    /// Name of the target column (class indices 0..K-1 with --task classify).
    #[arg(long)]
    target: String,
    /// Model directory to write (created, or replaced atomically if it holds a model).
    #[arg(long)]
    out: PathBuf,
    /// Feature columns, comma-separated [default: every other column].
    #[arg(long, value_delimiter = ',')]
    features: Option<Vec<String>>,
    /// Regression or classification.
    #[arg(long, value_enum, default_value_t = Task::Regress)]
    task: Task,
    /// Model family.
    #[arg(long, value_enum, default_value_t = Method::Bbb)]
    method: Method,
    /// Hidden layer widths, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "50")]
    hidden: Vec<usize>,
    /// Hidden nonlinearity: relu | tanh | selu | erf.
    #[arg(long, default_value = "relu")]
    activation: Activation,
    /// Prior over weights, also their initializer: he | glorot | lecun | fanin:C |
    /// gaussian:SIGMA or gaussian:SIGMA@MEAN | laplace:B | mixture:PI,SIGMA1,SIGMA2.
    /// MC dropout and ensembles use it as the initializer.
    #[arg(long, default_value = "he")]
    prior: Prior,
    /// BBB only: how outputs are sampled: reparam | local | flipout [default: local].
    #[arg(long)]
    estimator: Option<Estimator>,
    /// BBB only: initial posterior std as a fraction of the prior std
    /// [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    init_scale: Option<f64>,
    /// MC dropout only: dropout rate before every weight layer [default: 0.05].
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f64>,
    /// MC dropout only: prior length-scale l of the weight decay
    /// l²(1-p)/(2N tau) [default: 0.01].
    #[arg(long, allow_negative_numbers = true)]
    length_scale: Option<f64>,
    /// MC dropout only: start as Keras does, weights uniform with the
    /// prior's variance and biases zero (with --prior glorot, the setup of
    /// Gal's experiments) [default: both drawn from the prior].
    #[arg(long)]
    keras_init: bool,
    /// MC dropout only: keep the homoscedastic noise as the ELBO learned it
    /// (Gal's learned tau⁻¹, which also holds the dropout variance)
    /// [default: refitted to the predictive mean's training residuals].
    #[arg(long)]
    elbo_noise: bool,
    /// Ensemble only: number of networks [default: 5].
    #[arg(long)]
    members: Option<usize>,
    /// Regression only: noise model of the likelihood [default:
    /// heteroscedastic for ensembles, homoscedastic otherwise].
    #[arg(long, value_enum)]
    likelihood: Option<NoiseModel>,
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
    /// Weight beta of the KL (MC dropout's: its weight decay) in the loss
    /// NLL + beta KL / N, >= 0: 1 is the ELBO, below 1 a tempered posterior
    /// [default: 1].
    #[arg(long, allow_negative_numbers = true, conflicts_with = "kl_warmup")]
    kl_beta: Option<f64>,
    /// Hold out this fraction of the rows (seeded) for recalibration, in [0, 1).
    #[arg(long, default_value_t = 0.0)]
    calibration_fraction: f64,
    /// Recalibration fitted on the held-out rows and saved with the model:
    /// scale | isotonic | conformal (regression), temperature
    /// (classification); needs --calibration-fraction > 0.
    #[arg(long, value_enum)]
    recalibrate: Option<CalibrationMethod>,
    /// With --recalibrate: after fitting the recalibration with a model of
    /// the other rows, train again on all the rows (same settings and seed)
    /// and save that model with the recalibration. The held-out rows then
    /// cost the saved model nothing; the map is assumed to carry over, so
    /// conformal's coverage guarantee no longer holds.
    #[arg(long)]
    refit: bool,
    /// Regression: choose the training length by early stopping. A seeded
    /// --validation-fraction of the rows is held out and scored (held-out
    /// log-likelihood) after epochs/16, epochs/8, ..., epochs; training stops
    /// two checkpoints past the best, then the model is refit on all rows for
    /// the best checkpoint's epochs.
    #[arg(long)]
    early_stopping: bool,
    /// Fraction of the rows held out to choose the length with
    /// --early-stopping, in (0, 1) [default: 0.2].
    #[arg(long, allow_negative_numbers = true)]
    validation_fraction: Option<f64>,
    /// Posterior samples per prediction when recalibrating or early stopping.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Seed of the initialization, all noise and the minibatch order.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a summary.
    #[arg(long)]
    json: bool,
}

/// Rows held out by `--early-stopping` unless `--validation-fraction` says.
const DEFAULT_VALIDATION_FRACTION: f64 = 0.2;

/// Refuses a family-specific flag given with another family.
fn only_for<T>(value: Option<T>, flag: &str, method: Method, wanted: &[Method]) -> Result<()> {
    if value.is_some() && !wanted.contains(&method) {
        let names: Vec<String> = wanted.iter().map(|m| value_name(*m)).collect();
        return Err(Error::invalid(
            flag,
            format!("a value with --method {}", value_name(method)),
            format!("--{flag} only with --method {}", names.join(" | ")),
        ));
    }
    Ok(())
}

fn value_name(v: impl ValueEnum) -> String {
    v.to_possible_value()
        .map_or(String::new(), |v| v.get_name().to_string())
}

impl TrainArgs {
    /// The architecture on `input_dim` features with the head `likelihood`,
    /// after checking that every family-specific flag fits `--method`.
    fn spec(&self, input_dim: usize, likelihood: LikelihoodKind) -> Result<NetworkSpec> {
        let m = self.method;
        only_for(self.estimator, "estimator", m, &[Method::Bbb])?;
        only_for(self.init_scale, "init-scale", m, &[Method::Bbb])?;
        only_for(self.dropout, "dropout", m, &[Method::McDropout])?;
        only_for(self.length_scale, "length-scale", m, &[Method::McDropout])?;
        let keras_init = self.keras_init.then_some(());
        only_for(keras_init, "keras-init", m, &[Method::McDropout])?;
        let elbo_noise = self.elbo_noise.then_some(());
        only_for(elbo_noise, "elbo-noise", m, &[Method::McDropout])?;
        only_for(self.members, "members", m, &[Method::Ensemble])?;
        // An ensemble's members are point estimates: no KL term to weigh.
        let with_kl = [Method::Bbb, Method::McDropout];
        only_for(self.kl_warmup, "kl-warmup", m, &with_kl)?;
        only_for(self.kl_beta, "kl-beta", m, &with_kl)?;
        let spec = match m {
            Method::Bbb => {
                let defaults = BayesMlpConfig::new(input_dim, &self.hidden);
                NetworkSpec::Bbb(BayesMlpConfig {
                    activation: self.activation,
                    prior: self.prior,
                    estimator: self.estimator.unwrap_or(defaults.estimator),
                    init_scale: self.init_scale.unwrap_or(defaults.init_scale),
                    likelihood,
                    ..defaults
                })
            }
            Method::McDropout => {
                let defaults = McDropoutConfig::new(input_dim, &self.hidden);
                NetworkSpec::McDropout(McDropoutConfig {
                    activation: self.activation,
                    prior: self.prior,
                    dropout: self.dropout.unwrap_or(defaults.dropout),
                    length_scale: self.length_scale.unwrap_or(defaults.length_scale),
                    init: if self.keras_init {
                        McDropoutInit::Keras
                    } else {
                        defaults.init
                    },
                    noise_fit: if self.elbo_noise {
                        NoiseFit::Elbo
                    } else {
                        defaults.noise_fit
                    },
                    likelihood,
                    ..defaults
                })
            }
            Method::Ensemble => {
                let mut config = EnsembleConfig::new(
                    input_dim,
                    &self.hidden,
                    self.members.unwrap_or(DEFAULT_MEMBERS),
                );
                config.member.activation = self.activation;
                config.member.prior = self.prior;
                config.member.likelihood = likelihood;
                NetworkSpec::Ensemble(config)
            }
        };
        spec.validate()?;
        Ok(spec)
    }

    /// The likelihood head: `--likelihood` for regression (its default
    /// depends on the family), a categorical head over `classes` for
    /// classification (where `--likelihood` is refused).
    fn head(&self, classes: usize) -> Result<LikelihoodKind> {
        match (self.task, self.likelihood) {
            (Task::Classify, Some(l)) => Err(Error::invalid(
                "likelihood",
                value_name(l),
                "no --likelihood with --task classify (the head is categorical)",
            )),
            (Task::Classify, None) => Ok(LikelihoodKind::Categorical { classes }),
            (Task::Regress, l) => {
                let default = match self.method {
                    Method::Ensemble => NoiseModel::Heteroscedastic,
                    _ => NoiseModel::Homoscedastic,
                };
                Ok(match l.unwrap_or(default) {
                    NoiseModel::Homoscedastic => LikelihoodKind::Homoscedastic,
                    NoiseModel::Heteroscedastic => LikelihoodKind::Heteroscedastic,
                })
            }
        }
    }
}

/// The number of classes `K = max label + 1` of class-index labels, at least
/// 2 and at most one per row.
fn count_classes(data: &Dataset, path: &Path) -> Result<usize> {
    let max = data.y.iter().copied().fold(0.0, f64::max);
    let rows = data.len().max(2);
    if !(max >= 1.0 && max < rows as f64) {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: None,
            column: Some(data.target_name.clone()),
            message: format!(
                "the largest label in '{}' is {max}; --task classify expects class indices 0..K-1 with 2 <= K <= the number of rows ({})",
                data.target_name,
                data.len()
            ),
        });
    }
    let classes = max as usize + 1;
    class_labels(&data.y, classes)?;
    Ok(classes)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    let train = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        kl_schedule: match (args.kl_warmup, args.kl_beta) {
            (Some(epochs), _) => KlSchedule::LinearWarmup { epochs },
            (None, Some(beta)) => KlSchedule::Constant { beta },
            (None, None) => KlSchedule::default(),
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
    // Every flag is checked before the data is read (2 classes stand in for
    // the count the labels will give).
    args.spec(1, args.head(2)?)?;
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
            args.recalibrate.map_or("none".into(), |m| m.name()),
            "a method together with --calibration-fraction > 0, or neither",
        ));
    }
    if args.refit && args.recalibrate.is_none() {
        return Err(Error::invalid(
            "refit",
            true,
            "only together with --recalibrate",
        ));
    }
    let recalibration_fits_task = match args.recalibrate.map(|m| m.for_regression()) {
        Some(Some(_)) => args.task == Task::Regress,
        Some(None) => args.task == Task::Classify,
        None => true,
    };
    if !recalibration_fits_task {
        return Err(Error::invalid(
            "recalibrate",
            args.recalibrate.map_or(String::new(), |m| m.name()),
            "scale, isotonic or conformal with --task regress; temperature with --task classify",
        ));
    }

    if args.early_stopping && args.task == Task::Classify {
        return Err(Error::invalid(
            "early-stopping",
            "--task classify",
            "--task regress (the held-out score is a regression log-likelihood)",
        ));
    }
    let validation_fraction = match (args.validation_fraction, args.early_stopping) {
        (Some(f), false) => {
            return Err(Error::invalid(
                "validation-fraction",
                f,
                "only together with --early-stopping",
            ))
        }
        (Some(f), true) if !(f > 0.0 && f < 1.0) => {
            return Err(Error::invalid(
                "validation-fraction",
                f,
                "a fraction in (0, 1)",
            ))
        }
        (f, _) => f.unwrap_or(DEFAULT_VALIDATION_FRACTION),
    };

    let all = read_csv(&args.data, &args.target, args.features.as_deref())?;
    let classes = match args.task {
        Task::Classify => count_classes(&all, &args.data)?,
        Task::Regress => 0,
    };
    let spec = args.spec(all.n_features(), args.head(classes)?)?;
    let device = Device::Cpu;
    let fit = |data: &Dataset| -> Result<SavedModel> {
        Ok(match args.task {
            Task::Regress if args.early_stopping => BayesRegressor::fit_early_stopped(
                data,
                spec.clone(),
                &train,
                (validation_fraction, args.samples),
                &device,
            )?
            .into(),
            Task::Regress => BayesRegressor::fit(data, spec.clone(), &train, &device)?.into(),
            Task::Classify => BayesClassifier::fit(data, &spec, &train, &device)?.into(),
        })
    };
    // The saved model, the rows it trained on, and the held-out rows.
    let (model, data, held_out) = match args.recalibrate {
        Some(method) => {
            let (data, held_out) = all.train_test_split(fraction, args.seed)?;
            let mut model = fit(&data)?;
            calibrate(&mut model, method, &held_out, args.samples, "recalibrate")?;
            match args.refit {
                true => (
                    fit(&all)?.with_recalibration_of(&model)?,
                    all,
                    Some(held_out),
                ),
                false => (model, data, Some(held_out)),
            }
        }
        None => (fit(&all)?, all, None),
    };
    let (x_scaler, report) = match &model {
        SavedModel::Regressor(r) => (r.x_scaler(), r.report()),
        SavedModel::Classifier(c) => (c.x_scaler(), c.report()),
    };
    for j in x_scaler.constant_columns() {
        eprintln!(
            "warning: feature '{}' is constant in {}; it was kept with scale 1 and carries no information",
            data.feature_names[j],
            args.data.display()
        );
    }
    checkpoint::save(&model, &args.out)?;

    let terms = report.last().map(|e| e.terms);
    let network = model.network();
    // The epochs the saved model trained: fewer than --epochs when stopped early.
    let epochs = report.epochs.len();
    if args.json {
        let out = json!({
            "method": network.spec().method(),
            "task": model.task().to_string(),
            "classes": (classes > 0).then_some(classes),
            "epochs": epochs,
            "early_stopping": args.early_stopping.then(|| json!({
                "max_epochs": args.epochs,
                "validation_fraction": validation_fraction,
            })),
            "seconds": report.seconds,
            "seconds_per_epoch": report.seconds / epochs.max(1) as f64,
            "final": terms,
            "n_train": data.len(),
            "n_calibration": held_out.as_ref().map_or(0, |h| h.len()),
            "recalibration": args.recalibrate.map(|m| m.name()),
            "refit": args.refit,
            "features": data.feature_names,
            "target": data.target_name,
            "out": args.out.display().to_string(),
            "warnings": report.warnings,
        });
        println!("{out}");
    } else {
        println!(
            "trained {network} on {} rows x {} features for {epochs} epochs{} in {:.1} s",
            data.len(),
            data.n_features(),
            match args.early_stopping {
                true => format!(" (early-stopped, at most {})", args.epochs),
                false => String::new(),
            },
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
