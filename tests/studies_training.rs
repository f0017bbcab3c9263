//! The training studies (`bnn study l2 | migration | sigma | prior-mean`) and
//! the library pieces they rest on: MC dropout's weight decay as a gradient
//! identity, Laplace-MAP as L1 decay, the KL toward a per-weight prior mean,
//! the KL excess of a shifted initializer, and the JSON shape of each study
//! on a tiny split directory written at test time.

mod split_dir;

use std::path::PathBuf;
use std::process::Command;

use candle_bnn::checkpoint;
use candle_bnn::data::Standardizer;
use candle_bnn::elbo::mc_dropout_weight_decay;
use candle_bnn::likelihood::LikelihoodKind;
use candle_bnn::mc_dropout::{McDropoutConfig, McDropoutMlp};
use candle_bnn::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use candle_bnn::noise::NoiseSource;
use candle_bnn::posterior::FactoredGaussian;
use candle_bnn::prior::{LayerPrior, Prior};
use candle_bnn::regressor::BayesRegressor;
use candle_bnn::studies::l2::{self, L2StudyConfig};
use candle_bnn::studies::migration::shifted_init;
use candle_bnn::studies::prior_mean::epochs_to_converge;
use candle_bnn::train::{TrainConfig, TrainReport};
use candle_bnn::{Error, Result};
use candle_core::{Device, Tensor};
use split_dir::write_split_dir;

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

fn values(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1::<f64>()?)
}

fn max_abs_diff(a: &[f64], b: &[f64]) -> f64 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f64::max)
}

#[test]
fn mc_dropout_regularizer_gradient_is_l2_decay_with_gals_lambda() -> Result<()> {
    let (n, p, l, tau) = (40usize, 0.2, 0.7, 3.0);
    let model = McDropoutMlp::new(
        McDropoutConfig {
            dropout: p,
            length_scale: l,
            likelihood: LikelihoodKind::FixedNoise {
                sigma: 1.0 / f64::sqrt(tau),
            },
            ..McDropoutConfig::new(3, &[6, 5])
        },
        11,
        &Device::Cpu,
    )?;
    let lambda = mc_dropout_weight_decay(l, p, n, tau)?;
    let lambda_b = mc_dropout_weight_decay(l, 0.0, n, tau)?;
    assert!((lambda - l * l * (1.0 - p) / (2.0 * n as f64 * tau)).abs() < 1e-15);
    let grads = (model.kl()?.total()? / (n as f64 * tau))?.backward()?;
    let mut checked = 0;
    for (name, var) in model.named_vars() {
        let decay = if name.ends_with(".weight") {
            lambda
        } else if name.ends_with(".bias") {
            lambda_b
        } else {
            continue;
        };
        let g = grads
            .get(&var)
            .ok_or_else(|| Error::invalid("gradient", &name, "present"))?;
        let want: Vec<f64> = values(var.as_tensor())?
            .iter()
            .map(|w| 2.0 * decay * w)
            .collect();
        // f32 products of O(1) weights and lambda ≈ 1e-3: rounding is ~1e-10;
        // 1e-7 is far below the gradients themselves (~1e-3).
        assert!(max_abs_diff(&values(g)?, &want) < 1e-7, "{name}");
        checked += 1;
    }
    assert_eq!(checked, 6, "three layers of weights and biases");

    // The study's own check of the same identity, and of the whole ELBO / tau
    // against MSE/2 + L2 on one dropout mask.
    let r = l2::run(
        &L2StudyConfig {
            steps: 1,
            ..L2StudyConfig::default()
        },
        &Device::Cpu,
    )?;
    assert!(r.mc_dropout_kl_grad_max_abs_diff < 1e-7, "{r:?}");
    // Two f32 backward passes of O(1) gradients: they agree to ~1e-6.
    assert!(r.mc_dropout_objective_grad_max_abs_diff < 1e-5, "{r:?}");
    assert!(
        r.mc_dropout_max_grad > 1e-2,
        "the objective has gradients: {r:?}"
    );
    Ok(())
}

#[test]
fn laplace_map_and_l1_decay_follow_the_same_sgd_path() -> Result<()> {
    let config = L2StudyConfig {
        laplace_b: 0.3,
        n_data: 60,
        steps: 100,
        ..L2StudyConfig::default()
    };
    let r = l2::run(&config, &Device::Cpu)?;
    assert!((r.l1_decay - 1.0 / (0.3 * 60.0)).abs() < 1e-15);
    // Equal gradients (sign(w)/(bN) both ways), so only f32 rounding of the
    // two penalties' sums separates the runs: ~1e-7 per step, 100 steps.
    assert!(r.map_laplace_vs_l1_max_abs_diff < 1e-4, "{r:?}");
    // ... while the parameters themselves moved by O(0.1).
    assert!(r.laplace_max_param_change > 1e-2, "{r:?}");
    // The Gaussian part is unchanged.
    assert!(r.map_vs_l2_max_abs_diff < 1e-4, "{r:?}");
    Ok(())
}

