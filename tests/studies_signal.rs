//! Signal propagation: the quadrature, the mean-field recursion against its
//! closed forms, deep random networks against the recursion, and the
//! validation of settings (the CLI's JSON is in `studies_cli.rs`).

use candle_bnn::layers::Activation;
use candle_bnn::studies::gauss_hermite::{GaussHermite, DEFAULT_NODES};
use candle_bnn::studies::mean_field::{
    derivative_second_moment, predicted_variances, second_moment, LayerVariance,
};
use candle_bnn::studies::random_mlp::{InitShape, Norm};
use candle_bnn::studies::signal::{self, SignalConfig, SignalResult};
use candle_bnn::{Error, Prior, Result};
use candle_core::Device;

/// Composite Simpson's rule of `f(z) N(z; 0, q)` on `[0, 12√q]` and its
/// mirror, 400 000 panels: an independent reference for the quadratures.
/// Splitting at 0 keeps the kink of ReLU/SELU on a panel edge, so even
/// those integrands are smooth on every panel; Simpson's error is then
/// O(h⁴ f'''') ≈ 1e-14 relative at h = 12√q / 2e5, and the tails past 12
/// standard deviations weigh below 1e-32.
fn simpson_expectation(q: f64, f: impl Fn(f64) -> f64) -> f64 {
    let n = 200_000;
    let half = 12.0 * q.sqrt();
    let h = half / n as f64;
    let density = |z: f64| (-z * z / (2.0 * q)).exp() / (2.0 * std::f64::consts::PI * q).sqrt();
    let g = |z: f64| (f(z) + f(-z)) * density(z);
    // At 0 take the one-sided limits (f(0+) + f(0-)): ReLU' and SELU' jump there.
    let mut sum = g(f64::MIN_POSITIVE) + g(half);
    for k in 1..n {
        sum += g(k as f64 * h) * if k % 2 == 1 { 4.0 } else { 2.0 };
    }
    sum * h / 3.0
}

#[test]
fn gauss_hermite_is_exact_on_polynomials() -> Result<()> {
    let rule = GaussHermite::new(20)?;
    let sum: f64 = rule.weights().iter().sum();
    // Golub–Welsch in f64: weights and nodes good to ~1e-14.
    assert!((sum - std::f64::consts::PI.sqrt()).abs() < 1e-12, "{sum}");
    for q in [0.3, 1.0, 5.0] {
        // Degrees 2, 4, 6 < 2n = 40 are integrated exactly: E[z²] = q,
        // E[z⁴] = 3q², E[z⁶] = 15q³, up to rounding (1e-12 relative).
        let m2 = rule.gaussian_expectation(q, |z| z * z);
        let m4 = rule.gaussian_expectation(q, |z| z.powi(4));
        let m6 = rule.gaussian_expectation(q, |z| z.powi(6));
        assert!((m2 / q - 1.0).abs() < 1e-12, "q={q}: {m2}");
        assert!((m4 / (3.0 * q * q) - 1.0).abs() < 1e-12, "q={q}: {m4}");
        assert!((m6 / (15.0 * q.powi(3)) - 1.0).abs() < 1e-12, "q={q}: {m6}");
    }
    Ok(())
}

/// tanh has no closed form: check E[tanh²] and E[tanh'²] against Simpson,
/// at small variances (Gauss–Hermite proper) and at q = 257 (the variance
/// under N(0, 1) weights at width 256, where the rule hands over to the
/// trapezoid fallback). The module bounds both errors by ~1e-6; 1e-5
/// relative leaves room.
#[test]
fn tanh_moments_match_an_independent_integration() -> Result<()> {
    let rule = GaussHermite::new(DEFAULT_NODES)?;
    for q in [0.05, 0.5, 1.0, 4.0, 257.0, 5000.0] {
        let want = simpson_expectation(q, |z| z.tanh().powi(2));
        let got = second_moment(Activation::Tanh, q, &rule);
        assert!((got / want - 1.0).abs() < 1e-5, "q={q}: {got} vs {want}");
        let want = simpson_expectation(q, |z| (1.0 - z.tanh().powi(2)).powi(2));
        let got = derivative_second_moment(Activation::Tanh, q, &rule);
        assert!((got / want - 1.0).abs() < 1e-5, "q={q}: {got} vs {want}");
    }
    Ok(())
}

