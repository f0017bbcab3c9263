//! `bnn uci`: the UCI regression benchmark on a split directory.

use std::path::PathBuf;

use candle_bnn::calibrate::RecalibrationMethod;
use candle_bnn::data::load_split_dir;
use candle_bnn::train::terminal_progress_bar;
use candle_bnn::uci::{self, UciConfig, UciMethod};
use candle_bnn::Result;
use clap::Args;

#[derive(Args)]
pub struct UciArgs {
    /// Dataset folder in the split-directory layout (data.txt, index_*.txt, ...).
    #[arg(long)]
    dir: PathBuf,
    /// Model family: bbb | mc-dropout | ensemble.
    #[arg(long, default_value = "bbb")]
    method: UciMethod,
    /// Run only the first K splits [default: all].
    #[arg(long)]
    splits: Option<usize>,
    /// Epochs per fit [default: 100 x the dataset's n_epochs.txt for bbb and
    /// for mc-dropout with --grid (the 2018 protocol), 10 x otherwise].
    #[arg(long)]
    epochs: Option<usize>,
    /// Choose hyperparameters per split on a validation set (the last 20% of
    /// the training rows): dropout rate x tau for mc-dropout (the dataset's
    /// dropout_rates.txt x tau_values.txt; where missing, rates 0.005, 0.01,
    /// 0.05, 0.1 and noise stds 0.05, 0.1, 0.2, 0.4 x the training target's
    /// std), the KL weight for bbb (1, 0.5, 0.25), the training length for
    /// ensemble (early stopping at doubling checkpoints from epochs/16 to 8 x
    /// epochs).
    #[arg(long)]
    grid: bool,
    /// With --grid for mc-dropout: when a split's best grid point lies on the
    /// grid's edge (the largest tau, the smallest rate, ...), keep stepping
    /// past it on the grid's spacing while the validation log-likelihood
    /// improves (at most 12 extra fits per split).
    #[arg(long)]
    extend_grid: bool,
    /// Posterior samples per test prediction [default: 10000 where the
    /// epochs are 100 x (Gal's T), 100 otherwise].
    #[arg(long)]
    samples: Option<usize>,
    /// Minibatch size [default: 128 where the epochs are 100 x, 32 otherwise].
    #[arg(long)]
    batch_size: Option<usize>,
    /// Adam's learning rate [default: 1e-3 where the epochs are 100 x, 1e-2
    /// otherwise].
    #[arg(long, allow_negative_numbers = true)]
    lr: Option<f64>,
    /// Seed; split i uses seed + i.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Runs of the whole protocol, at seeds S, S + 1000, S + 2000, ... (S =
    /// --seed): each split's scores are averaged over the runs before the
    /// mean +- SE over splits, and each run's means are listed too, so the
    /// seed's share of the noise shows; at most 1000 [default: 1].
    #[arg(long, default_value_t = 1)]
    seeds: usize,
    /// Hold out the last 20% of each split's training rows, fit this
    /// recalibration on them, and score the test rows before and after:
    /// scale | isotonic | conformal.
    #[arg(long)]
    recalibrate: Option<RecalibrationMethod>,
    /// Fraction of each split's training rows held out for --recalibrate,
    /// in (0, 1) [default: 0.2]. Split conformal over-covers by up to
    /// 1/(n+1) with n calibration rows: hold out more on small datasets.
    #[arg(long, allow_negative_numbers = true)]
    calibration_fraction: Option<f64>,
    /// With --recalibrate: fit the recalibration with a model trained
    /// without the held-out rows, then apply it to a model trained on all
    /// the training rows (the model a run without --recalibrate scores).
    /// One more fit per split; the map is assumed to carry over, so split
    /// conformal's coverage guarantee no longer holds.
    #[arg(long)]
    refit: bool,
    /// MC dropout's rate p without --grid [default: 0.05].
    #[arg(long, allow_negative_numbers = true)]
    dropout: Option<f64>,
    /// MC dropout without --grid: keep the learned noise as the ELBO left
    /// it (Gal's learned tau⁻¹, which also holds the dropout variance)
    /// [default: refitted to the predictive mean's training residuals].
    #[arg(long)]
    elbo_noise: bool,
    /// BBB's KL weight beta without --grid: the loss per row is NLL + beta
    /// KL / N; 1 is the ELBO, below 1 a tempered posterior [default: 1].
    #[arg(long, allow_negative_numbers = true)]
    kl_beta: Option<f64>,
    /// Splits run at once, one thread each (their tensor operations share
    /// the threads): the scores are the same bits for any value, the wall
    /// time falls toward 1/J on J cores, the memory grows with J [default:
    /// the cores available].
    #[arg(long)]
    jobs: Option<usize>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

impl UciArgs {
    /// Splits run at once: `--jobs`, or one per available core.
    pub fn jobs(&self) -> usize {
        self.jobs.unwrap_or_else(|| {
            std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
        })
    }
}

pub fn run(args: &UciArgs) -> Result<()> {
    let dir = load_split_dir(&args.dir)?;
    let config = UciConfig {
        splits: args.splits,
        epochs: args.epochs,
        grid: args.grid,
        extend_grid: args.extend_grid,
        samples: args.samples,
        batch_size: args.batch_size,
        lr: args.lr,
        seed: args.seed,
        seeds: args.seeds,
        recalibrate: args.recalibrate,
        calibration_fraction: args.calibration_fraction,
        refit: args.refit,
        dropout: args.dropout,
        elbo_noise: args.elbo_noise,
        kl_beta: args.kl_beta,
        jobs: args.jobs(),
        ..UciConfig::new(args.method)
    };
    let bar = terminal_progress_bar(0, "epoch");
    let report = uci::run(&dir, &config, &bar)?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    println!(
        "{} {} ({} splits{}, {} in batches of {} at lr {}{}): {:.1} s{}",
        report.dataset,
        report.method,
        report.splits,
        match report.seeds {
            1 => String::new(),
            s => format!(" x {s} seeds, scores averaged over the seeds"),
        },
        match (report.grid, report.method) {
            (true, UciMethod::Ensemble) => {
                let (first, last) = uci::early_stopping_range(report.epochs);
                format!("early-stopped between {first} and {last} epochs")
            }
            _ => format!("{} epochs", report.epochs),
        },
        report.batch_size,
        report.lr,
        match (report.grid, report.extend_grid, report.method) {
            (true, true, _) => ", grid search extended past its edges",
            (true, false, UciMethod::McDropout | UciMethod::Bbb) => ", grid search",
            _ => "",
        },
        report.seconds,
        match report.jobs {
            1 => String::new(),
            j => format!(" ({j} splits at a time)"),
        }
    );
    println!("  {:<22} {:>9} {:>9}", "metric", "mean", "SE");
    println!(
        "  {:<22} {:>9.4} {:>9.4}",
        "test RMSE", report.rmse_mean, report.rmse_se
    );
    println!(
        "  {:<22} {:>9.4} {:>9.4}",
        "test log-likelihood", report.ll_mean, report.ll_se
    );
    println!("  {:<22} {:>9.3}", "PICP 90%", report.picp90_mean);
    println!("  {:<22} {:>9.3}", "PICP 95%", report.picp95_mean);
    println!(
        "  {:<22} {:>9.4}",
        "calibration error", report.cal_error_mean
    );
    if let (Some(method), Some(p90), Some(p95), Some(ce), Some(ll)) = (
        report.recalibrate,
        report.raw_picp90_mean,
        report.raw_picp95_mean,
        report.raw_cal_error_mean,
        report.raw_ll_mean,
    ) {
        let fitted_on = match report.refit {
            true => ", fitted with a model of the other training rows",
            false => "",
        };
        println!("  (after {method} recalibration{fitted_on}; before it: PICP 90% {p90:.3}, PICP 95% {p95:.3}, calibration error {ce:.4}, log-likelihood {ll:.4})");
    }
    for run in &report.per_seed {
        println!(
            "  seed {:<17} RMSE {:.4}  log-likelihood {:.4}  PICP 95% {:.3}",
            run.seed, run.rmse_mean, run.ll_mean, run.picp95_mean
        );
    }
    if report.grid {
        println!("  chosen on the validation rows (splits):");
        for (hyper, splits) in choice_counts(&report) {
            println!("    {hyper}: {splits}");
        }
    }
    Ok(())
}

/// Each distinct choice of the splits and how many chose it, most chosen
/// first (ties in the order the splits first chose them).
fn choice_counts(report: &uci::UciReport) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = Vec::new();
    for split in &report.per_split {
        let hyper = split.hyper.to_string();
        match counts.iter_mut().find(|(h, _)| *h == hyper) {
            Some((_, n)) => *n += 1,
            None => counts.push((hyper, 1)),
        }
    }
    counts.sort_by_key(|c| std::cmp::Reverse(c.1));
    counts
}
