//! `bnn study NAME`: the prior/initializer studies.

use std::path::{Path, PathBuf};

use candle_bnn::data::{load_split_dir, SplitDir};
use candle_bnn::studies::l2::{self, L2StudyConfig};
use candle_bnn::studies::StudyTraining;
use candle_bnn::train::terminal_progress_bar;
use candle_bnn::Result;
use candle_core::Device;
use clap::{Args, Subcommand};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::{
    study_migration, study_nngp, study_prior, study_prior_mean, study_sigma, study_signal,
};

/// The UCI split directory the training studies read by default (Boston
/// housing, from the project root; see `../shared/data/uci/README.md`).
pub const DEFAULT_UCI_DIR: &str = "../shared/data/uci/bostonHousing";

#[derive(Subcommand)]
pub enum Study {
    /// The KL term as weight decay: Gaussian prior <-> L2 (gradient and
    /// MAP-vs-L2 trajectories), Laplace prior <-> L1, MC dropout's lambda.
    L2(L2Args),
    /// A non-zero-mean init against a zero-mean prior: weight mean, KL and
    /// test log-likelihood over training.
    Migration(study_migration::MigrationArgs),
    /// Why sigma = 1? Fixed and fan-in priors (= initializers) on UCI data,
    /// beside the signal propagation at init.
    Sigma(study_sigma::SigmaArgs),
    /// A prior centred on pretrained weights (MOPED) against the zero-mean prior.
    #[command(name = "prior-mean", alias = "mean")]
    PriorMean(study_prior_mean::PriorMeanArgs),
    /// Signal propagation at init: per-layer variance and gradients of deep
    /// MLPs per prior, against the mean-field recursion.
    Signal(study_signal::SignalArgs),
    /// The infinite-width limit: finite networks vs the NNGP kernel, and GP
    /// regression with it next to BBB on one UCI split.
    Nngp(study_nngp::NngpArgs),
    /// Prior predictive function draws with the NNGP band, and the entropy
    /// of priors at equal variance.
    Prior(study_prior::PriorArgs),
}

/// `list`, or `default` when the flag was not given (an empty list).
pub fn or_default<T: Clone>(list: &[T], default: Vec<T>) -> Vec<T> {
    if list.is_empty() {
        default
    } else {
        list.to_vec()
    }
}

/// Flags every figure-writing study shares: where its figures go and how
/// its result is printed.
#[derive(Args)]
pub struct ReportArgs {
    /// Print one JSON object instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write the study's PNG figures into this folder.
    #[arg(long)]
    pub plots: Option<PathBuf>,
}

impl ReportArgs {
    /// Writes the figures with `figures` when asked (naming each file on
    /// stderr, so stdout stays one table or one JSON object), then prints the
    /// result as JSON or as `table` prints it.
    pub fn report<R: Serialize>(
        &self,
        result: &R,
        figures: impl FnOnce(&R, &Path) -> Result<Vec<PathBuf>>,
        table: impl FnOnce(&R),
    ) -> Result<()> {
        if let Some(dir) = &self.plots {
            for path in figures(result, dir)? {
                eprintln!("wrote {}", path.display());
            }
        }
        if self.json {
            println!("{}", serde_json::to_string(result)?);
        } else {
            table(result);
        }
        Ok(())
    }
}

/// Flags shared by the studies that train on a UCI split directory.
#[derive(Args)]
pub struct UciStudyArgs {
    /// Dataset folder in the UCI split layout (data.txt, index_*.txt, ...).
    #[arg(long, default_value = DEFAULT_UCI_DIR)]
    pub dir: PathBuf,
    /// Minibatch size.
    #[arg(long, default_value_t = StudyTraining::default().batch_size)]
    pub batch_size: usize,
    /// AdamW learning rate.
    #[arg(long, default_value_t = StudyTraining::default().lr)]
    pub lr: f64,
    /// Posterior samples per test prediction.
    #[arg(long, default_value_t = StudyTraining::default().samples)]
    pub samples: usize,
    /// Seed of initialization, noise and minibatches.
    #[arg(long, default_value_t = StudyTraining::default().seed)]
    pub seed: u64,
    #[command(flatten)]
    pub output: ReportArgs,
}

impl UciStudyArgs {
    /// The study's training and scoring settings from these flags.
    pub fn training(&self) -> StudyTraining {
        StudyTraining {
            batch_size: self.batch_size,
            lr: self.lr,
            samples: self.samples,
            seed: self.seed,
        }
    }

