//! `bnn study prior`: prior predictive draws and entropy at equal variance.

use candle_bnn::layers::Activation;
use candle_bnn::studies::prior_predictive::{self, PriorStudyConfig, PriorStudyResult};
use candle_bnn::{Prior, Result};
use candle_core::Device;
use clap::Args;

use crate::study::{or_default, ReportArgs};

#[derive(Args)]
#[command(mut_arg("plots", |a| a.help("Write prior_draws_ACTIVATION.png into this folder")))]
pub struct PriorArgs {
    /// Priors, space-separated [default: gaussian:1 lecun he glorot fanin:2].
    #[arg(long, num_args = 1..)]
    priors: Vec<Prior>,
    /// Hidden nonlinearity.
    #[arg(long, default_value_t = PriorStudyConfig::default().activation)]
    activation: Activation,
    /// Hidden units per layer.
    #[arg(long, default_value_t = PriorStudyConfig::default().width)]
    width: usize,
    /// Hidden layers.
    #[arg(long, default_value_t = PriorStudyConfig::default().depth)]
    depth: usize,
    /// Function draws (networks) per prior.
    #[arg(long, default_value_t = PriorStudyConfig::default().draws)]
    draws: usize,
    /// Draws shown in the figure.
    #[arg(long, default_value_t = PriorStudyConfig::default().plotted)]
    plotted: usize,
    /// Standard deviation at which the entropies are compared.
    #[arg(long, default_value_t = PriorStudyConfig::default().sigma)]
    sigma: f64,
    /// Monte Carlo draws per entropy.
    #[arg(long, default_value_t = PriorStudyConfig::default().entropy_samples)]
    entropy_samples: usize,
    /// Seed of every draw.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    output: ReportArgs,
}

pub fn run(a: &PriorArgs) -> Result<()> {
    let d = PriorStudyConfig::default();
    let config = PriorStudyConfig {
        priors: or_default(&a.priors, d.priors.clone()),
        activation: a.activation,
        width: a.width,
        depth: a.depth,
        draws: a.draws,
        plotted: a.plotted,
        sigma: a.sigma,
        entropy_samples: a.entropy_samples,
        seed: a.seed,
        ..d
    };
    let r = prior_predictive::run(&config, &Device::Cpu)?;
    a.output.report(&r, PriorStudyResult::write_figures, |r| {
        print(r, config.sigma)
    })
}

/// The tables; `sigma` is the standard deviation of the entropy comparison.
fn print(r: &PriorStudyResult, sigma: f64) {
    println!(
        "Prior predictive: {} draws per prior, {} {} hidden layer(s) of {} units",
        r.draws, r.activation, r.depth, r.width
    );
    println!(
        "{:<12} {:>14} {:>14} {:>10}",
        "prior", "NNGP std(0)", "rms draws(0)", "rms/NNGP"
    );
    for p in &r.priors {
        let mid = p.grid.len() / 2;
        println!(
            "{:<12} {:>14.4} {:>14.4} {:>10.3}",
            p.prior, p.nngp_std[mid], p.empirical_std[mid], p.std_ratio
        );
    }
    let fmt = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.4}"));
    println!("\nDifferential entropy at equal standard deviation {sigma}:");
    println!(
        "{:<10} {:<28} {:>10} {:>18}",
        "shape", "prior", "closed", "Monte Carlo ± se"
    );
    for e in &r.entropy {
        let mc = match (e.entropy_mc, e.entropy_mc_se) {
            (Some(m), Some(se)) => format!("{m:.4} ± {se:.4}"),
            _ => "-".into(),
        };
        println!(
            "{:<10} {:<28} {:>10} {:>18}",
            e.distribution,
            e.prior.as_deref().unwrap_or("-"),
            fmt(e.entropy),
            mc
        );
    }
}
