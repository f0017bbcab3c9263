//! The speed benchmark of `bnn bench`: the protocol of the PyTorch peer
//! harness (`../shared/peers/bnn_peer_bench.py`), so that its numbers and
//! ours can be put side by side.
//!
//! ```text
//! data      x ~ N(0, I_d),  y = x·w + sin(x·v) + 0.1·eps,  w, v ~ N(0, 1/d)
//!           N = 10000 training rows, 2000 test rows, d = 16 (one seeded stream)
//! network   d -> H -> H -> 1, ReLU, fixed-noise Gaussian likelihood (sigma 0.1)
//! training  batch 128, Adam (no weight decay) lr 1e-3, 5 epochs;
//!           epoch time = median of epochs 2..E (the first one warms up)
//! predict   T = 100 stochastic passes over the test rows (predict(): one
//!           batched pass, summaries included); one warm-up call, then the
//!           median of 3
//! GFLOP/s   2 · T · n_test · Σ_layers in·out  /  predict seconds   (matmul FLOPs)
//! peak      one [4096 × 1024] · [1024 × 1024] f32 matmul, median of 5 after a warm-up
//! ```
//!
//! Methods, with the peer's JSON keys where they mean the same:
//! `bbb` (reparameterization: one weight draw per minibatch), `local` (local
//! reparameterization, no peer), `flipout`, and `mcd` (MC dropout, p = 0.1).
//! The variational nets use the library's He prior, which is also their
//! initializer; the peer's N(0, 1) prior changes the loss, not the cost.
//!
//! The cores may be shared: [`BenchReport::other_cpu_share`] is the share of
//! all CPU time that other processes used while the benchmark ran (from
//! `/proc/stat`; `None` where unavailable), so a busy run can be recognised.

use std::time::Instant;

use candle_core::{Device, Tensor};
use indicatif::ProgressBar;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::layers::Estimator;
use crate::likelihood::LikelihoodKind;
use crate::mc_dropout::{McDropoutConfig, McDropoutMlp};
use crate::metrics::rmse;
use crate::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use crate::predictive::predict;
use crate::train::{fit_with_progress, TrainConfig, TrainReport};
use crate::{Error, Result};

/// Rows × inner × columns of the matmul that measures the peak:
/// `[4096 × 1024] · [1024 × 1024]`.
pub const PEAK_MATMUL: (usize, usize, usize) = (4096, 1024, 1024);

/// Timed repetitions of the peak matmul (after one warm-up).
const PEAK_REPS: usize = 5;

/// Settings of one benchmark run; the defaults are the peer harness's.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `hidden` | 64 | width `H` of both hidden layers | ≥ 1 |
/// | `n` | 10000 | training rows | ≥ 1 |
/// | `n_test` | 2000 | test rows for prediction | ≥ 1 |
/// | `d` | 16 | input features | ≥ 1 |
/// | `epochs` | 5 | training epochs | ≥ 1 |
/// | `batch` | 128 | minibatch size | ≥ 1 |
/// | `samples` | 100 | stochastic passes `T` per prediction | ≥ 1 |
/// | `lr` | 1e-3 | Adam learning rate | > 0 |
/// | `dropout` | 0.1 | MC dropout rate | [0, 1) |
/// | `noise` | 0.1 | data noise std, the likelihood's fixed sigma | > 0 |
/// | `predict_reps` | 3 | timed predictions (median reported) | ≥ 1 |
/// | `seed` | 0 | data, initialization, noise, minibatch order | any |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchConfig {
    /// Hidden width `H`.
    pub hidden: usize,
    /// Training rows.
    pub n: usize,
    /// Test rows.
    pub n_test: usize,
    /// Input features.
    pub d: usize,
    /// Training epochs.
    pub epochs: usize,
    /// Minibatch size.
    pub batch: usize,
    /// Stochastic passes per prediction.
    pub samples: usize,
    /// Adam learning rate.
    pub lr: f64,
    /// MC dropout rate.
    pub dropout: f64,
    /// Data noise std, also the fixed likelihood sigma.
    pub noise: f64,
    /// Timed prediction repetitions.
    pub predict_reps: usize,
    /// Seed of everything random.
    pub seed: u64,
}

