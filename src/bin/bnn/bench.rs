//! `bnn bench`: the speed benchmark, the protocol of the PyTorch peer harness
//! (see `candle_bnn::bench`).

use candle_bnn::bench::{self, BenchConfig, BenchReport};
use candle_bnn::train::terminal_progress_bar;
use candle_bnn::Result;
use candle_core::Device;
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {
    /// Width H of both hidden layers (network d -> H -> H -> 1).
    #[arg(long, default_value_t = BenchConfig::default().hidden)]
    hidden: usize,
    /// Training rows.
    #[arg(long, default_value_t = BenchConfig::default().n)]
    n: usize,
    /// Input features.
    #[arg(long, default_value_t = BenchConfig::default().d)]
    d: usize,
    /// Training epochs (epoch time = median of epochs 2..E).
    #[arg(long, default_value_t = BenchConfig::default().epochs)]
    epochs: usize,
    /// Minibatch size.
    #[arg(long, default_value_t = BenchConfig::default().batch)]
    batch: usize,
    /// Stochastic passes T per prediction.
    #[arg(long, default_value_t = BenchConfig::default().samples)]
    samples: usize,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(args: &BenchArgs) -> Result<()> {
    let config = BenchConfig {
        hidden: args.hidden,
        n: args.n,
        d: args.d,
        epochs: args.epochs,
        batch: args.batch,
        samples: args.samples,
        ..BenchConfig::default()
    };
    config.validate()?;
    let bar = terminal_progress_bar(bench::progress_len(&config), "step");
    let report = bench::run(&config, &Device::Cpu, &bar);
    bar.finish_and_clear();
    let report = report?;
    if args.json {
        println!("{}", serde_json::to_string(&report.to_json()?)?);
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &BenchReport) {
    let c = &r.config;
    println!(
        "N={} d={} H={} epochs={} batch={} T={} n_test={} threads: matmul {}, elementwise {}",
        c.n,
        c.d,
        c.hidden,
        c.epochs,
        c.batch,
        c.samples,
        c.n_test,
        bench::rayon_threads(),
        bench::elementwise_threads()
    );
    println!(
        "{:<10}{:>10}{:>12}{:>14}",
        "method", "epoch_s", "samples/s", "final loss"
    );
    for (name, t) in r.training() {
        println!(
            "{name:<10}{:>10.4}{:>12.0}{:>14.4}",
            t.epoch_s, t.samples_per_s, t.final_train_loss
        );
    }
    println!(
        "{:<10}{:>10}{:>12}{:>14}{:>11}",
        "predict", "seconds", "samples/s", "GFLOP/s", "test_rmse"
    );
    for (name, p) in [("bbb", &r.bbb_predict), ("mcd", &r.mcd_predict)] {
        println!(
            "{name:<10}{:>10.4}{:>12.0}{:>14.1}{:>11.4}",
            p.predict_s, p.samples_per_s, p.gflops, p.test_rmse
        );
    }
    let (case, best) = r.fastest_predict();
    println!(
        "matmul peak {:.1} GFLOP/s; {case} reaches {:.0}% of it",
        r.matmul_peak_gflops,
        100.0 * best.gflops / r.matmul_peak_gflops
    );
    match r.other_cpu_share {
        Some(s) => println!(
            "other processes used {:.0}% of all CPU time during the run ({:.1} s){}",
            100.0 * s,
            r.wall_s,
            if s > 0.1 {
                ": a busy machine, timings are upper bounds"
            } else {
                ""
            }
        ),
        None => println!("wall {:.1} s", r.wall_s),
    }
}
