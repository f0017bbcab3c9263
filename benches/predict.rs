//! T-sample prediction, the `bnn bench` protocol's: T = 100 stochastic
//! passes over 2000 rows of the network d = 16 -> 64 -> 64 -> 1, for BBB
//! (reparameterization) and MC dropout (p = 0.1), summaries included:
//! `cargo bench --bench predict`.

use candle_bnn::bench::{synthetic_data, BenchConfig};
use candle_bnn::layers::Estimator;
use candle_bnn::likelihood::LikelihoodKind;
use candle_bnn::mc_dropout::{McDropoutConfig, McDropoutMlp};
use candle_bnn::model::{BayesMlp, BayesMlpConfig};
use candle_bnn::predict;
use candle_core::Device;
use criterion::{criterion_group, Criterion};
use std::time::Duration;

fn t_sample_prediction(c: &mut Criterion) {
    let config = BenchConfig {
        n: 1,
        ..BenchConfig::default()
    };
    let device = Device::Cpu;
    let (_, _, x_test, _) = synthetic_data(&config, &device).expect("synthetic data");
    let hidden = [config.hidden, config.hidden];
    let likelihood = LikelihoodKind::FixedNoise {
        sigma: config.noise,
    };
    let bbb_config = BayesMlpConfig {
        estimator: Estimator::Reparam,
        likelihood,
        ..BayesMlpConfig::new(config.d, &hidden)
    };
    let bbb = BayesMlp::new(bbb_config, 0, &device).expect("model");
    let mcd_config = McDropoutConfig {
        dropout: config.dropout,
        likelihood,
        ..McDropoutConfig::new(config.d, &hidden)
    };
    let mcd = McDropoutMlp::new(mcd_config, 0, &device).expect("model");

    let mut group = c.benchmark_group("predict_t100_n2000_h64");
    group.bench_function("bbb", |b| {
        b.iter(|| predict(&bbb, &x_test, config.samples).expect("predict"))
    });
    group.bench_function("mcd", |b| {
        b.iter(|| predict(&mcd, &x_test, config.samples).expect("predict"))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = t_sample_prediction
}

fn main() {
    // The allocator and thread settings of the `bnn` CLI (see its docs).
    candle_bnn::tuning::tune_process();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
