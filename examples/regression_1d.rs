//! 1-D regression with predictive intervals, inside and away from the data.
//!
//! A Bayesian MLP (1 -> 50 -> 50 -> 1, He prior, learned noise) is fit to
//! `y = sin(2x) + x/2 + N(0, 0.2²)` observed only on [-3, -1] ∪ [1, 3]. At a
//! few x points, including the gap (x = 0) and beyond the data (x = ±5), it
//! prints the predictive mean and std split into epistemic (the posterior
//! samples disagree) and aleatoric (the noise the model expects) parts, and
//! the central 90% interval. The epistemic part grows beyond the data; in the
//! gap it grows much less (mean-field posteriors are known to be overconfident
//! between clusters of data: Foong et al. 2019, "In-Between" Uncertainty). It
//! ends with test RMSE, NLL and the coverage (PICP) of the 90% and 95%
//! intervals on fresh data from the same function.
//!
//! ```text
//! cargo run --release --example regression_1d
//! ```

use candle_bnn::data::{toy_gap, toy_gap_function};
use candle_bnn::metrics::RegressionReport;
use candle_bnn::model::BayesMlpConfig;
use candle_bnn::regressor::BayesRegressor;
use candle_bnn::train::TrainConfig;
use candle_core::Device;

/// Posterior samples per prediction.
const SAMPLES: usize = 100;

fn main() -> candle_bnn::Result<()> {
    let device = Device::Cpu;
    let train = toy_gap(1000, 0.2, 1)?;
    let config = BayesMlpConfig::new(1, &[50, 50]);
    let train_config = TrainConfig {
        epochs: 300,
        batch_size: 64,
        progress: true,
        ..Default::default()
    };
    let reg = BayesRegressor::fit(&train, config, &train_config, &device)?;
    println!(
        "trained {} in {:.1} s ({} steps)",
        reg.model(),
        reg.report().seconds,
        reg.report().steps
    );

    // Inside the data (±2), at its edges (±1, ±3), in the gap (0), beyond it (±5).
    let xs = [-5.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 5.0];
    let dist = reg.predict(&xs, SAMPLES)?;
    let (mean, std) = (dist.mean(), dist.std());
    let (epi, ale) = (dist.epistemic_var(), dist.aleatoric_var());
    let i90 = dist.interval(0.90)?;
    println!(
        "\n{:>5} {:>7} {:>7} {:>7} {:>9} {:>9} {:>18}",
        "x", "f(x)", "mean", "std", "epistemic", "aleatoric", "90% interval"
    );
    for (i, x) in xs.iter().enumerate() {
        println!(
            "{x:>5.1} {:>7.3} {:>7.3} {:>7.3} {:>9.3} {:>9.3}   [{:>6.2}, {:>6.2}]",
            toy_gap_function(*x),
            mean[i],
            std[i],
            epi[i].sqrt(),
            ale[i].sqrt(),
            i90.lower[i],
            i90.upper[i]
        );
    }

    let test = toy_gap(2000, 0.2, 2)?;
    let r = RegressionReport::new(&reg.predict(&test.x, SAMPLES)?, &test.y)?;
    println!(
        "\ntest ({} rows): rmse {:.4}  nll {:.4}  picp90 {:.3} (width {:.3})  picp95 {:.3} (width {:.3})",
        test.len(),
        r.rmse,
        r.nll,
        r.picp90,
        r.mpiw90,
        r.picp95,
        r.mpiw95
    );
    Ok(())
}