#[test]
fn kl_toward_a_per_weight_prior_mean_has_the_closed_form_and_gradient() -> Result<()> {
    let dev = Device::Cpu;
    let noise = NoiseSource::new(5);
    let (sp, shape) = (0.4, (3, 4));
    let prior = LayerPrior::Gaussian {
        mean: 0.0,
        sigma: sp,
    };
    let mu = noise.standard_normal(shape, &dev)?;
    let centre = noise.standard_normal(shape, &dev)?;
    let q = FactoredGaussian::from_mean(&mu, &prior, 0.3)?;
    let kl = q.kl_closed_form_centred(&centre, sp)?;
    let (mu64, m64, s64) = (values(&mu)?, values(&centre)?, values(&q.sigma()?)?);
    let want_l2: f64 = mu64
        .iter()
        .zip(&m64)
        .map(|(a, m)| (a - m).powi(2) / (2.0 * sp * sp))
        .sum();
    let want_rest: f64 = s64
        .iter()
        .map(|s| (sp / s).ln() + s * s / (2.0 * sp * sp) - 0.5)
        .sum();
    // f32 sums of 12 O(1) terms: relative rounding ~1e-6.
    assert!((scalar(&kl.l2)? - want_l2).abs() < 1e-5 * want_l2.max(1.0));
    assert!((scalar(&kl.rest)? - want_rest).abs() < 1e-5 * want_rest.abs().max(1.0));
    // The centre moves only the l2 part: rest equals the zero-mean prior's.
    let zero_mean = q.kl_closed_form(&prior)?;
    assert_eq!(scalar(&kl.rest)?, scalar(&zero_mean.rest)?);

    // Autodiff: dKL/dmu = (mu - m) / sigma_p².
    let grads = kl.total()?.backward()?;
    let g = grads
        .get(q.mu())
        .ok_or_else(|| Error::invalid("gradient", "mu", "present"))?;
    let want: Vec<f64> = mu64
        .iter()
        .zip(&m64)
        .map(|(a, m)| (a - m) / (sp * sp))
        .collect();
    // f32 gradient of O(10) values: rounding ~1e-6.
    assert!(max_abs_diff(&values(g)?, &want) < 1e-5);

    // A scalar centre is the same as a constant tensor centre.
    let scalar_prior = LayerPrior::Gaussian {
        mean: 0.25,
        sigma: sp,
    };
    let constant = Tensor::full(0.25f32, shape, &dev)?;
    assert_eq!(
        scalar(&q.kl_closed_form(&scalar_prior)?.total()?)?,
        scalar(&q.kl_closed_form_centred(&constant, sp)?.total()?)?
    );
    // Wrong shapes are refused.
    assert!(matches!(
        q.kl_closed_form_centred(&Tensor::zeros((4, 3), candle_core::DType::F32, &dev)?, sp),
        Err(Error::Shape { .. })
    ));
    Ok(())
}

/// `(weight, bias)` means of a small network drawn from N(0, 1).
fn random_means(config: &BayesMlpConfig, seed: u64) -> Result<Vec<(Tensor, Tensor)>> {
    let noise = NoiseSource::new(seed);
    config
        .layer_sizes()
        .windows(2)
        .map(|io| {
            Ok((
                noise.standard_normal((io[1], io[0]), &Device::Cpu)?,
                noise.standard_normal(io[1], &Device::Cpu)?,
            ))
        })
        .collect()
}