    /// Loads `--dir`, runs `study` on it on the CPU with an epoch progress
    /// bar (cleared when done), then reports the result ([`ReportArgs::report`]).
    pub fn run<R: Serialize>(
        &self,
        study: impl FnOnce(&SplitDir, &Device, &ProgressBar) -> Result<R>,
        figures: impl FnOnce(&R, &Path) -> Result<Vec<PathBuf>>,
        table: impl FnOnce(&R),
    ) -> Result<()> {
        let dir = load_split_dir(&self.dir)?;
        let bar = terminal_progress_bar(0, "epoch");
        let result = study(&dir, &Device::Cpu, &bar)?;
        bar.finish_and_clear();
        self.output.report(&result, figures, table)
    }
}

#[derive(Args)]
pub struct L2Args {
    /// Gaussian prior standard deviation sigma_p.
    #[arg(long, default_value_t = L2StudyConfig::default().prior_sigma)]
    prior_sigma: f64,
    /// Laplace prior scale b.
    #[arg(long, default_value_t = L2StudyConfig::default().laplace_b)]
    laplace_b: f64,
    /// MC dropout's prior length-scale l.
    #[arg(long, default_value_t = L2StudyConfig::default().length_scale)]
    length_scale: f64,
    /// MC dropout's rate p.
    #[arg(long, default_value_t = L2StudyConfig::default().dropout)]
    dropout: f64,
    /// MC dropout's model precision tau.
    #[arg(long, default_value_t = L2StudyConfig::default().tau)]
    tau: f64,
    /// Synthetic training rows N.
    #[arg(long, default_value_t = L2StudyConfig::default().n_data)]
    n_data: usize,
    /// SGD steps per trajectory.
    #[arg(long, default_value_t = L2StudyConfig::default().steps)]
    steps: usize,
    /// SGD learning rate.
    #[arg(long, default_value_t = L2StudyConfig::default().lr)]
    lr: f64,
    /// Seed of data and initialization.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

pub fn run(study: &Study) -> Result<()> {
    match study {
        Study::L2(a) => run_l2(a),
        Study::Migration(a) => study_migration::run(a),
        Study::Sigma(a) => study_sigma::run(a),
        Study::PriorMean(a) => study_prior_mean::run(a),
        Study::Signal(a) => study_signal::run(a),
        Study::Nngp(a) => study_nngp::run(a),
        Study::Prior(a) => study_prior::run(a),
    }
}

fn run_l2(a: &L2Args) -> Result<()> {
    let r = l2::run(
        &L2StudyConfig {
            prior_sigma: a.prior_sigma,
            laplace_b: a.laplace_b,
            length_scale: a.length_scale,
            dropout: a.dropout,
            tau: a.tau,
            n_data: a.n_data,
            steps: a.steps,
            lr: a.lr,
            seed: a.seed,
        },
        &Device::Cpu,
    )?;
    if a.json {
        println!("{}", serde_json::to_string(&r)?);
        return Ok(());
    }
    println!(
        "KL as weight decay (prior N(0, {}²), N = {})",
        r.prior_sigma, r.n_data
    );
    println!(
        "  equivalent L2 coefficient  lambda = 1/(2 sigma_p² N) = {:.6}",
        r.weight_decay
    );
    println!(
        "  max |dKL/dmu - mu/sigma_p²|              = {:.3e}",
        r.kl_grad_max_abs_diff
    );
    println!(
        "  max |w_MAP - w_L2| after {} SGD steps   = {:.3e}  (largest move from init: {:.3})",
        r.steps, r.map_vs_l2_max_abs_diff, r.max_param_change
    );
    println!("Laplace prior as L1 decay (b = {})", r.laplace_b);
    println!(
        "  equivalent L1 coefficient  lambda_1 = 1/(b N) = {:.6}",
        r.l1_decay
    );
    println!(
        "  max |w_MAP - w_L1| after {} SGD steps   = {:.3e}  (largest move from init: {:.3})",
        r.steps, r.map_laplace_vs_l1_max_abs_diff, r.laplace_max_param_change
    );
    println!(
        "MC dropout as L2 decay (l = {}, p = {}, tau = {})",
        r.length_scale, r.dropout, r.tau
    );
    println!(
        "  lambda = l²(1-p)/(2 N tau) = {:.6}  (biases: l²/(2 N tau) = {:.6})",
        r.mc_dropout_weight_decay, r.mc_dropout_bias_decay
    );
    println!(
        "  max |d(KL/(N tau))/dW - 2 lambda W|      = {:.3e}",
        r.mc_dropout_kl_grad_max_abs_diff
    );
    println!(
        "  max |grad ELBO/tau - grad(MSE/2 + L2)|   = {:.3e}  (largest gradient: {:.3})",
        r.mc_dropout_objective_grad_max_abs_diff, r.mc_dropout_max_grad
    );
    Ok(())
}
