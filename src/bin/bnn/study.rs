//! `bnn study NAME`: the prior/initializer studies. Each study's flags and
//! printing live in its own file (`study_*.rs`); `l2` is here.

use std::path::{Path, PathBuf};

use candle_bnn::studies::l2::{self, L2StudyConfig};
use candle_bnn::Result;
use clap::{Args, Subcommand};

use crate::{study_nngp, study_prior, study_signal};

#[derive(Subcommand)]
pub enum Study {
    /// The KL term as weight decay: autodiff gradient and MAP-vs-L2 trajectories.
    L2(L2Args),
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

/// Writes a study's figures into `dir` (when given) with `write`, and names
/// each file on stderr, so stdout stays one table or one JSON object.
pub fn write_plots(
    dir: Option<&Path>,
    write: impl FnOnce(&Path) -> Result<Vec<PathBuf>>,
) -> Result<()> {
    if let Some(dir) = dir {
        for path in write(dir)? {
            eprintln!("wrote {}", path.display());
        }
    }
    Ok(())
}

#[derive(Args)]
pub struct L2Args {
    /// Prior standard deviation sigma_p.
    #[arg(long, default_value_t = L2StudyConfig::default().prior_sigma)]
    prior_sigma: f64,
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
        Study::Signal(a) => study_signal::run(a),
        Study::Nngp(a) => study_nngp::run(a),
        Study::Prior(a) => study_prior::run(a),
        Study::L2(a) => {
            let r = l2::run(&L2StudyConfig {
                prior_sigma: a.prior_sigma,
                n_data: a.n_data,
                steps: a.steps,
                lr: a.lr,
                seed: a.seed,
            })?;
            if a.json {
                println!("{}", serde_json::to_string(&r)?);
            } else {
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
            }
            Ok(())
        }
    }
}