#[test]
fn moped_network_starts_with_zero_decay_and_decays_toward_its_centre() -> Result<()> {
    let dev = Device::Cpu;
    let config = BayesMlpConfig {
        prior: Prior::He,
        ..BayesMlpConfig::new(3, &[5])
    };
    let pretrained = random_means(&config, 1)?;
    let moped = BayesMlp::from_means(config.clone(), &pretrained, 2, &dev)?
        .with_prior_means(&pretrained)?;
    let warm = BayesMlp::from_means(config.clone(), &pretrained, 2, &dev)?;
    // Prior and posterior means coincide: no decay yet, and the variance
    // part is untouched by the centre.
    let (k_moped, k_warm) = (moped.kl()?, warm.kl()?);
    assert_eq!(scalar(&k_moped.l2)?, 0.0);
    assert_eq!(scalar(&k_moped.rest)?, scalar(&k_warm.rest)?);
    // Against the zero-mean prior the same means pay Σ mu² / (2 sigma_p²).
    let mut want = 0.0;
    for (layer, (w, b)) in warm.layers().iter().zip(&pretrained) {
        let sp = layer.prior().std();
        let sum_sq: f64 = values(w)?.iter().chain(&values(b)?).map(|v| v * v).sum();
        want += sum_sq / (2.0 * sp * sp);
    }
    // f32 sums of ~26 terms of O(10): relative rounding ~1e-6.
    assert!((scalar(&k_warm.l2)? - want).abs() < 1e-5 * want);

    // Training writes into the network's own copies, never the centre.
    let first = moped.layers()[0].weight().mu();
    first.set(&(first.as_tensor() + 1.0)?)?;
    let (centre, _) = moped.layers()[0]
        .prior_mean()
        .ok_or_else(|| Error::invalid("prior mean", "none", "set"))?;
    assert_eq!(values(centre)?, values(&pretrained[0].0)?);
    assert!(scalar(&moped.kl()?.l2)? > 0.0);

    // Refusals: a layer count that does not fit, a non-Gaussian prior, and
    // saving a model whose prior mean the format cannot hold.
    assert!(matches!(
        BayesMlp::from_means(config.clone(), &pretrained[..1], 2, &dev),
        Err(Error::Shape { .. })
    ));
    let laplace = BayesMlpConfig {
        prior: Prior::Laplace { b: 1.0 },
        ..config.clone()
    };
    let r = BayesMlp::from_means(laplace, &pretrained, 2, &dev)?.with_prior_means(&pretrained);
    assert!(matches!(r, Err(Error::InvalidParameter { ref name, .. }) if name == "prior"));
    let regressor = BayesRegressor::from_parts(
        moped.into(),
        (
            Standardizer::fit(&[0.0, 1.0, 2.0, 3.0, 4.0, 5.0], 3)?,
            Standardizer::fit(&[0.0, 1.0], 1)?,
        ),
        (vec!["a".into(), "b".into(), "c".into()], "y".into()),
        TrainConfig::default(),
        TrainReport::default(),
    )?;
    let tmp = tempfile::tempdir().expect("tempdir");
    let saved = checkpoint::save(&regressor, &tmp.path().join("model"));
    assert!(
        matches!(&saved, Err(Error::Checkpoint { message, .. }) if message.contains("prior mean")),
        "{saved:?}"
    );
    Ok(())
}

#[test]
fn a_shifted_init_starts_with_the_closed_form_kl_excess() -> Result<()> {
    let dev = Device::Cpu;
    let shift = 0.5;
    let config = BayesMlpConfig {
        prior: Prior::He,
        ..BayesMlpConfig::new(6, &[30])
    };
    let zero = shifted_init(&config, 0.0, 3, &dev)?;
    let shifted = shifted_init(&config, shift, 3, &dev)?;
    let kl = |means: &[(Tensor, Tensor)]| -> Result<f64> {
        scalar(
            &BayesMlp::from_means(config.clone(), means, 4, &dev)?
                .kl()?
                .total()?,
        )
    };
    let excess = kl(&shifted)? - kl(&zero)?;

    // Paired draws: mu_shifted = m + mu_zero with m = shift · sigma_p, so the
    // excess is exactly Σ [(mu + m)² - mu²] / (2 sigma_p²).
    let (mut exact, mut n) = (0.0, 0usize);
    let model = BayesMlp::new(config.clone(), 0, &dev)?;
    for (layer, ((w0, b0), (w1, b1))) in model.layers().iter().zip(zero.iter().zip(&shifted)) {
        let sp = layer.prior().std();
        let (base, moved) = (
            [values(w0)?, values(b0)?].concat(),
            [values(w1)?, values(b1)?].concat(),
        );
        // The shift is the same z moved by m (f32 rounding of m + sigma z).
        assert!(
            max_abs_diff(
                &moved,
                &base.iter().map(|v| v + shift * sp).collect::<Vec<_>>()
            ) < 1e-6
        );
        exact += base
            .iter()
            .map(|mu| ((mu + shift * sp).powi(2) - mu * mu) / (2.0 * sp * sp))
            .sum::<f64>();
        n += base.len();
    }
    // KLs of ~1000 nats summed in f32: rounding ~1e-3 absolute.
    assert!((excess - exact).abs() < 1e-2, "{excess} vs {exact}");
    // E[excess] = n shift²/2; its sd is shift √n (the cross term Σ shift z).
    let expected = n as f64 * shift * shift / 2.0;
    assert!(
        (excess - expected).abs() < 4.0 * shift * (n as f64).sqrt(),
        "{excess} vs {expected} ± {}",
        shift * (n as f64).sqrt()
    );
    assert!(excess > 0.0);
    Ok(())
}

