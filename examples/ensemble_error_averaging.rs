//! Why a deep ensemble's intervals over-cover nearly noiseless targets.
//!
//! The ensemble's predictive is the uniform mixture of its members
//! (Lakshminarayanan et al. 2017),
//!
//! ```text
//! p(y | x) = (1/M) Σ_m N(y; mu_m(x), sigma_m(x)²),   Var = mean_m sigma_m² + var_m mu_m,
//! ```
//!
//! the predictive of one member drawn at random. Each member's `sigma_m`
//! head is fitted to that member's own residuals. On nearly noiseless
//! targets those residuals are mostly the member's own estimation error,
//! which differs from member to member and partly cancels in the mean
//! `mu = (1/M) Σ_m mu_m`. The mixture then describes a member's error,
//! not the mean's, and its intervals around the more accurate mean are too
//! wide.
//!
//! Trains a 5-member ensemble (50 hidden units, the UCI benchmark's
//! settings: batches of 32, learning rate 1e-2) on one split of a dataset
//! in the published split-directory layout and prints, on the training and
//! the test rows (original units):
//! - each member alone: RMS of `(y - mu_m) / sigma_m` and the coverage of
//!   its own 95% interval, averaged over members;
//! - the mean squared error of a member and of the ensemble mean;
//! - the mixture: RMS of `(y - mu) / std` and its 95% coverage.
//!
//! ```text
//! cargo run --release --example ensemble_error_averaging -- ../shared/data/uci/energy 3200 0
//! ```
//! Arguments: the dataset folder, epochs [default 400], split [default 0].

use std::path::PathBuf;

use candle_bnn::data::load_split_dir;
use candle_bnn::ensemble::{EnsembleConfig, DEFAULT_MEMBERS};
use candle_bnn::metrics::picp;
use candle_bnn::predictive::GaussianMixture;
use candle_bnn::{BayesRegressor, Error, Result, TrainConfig};
use candle_core::Device;

/// z-score of the central 95% interval of a Gaussian.
const Z95: f64 = 1.959_963_984_540_054;

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let dir = PathBuf::from(args.first().ok_or_else(|| {
        Error::invalid(
            "dataset folder",
            "(none)",
            "a UCI split directory, e.g. ../shared/data/uci/energy",
        )
    })?);
    let count = |i: usize, name: &str, default: usize| -> Result<usize> {
        args.get(i).map_or(Ok(default), |s| {
            s.parse()
                .map_err(|_| Error::invalid(name, s, "a non-negative integer"))
        })
    };
    let (epochs, split) = (count(1, "epochs", 400)?, count(2, "split", 0)?);
    let (train, test) = load_split_dir(&dir)?.split(split)?;
    let config = TrainConfig {
        epochs,
        batch_size: 32,
        lr: 1e-2,
        progress: false,
        ..TrainConfig::default()
    };
    let spec = EnsembleConfig::new(train.n_features(), &[50], DEFAULT_MEMBERS);
    let ensemble = BayesRegressor::fit(&train, spec, &config, &Device::Cpu)?;
    println!(
        "{} split {split}, {epochs} epochs, {DEFAULT_MEMBERS} members",
        dir.display()
    );
    for (rows, data) in [("training", &train), ("test", &test)] {
        let dist = ensemble.predict(&data.x, DEFAULT_MEMBERS)?;
        report(rows, &dist, &data.y)?;
    }
    Ok(())
}

/// Prints the member-alone, mean and mixture statistics of the header.
fn report(rows: &str, dist: &GaussianMixture, ys: &[f64]) -> Result<()> {
    let (n, m) = (ys.len() as f64, dist.n_components() as f64);
    let (mut member_z2, mut member_inside, mut member_se) = (0.0, 0.0, 0.0);
    for (i, &y) in ys.iter().enumerate() {
        for (mu, sigma) in dist.component_means(i).iter().zip(dist.component_stds(i)) {
            let z = (y - mu) / sigma;
            member_z2 += z * z;
            if z.abs() <= Z95 {
                member_inside += 1.0;
            }
            member_se += (y - mu).powi(2);
        }
    }
    let (mean, std) = (dist.mean(), dist.std());
    let mean_se: f64 = mean.iter().zip(ys).map(|(mu, y)| (y - mu).powi(2)).sum();
    let mixture_z2: f64 = mean
        .iter()
        .zip(&std)
        .zip(ys)
        .map(|((mu, s), y)| ((y - mu) / s).powi(2))
        .sum();
    println!(
        "{rows:>8} rows: member alone RMS z {:.2}, PICP95 {:.3} | MSE member {:.4}, mean {:.4} | mixture RMS z {:.2}, PICP95 {:.3}",
        (member_z2 / (n * m)).sqrt(),
        member_inside / (n * m),
        member_se / (n * m),
        mean_se / n,
        (mixture_z2 / n).sqrt(),
        picp(&dist.interval(0.95)?, ys)?,
    );
    Ok(())
}
