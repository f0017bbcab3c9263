//! `bnn study prior-mean`: a prior centred on pretrained weights (MOPED).

use candle_bnn::prior::Prior;
use candle_bnn::studies::prior_mean::{self, PriorMeanConfig, PriorMeanResult};
use candle_bnn::Result;
use clap::Args;

use crate::study::UciStudyArgs;

#[derive(Args)]
pub struct PriorMeanArgs {
    #[command(flatten)]
    common: UciStudyArgs,
    /// Split index.
    #[arg(long, default_value_t = 0)]
    split: usize,
    /// Gaussian prior whose scale every run uses: he | glorot | lecun |
    /// fanin:C | gaussian:SIGMA.
    #[arg(long, default_value = "he")]
    prior: Prior,
    /// Epochs of the deterministic (maximum-likelihood) pretraining.
    #[arg(long, default_value_t = PriorMeanConfig::default().pretrain_epochs)]
    pretrain_epochs: usize,
    /// Epochs of each BBB run.
    #[arg(long, default_value_t = PriorMeanConfig::default().epochs)]
    epochs: usize,
    /// Relative tolerance of the convergence criterion.
    #[arg(long, default_value_t = PriorMeanConfig::default().tolerance)]
    tolerance: f64,
}

pub fn run(a: &PriorMeanArgs) -> Result<()> {
    let c = &a.common;
    let config = PriorMeanConfig {
        prior: a.prior,
        split: a.split,
        pretrain_epochs: a.pretrain_epochs,
        epochs: a.epochs,
        tolerance: a.tolerance,
        training: c.training(),
    };
    c.run(
        |dir, device, bar| prior_mean::run(dir, &config, device, bar),
        prior_mean::write_figures,
        print,
    )
}

fn print(r: &PriorMeanResult) {
    let epochs = |e: Option<usize>| e.map_or("never".to_string(), |e| e.to_string());
    println!(
        "Prior mean: {} split {} (N = {}), prior scale {}, pretraining {} epochs, BBB {} epochs",
        r.dataset, r.split, r.n_train, r.prior, r.pretrain_epochs, r.epochs
    );
    println!(
        "  pretrained (deterministic): test LL {:.3}, RMSE {:.3}, PICP 95% {:.3}",
        r.pretrained.ll, r.pretrained.rmse, r.pretrained.picp95
    );
    println!(
        "  {:<16} {:>8} {:>8} {:>8} {:>9} {:>9} {:>12} {:>12}",
        "run", "test LL", "RMSE", "PICP95", "KL l2", "KL rest", "conv. loss", "conv. LL"
    );
    for a in &r.arms {
        println!(
            "  {:<16} {:>8.3} {:>8.3} {:>8.3} {:>9.1} {:>9.1} {:>12} {:>12}",
            a.label,
            a.scores.ll,
            a.scores.rmse,
            a.scores.picp95,
            a.kl_l2,
            a.kl_rest,
            epochs(a.epochs_to_converge_loss),
            epochs(a.epochs_to_converge_ll)
        );
    }
    println!(
        "  (convergence: first epoch within {} · max(|final|, 1) of the mean of the last 10 epochs)",
        r.tolerance
    );
}
