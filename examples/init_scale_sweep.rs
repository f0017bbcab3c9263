//! How large should the posterior's initial standard deviation be?
//!
//! Trains BBB (one hidden layer of 50, He prior, 100 epochs) on the first
//! splits of UCI datasets in the published split-directory layout, for several
//! `init_scale` values (initial sigma as a fraction of the prior std), and
//! prints mean test RMSE, log-likelihood (original units) and 95% coverage.
//!
//! ```text
//! cargo run --release --example init_scale_sweep -- ../shared/data/uci 5 energy yacht
//! ```
//! Arguments: the folder holding the datasets, splits per dataset [default 5],
//! dataset names [default: bostonHousing concrete energy yacht kin8nm].

use std::path::PathBuf;

use candle_bnn::data::load_split_dir;
use candle_bnn::metrics::RegressionReport;
use candle_bnn::{BayesMlpConfig, BayesRegressor, Error, Result, TrainConfig};
use candle_core::Device;

const SCALES: [f64; 4] = [0.001, 0.01, 0.1, 0.3];

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = PathBuf::from(args.first().map_or("../shared/data/uci", String::as_str));
    let splits: usize = match args.get(1) {
        Some(s) => s
            .parse()
            .map_err(|_| Error::invalid("splits", s, "a count"))?,
        None => 5,
    };
    let default = ["bostonHousing", "concrete", "energy", "yacht", "kin8nm"].map(String::from);
    let names = if args.len() > 2 {
        args[2..].to_vec()
    } else {
        default.to_vec()
    };

    println!(
        "{:<14} {:>10} {:>8} {:>8} {:>8}",
        "dataset", "init_scale", "rmse", "ll", "picp95"
    );
    for name in &names {
        let dir = load_split_dir(&root.join(name))?;
        for scale in SCALES {
            let (mut rmse, mut ll, mut picp) = (0.0, 0.0, 0.0);
            let k = splits.min(dir.n_splits());
            for split in 0..k {
                let (train, test) = dir.split(split)?;
                let config = BayesMlpConfig {
                    init_scale: scale,
                    ..BayesMlpConfig::new(train.n_features(), &[50])
                };
                let fit = TrainConfig {
                    seed: split as u64,
                    progress: false,
                    ..TrainConfig::default()
                };
                let model = BayesRegressor::fit(&train, config, &fit, &Device::Cpu)?;
                let r = RegressionReport::new(&model.predict(&test.x, 200)?, &test.y)?;
                (rmse, ll, picp) = (
                    rmse + r.rmse / k as f64,
                    ll - r.nll / k as f64,
                    picp + r.picp95 / k as f64,
                );
            }
            println!("{name:<14} {scale:>10} {rmse:>8.3} {ll:>8.3} {picp:>8.3}");
        }
    }
    Ok(())
}
