//! Integration tests of `BayesLinear`'s three output estimators: the marginal
//! of every output against the analytic Gaussian, the correlation across a
//! minibatch that tells them apart, injected noise against hand-computed
//! outputs, and shapes and shape errors.

use candle_bnn::layers::{BayesLinear, Estimator, LayerNoise};
use candle_bnn::noise::NoiseSource;
use candle_bnn::ops::inverse_softplus_f64;
use candle_bnn::posterior::FactoredGaussian;
use candle_bnn::prior::{LayerPrior, Prior};
use candle_bnn::Result;
use candle_core::{Device, Module, Tensor, Var};

const ESTIMATORS: [Estimator; 3] = [
    Estimator::Reparam,
    Estimator::LocalReparam,
    Estimator::Flipout,
];

fn to_f64(t: &Tensor) -> Result<Vec<f64>> {
    Ok(t.flatten_all()?
        .to_dtype(candle_core::DType::F64)?
        .to_vec1()?)
}

/// A layer whose means come from N(0, 1) and whose sigmas are 0.5 (so the
/// noise is as visible as the signal).
fn wide_layer(in_dim: usize, out_dim: usize, est: Estimator, seed: u64) -> Result<BayesLinear> {
    BayesLinear::new(
        in_dim,
        out_dim,
        &Prior::standard(),
        est,
        0.5,
        NoiseSource::new(seed),
        &Device::Cpu,
    )
}

/// Analytic marginal of output `j` for input `x`:
/// `N(x·mu_j + mu_bj, Σ_i x_i² sigma_ji² + sigma_bj²)`, from the layer's own
/// parameters. Returns (means, variances) per output.
fn analytic_marginal(layer: &BayesLinear, x: &[f64]) -> Result<(Vec<f64>, Vec<f64>)> {
    let (i, o) = (layer.in_dim(), layer.out_dim());
    let mu = to_f64(layer.weight().mu().as_tensor())?;
    let sigma = to_f64(&layer.weight().sigma()?)?;
    let mu_b = to_f64(layer.bias().mu().as_tensor())?;
    let sigma_b = to_f64(&layer.bias().sigma()?)?;
    let mean = (0..o)
        .map(|j| (0..i).map(|k| x[k] * mu[j * i + k]).sum::<f64>() + mu_b[j])
        .collect();
    let var = (0..o)
        .map(|j| {
            (0..i)
                .map(|k| (x[k] * sigma[j * i + k]).powi(2))
                .sum::<f64>()
                + sigma_b[j].powi(2)
        })
        .collect();
    Ok((mean, var))
}

/// S draws of a batch of rows `xs` in one `[S, B, in]` call; returns
/// `out[s][b][j]` flattened with its dims.
fn draws(layer: &BayesLinear, xs: &[Vec<f64>], samples: usize) -> Result<Vec<f64>> {
    let (b, i) = (xs.len(), xs[0].len());
    let flat: Vec<f32> = xs.iter().flatten().map(|v| *v as f32).collect();
    let x = Tensor::from_vec(flat, (1, b, i), &Device::Cpu)?
        .broadcast_as((samples, b, i))?
        .contiguous()?;
    let y = layer.forward_sample(&x)?;
    assert_eq!(y.dims(), &[samples, b, layer.out_dim()]);
    to_f64(&y)
}

fn mean_var(v: &[f64]) -> (f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    (
        m,
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0),
    )
}