#[test]
fn convergence_epoch_is_the_first_within_the_band_of_the_final_level() {
    // Final level: the mean of the last 10 values (all 2.0); band 0.01 · 2.
    let mut v = vec![10.0, 5.0, 2.1, 2.01, 2.5];
    v.extend([2.0; 10]);
    assert_eq!(epochs_to_converge(&v, 0.01), Some(4));
    // A level near 0 uses a band of tolerance · 1: here 0.01 around 0.
    let mut near_zero = vec![1.0, 0.005];
    near_zero.extend([0.0; 10]);
    assert_eq!(epochs_to_converge(&near_zero, 0.01), Some(2));
    assert_eq!(epochs_to_converge(&[], 0.01), None);
}

fn bnn(args: &[&str]) -> std::process::Output {
    match Command::new(env!("CARGO_BIN_EXE_bnn")).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("could not run bnn: {e}"),
    }
}

/// Runs `bnn study ARGS --json` and returns its one JSON object.
fn study_json(args: &[&str]) -> serde_json::Value {
    let mut all = vec!["study"];
    all.extend(args);
    all.push("--json");
    let out = bnn(&all);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "bnn {all:?}: {stderr}");
    match serde_json::from_str(&stdout) {
        Ok(v) => v,
        Err(e) => panic!("stdout is not one JSON object ({e}): {stdout}"),
    }
}

fn assert_keys(v: &serde_json::Value, keys: &[&str]) {
    for key in keys {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
}

/// `v[field]` as an array whose every entry has `keys`.
fn entries_with_keys<'a>(
    v: &'a serde_json::Value,
    field: &str,
    keys: &[&str],
) -> &'a [serde_json::Value] {
    let entries = v[field].as_array().expect(field);
    for entry in entries {
        assert_keys(entry, keys);
    }
    entries
}

/// The string `key` of each entry.
fn strings<'a>(entries: &'a [serde_json::Value], key: &str) -> Vec<&'a str> {
    entries.iter().filter_map(|e| e[key].as_str()).collect()
}

fn is_png(path: &std::path::Path) -> bool {
    std::fs::read(path)
        .map(|b| b.starts_with(b"\x89PNG\r\n\x1a\n"))
        .unwrap_or(false)
}

/// A toy split directory in a fresh temp folder (deleted when the
/// `TempDir` drops), and its path.
fn toy_split_dir() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    (tmp, dir)
}

/// Runs `bnn study STUDY --dir TOY --plots PLOTS FLAGS --json` on a toy split
/// directory, checks that each of `figures` was written into PLOTS as a PNG,
/// and returns the JSON object.
fn uci_study_json(study: &str, flags: &[&str], figures: &[&str]) -> serde_json::Value {
    let (tmp, dir) = toy_split_dir();
    let plots = tmp.path().join("plots");
    let mut args = vec![
        study,
        "--dir",
        dir.to_str().expect("utf-8 path"),
        "--plots",
        plots.to_str().expect("utf-8 path"),
    ];
    args.extend(flags);
    let v = study_json(&args);
    for file in figures {
        assert!(is_png(&plots.join(file)), "{file}");
    }
    v
}

#[test]
fn cli_l2_json_has_the_old_and_new_fields() {
    let v = study_json(&["l2", "--steps", "20"]);
    assert_keys(
        &v,
        &[
            "kl_grad_max_abs_diff",
            "map_vs_l2_max_abs_diff",
            "max_param_change",
            "weight_decay",
            "prior_sigma",
            "n_data",
            "steps",
            "laplace_b",
            "l1_decay",
            "map_laplace_vs_l1_max_abs_diff",
            "laplace_max_param_change",
            "mc_dropout_weight_decay",
            "mc_dropout_bias_decay",
            "mc_dropout_kl_grad_max_abs_diff",
            "mc_dropout_objective_grad_max_abs_diff",
        ],
    );
}