impl Default for BenchConfig {
    fn default() -> Self {
        Self {
            hidden: 64,
            n: 10_000,
            n_test: 2_000,
            d: 16,
            epochs: 5,
            batch: 128,
            samples: 100,
            lr: 1e-3,
            dropout: 0.1,
            noise: 0.1,
            predict_reps: 3,
            seed: 0,
        }
    }
}

impl BenchConfig {
    /// Checks every field; errors name the field.
    pub fn validate(&self) -> Result<()> {
        for (name, value) in [
            ("hidden", self.hidden),
            ("n", self.n),
            ("n_test", self.n_test),
            ("d", self.d),
            ("epochs", self.epochs),
            ("batch", self.batch),
            ("samples", self.samples),
            ("predict_reps", self.predict_reps),
        ] {
            if value == 0 {
                return Err(Error::invalid(name, 0, "at least 1"));
            }
        }
        if !(self.noise.is_finite() && self.noise > 0.0) {
            return Err(Error::invalid("noise", self.noise, "a finite number > 0"));
        }
        // lr and dropout are checked where they are used (TrainConfig,
        // McDropoutConfig), under the same names.
        Ok(())
    }

    /// Matmul FLOPs of one prediction: `2 · T · n_test · Σ_layers in·out`.
    pub fn predict_flops(&self) -> f64 {
        let sizes = [self.d, self.hidden, self.hidden, 1];
        let macs: usize = sizes.windows(2).map(|w| w[0] * w[1]).sum();
        2.0 * (self.samples * self.n_test * macs) as f64
    }

    fn train_config(&self) -> TrainConfig {
        TrainConfig {
            epochs: self.epochs,
            batch_size: self.batch,
            lr: self.lr,
            seed: self.seed,
            progress: false,
            ..TrainConfig::default()
        }
    }
}

/// Timings of one training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainTiming {
    /// Median epoch time over epochs 2..E (the only epoch if E = 1).
    pub epoch_s: f64,
    /// Training rows per second, `n / epoch_s`.
    pub samples_per_s: f64,
    /// Every epoch's wall time.
    pub epoch_times_s: Vec<f64>,
    /// Mean loss of the last epoch (same seed, same number: a fingerprint of
    /// the arithmetic).
    pub final_train_loss: f64,
}

/// Timings of one prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictTiming {
    /// Median over the timed repetitions.
    pub predict_s: f64,
    /// Predicted row-samples per second, `T · n_test / predict_s`.
    pub samples_per_s: f64,
    /// Matmul GFLOP/s, [`BenchConfig::predict_flops`] / `predict_s`.
    pub gflops: f64,
    /// Every timed repetition.
    pub times_s: Vec<f64>,
    /// RMSE of the predictive mean on the test rows.
    pub test_rmse: f64,
}

/// Everything one benchmark run measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    /// The settings.
    pub config: BenchConfig,
    /// Bayes by backprop, reparameterization (one weight draw per minibatch).
    pub bbb: TrainTiming,
    /// Local reparameterization.
    pub local: TrainTiming,
    /// Flipout.
    pub flipout: TrainTiming,
    /// MC dropout.
    pub mcd: TrainTiming,
    /// T-sample prediction of the `bbb` model.
    pub bbb_predict: PredictTiming,
    /// T-sample prediction of the `mcd` model.
    pub mcd_predict: PredictTiming,
    /// Median GFLOP/s of the [`PEAK_MATMUL`] matmul.
    pub matmul_peak_gflops: f64,
    /// Share of all CPU time used by other processes during the run.
    pub other_cpu_share: Option<f64>,
    /// Wall time of the whole run.
    pub wall_s: f64,
}

impl BenchReport {
    /// The faster prediction, `(name, timing)`: the largest matmul-bound case.
    pub fn fastest_predict(&self) -> (&'static str, &PredictTiming) {
        if self.mcd_predict.predict_s < self.bbb_predict.predict_s {
            ("mcd_predict", &self.mcd_predict)
        } else {
            ("bbb_predict", &self.bbb_predict)
        }
    }

