//! `bnn study signal`: per-layer variance of deep MLPs at init, per prior.

use candle_bnn::layers::Activation;
use candle_bnn::studies::random_mlp::{InitShape, Norm};
use candle_bnn::studies::signal::{self, SignalConfig, SignalResult};
use candle_bnn::{Prior, Result};
use candle_core::Device;
use clap::Args;

use crate::study::{or_default, ReportArgs};

#[derive(Args)]
#[command(mut_arg("plots", |a| a.help("Write signal_variance.png and signal_norms.png into this folder")))]
pub struct SignalArgs {
    /// Layers (at most 50).
    #[arg(long, default_value_t = SignalConfig::default().depth)]
    depth: usize,
    /// Units per layer (and input features).
    #[arg(long, default_value_t = SignalConfig::default().width)]
    width: usize,
    /// Inputs per network.
    #[arg(long, default_value_t = SignalConfig::default().batch)]
    batch: usize,
    /// Priors, space-separated [default: gaussian:1 fanin:0.5 lecun fanin:1.5 he fanin:2 glorot].
    #[arg(long, num_args = 1..)]
    priors: Vec<Prior>,
    /// Activations: relu tanh selu erf [default: relu tanh selu].
    #[arg(long, num_args = 1..)]
    activations: Vec<Activation>,
    /// Init shapes: gaussian uniform [default: both].
    #[arg(long, num_args = 1..)]
    shapes: Vec<InitShape>,
    /// Normalizations: none layernorm weightnorm [default: all three].
    #[arg(long, num_args = 1..)]
    norms: Vec<Norm>,
    /// Seed of inputs, weights and readout direction.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    output: ReportArgs,
}

pub fn run(a: &SignalArgs) -> Result<()> {
    let d = SignalConfig::default();
    let config = SignalConfig {
        depth: a.depth,
        width: a.width,
        batch: a.batch,
        priors: or_default(&a.priors, d.priors),
        activations: or_default(&a.activations, d.activations),
        shapes: or_default(&a.shapes, d.shapes),
        norms: or_default(&a.norms, d.norms),
        seed: a.seed,
    };
    let r = signal::run(&config, &Device::Cpu)?;
    a.output.report(&r, SignalResult::write_figures, print)
}

fn print(r: &SignalResult) {
    println!(
        "Signal propagation at init: {} layers of {} units, {} inputs",
        r.depth, r.width, r.batch
    );
    println!("ratio = last-layer / first-layer pre-activation variance; grad = first-layer / last-layer variance of dL/dh");
    println!(
        "{:<11} {:<5} {:<10} {:<8} {:>11} {:>11} {:>11} {:>11}",
        "prior", "act", "norm", "shape", "ratio", "mean-field", "grad", "mean-field"
    );
    for run in &r.results {
        println!(
            "{:<11} {:<5} {:<10} {:<8} {:>11.3e} {:>11.3e} {:>11.3e} {:>11.3e}",
            run.prior,
            run.activation.to_string(),
            run.norm.to_string(),
            run.init_shape.to_string(),
            run.ratio_empirical,
            run.ratio_predicted,
            run.grad_ratio_empirical,
            run.grad_ratio_predicted
        );
    }
}
