//! `bnn`: the candle-bnn command line. With no arguments it runs the demo.

mod bench;
mod calibrate;
mod demo;
mod eval;
mod predict;
mod study;
mod study_migration;
mod study_nngp;
mod study_prior;
mod study_prior_mean;
mod study_sigma;
mod study_signal;
mod train;
mod uci;

use std::process::ExitCode;

use candle_bnn::Error;
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
    /// Train a model on a CSV file and save it to a model directory.
    Train(train::TrainArgs),
    /// Predictive mean, std and interval for each row of a CSV file.
    Predict(predict::PredictArgs),
    /// Score a saved model on a labelled CSV file.
    Eval(eval::EvalArgs),
    /// Fit a recalibration on held-out rows and save it with the model.
    Calibrate(calibrate::CalibrateArgs),
    /// The UCI regression benchmark on a split directory (published splits).
    Uci(uci::UciArgs),
    /// Time training and prediction with the PyTorch peer harness's protocol.
    Bench(bench::BenchArgs),
    /// Prior/initializer studies.
    Study {
        #[command(subcommand)]
        study: study::Study,
    },
}

/// Names parameters as the command line spells them (`batch-size`, not the
/// library's `batch_size`).
fn spelled_as_flags(e: Error) -> Error {
    match e {
        Error::InvalidParameter {
            name,
            value,
            expected,
        } => Error::InvalidParameter {
            name: name.replace('_', "-"),
            value,
            expected,
        },
        other => other,
    }
}

fn main() -> ExitCode {
    #[cfg(unix)]
    // SAFETY: called first, before any other thread exists; SIG_DFL is a
    // valid disposition for SIGPIPE.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    // Before any thread or tensor exists (see its docs).
    let concurrent = match &cli.command {
        Some(Command::Uci(args)) => args.jobs(),
        _ => 1,
    };
    candle_bnn::tuning::tune_process_for(concurrent);
    let result = match cli.command {
        None => demo::run(&demo::DemoArgs::default()),
        Some(Command::Demo(args)) => demo::run(&args),
        Some(Command::Train(args)) => train::run(&args),
        Some(Command::Predict(args)) => predict::run(&args),
        Some(Command::Eval(args)) => eval::run(&args),
        Some(Command::Calibrate(args)) => calibrate::run(&args),
        Some(Command::Uci(args)) => uci::run(&args),
        Some(Command::Bench(args)) => bench::run(&args),
        Some(Command::Study { study }) => study::run(&study),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", spelled_as_flags(e));
            ExitCode::FAILURE
        }
    }
}
