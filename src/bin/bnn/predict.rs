//! `bnn predict`: predictive distributions for the rows of a CSV file.

use std::io::Write;
use std::path::{Path, PathBuf};

use candle_bnn::checkpoint;
use candle_bnn::data::read_feature_csv;
use candle_bnn::{Error, Result};
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
    let regressor = checkpoint::load(&args.model, &Device::Cpu)?;
    let (x, _rows) = read_feature_csv(&args.data, regressor.feature_names())?;
    let dist = regressor.predict(&x, args.samples)?;
    let interval = regressor.intervals(&dist, args.level)?;
    let (std, epistemic, aleatoric) = (dist.std(), dist.epistemic_var(), dist.aleatoric_var());

    let mut table = csv::Writer::from_writer(Vec::new());
    let csv_error = |e: csv::Error| Error::Io {
        path: args.out.clone().unwrap_or_else(|| "stdout".into()),
        source: e.into(),
    };
    table
        .write_record([
            "mean",
            "std",
            "lower",
            "upper",
            "epistemic_std",
            "aleatoric_std",
        ])
        .map_err(csv_error)?;
    for (i, mean) in dist.mean().iter().enumerate() {
        let row = [
            *mean,
            std[i],
            interval.lower[i],
            interval.upper[i],
            epistemic[i].sqrt(),
            aleatoric[i].sqrt(),
        ];
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
