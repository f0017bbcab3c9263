//! `bnn study migration`: a non-zero-mean init against a zero-mean prior.

use candle_bnn::prior::Prior;
use candle_bnn::studies::migration::{self, MigrationConfig, MigrationResult};
use candle_bnn::Result;
use clap::Args;

use crate::study::UciStudyArgs;

#[derive(Args)]
pub struct MigrationArgs {
    #[command(flatten)]
    common: UciStudyArgs,
    /// Split index.
    #[arg(long, default_value_t = 0)]
    split: usize,
    /// Zero-mean Gaussian prior the KL is against: he | glorot | lecun |
    /// fanin:C | gaussian:SIGMA.
    #[arg(long, default_value = "he")]
    prior: Prior,
    /// Initial mean of the shifted run, in prior standard deviations.
    #[arg(long, default_value_t = MigrationConfig::default().shift)]
    shift: f64,
    /// Training epochs of each run.
    #[arg(long, default_value_t = MigrationConfig::default().epochs)]
    epochs: usize,
}

pub fn run(a: &MigrationArgs) -> Result<()> {
    let c = &a.common;
    let config = MigrationConfig {
        prior: a.prior,
        shift: a.shift,
        split: a.split,
        epochs: a.epochs,
        training: c.training(),
    };
    c.run(
        |dir, device, bar| migration::run(dir, &config, device, bar),
        migration::write_figures,
        print,
    )
}

/// Epochs shown in the table: 0, 1, 2, 5, 10, 20, 50, ... and the last.
fn shown_epochs(last: usize) -> Vec<usize> {
    let mut shown = vec![0];
    let mut decade = 1;
    while decade <= last {
        shown.extend(
            [decade, 2 * decade, 5 * decade]
                .into_iter()
                .filter(|&e| e < last),
        );
        decade *= 10;
    }
    shown.push(last);
    shown.dedup();
    shown
}

fn print(r: &MigrationResult) {
    println!(
        "Weight migration: {} split {} (N = {}), prior {}, shift {} sigma_p, {} epochs, {} means",
        r.dataset, r.split, r.n_train, r.prior, r.shift, r.epochs, r.n_params
    );
    println!(
        "  initial KL excess of the shifted init: {:.1} nats (expected n·shift²/2 = {:.1})",
        r.initial_kl_excess, r.expected_kl_excess
    );
    match r.half_gap_epoch {
        Some(e) => println!("  the gap between the weight means halves by epoch {e}"),
        None => println!("  the gap between the weight means never halves"),
    }
    let [zero, shifted] = [&r.runs[0], &r.runs[1]];
    println!(
        "  {:>6}  {:>20}  {:>20}  {:>20}",
        "epoch", "mean mu/sigma_p", "KL (nats)", "test LL"
    );
    println!(
        "  {:>6}  {:>9} {:>10}  {:>9} {:>10}  {:>9} {:>10}",
        "", "zero", "shifted", "zero", "shifted", "zero", "shifted"
    );
    for e in shown_epochs(r.epochs) {
        if let (Some(z), Some(s)) = (zero.history.get(e), shifted.history.get(e)) {
            println!(
                "  {:>6}  {:>9.4} {:>10.4}  {:>9.1} {:>10.1}  {:>9.3} {:>10.3}",
                e, z.weight_mean, s.weight_mean, z.kl, s.kl, z.test_ll, s.test_ll
            );
        }
    }
    println!(
        "  {:<16} {:<10} {:>13} {:>11} {:>14} {:>11} {:>11}",
        "run",
        "tensor",
        "|Δmu|/|mu_0|",
        "|mu_T|/|mu_0|",
        "sigma/sigma_p",
        "mu_0/sig_p",
        "mu_T/sig_p"
    );
    for run in &r.runs {
        for t in &run.tensors {
            println!(
                "  {:<16} {:<10} {:>13.3} {:>11.3} {:>14.3} {:>11.3} {:>11.3}",
                run.label,
                t.name,
                t.relative_change,
                t.norm_ratio,
                t.sigma_over_prior,
                t.initial_mean,
                t.final_mean
            );
        }
    }
    for run in &r.runs {
        println!(
            "  {:<16} test LL {:.3}, RMSE {:.3}, PICP 95% {:.3}",
            run.label, run.scores.ll, run.scores.rmse, run.scores.picp95
        );
    }
}