/// The closed forms of ReLU, SELU and erf against Simpson. Both sides are
/// accurate to ~1e-12; 1e-9 relative allows for erfc near 25 (1e-13) and the
/// asymptotic erfcx series beyond (1e-11).
#[test]
fn closed_form_moments_match_an_independent_integration() -> Result<()> {
    let rule = GaussHermite::new(DEFAULT_NODES)?;
    let selu = |z: f64| {
        let (alpha, lambda) = (1.673_263_242_354_377_3, 1.050_700_987_355_480_5);
        lambda * if z > 0.0 { z } else { alpha * (z.exp() - 1.0) }
    };
    let dselu = |z: f64| {
        let (alpha, lambda) = (1.673_263_242_354_377_3, 1.050_700_987_355_480_5);
        lambda * if z > 0.0 { 1.0 } else { alpha * z.exp() }
    };
    let erf = |z: f64| statrs::function::erf::erf(z);
    let derf = |z: f64| 2.0 / std::f64::consts::PI.sqrt() * (-z * z).exp();
    for q in [0.01, 0.5, 1.0, 3.0, 50.0, 400.0, 1e4] {
        for (activation, f, df) in [
            (
                Activation::Relu,
                &(|z: f64| z.max(0.0)) as &dyn Fn(f64) -> f64,
                &(|z: f64| if z > 0.0 { 1.0 } else { 0.0 }) as &dyn Fn(f64) -> f64,
            ),
            (Activation::Selu, &selu, &dselu),
            (Activation::Erf, &erf, &derf),
        ] {
            let want = simpson_expectation(q, |z| f(z).powi(2));
            let got = second_moment(activation, q, &rule);
            assert!(
                (got / want - 1.0).abs() < 1e-9,
                "{activation} q={q}: {got} vs {want}"
            );
            let want = simpson_expectation(q, |z| df(z).powi(2));
            let got = derivative_second_moment(activation, q, &rule);
            assert!(
                (got / want - 1.0).abs() < 1e-9,
                "{activation}' q={q}: {got} vs {want}"
            );
        }
    }
    // SELU's constants make q = 1 a fixed point of E[selu(z)²] (Klambauer
    // et al. 2017); the published 16-digit constants reproduce it to 1e-9.
    assert!((second_moment(Activation::Selu, 1.0, &rule) - 1.0).abs() < 1e-9);
    Ok(())
}

/// The ReLU recursion is linear: q_{l+1} = σ_w² q_l / 2 + σ_b², q_1 = σ_w² m + σ_b².
#[test]
fn relu_recursion_is_the_closed_form() -> Result<()> {
    let rule = GaussHermite::new(DEFAULT_NODES)?;
    let sizes = [64usize; 21];
    for prior in [
        Prior::He,
        Prior::LeCun,
        Prior::standard(),
        Prior::FanIn { c: 1.5 },
    ] {
        let layers = LayerVariance::of_mlp(&prior, &sizes)?;
        let got = predicted_variances(1.3, &layers, Activation::Relu, Norm::None, &rule);
        let (w, b) = (layers[0].weight, layers[0].bias);
        let mut q = w * 1.3 + b;
        for g in &got {
            // Same arithmetic in another order: 1e-12 relative.
            assert!((g / q - 1.0).abs() < 1e-12, "{prior}: {g} vs {q}");
            q = w * q / 2.0 + b;
        }
    }
    // Weight norm (g = 1) sets σ_w² = 1 for any prior; LayerNorm feeds φ unit variance.
    let layers = LayerVariance::of_mlp(&Prior::standard(), &[64; 4])?;
    let wn = predicted_variances(1.0, &layers, Activation::Relu, Norm::WeightNorm, &rule);
    assert!(
        (wn[2] - (((1.0 + 1.0) / 2.0 + 1.0) / 2.0 + 1.0)).abs() < 1e-12,
        "{wn:?}"
    );
    let ln = predicted_variances(1.0, &layers, Activation::Relu, Norm::LayerNorm, &rule);
    assert!((ln[2] - (64.0 / 2.0 + 1.0)).abs() < 1e-12, "{ln:?}");
    Ok(())
}

fn relu_runs(priors: Vec<Prior>, norms: Vec<Norm>, seed: u64) -> Result<SignalResult> {
    signal::run(
        &SignalConfig {
            depth: 5,
            width: 256,
            batch: 64,
            priors,
            activations: vec![Activation::Relu],
            shapes: vec![InitShape::Gaussian, InitShape::Uniform],
            norms,
            seed,
        },
        &Device::Cpu,
    )
}