#[test]
fn every_estimator_has_the_analytic_gaussian_marginal() -> Result<()> {
    let samples = 20_000;
    let xs = vec![vec![1.0, -2.0, 0.5], vec![0.3, 0.0, -1.5]];
    for (k, est) in ESTIMATORS.into_iter().enumerate() {
        let layer = wide_layer(3, 2, est, 100 + k as u64)?;
        let y = draws(&layer, &xs, samples)?;
        for (b, x) in xs.iter().enumerate() {
            let (want_mean, want_var) = analytic_marginal(&layer, x)?;
            for j in 0..2 {
                let v: Vec<f64> = (0..samples).map(|s| y[(s * 2 + b) * 2 + j]).collect();
                let (m, var) = mean_var(&v);
                // The outputs are Gaussian (a sum of Gaussians, or a
                // symmetric sign times one), so the sample mean has sd
                // sqrt(var / S) and the sample variance var·sqrt(2 / (S-1))
                // (1% of var at S = 20 000). 5 sd each. Leaving out the bias
                // variance (>= 0.25 of up to ~1.6 here) would be > 15 %.
                let sd_m = (want_var[j] / samples as f64).sqrt();
                let sd_v = want_var[j] * (2.0 / (samples as f64 - 1.0)).sqrt();
                assert!(
                    (m - want_mean[j]).abs() < 5.0 * sd_m,
                    "{est}: row {b} out {j}: mean {m} vs {}",
                    want_mean[j]
                );
                assert!(
                    (var - want_var[j]).abs() < 5.0 * sd_v,
                    "{est}: row {b} out {j}: var {var} vs {}",
                    want_var[j]
                );
            }
        }
    }
    Ok(())
}

/// Sample correlation of two equal-length series.
fn correlation(a: &[f64], b: &[f64]) -> f64 {
    let (ma, va) = mean_var(a);
    let (mb, vb) = mean_var(b);
    let cov = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - ma) * (y - mb))
        .sum::<f64>()
        / (a.len() as f64 - 1.0);
    cov / (va * vb).sqrt()
}

#[test]
fn estimators_differ_in_the_correlation_across_the_minibatch() -> Result<()> {
    // Two identical rows in one batch. Reparam shares one weight draw across
    // the batch: identical outputs, correlation 1. LocalReparam samples each
    // row's pre-activation independently: correlation 0. Flipout flips the
    // shared weight perturbation by independent signs per row, which
    // decorrelates it; only the bias draw, shared by the batch, remains, so
    // the correlation is sigma_b² / var.
    let samples = 20_000;
    let x = vec![0.8, -1.0, 1.7];
    let xs = vec![x.clone(), x.clone()];
    for (k, est) in ESTIMATORS.into_iter().enumerate() {
        let layer = wide_layer(3, 2, est, 200 + k as u64)?;
        let y = draws(&layer, &xs, samples)?;
        let (_, var) = analytic_marginal(&layer, &x)?;
        let sigma_b = to_f64(&layer.bias().sigma()?)?;
        for j in 0..2 {
            let row =
                |b: usize| -> Vec<f64> { (0..samples).map(|s| y[(s * 2 + b) * 2 + j]).collect() };
            let (r0, r1) = (row(0), row(1));
            if est == Estimator::Reparam {
                // Same weights, same input: the same output up to f32 rounding.
                assert!(
                    r0.iter().zip(&r1).all(|(a, b)| (a - b).abs() < 1e-5),
                    "{est}: rows differ"
                );
                continue;
            }
            // Different draws per row, not merely uncorrelated on average.
            // LocalReparam: continuous independent noise, never equal.
            // Flipout: row b's perturbation equals row a's exactly when
            // r_aj r_bj s_a ⊙ s_b is all ones, probability 2^-in = 1/8; the
            // sd of the observed fraction is sqrt(p(1-p)/S) = 0.0023; 5 sd.
            let equal = r0.iter().zip(&r1).filter(|(a, b)| a == b).count() as f64;
            let p_equal = match est {
                Estimator::LocalReparam => 0.0,
                _ => 0.5f64.powi(3),
            };
            let sd = (p_equal * (1.0 - p_equal) / samples as f64).sqrt();
            assert!(
                (equal / samples as f64 - p_equal).abs() <= 5.0 * sd,
                "{est}: out {j}: {equal} of {samples} rows equal"
            );
            let want = match est {
                Estimator::LocalReparam => 0.0,
                _ => sigma_b[j].powi(2) / var[j],
            };
            // sd of a sample correlation is about (1 - rho²)/sqrt(S) <= 0.0071;
            // 5 sd = 0.036, while the three cases are 1, 0 and (all sigmas
            // 0.5 here) sigma_b²/var = 0.25/1.38 ≈ 0.18.
            let rho = correlation(&r0, &r1);
            assert!(
                (rho - want).abs() < 5.0 * (1.0 - want * want) / (samples as f64).sqrt(),
                "{est}: out {j}: correlation {rho} vs {want}"
            );
        }
    }
    Ok(())
}

