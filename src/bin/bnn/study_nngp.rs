//! `bnn study nngp`: finite networks vs the NNGP kernel, and GP regression
//! with it next to BBB.

use std::path::PathBuf;

use candle_bnn::data::load_split_dir;
use candle_bnn::layers::Activation;
use candle_bnn::studies::nngp::{self, NngpConfig, NngpResult};
use candle_bnn::{Prior, Result};
use candle_core::Device;
use clap::Args;

use crate::study::{or_default, ReportArgs, DEFAULT_UCI_DIR};

#[derive(Args)]
#[command(mut_arg("plots", |a| a.help("Write nngp_convergence.png and nngp_kernel.png into this folder")))]
pub struct NngpArgs {
    /// Dataset folder in the UCI split layout, for the GP-vs-BBB baseline.
    #[arg(long, default_value = DEFAULT_UCI_DIR)]
    dir: PathBuf,
    /// Split of the baseline.
    #[arg(long, default_value_t = 0)]
    split: usize,
    /// Prior of every network and of the kernel.
    #[arg(long, default_value_t = NngpConfig::default().prior)]
    prior: Prior,
    /// Activations with a closed-form kernel: relu erf [default: both].
    #[arg(long, num_args = 1..)]
    activations: Vec<Activation>,
    /// Hidden layers of the convergence networks.
    #[arg(long, default_value_t = NngpConfig::default().depth)]
    depth: usize,
    /// Widths, space-separated [default: 64 128 256 512 1024 2048 4096].
    #[arg(long, num_args = 1..)]
    widths: Vec<usize>,
    /// Networks drawn per width.
    #[arg(long, default_value_t = NngpConfig::default().networks)]
    networks: usize,
    /// Inputs on the circle.
    #[arg(long, default_value_t = NngpConfig::default().points)]
    points: usize,
    /// BBB hidden units (and the GP kernel's architecture).
    #[arg(long, default_value_t = NngpConfig::default().hidden)]
    hidden: usize,
    /// BBB training epochs.
    #[arg(long, default_value_t = NngpConfig::default().epochs)]
    epochs: usize,
    /// BBB predictive samples.
    #[arg(long, default_value_t = NngpConfig::default().samples)]
    samples: usize,
    /// Seed of the networks and of BBB.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    #[command(flatten)]
    output: ReportArgs,
}

pub fn run(a: &NngpArgs) -> Result<()> {
    let d = NngpConfig::default();
    let config = NngpConfig {
        prior: a.prior,
        activations: or_default(&a.activations, d.activations),
        depth: a.depth,
        widths: or_default(&a.widths, d.widths),
        networks: a.networks,
        points: a.points,
        hidden: a.hidden,
        epochs: a.epochs,
        samples: a.samples,
        seed: a.seed,
    };
    config.validate()?;
    let dir = load_split_dir(&a.dir)?;
    let r = nngp::run(&config, &dir, a.split, &Device::Cpu)?;
    a.output
        .report(&r, NngpResult::write_figures, |r| print(r, config.epochs))
}

/// The table; `epochs` labels the BBB row.
fn print(r: &NngpResult, epochs: usize) {
    println!(
        "NNGP limit (prior {}, {} hidden layers, {} networks per width)",
        r.prior, r.depth, r.networks
    );
    print!("{:<8}", "width");
    for k in &r.kernels {
        print!(" {:>12}", format!("err {}", k.activation));
    }
    println!(" {:>12}", "err max");
    for (w, width) in r.widths.iter().enumerate() {
        print!("{width:<8}");
        for k in &r.kernels {
            print!(" {:>12.4}", k.max_rel_err[w]);
        }
        println!(" {:>12.4}", r.max_rel_err[w]);
    }
    print!("{:<8}", "slope");
    for k in &r.kernels {
        print!(" {:>12.3}", k.slope);
    }
    println!(" {:>12.3}", r.slope);
    let b = &r.baseline;
    println!(
        "\n{} split {} ({} train / {} test rows), original units:",
        r.dataset, r.split, b.n_train, b.n_test
    );
    println!("{:<28} {:>10} {:>10}", "model", "test RMSE", "test LL");
    println!(
        "{:<28} {:>10.3} {:>10.3}",
        format!("GP, NNGP kernel (noise {:.2})", b.gp_noise_std),
        r.gp_test_rmse,
        r.gp_test_ll
    );
    println!(
        "{:<28} {:>10.3} {:>10.3}",
        format!("BBB ({epochs} epochs)"),
        r.bnn_test_rmse,
        r.bnn_test_ll
    );
}
