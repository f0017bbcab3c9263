//! One training step (minibatch of 128, the `bnn bench` network
//! d = 16 -> H -> H -> 1 at H = 64 and H = 256) of each estimator and of MC
//! dropout: `cargo bench --bench train_step`.
//!
//! A step is a `fit` over one minibatch for one epoch: forward pass, ELBO,
//! backward pass, finiteness guard, AdamW update (plus creating the
//! optimizer's moment buffers, which `fit` does once per call). The
//! posteriors start at the prior (`init_scale` 1): with N = 128 rows the
//! default start would make every call warn that the KL dominates; the cost
//! of a step does not depend on the values.

use candle_bnn::bench::{synthetic_data, BenchConfig};
use candle_bnn::layers::Estimator;
use candle_bnn::likelihood::LikelihoodKind;
use candle_bnn::mc_dropout::{McDropoutConfig, McDropoutMlp};
use candle_bnn::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use candle_bnn::train::{fit, TrainConfig};
use candle_core::Device;
use criterion::{criterion_group, Criterion};
use std::time::Duration;

fn train_step(c: &mut Criterion) {
    for hidden in [64, 256] {
        train_step_at(c, hidden);
    }
}

/// The four step benchmarks at hidden width `hidden`.
fn train_step_at(c: &mut Criterion, hidden: usize) {
    let config = BenchConfig {
        n: 128,
        hidden,
        ..BenchConfig::default()
    };
    let device = Device::Cpu;
    let (xs, ys, _, _) = synthetic_data(&config, &device).expect("synthetic data");
    let hidden = [config.hidden, config.hidden];
    let likelihood = LikelihoodKind::FixedNoise {
        sigma: config.noise,
    };
    let train = TrainConfig {
        epochs: 1,
        batch_size: config.batch,
        lr: config.lr,
        progress: false,
        ..TrainConfig::default()
    };
    let mut models: Vec<(String, Box<dyn StochasticModel>)> = Vec::new();
    for estimator in [
        Estimator::Reparam,
        Estimator::LocalReparam,
        Estimator::Flipout,
    ] {
        let model_config = BayesMlpConfig {
            estimator,
            likelihood,
            init_scale: 1.0,
            ..BayesMlpConfig::new(config.d, &hidden)
        };
        let model = BayesMlp::new(model_config, 0, &device).expect("model");
        models.push((format!("bbb_{estimator}"), Box::new(model)));
    }
    let mcd_config = McDropoutConfig {
        dropout: config.dropout,
        likelihood,
        ..McDropoutConfig::new(config.d, &hidden)
    };
    let mcd = McDropoutMlp::new(mcd_config, 0, &device).expect("model");
    models.push(("mcd".into(), Box::new(mcd)));

    let mut group = c.benchmark_group(format!("train_step_h{}_b128", config.hidden));
    for (name, model) in &models {
        group.bench_function(name.as_str(), |b| {
            b.iter(|| fit(model.as_ref(), &xs, &ys, &train).expect("step"))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = train_step
}

fn main() {
    // The allocator and thread settings of the `bnn` CLI (see its docs).
    candle_bnn::tuning::tune_process();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