    /// One flat JSON object with the peer harness's keys where they mean the
    /// same (`bbb_epoch_s`, `flipout_epoch_s`, `mcd_epoch_s`,
    /// `bbb_predict_s`, ...), plus `local_*`, `mcd_predict_s`,
    /// `samples_per_s` per method, `gflops` and `matmul_peak_gflops`.
    pub fn to_json(&self) -> Result<serde_json::Value> {
        let mut out = serde_json::Map::new();
        let mut rates = serde_json::Map::new();
        let config = serde_json::to_value(&self.config)?;
        out.insert("config".into(), config);
        for (name, t) in self.training() {
            out.insert(format!("{name}_epoch_s"), t.epoch_s.into());
            out.insert(format!("{name}_samples_per_s"), t.samples_per_s.into());
            out.insert(
                format!("{name}_epoch_times_s"),
                serde_json::to_value(&t.epoch_times_s)?,
            );
            out.insert(
                format!("{name}_final_train_loss"),
                t.final_train_loss.into(),
            );
            rates.insert(name.into(), t.samples_per_s.into());
        }
        for (name, p) in [("bbb", &self.bbb_predict), ("mcd", &self.mcd_predict)] {
            out.insert(format!("{name}_predict_s"), p.predict_s.into());
            out.insert(
                format!("{name}_predict_times_s"),
                serde_json::to_value(&p.times_s)?,
            );
            out.insert(format!("{name}_predict_gflops"), p.gflops.into());
            out.insert(format!("{name}_test_rmse"), p.test_rmse.into());
            rates.insert(format!("{name}_predict"), p.samples_per_s.into());
        }
        out.insert("samples_per_s".into(), rates.into());
        let (case, best) = self.fastest_predict();
        out.insert("gflops".into(), best.gflops.into());
        out.insert("gflops_case".into(), case.into());
        out.insert("matmul_peak_gflops".into(), self.matmul_peak_gflops.into());
        out.insert(
            "other_cpu_share".into(),
            serde_json::to_value(self.other_cpu_share)?,
        );
        out.insert("threads".into(), rayon_threads().into());
        out.insert("elementwise_threads".into(), elementwise_threads().into());
        out.insert("wall_s".into(), self.wall_s.into());
        Ok(out.into())
    }