/// He keeps a ReLU net's variance; N(0, 1) multiplies it by ~n/2 per layer.
///
/// One network's log-ratio fluctuates with sd ≈ √(5 · depth / width)
/// (Hanin & Rolnick 2018) ≈ 0.31 at depth 5, width 256; the geometric mean
/// over 8 seeds × 2 init shapes has sd ≲ 0.31/√8 = 0.11, so [0.7, 1.45]
/// around the predicted 1.02 is ±3 sd. N(0, 1)'s predicted ratio is
/// ≈ 128⁴ = 2.7e8; a factor 3 either way is over 3 sd of its log.
#[test]
fn he_keeps_relu_variance_and_a_fixed_sigma_explodes_it() -> Result<()> {
    let mut log_he = Vec::new();
    for seed in 0..8 {
        let r = relu_runs(vec![Prior::He, Prior::standard()], vec![Norm::None], seed)?;
        for shape in [InitShape::Gaussian, InitShape::Uniform] {
            let he = r
                .find("he", Activation::Relu, Norm::None, shape)
                .ok_or_else(missing)?;
            assert!(
                (he.ratio_predicted - 1.0155).abs() < 1e-3,
                "{}",
                he.ratio_predicted
            );
            log_he.push(he.ratio_empirical.ln());
            let n01 = r
                .find("gaussian:1", Activation::Relu, Norm::None, shape)
                .ok_or_else(missing)?;
            let rel = n01.ratio_empirical / n01.ratio_predicted;
            assert!(n01.ratio_predicted > 1e8, "{}", n01.ratio_predicted);
            assert!((1.0 / 3.0..3.0).contains(&rel), "seed {seed}: {rel}");
        }
    }
    let geo_mean = (log_he.iter().sum::<f64>() / log_he.len() as f64).exp();
    assert!((0.7..1.45).contains(&geo_mean), "He/ReLU ratio {geo_mean}");
    Ok(())
}

/// With the same standard draws (common random numbers), every fan-scaled
/// Gaussian prior is a rescaling of every layer's weights and biases by one
/// factor (σ_b²/σ_w² = 1/fan_in for all of them), so after LayerNorm the
/// networks coincide: equal ratios up to LayerNorm's eps (1e-5 against
/// variances ≥ 1e-2: 1e-3 relative). Weight norm removes the weight scale
/// but not the bias's, so there only the prediction is shared.
#[test]
fn normalization_takes_over_the_init_scale() -> Result<()> {
    let r = relu_runs(
        vec![Prior::He, Prior::standard(), Prior::FanIn { c: 0.5 }],
        vec![Norm::LayerNorm, Norm::WeightNorm],
        0,
    )?;
    let ln = |p: &str| -> Result<f64> {
        Ok(
            r.find(p, Activation::Relu, Norm::LayerNorm, InitShape::Gaussian)
                .ok_or_else(missing)?
                .ratio_empirical,
        )
    };
    let he = ln("he")?;
    for p in ["gaussian:1", "fanin:0.5"] {
        assert!((ln(p)? / he - 1.0).abs() < 1e-3, "{p}: {} vs {he}", ln(p)?);
    }
    // Under weight norm with g = 1 every prior has σ_w² = 1: ReLU halves the
    // variance per layer down to the bias floor 2σ_b², and the measured ratio
    // follows the prediction within the single-network spread (±3 sd = ×2.5).
    for p in ["he", "gaussian:1", "fanin:0.5"] {
        let wn = r
            .find(p, Activation::Relu, Norm::WeightNorm, InitShape::Gaussian)
            .ok_or_else(missing)?;
        let rel = wn.ratio_empirical / wn.ratio_predicted;
        assert!((0.4..2.5).contains(&rel), "{p}: {rel}");
    }
    Ok(())
}

#[test]
fn invalid_settings_name_the_flag() {
    let bad = |config: SignalConfig, flag: &str| match signal::run(&config, &Device::Cpu) {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, flag),
        other => panic!("{flag}: expected InvalidParameter, got {other:?}"),
    };
    let d = SignalConfig::default;
    bad(SignalConfig { depth: 51, ..d() }, "depth");
    bad(SignalConfig { depth: 1, ..d() }, "depth");
    bad(SignalConfig { width: 1, ..d() }, "width");
    bad(SignalConfig { batch: 0, ..d() }, "batch");
    bad(
        SignalConfig {
            priors: vec![],
            ..d()
        },
        "priors",
    );
    let shifted = Prior::Gaussian {
        mean: 0.5,
        sigma: 1.0,
    };
    bad(
        SignalConfig {
            priors: vec![shifted],
            ..d()
        },
        "prior",
    );
}

fn missing() -> Error {
    Error::invalid("run", "missing", "a run of every requested combination")
}