#[test]
fn samples_of_one_call_are_independent_draws() -> Result<()> {
    // In the [S, B, in] form, consecutive samples must use independent
    // weights: the correlation between sample s and s+1 of the same row is 0
    // for every estimator (sd 1/sqrt(S/2); 5 sd).
    let samples = 20_000;
    let x = vec![0.8, -1.0, 1.7];
    for (k, est) in ESTIMATORS.into_iter().enumerate() {
        let layer = wide_layer(3, 1, est, 300 + k as u64)?;
        let y = draws(&layer, std::slice::from_ref(&x), samples)?;
        let even: Vec<f64> = y.iter().step_by(2).copied().collect();
        let odd: Vec<f64> = y.iter().skip(1).step_by(2).copied().collect();
        let rho = correlation(&even, &odd);
        assert!(
            rho.abs() < 5.0 / (samples as f64 / 2.0).sqrt(),
            "{est}: {rho}"
        );
    }
    Ok(())
}

/// The tiny 2x2 layer of the hand computations:
/// mu = [[1, 2], [-1, 0.5]], sigma = [[0.5, 0.25], [0.1, 1]],
/// mu_b = [0.1, -0.2], sigma_b = [0.2, 0.4].
fn tiny_layer(est: Estimator) -> Result<BayesLinear> {
    let dev = Device::Cpu;
    let rho =
        |s: &[f64]| -> Vec<f32> { s.iter().map(|s| inverse_softplus_f64(*s) as f32).collect() };
    let weight = FactoredGaussian::new(
        Var::new(&[[1.0f32, 2.0], [-1.0, 0.5]], &dev)?,
        Var::from_tensor(&Tensor::from_vec(
            rho(&[0.5, 0.25, 0.1, 1.0]),
            (2, 2),
            &dev,
        )?)?,
    )?;
    let bias = FactoredGaussian::new(
        Var::new(&[0.1f32, -0.2], &dev)?,
        Var::from_tensor(&Tensor::from_vec(rho(&[0.2, 0.4]), 2, &dev)?)?,
    )?;
    BayesLinear::from_posteriors(
        weight,
        bias,
        LayerPrior::Gaussian {
            mean: 0.0,
            sigma: 1.0,
        },
        est,
        NoiseSource::new(0),
    )
}

fn assert_close(got: &Tensor, want: &[f64], what: &str) -> Result<()> {
    let g = to_f64(got)?;
    assert_eq!(g.len(), want.len(), "{what}");
    // f32 arithmetic on O(1) values, and sigma = softplus(rho) round-trips
    // through f32 (~1e-7 relative): 1e-5 absolute.
    for (a, b) in g.iter().zip(want) {
        assert!((a - b).abs() < 1e-5, "{what}: got {g:?}, want {want:?}");
    }
    Ok(())
}

#[test]
fn zero_noise_gives_the_mean_pass() -> Result<()> {
    let dev = Device::Cpu;
    let xs = Tensor::new(&[[1.0f32, -2.0], [0.5, 3.0], [0.0, 0.0]], &dev)?;
    // x muᵀ + mu_b by hand: [1-4+0.1, -1-1-0.2], [0.5+6+0.1, -0.5+1.5-0.2], mu_b.
    let want = [-2.9, -2.2, 6.6, 0.8, 0.1, -0.2];
    for est in ESTIMATORS {
        let layer = tiny_layer(est)?;
        assert_close(&layer.forward_mean(&xs)?, &want, "forward_mean")?;
        let z = |shape: &[usize]| Tensor::zeros(shape, candle_core::DType::F32, &dev);
        let ones = |shape: &[usize]| Tensor::ones(shape, candle_core::DType::F32, &dev);
        let noise = match est {
            Estimator::Reparam => LayerNoise::Reparam {
                weight: z(&[1, 2, 2])?,
                bias: z(&[1, 1, 2])?,
            },
            Estimator::LocalReparam => LayerNoise::LocalReparam {
                output: z(&[1, 3, 2])?,
            },
            Estimator::Flipout => LayerNoise::Flipout {
                weight: z(&[1, 2, 2])?,
                bias: z(&[1, 1, 2])?,
                sign_in: ones(&[1, 3, 2])?,
                sign_out: ones(&[1, 3, 2])?.neg()?,
            },
        };
        let y = layer.forward_with_noise(&xs, &noise)?;
        assert_eq!(y.dims(), &[3, 2]);
        assert_close(&y, &want, &format!("{est} with zero noise"))?;
    }
    Ok(())
}

