//! `bnn`: the candle-bnn command line. With no arguments it runs the demo.

mod demo;
mod study;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Bayesian neural networks on candle: train, predict with calibrated
/// intervals, and study how priors and initializers are linked.
#[derive(Parser)]
#[command(name = "bnn", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Train on embedded real data, print metrics, write figures (the default).
    Demo(demo::DemoArgs),
    /// Prior/initializer studies.
    Study {
        #[command(subcommand)]
        study: study::Study,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        None => demo::run(&demo::DemoArgs::default()),
        Some(Command::Demo(args)) => demo::run(&args),
        Some(Command::Study { study }) => study::run(&study),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
