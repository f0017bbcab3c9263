//! `bnn predict`: predictive distributions for the rows of a CSV file: the
//! mean, std and interval of a regressor, or the class probabilities,
//! entropy and mutual information of a classifier.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_bnn::checkpoint::{self, SavedModel};
use candle_bnn::data::read_feature_csv;
use candle_bnn::{BayesClassifier, BayesRegressor, Error, Result};
use candle_core::Device;
use clap::Args;

#[derive(Args)]
pub struct PredictArgs {
    /// Model directory written by `bnn train`.
    #[arg(long)]
    model: PathBuf,
    /// CSV file with (at least) the model's feature columns, by name.
    #[arg(long)]
    data: PathBuf,
    /// Nominal coverage of the central interval, in (0, 1).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.95)]
    level: f64,
    /// Posterior samples per row.
    #[arg(long, default_value_t = 100)]
    samples: usize,
    /// Output CSV [default: stdout].
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: &PredictArgs) -> Result<()> {
    check_level_and_samples(args.level, args.samples)?;
    let model = checkpoint::load(&args.model, &Device::Cpu)?;
    let (x, _rows) = read_feature_csv(&args.data, model.feature_names())?;
    let (header, rows) = match &model {
        SavedModel::Regressor(r) => regression_table(r, &x, args)?,
        SavedModel::Classifier(c) => classification_table(c, &x, args.samples)?,
    };

    let mut table = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Error::Io {
        path: args.out.clone().unwrap_or_else(|| "stdout".into()),
        source: e.into(),
    };
    table.write_record(&header).map_err(csv_error)?;
    for row in rows {
        table
            .write_record(row.iter().map(|v| v.to_string()))
            .map_err(csv_error)?;
    }
    let bytes = table
        .into_inner()
        .map_err(|e| csv_error(e.into_error().into()))?;
    match &args.out {
        Some(path) => write_atomically(path, &bytes),
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|source| Error::Io {
                path: "stdout".into(),
                source,
            }),
    }
}

/// A CSV header and its rows.
type Table = (Vec<String>, Vec<Vec<f64>>);

/// `mean,std,lower,upper,epistemic_std,aleatoric_std` per row.
fn regression_table(regressor: &BayesRegressor, x: &[f64], args: &PredictArgs) -> Result<Table> {
    let dist = regressor.predict(x, args.samples)?;
    let interval = regressor.intervals(&dist, args.level)?;
    let (std, epistemic, aleatoric) = (dist.std(), dist.epistemic_var(), dist.aleatoric_var());
    let header = [
        "mean",
        "std",
        "lower",
        "upper",
        "epistemic_std",
        "aleatoric_std",
    ];
    let rows = dist
        .mean()
        .iter()
        .enumerate()
        .map(|(i, mean)| {
            vec![
                *mean,
                std[i],
                interval.lower[i],
                interval.upper[i],
                epistemic[i].sqrt(),
                aleatoric[i].sqrt(),
            ]
        })
        .collect();
    Ok((header.map(String::from).to_vec(), rows))
}

/// `class,confidence,entropy,mutual_information,p_0..p_{K-1}` per row: the
/// most probable class, its probability, the predictive entropy and the
/// mutual information (epistemic part), in nats, and the mean probabilities.
fn classification_table(classifier: &BayesClassifier, x: &[f64], samples: usize) -> Result<Table> {
    let dist = classifier.predict(x, samples)?;
    let (classes, entropy, mi) = (
        dist.predicted_class(),
        dist.entropy(),
        dist.mutual_information(),
    );
    let mut header: Vec<String> = ["class", "confidence", "entropy", "mutual_information"]
        .map(String::from)
        .to_vec();
    header.extend((0..dist.n_classes()).map(|k| format!("p_{k}")));
    let rows = (0..dist.len())
        .map(|i| {
            let probs = dist.mean_probs(i);
            let mut row = vec![classes[i] as f64, probs[classes[i]], entropy[i], mi[i]];
            row.extend(probs);
            row
        })
        .collect();
    Ok((header, rows))
}

/// Validates the interval level and the sample count before any work.
pub fn check_level_and_samples(level: f64, samples: usize) -> Result<()> {
    if !(level > 0.0 && level < 1.0) {
        return Err(Error::invalid(
            "level",
            level,
            "a coverage in (0, 1), e.g. 0.95",
        ));
    }
    if samples == 0 {
        return Err(Error::invalid("samples", 0, "at least 1 posterior sample"));
    }
    Ok(())
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into
/// place: readers see the old file or the whole new one, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = path.with_file_name(format!(".{name}.tmp"));
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes)
        .and_then(|_| file.sync_all())
        .map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)
}