#[test]
fn injected_noise_gives_the_hand_computed_output() -> Result<()> {
    let dev = Device::Cpu;
    let xs = Tensor::new(&[[1.0f32, -2.0]], &dev)?;
    let e = Tensor::new(&[[[1.0f32, -1.0], [2.0, 0.5]]], &dev)?; // weight noise E
    let e_b = Tensor::new(&[[[1.0f32, -1.0]]], &dev)?; // bias noise

    // Reparam: W = mu + sigma ⊙ E = [[1.5, 1.75], [-0.8, 1.0]],
    // b = mu_b + sigma_b ⊙ e_b = [0.3, -0.6];
    // y = [1.5 - 3.5 + 0.3, -0.8 - 2.0 - 0.6] = [-1.7, -3.4].
    let y = tiny_layer(Estimator::Reparam)?.forward_with_noise(
        &xs,
        &LayerNoise::Reparam {
            weight: e.clone(),
            bias: e_b.clone(),
        },
    )?;
    assert_close(&y, &[-1.7, -3.4], "reparam")?;

    // LocalReparam: mean = [1 - 4 + 0.1, -1 - 1 - 0.2] = [-2.9, -2.2],
    // var = [1·0.25 + 4·0.0625 + 0.04, 1·0.01 + 4·1 + 0.16] = [0.54, 4.17],
    // y = mean + sqrt(var) ⊙ [1, -1].
    let y = tiny_layer(Estimator::LocalReparam)?.forward_with_noise(
        &xs,
        &LayerNoise::LocalReparam {
            output: Tensor::new(&[[[1.0f32, -1.0]]], &dev)?,
        },
    )?;
    assert_close(
        &y,
        &[-2.9 + 0.54f64.sqrt(), -2.2 - 4.17f64.sqrt()],
        "local reparam",
    )?;

    // Flipout with s = [-1, -1], r = [-1, 1]: x ⊙ s = [-1, 2],
    // sigma ⊙ E = [[0.5, -0.25], [0.2, 0.5]], (x ⊙ s)(sigma ⊙ E)ᵀ = [-1.0, 0.8],
    // ⊙ r = [1.0, 0.8]; x muᵀ = [-3, -2], b = [0.3, -0.6];
    // y = [-3 + 1 + 0.3, -2 + 0.8 - 0.6] = [-1.7, -1.8].
    let flip = |s: [f32; 2], r: [f32; 2]| -> Result<Tensor> {
        tiny_layer(Estimator::Flipout)?.forward_with_noise(
            &xs,
            &LayerNoise::Flipout {
                weight: e.clone(),
                bias: e_b.clone(),
                sign_in: Tensor::new(&[[s]], &dev)?,
                sign_out: Tensor::new(&[[r]], &dev)?,
            },
        )
    };
    assert_close(&flip([-1.0, -1.0], [-1.0, 1.0])?, &[-1.7, -1.8], "flipout")?;
    // Each sign matters: s = [1, -1] gives x ⊙ s = [1, 2], perturbation
    // [0.5 - 0.5, 0.2 + 1.0] ⊙ r = [0, 1.2], y = [-2.7, -1.4].
    assert_close(&flip([1.0, -1.0], [-1.0, 1.0])?, &[-2.7, -1.4], "flipout s")?;
    // r = [1, -1] negates the perturbation: y = [-3 - 1 + 0.3, -2 - 0.8 - 0.6].
    assert_close(
        &flip([-1.0, -1.0], [1.0, -1.0])?,
        &[-3.7, -3.4],
        "flipout r",
    )?;
    Ok(())
}