    /// The training timings by JSON name.
    pub fn training(&self) -> [(&'static str, &TrainTiming); 4] {
        [
            ("bbb", &self.bbb),
            ("local", &self.local),
            ("flipout", &self.flipout),
            ("mcd", &self.mcd),
        ]
    }
}

/// The threads candle's matmuls run on (`RAYON_NUM_THREADS`, else every core).
pub fn rayon_threads() -> usize {
    candle_core::utils::get_num_threads()
}

/// The threads of candle's elementwise ops (`CANDLE_NUM_THREADS`, else
/// the matmul threads; see [`crate::tuning`]).
pub fn elementwise_threads() -> usize {
    std::env::var("CANDLE_NUM_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or_else(rayon_threads)
}

/// The synthetic regression data: `(x_train [n, d], y_train [n, 1], x_test,
/// y_test)`, drawn in the order x (all rows), w, v, noise from one seeded
/// [`StdRng`], in f64 and stored as f32.
///
/// ```text
/// x ~ N(0, I_d),  w, v ~ N(0, I_d / d),  y = x·w + sin(x·v) + noise · N(0, 1)
/// ```
pub fn synthetic_data(
    config: &BenchConfig,
    device: &Device,
) -> Result<(Tensor, Tensor, Tensor, Tensor)> {
    let (n, n_test, d) = (config.n, config.n_test, config.d);
    let rows = n + n_test;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut normal = |count: usize, scale: f64| -> Vec<f64> {
        (0..count)
            .map(|_| scale * rng.sample::<f64, _>(StandardNormal))
            .collect()
    };
    let x = normal(rows * d, 1.0);
    let w = normal(d, 1.0 / (d as f64).sqrt());
    let v = normal(d, 1.0 / (d as f64).sqrt());
    let eps = normal(rows, config.noise);
    let dot = |row: &[f64], c: &[f64]| row.iter().zip(c).map(|(a, b)| a * b).sum::<f64>();
    let y: Vec<f32> = x
        .chunks(d)
        .zip(&eps)
        .map(|(row, e)| (dot(row, &w) + dot(row, &v).sin() + e) as f32)
        .collect();
    let x: Vec<f32> = x.iter().map(|v| *v as f32).collect();
    let xs = Tensor::from_vec(x, (rows, d), device)?;
    let ys = Tensor::from_vec(y, (rows, 1), device)?;
    Ok((
        xs.narrow(0, 0, n)?,
        ys.narrow(0, 0, n)?,
        xs.narrow(0, n, n_test)?.contiguous()?,
        ys.narrow(0, n, n_test)?.contiguous()?,
    ))
}

/// Progress steps [`run`] takes: one per epoch of each of the four methods,
/// one per prediction call (warm-up included), one for the peak.
pub fn progress_len(config: &BenchConfig) -> u64 {
    (4 * config.epochs + 2 * (config.predict_reps + 1) + 1) as u64
}

/// Runs the whole benchmark on `device`, advancing `bar` by
/// [`progress_len`] steps in all.
pub fn run(config: &BenchConfig, device: &Device, bar: &ProgressBar) -> Result<BenchReport> {
    config.validate()?;
    let probe = LoadProbe::start();
    let start = Instant::now();
    let (xs, ys, x_test, y_test) = synthetic_data(config, device)?;
    let likelihood = LikelihoodKind::FixedNoise {
        sigma: config.noise,
    };
    let bayes = |estimator: Estimator| -> Result<BayesMlp> {
        let c = BayesMlpConfig {
            estimator,
            likelihood,
            ..BayesMlpConfig::new(config.d, &[config.hidden, config.hidden])
        };
        BayesMlp::new(c, config.seed, device)
    };
    let train = |name: &str, model: &dyn StochasticModel| -> Result<TrainTiming> {
        bar.set_message(format!("training {name}"));
        let report = fit_with_progress(model, &xs, &ys, &config.train_config(), bar)?;
        train_timing(&report, config.n)
    };
    let test = (&x_test, &y_test);

    let bbb_model = bayes(Estimator::Reparam)?;
    let bbb = train("bbb", &bbb_model)?;
    let local = train("local", &bayes(Estimator::LocalReparam)?)?;
    let flipout = train("flipout", &bayes(Estimator::Flipout)?)?;
    let mcd_config = McDropoutConfig {
        dropout: config.dropout,
        likelihood,
        ..McDropoutConfig::new(config.d, &[config.hidden, config.hidden])
    };
    let mcd_model = McDropoutMlp::new(mcd_config, config.seed, device)?;
    let mcd = train("mcd", &mcd_model)?;

    bar.set_message("predicting bbb");
    let bbb_predict = predict_timing(&bbb_model, test, config, bar)?;
    bar.set_message("predicting mcd");
    let mcd_predict = predict_timing(&mcd_model, test, config, bar)?;
    bar.set_message("peak matmul");
    let matmul_peak_gflops = matmul_peak_gflops(config.seed, device)?;
    bar.inc(1);
    Ok(BenchReport {
        config: config.clone(),
        bbb,
        local,
        flipout,
        mcd,
        bbb_predict,
        mcd_predict,
        matmul_peak_gflops,
        other_cpu_share: probe.other_share(),
        wall_s: start.elapsed().as_secs_f64(),
    })
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    let m = v.len() / 2;
    if v.len() % 2 == 1 {
        v[m]
    } else {
        0.5 * (v[m - 1] + v[m])
    }
}

fn train_timing(report: &TrainReport, n: usize) -> Result<TrainTiming> {
    let times = &report.epoch_seconds;
    let timed = if times.len() > 1 { &times[1..] } else { times };
    let epoch_s = median(timed);
    let last = report
        .last()
        .ok_or_else(|| Error::invalid("epochs", 0, "at least 1"))?;
    Ok(TrainTiming {
        epoch_s,
        samples_per_s: n as f64 / epoch_s,
        epoch_times_s: times.clone(),
        final_train_loss: last.terms.loss,
    })
}

fn predict_timing(
    model: &dyn StochasticModel,
    (x_test, y_test): (&Tensor, &Tensor),
    config: &BenchConfig,
    bar: &ProgressBar,
) -> Result<PredictTiming> {
    let run = || -> Result<(f64, Vec<f64>)> {
        let t0 = Instant::now();
        let mixture = predict(model, x_test, config.samples)?.into_regression()?;
        let seconds = t0.elapsed().as_secs_f64();
        bar.inc(1);
        Ok((seconds, mixture.mean()))
    };
    let (_, mut mean) = run()?;
    let mut times = Vec::with_capacity(config.predict_reps);
    for _ in 0..config.predict_reps {
        let (seconds, m) = run()?;
        times.push(seconds);
        mean = m;
    }
    let ys: Vec<f64> = y_test
        .flatten_all()?
        .to_vec1::<f32>()?
        .into_iter()
        .map(f64::from)
        .collect();
    let predict_s = median(&times);
    Ok(PredictTiming {
        predict_s,
        samples_per_s: (config.samples * config.n_test) as f64 / predict_s,
        gflops: config.predict_flops() / predict_s / 1e9,
        times_s: times,
        test_rmse: rmse(&mean, &ys)?,
    })
}

/// Median GFLOP/s of the [`PEAK_MATMUL`] f32 matmul (operands from a seeded
/// [`StdRng`]) over 5 timed calls after one warm-up.
pub fn matmul_peak_gflops(seed: u64, device: &Device) -> Result<f64> {
    let (m, k, n) = PEAK_MATMUL;
    let mut rng = StdRng::seed_from_u64(seed);
    let mut uniform =
        |count: usize| -> Vec<f32> { (0..count).map(|_| rng.random::<f32>() - 0.5).collect() };
    let a = Tensor::from_vec(uniform(m * k), (m, k), device)?;
    let b = Tensor::from_vec(uniform(k * n), (k, n), device)?;
    a.matmul(&b)?;
    let mut times = Vec::with_capacity(PEAK_REPS);
    for _ in 0..PEAK_REPS {
        let t0 = Instant::now();
        let c = a.matmul(&b)?;
        device.synchronize()?;
        times.push(t0.elapsed().as_secs_f64());
        drop(c);
    }
    Ok(2.0 * (m * k * n) as f64 / median(&times) / 1e9)
}

/// CPU time of other processes while a benchmark runs, from `/proc/stat`
/// (all CPUs, busy jiffies) and `/proc/self/stat` (this process):
///
/// ```text
/// other share = (Δ busy(all) - Δ cpu(self)) / Δ total(all)
/// ```
struct LoadProbe {
    start: Option<(u64, u64, u64)>,
}

impl LoadProbe {
    fn start() -> Self {
        Self {
            start: Self::read(),
        }
    }

    /// `(busy, total, own)` jiffies, or `None` off Linux.
    fn read() -> Option<(u64, u64, u64)> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let cpu: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|v| v.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let busy = [0, 1, 2, 5, 6, 7].iter().filter_map(|&i| cpu.get(i)).sum();
        let total = cpu.iter().take(8).sum();
        let own_stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the parenthesised command name; utime, stime are 14, 15.
        let after = own_stat.rsplit_once(')')?.1;
        let fields: Vec<&str> = after.split_whitespace().collect();
        let own = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
        Some((busy, total, own))
    }

    fn other_share(&self) -> Option<f64> {
        let (b0, t0, o0) = self.start?;
        let (b1, t1, o1) = Self::read()?;
        let total = t1.checked_sub(t0).filter(|t| *t > 0)? as f64;
        let other = (b1.saturating_sub(b0)).saturating_sub(o1.saturating_sub(o0));
        Some(other as f64 / total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_follow_the_recipe_and_flops_count_every_layer() -> Result<()> {
        let config = BenchConfig {
            n: 50,
            n_test: 10,
            d: 4,
            ..BenchConfig::default()
        };
        let (x, y, xt, yt) = synthetic_data(&config, &Device::Cpu)?;
        assert_eq!(
            [x.dims(), y.dims(), xt.dims(), yt.dims()],
            [&[50, 4][..], &[50, 1], &[10, 4], &[10, 1]]
        );
        // Same seed, same data.
        let again = synthetic_data(&config, &Device::Cpu)?;
        assert_eq!(y.to_vec2::<f32>()?, again.1.to_vec2::<f32>()?);
        // T = 100, 10 rows, 4·64 + 64·64 + 64·1 multiply-adds per row and pass.
        assert_eq!(config.predict_flops(), 2.0 * 100.0 * 10.0 * 4416.0);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        Ok(())
    }

    #[test]
    fn zero_sizes_are_rejected_by_name() {
        let e = BenchConfig {
            batch: 0,
            ..BenchConfig::default()
        }
        .validate();
        assert!(matches!(e, Err(Error::InvalidParameter { ref name, .. }) if name == "batch"));
    }
}