#[test]
fn cli_migration_json_and_figures() {
    let v = uci_study_json(
        "migration",
        &["--epochs", "3", "--samples", "5"],
        &["migration_weight_mean.png", "migration_kl.png"],
    );
    assert_keys(
        &v,
        &[
            "dataset",
            "prior",
            "shift",
            "n_params",
            "initial_kl_excess",
            "expected_kl_excess",
            "half_gap_epoch",
            "runs",
        ],
    );
    // 3 features -> 8 hidden (n_hidden.txt) -> 1: 3·8 + 8 + 8 + 1 means.
    assert_eq!(v["n_params"], 41);
    let runs = entries_with_keys(
        &v,
        "runs",
        &["label", "init_shift", "history", "scores", "tensors"],
    );
    assert_eq!(runs.len(), 2);
    for run in runs {
        // Epoch 0 (init) and 3 trained epochs.
        assert_eq!(run["history"].as_array().map(Vec::len), Some(4));
        assert_keys(
            &run["history"][0],
            &["epoch", "weight_mean", "kl", "kl_l2", "kl_rest", "test_ll"],
        );
        assert_eq!(run["tensors"].as_array().map(Vec::len), Some(4));
        assert_keys(
            &run["tensors"][0],
            &["name", "relative_change", "sigma_over_prior"],
        );
    }
    // The shifted run starts 0.5 prior sds higher on average, exactly by
    // construction up to f32 rounding.
    let start = |i: usize| {
        runs[i]["history"][0]["weight_mean"]
            .as_f64()
            .unwrap_or(f64::NAN)
    };
    assert!((start(1) - start(0) - 0.5).abs() < 1e-4, "{v}");
}

#[test]
fn cli_sigma_json_and_figure() {
    let v = uci_study_json(
        "sigma",
        &[
            "--sigmas",
            "0.3,1",
            "--gains",
            "1.414",
            "--splits",
            "2",
            "--epochs",
            "2",
            "--samples",
            "5",
        ],
        &["sigma_test_ll.png"],
    );
    assert_keys(
        &v,
        &[
            "dataset", "splits", "epochs", "hidden", "settings", "seconds",
        ],
    );
    let settings = entries_with_keys(
        &v,
        "settings",
        &[
            "family",
            "value",
            "first_layer_sigma",
            "ll_mean",
            "ll_se",
            "rmse_mean",
            "rmse_se",
            "picp95_mean",
            "kl_per_example",
            "train_nll",
            "kl_nll_ratio",
            "signal_ratio",
        ],
    );
    assert_eq!(
        strings(settings, "prior"),
        ["gaussian:0.3", "gaussian:1", "fanin:1.414"]
    );
    // fanin:1.414 on 3 inputs: sigma_1 = 1.414 / √3.
    let s1 = settings[2]["first_layer_sigma"]
        .as_f64()
        .unwrap_or(f64::NAN);
    assert!((s1 - 1.414 / 3f64.sqrt()).abs() < 1e-12);
}

#[test]
fn cli_prior_mean_json_and_figure() {
    let v = uci_study_json(
        "prior-mean",
        &["--pretrain-epochs", "3", "--epochs", "3", "--samples", "5"],
        &["prior_mean_test_ll.png"],
    );
    assert_keys(
        &v,
        &[
            "dataset",
            "split",
            "prior",
            "epochs",
            "n_train",
            "tolerance",
            "pretrained",
            "arms",
        ],
    );
    let arms = entries_with_keys(
        &v,
        "arms",
        &[
            "scores",
            "kl_l2",
            "kl_rest",
            "epochs_to_converge_loss",
            "epochs_to_converge_ll",
            "history",
        ],
    );
    assert_eq!(
        strings(arms, "label"),
        ["zero-mean prior", "pretrained init", "MOPED"]
    );
    for a in arms {
        assert_eq!(a["history"].as_array().map(Vec::len), Some(3));
    }
}

#[test]
fn cli_studies_refuse_bad_settings_naming_the_flag() {
    let (_tmp, dir) = toy_split_dir();
    let d = dir.to_str().expect("utf-8 path");
    for (args, flag) in [
        (
            &["study", "migration", "--dir", d, "--prior", "laplace:1"][..],
            "prior",
        ),
        (&["study", "migration", "--dir", d, "--split", "7"], "split"),
        (&["study", "sigma", "--dir", d, "--splits", "3"], "splits"),
        (
            &["study", "prior-mean", "--dir", d, "--tolerance", "0"],
            "tolerance",
        ),
        (&["study", "l2", "--laplace-b", "0"], "prior b"),
    ] {
        let out = bnn(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(
            stderr.contains(&format!("invalid {flag}")),
            "{args:?}: {stderr}"
        );
    }
}