#[test]
fn injected_noise_in_the_sample_form_gives_one_output_per_sample() -> Result<()> {
    // [S=2, B=1, in] with the reparam noise of the hand computation in sample
    // 0 and zero noise in sample 1: sample 0 is the hand value, sample 1 the mean.
    let dev = Device::Cpu;
    let xs = Tensor::new(&[[[1.0f32, -2.0]], [[1.0, -2.0]]], &dev)?;
    let noise = LayerNoise::Reparam {
        weight: Tensor::new(
            &[[[1.0f32, -1.0], [2.0, 0.5]], [[0.0, 0.0], [0.0, 0.0]]],
            &dev,
        )?,
        bias: Tensor::new(&[[[1.0f32, -1.0]], [[0.0, 0.0]]], &dev)?,
    };
    let y = tiny_layer(Estimator::Reparam)?.forward_with_noise(&xs, &noise)?;
    assert_eq!(y.dims(), &[2, 1, 2]);
    assert_close(&y, &[-1.7, -3.4, -2.9, -2.2], "reparam, two samples")?;
    Ok(())
}

#[test]
fn output_shapes_follow_the_input_form() -> Result<()> {
    let dev = Device::Cpu;
    for (k, est) in ESTIMATORS.into_iter().enumerate() {
        let layer = wide_layer(4, 3, est, 400 + k as u64)?;
        let x2 = Tensor::ones((5, 4), candle_core::DType::F32, &dev)?;
        assert_eq!(layer.forward_sample(&x2)?.dims(), &[5, 3], "{est}");
        assert_eq!(layer.forward(&x2)?.dims(), &[5, 3], "{est} Module");
        assert_eq!(layer.forward_mean(&x2)?.dims(), &[5, 3], "{est} mean");
        let x3 = Tensor::ones((7, 5, 4), candle_core::DType::F32, &dev)?;
        assert_eq!(layer.forward_sample(&x3)?.dims(), &[7, 5, 3], "{est}");
        // Both noise draws of a sampled pass are finite and not the mean.
        let y = to_f64(&layer.forward_sample(&x2)?)?;
        let m = to_f64(&layer.forward_mean(&x2)?)?;
        assert!(y.iter().all(|v| v.is_finite()));
        assert!(y.iter().zip(&m).any(|(a, b)| a != b), "{est}: no noise");
    }
    Ok(())
}

#[test]
fn wrong_rank_or_width_is_an_error_not_a_panic() -> Result<()> {
    let dev = Device::Cpu;
    for (k, est) in ESTIMATORS.into_iter().enumerate() {
        let layer = wide_layer(4, 3, est, 500 + k as u64)?;
        let rank1 = Tensor::ones(4, candle_core::DType::F32, &dev)?;
        let rank4 = Tensor::ones((2, 2, 2, 4), candle_core::DType::F32, &dev)?;
        let wide2 = Tensor::ones((5, 6), candle_core::DType::F32, &dev)?;
        let wide3 = Tensor::ones((2, 5, 6), candle_core::DType::F32, &dev)?;
        for (what, x) in [
            ("rank 1", &rank1),
            ("rank 4", &rank4),
            ("in_dim 6", &wide2),
            ("in_dim 6, samples", &wide3),
        ] {
            assert!(layer.forward_sample(x).is_err(), "{est}: {what}");
            assert!(layer.forward(x).is_err(), "{est}: {what} (Module)");
        }
        // The rank error names the expected shapes.
        let msg = layer.forward_sample(&rank1).unwrap_err().to_string();
        assert!(msg.contains("[batch, 4]"), "{msg}");
        assert!(layer.forward_mean(&wide2).is_err(), "{est}: mean, in_dim 6");
        // Noise of the wrong shape is an error too.
        let noise = layer.draw_noise(1, 5)?;
        let x_ok = Tensor::ones((3, 4), candle_core::DType::F32, &dev)?;
        if est != Estimator::Reparam {
            // Reparam noise does not depend on the batch; the others do.
            assert!(layer.forward_with_noise(&x_ok, &noise).is_err(), "{est}");
        }
    }
    Ok(())
}
