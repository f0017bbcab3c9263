//! `bnn study sigma`: why sigma = 1? A sweep over the prior's scale.

use candle_bnn::studies::sigma::{self, SigmaConfig, SigmaResult};
use candle_bnn::Result;
use clap::Args;

use crate::study::UciStudyArgs;

#[derive(Args)]
pub struct SigmaArgs {
    #[command(flatten)]
    common: UciStudyArgs,
    /// Fixed prior standard deviations, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = SigmaConfig::default().sigmas)]
    sigmas: Vec<f64>,
    /// Fan-in gains c of N(0, c²/fan_in), comma-separated (He: 1.414).
    #[arg(long, value_delimiter = ',', default_values_t = SigmaConfig::default().gains)]
    gains: Vec<f64>,
    /// Run the first K splits.
    #[arg(long, default_value_t = SigmaConfig::default().splits)]
    splits: usize,
    /// Training epochs per fit.
    #[arg(long, default_value_t = SigmaConfig::default().epochs)]
    epochs: usize,
}

pub fn run(a: &SigmaArgs) -> Result<()> {
    let c = &a.common;
    let config = SigmaConfig {
        sigmas: a.sigmas.clone(),
        gains: a.gains.clone(),
        splits: a.splits,
        epochs: a.epochs,
        training: c.training(),
    };
    c.run(
        |dir, device, bar| sigma::run(dir, &config, device, bar),
        sigma::write_figures,
        print,
    )
}

fn print(r: &SigmaResult) {
    println!(
        "Prior scale sweep: {} ({} splits, {} epochs, {} hidden units): {:.1} s",
        r.dataset, r.splits, r.epochs, r.hidden, r.seconds
    );
    println!(
        "  {:<14} {:>8} {:>15} {:>15} {:>8} {:>8} {:>8} {:>8} {:>10}",
        "prior", "sigma_1", "test LL", "test RMSE", "PICP95", "KL/N", "NLL", "KL/NLL", "q_L/q_1"
    );
    for s in &r.settings {
        println!(
            "  {:<14} {:>8.3} {:>7.3} ± {:<5.3} {:>7.3} ± {:<5.3} {:>8.3} {:>8.3} {:>8.3} {:>8.2} {:>10.3}",
            s.prior,
            s.first_layer_sigma,
            s.ll_mean,
            s.ll_se,
            s.rmse_mean,
            s.rmse_se,
            s.picp95_mean,
            s.kl_per_example,
            s.train_nll,
            s.kl_nll_ratio,
            s.signal_ratio
        );
    }
}
