//! Integration tests of the predictive distribution: the Gaussian mixture's
//! quantiles, CDF, density and moments against statrs and brute force, its
//! affine map, and `predict` on a small `BayesMlp` (shapes, the chunked
//! path, batched vs looped sampling, classification summaries).

use candle_bnn::likelihood::LikelihoodKind;
use candle_bnn::model::{BayesMlp, BayesMlpConfig, StochasticModel};
use candle_bnn::predictive::{predict, rows_per_pass, GaussianMixture};
use candle_bnn::{Error, Result};
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

const PROBS: [f64; 9] = [0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 0.999];

/// Three single-component rows: T = 1 is a plain Gaussian.
fn single() -> Result<(GaussianMixture, Vec<(f64, f64)>)> {
    let params = vec![(0.0, 1.0), (-3.5, 0.2), (12.0, 4.0)];
    let m = GaussianMixture::new(
        3,
        1,
        params.iter().map(|p| p.0).collect(),
        params.iter().map(|p| p.1).collect(),
    )?;
    Ok((m, params))
}

#[test]
fn one_component_quantiles_intervals_and_density_are_statrs_normal() -> Result<()> {
    let (m, params) = single()?;
    assert_eq!((m.len(), m.n_components()), (3, 1));
    for (i, (mu, s)) in params.iter().enumerate() {
        let n = Normal::new(*mu, *s).unwrap();
        for p in PROBS {
            // Bisection to adjacent floats on an erfc CDF accurate to ~1e-16
            // relative, and statrs' erfc_inv to ~1e-15: errors ~1e-13 at the
            // 0.001 tail (density 0.003/s); 1e-9 is the brief's bound.
            let q = m.quantile(i, p)?;
            assert!(
                (q - n.inverse_cdf(p)).abs() < 1e-9,
                "row {i} p {p}: {q} vs {}",
                n.inverse_cdf(p)
            );
        }
        for level in [0.5, 0.9, 0.95, 0.998] {
            let iv = m.interval(level)?;
            assert_eq!(iv.level, level);
            assert!((iv.lower[i] - n.inverse_cdf((1.0 - level) / 2.0)).abs() < 1e-9);
            assert!((iv.upper[i] - n.inverse_cdf((1.0 + level) / 2.0)).abs() < 1e-9);
        }
    }
    let ys = [0.3, -3.1, 30.0];
    let ld = m.log_density(&ys)?;
    for (i, (mu, s)) in params.iter().enumerate() {
        let want = Normal::new(*mu, *s).unwrap().ln_pdf(ys[i]);
        // Same formula evaluated in f64, different operation order: 1e-12.
        assert!((ld[i] - want).abs() < 1e-12, "row {i}: {} vs {want}", ld[i]);
    }
    assert!(m.quantile(0, 0.0).is_err() && m.quantile(0, 1.0).is_err());
    assert!(m.interval(1.0).is_err() && m.interval(0.0).is_err());
    assert!(m.log_density(&[0.0, 0.0]).is_err(), "one target per row");
    assert!(m.log_density(&[0.0, f64::NAN, 1.0]).is_err());
    Ok(())
}

/// One row, five components with different means and stds (bimodal-ish).
const MEANS: [f64; 5] = [-2.0, 0.0, 0.5, 3.0, 8.0];
const STDS: [f64; 5] = [0.5, 1.0, 0.2, 2.0, 1.0];

fn five() -> Result<GaussianMixture> {
    GaussianMixture::new(1, 5, MEANS.to_vec(), STDS.to_vec())
}

fn statrs_cdf(y: f64) -> f64 {
    MEANS
        .iter()
        .zip(STDS)
        .map(|(m, s)| Normal::new(*m, s).unwrap().cdf(y))
        .sum::<f64>()
        / 5.0
}

#[test]
fn mixture_quantile_is_the_brute_force_quantile_and_inverts_the_cdf() -> Result<()> {
    let m = five()?;
    // Grid over the support (every component ± 12 sd), spacing h.
    let (lo, hi, h) = (-8.0, 20.0, 1e-4);
    let grid: Vec<f64> = (0..=((hi - lo) / h) as usize)
        .map(|k| lo + k as f64 * h)
        .collect();
    let cdf: Vec<f64> = grid.iter().map(|y| statrs_cdf(*y)).collect();
    for p in PROBS {
        let q = m.quantile(0, p)?;
        // The first grid point with CDF >= p bounds the quantile from above,
        // the one before from below: |q - grid[k]| <= h.
        let k = cdf.iter().position(|c| *c >= p).unwrap();
        assert!(
            grid[k - 1] - 1e-12 <= q && q <= grid[k] + 1e-12,
            "p {p}: {q} not in [{}, {}]",
            grid[k - 1],
            grid[k]
        );
        // F(F⁻¹(p)) = p: bisection stops at adjacent floats, where F moves by
        // density·ulp ~1e-16; the erfc error is ~1e-16 too. 1e-9 is loose.
        assert!(
            (m.cdf(0, q) - p).abs() < 1e-9,
            "p {p}: F(q) = {}",
            m.cdf(0, q)
        );
    }
    // The crate's CDF is statrs' (erfc-based, same formula): 1e-14.
    for y in [-5.0, -2.0, 0.0, 0.25, 3.0, 7.5, 15.0] {
        assert!((m.cdf(0, y) - statrs_cdf(y)).abs() < 1e-14, "y {y}");
    }
    Ok(())
}

#[test]
fn mixture_log_density_is_the_log_mean_density_and_finite_far_out() -> Result<()> {
    let m = five()?;
    for y in [-3.0, -1.0, 0.4, 2.0, 8.0, 12.0] {
        let direct = (MEANS
            .iter()
            .zip(STDS)
            .map(|(mu, s)| Normal::new(*mu, s).unwrap().pdf(y))
            .sum::<f64>()
            / 5.0)
            .ln();
        let got = m.log_density(&[y])?[0];
        // Both f64; the direct sum of O(1e-2..1) densities: 1e-12.
        assert!((got - direct).abs() < 1e-12, "y {y}: {got} vs {direct}");
    }
    // y = 250 is over 120 sds from every component (the closest in sds is
    // N(3, 2²), at 123.5): every density underflows to 0 and a direct
    // computation gives ln 0 = -inf.
    let y = 250.0;
    let direct: f64 = MEANS
        .iter()
        .zip(STDS)
        .map(|(mu, s)| Normal::new(*mu, s).unwrap().pdf(y))
        .sum::<f64>();
    assert_eq!(direct, 0.0, "the direct computation underflows here");
    let got = m.log_density(&[y])?[0];
    // log-mean-exp lies between max_t ln N_t - ln T and max_t ln N_t.
    let max_ln = MEANS
        .iter()
        .zip(STDS)
        .map(|(mu, s)| Normal::new(*mu, s).unwrap().ln_pdf(y))
        .fold(f64::NEG_INFINITY, f64::max);
    assert!(got.is_finite(), "{got}");
    assert!(
        max_ln - 5f64.ln() - 1e-9 <= got && got <= max_ln + 1e-9,
        "{got} vs max {max_ln}"
    );
    Ok(())
}

#[test]
fn mixture_variance_is_aleatoric_plus_epistemic_and_matches_sampling() -> Result<()> {
    let m = five()?;
    let (mean, ale, epi, var) = (
        m.mean()[0],
        m.aleatoric_var()[0],
        m.epistemic_var()[0],
        m.variance()[0],
    );
    // Closed forms: mean_t mu_t, mean_t s_t², mean_t (mu_t - mean)²;
    // variance = E[y²] - E[y]² = mean_t (s_t² + mu_t²) - mean².
    let want_mean = MEANS.iter().sum::<f64>() / 5.0;
    let want_ale = STDS.iter().map(|s| s * s).sum::<f64>() / 5.0;
    let second = MEANS
        .iter()
        .zip(STDS)
        .map(|(mu, s)| s * s + mu * mu)
        .sum::<f64>()
        / 5.0;
    assert!((mean - want_mean).abs() < 1e-14);
    assert!((ale - want_ale).abs() < 1e-14);
    assert!((var - (ale + epi)).abs() < 1e-12);
    assert!((var - (second - want_mean * want_mean)).abs() < 1e-12);
    assert!((m.std()[0] - var.sqrt()).abs() < 1e-14);

    // Sampling the mixture: component uniform, then its normal.
    let n = 200_000;
    let mut rng = StdRng::seed_from_u64(17);
    let ys: Vec<f64> = (0..n)
        .map(|_| {
            let t = rng.random_range(0..5);
            MEANS[t] + STDS[t] * rng.sample::<f64, _>(StandardNormal)
        })
        .collect();
    let mc_mean = ys.iter().sum::<f64>() / n as f64;
    let mc_var = ys.iter().map(|y| (y - mc_mean).powi(2)).sum::<f64>() / (n as f64 - 1.0);
    // Fourth central moment, exactly: mean_t E[(d_t + s_t Z)⁴] with
    // d_t = mu_t - mean is mean_t (d⁴ + 6 d² s² + 3 s⁴). The sd of the
    // sample variance is sqrt((mu4 - var²) / n), of the mean sqrt(var / n); 5 sd.
    let mu4 = MEANS
        .iter()
        .zip(STDS)
        .map(|(mu, s)| {
            let d = mu - mean;
            d.powi(4) + 6.0 * d * d * s * s + 3.0 * s.powi(4)
        })
        .sum::<f64>()
        / 5.0;
    let sd_var = ((mu4 - var * var) / n as f64).sqrt();
    assert!(
        (mc_var - var).abs() < 5.0 * sd_var,
        "MC variance {mc_var} vs {var} (sd {sd_var})"
    );
    assert!((mc_mean - mean).abs() < 5.0 * (var / n as f64).sqrt());
    // Sensitive: dropping either part misses by far more than the tolerance.
    assert!(ale.min(epi) > 20.0 * sd_var);
    Ok(())
}

#[test]
fn affine_map_transforms_quantiles_moments_and_density() -> Result<()> {
    let m = five()?;
    let (shift, scale) = (10.0, 2.5);
    let a = m.affine(shift, scale)?;
    assert_eq!(a.n_components(), 5);
    assert!((a.mean()[0] - (shift + scale * m.mean()[0])).abs() < 1e-12);
    assert!((a.std()[0] - scale * m.std()[0]).abs() < 1e-12);
    for p in PROBS {
        let (q, qa) = (m.quantile(0, p)?, a.quantile(0, p)?);
        // Both bisected to adjacent floats: 1e-9 absolute on O(10) values.
        assert!((qa - (shift + scale * q)).abs() < 1e-9, "p {p}");
    }
    for y in [-3.0, 0.0, 2.0, 9.0] {
        let (ld, lda) = (
            m.log_density(&[y])?[0],
            a.log_density(&[shift + scale * y])?[0],
        );
        // Change of variables: ln p'(y') = ln p(y) - ln scale.
        assert!((lda - (ld - scale.ln())).abs() < 1e-12, "y {y}");
    }
    for (sh, sc) in [
        (0.0, 0.0),
        (0.0, -1.0),
        (f64::NAN, 1.0),
        (0.0, f64::INFINITY),
    ] {
        match m.affine(sh, sc) {
            Err(Error::InvalidParameter { name, .. }) => assert!(name.contains("scale")),
            other => panic!("affine({sh}, {sc}): {other:?}"),
        }
    }
    Ok(())
}

fn inputs(n: usize, d: usize) -> Result<Tensor> {
    let v: Vec<f32> = (0..n * d)
        .map(|k| ((k as f32) * 0.37).sin() * 2.0)
        .collect();
    Ok(Tensor::from_vec(v, (n, d), &Device::Cpu)?)
}

#[test]
fn predict_has_one_row_per_input_and_t_components() -> Result<()> {
    let model = BayesMlp::new(BayesMlpConfig::new(2, &[16]), 1, &Device::Cpu)?;
    let xs = inputs(7, 2)?;
    let pd = predict(&model, &xs, 10)?.into_regression()?;
    assert_eq!((pd.len(), pd.n_components()), (7, 10));
    // Homoscedastic: every component has the learned noise std.
    let s = model.likelihood().noise_std()?.unwrap();
    for i in 0..7 {
        assert!(pd.component_stds(i).iter().all(|v| (v - s).abs() < 1e-6));
    }
    match predict(&model, &xs, 0) {
        Err(Error::InvalidParameter { name, .. }) => assert_eq!(name, "samples"),
        other => panic!("samples = 0: {other:?}"),
    }
    // A regression predictive is not a classification one.
    assert!(predict(&model, &xs, 2)?.into_classification().is_err());
    Ok(())
}

#[test]
fn chunked_predict_keeps_rows_in_order() -> Result<()> {
    // Passes split samples first: T = 64 over P/20 rows (P row-samples fit
    // in a pass) takes 20 samples per pass, four passes over every row; more
    // rows than P also split the rows (two row blocks, one sample per pass).
    // With a tiny posterior scale every sample is the mean pass (noise ~1e-6
    // of the signal), so each row's components must equal that row's
    // forward_mean: a row or sample mix-up or a transposed [S, B] block
    // would not.
    let mut cfg = BayesMlpConfig::new(3, &[16]);
    cfg.init_scale = 1e-6;
    let model = BayesMlp::new(cfg, 2, &Device::Cpu)?;
    let pairs = rows_per_pass(&model);
    for (n, samples) in [(pairs / 20, 64), (pairs + 452, 2)] {
        let xs = inputs(n, 3)?;
        let pd = predict(&model, &xs, samples)?.into_regression()?;
        assert_eq!((pd.len(), pd.n_components()), (n, samples));
        let mean = model.forward_mean(&xs)?.flatten_all()?.to_vec1::<f32>()?;
        // A row mix-up is only visible between rows that differ: most
        // consecutive rows of the mean pass differ by far more than the 1e-3
        // tolerance below.
        let distinct = mean
            .windows(2)
            .filter(|w| (w[0] - w[1]).abs() > 1e-2)
            .count();
        assert!(
            distinct > n * 9 / 10,
            "only {distinct} of {n} rows distinct"
        );
        for (i, m) in mean.iter().enumerate() {
            for c in pd.component_means(i) {
                // Noise std ~1e-6 per weight times O(1) activations over 16
                // units: ~1e-5; 1e-3 leaves a margin of 100.
                assert!(
                    (c - *m as f64).abs() < 1e-3,
                    "row {i}: component {c} vs mean pass {m}"
                );
            }
        }
    }
    Ok(())
}

/// Mean and variance of a slice.
fn mean_var(v: &[f64]) -> (f64, f64, f64) {
    let n = v.len() as f64;
    let m = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (n - 1.0);
    let m4 = v.iter().map(|x| (x - m).powi(4)).sum::<f64>() / n;
    (m, var, m4)
}

#[test]
fn batched_samples_are_distributed_like_looped_single_samples() -> Result<()> {
    // forward_samples(xs, T) in one pass and T calls of forward_samples(xs, 1)
    // consume the noise stream in a different order, so they are not equal
    // bitwise; both must be T draws of the same predictive distribution.
    use candle_bnn::layers::Estimator;
    let t = 2000;
    let xs = Tensor::new(&[[0.7f32, -1.2], [2.0, 0.5]], &Device::Cpu)?;
    for (k, est) in [
        Estimator::Reparam,
        Estimator::LocalReparam,
        Estimator::Flipout,
    ]
    .into_iter()
    .enumerate()
    {
        let mut cfg = BayesMlpConfig::new(2, &[16]);
        cfg.init_scale = 0.5;
        cfg.estimator = est;
        let model = BayesMlp::new(cfg, 30 + k as u64, &Device::Cpu)?;
        model.noise().reseed(5);
        let batched = model.forward_samples(&xs, t)?; // [T, 2, 1]
        assert_eq!(batched.dims(), &[t, 2, 1]);
        let batched = batched.flatten_all()?.to_vec1::<f32>()?;
        model.noise().reseed(5);
        let mut looped = Vec::with_capacity(2 * t);
        for _ in 0..t {
            looped.extend(
                model
                    .forward_samples(&xs, 1)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            );
        }
        // T = 1 replays bitwise after a reseed.
        model.noise().reseed(5);
        let one = model
            .forward_samples(&xs, 1)?
            .flatten_all()?
            .to_vec1::<f32>()?;
        assert_eq!(one[..], looped[..2], "{est}: reseeded replay");
        for row in 0..2 {
            let pick = |v: &[f32]| -> Vec<f64> {
                v.iter().skip(row).step_by(2).map(|x| *x as f64).collect()
            };
            let (a, b) = (pick(&batched), pick(&looped));
            let (ma, va, m4a) = mean_var(&a);
            let (mb, vb, m4b) = mean_var(&b);
            // Two independent sets of T draws. The difference of the means
            // has sd sqrt((va + vb)/T); of the variances sqrt((m4 - v²)/T)
            // for each (m4: the sample fourth central moment, as the outputs
            // of a ReLU net are not Gaussian). 5 sd.
            let sd_m = ((va + vb) / t as f64).sqrt();
            let sd_v = ((m4a - va * va + m4b - vb * vb) / t as f64).sqrt();
            assert!(
                (ma - mb).abs() < 5.0 * sd_m,
                "{est} row {row}: means {ma} vs {mb} (sd {sd_m})"
            );
            assert!(
                (va - vb).abs() < 5.0 * sd_v,
                "{est} row {row}: variances {va} vs {vb} (sd {sd_v})"
            );
            // The weight noise is visible at this init scale (a shared or
            // missing draw would collapse the variance).
            assert!(va > 0.01 && vb > 0.01, "{est}: {va} {vb}");
        }
    }
    Ok(())
}

#[test]
fn classification_predictive_has_normalized_probabilities_and_bounded_mi() -> Result<()> {
    let mut cfg = BayesMlpConfig::new(2, &[16]);
    cfg.likelihood = LikelihoodKind::Categorical { classes: 3 };
    cfg.init_scale = 0.5;
    let model = BayesMlp::new(cfg, 3, &Device::Cpu)?;
    let xs = inputs(9, 2)?;
    let pd = predict(&model, &xs, 50)?;
    assert!(pd.clone().into_regression().is_err());
    let c = pd.into_classification()?;
    assert_eq!((c.len(), c.n_classes()), (9, 3));
    let (h, eh, mi) = (c.entropy(), c.expected_entropy(), c.mutual_information());
    for i in 0..9 {
        let p = c.mean_probs(i);
        // f32 softmax probabilities averaged in f64: sum to 1 within 1e-6.
        assert!((p.iter().sum::<f64>() - 1.0).abs() < 1e-6, "row {i}: {p:?}");
        assert!(p.iter().all(|v| *v >= 0.0));
        assert!(mi[i] >= 0.0, "row {i}: MI {}", mi[i]);
        assert!(mi[i] <= h[i] + 1e-12, "row {i}: MI {} > H {}", mi[i], h[i]);
        assert!(h[i] <= 3f64.ln() + 1e-12);
        // MI = H - E[H] (clamped at 0 only against rounding).
        assert!((mi[i] - (h[i] - eh[i]).max(0.0)).abs() < 1e-12);
        let k = c.predicted_class()[i];
        assert!(p.iter().all(|v| *v <= p[k]));
    }
    // With sigma at half the prior's, the 50 samples disagree somewhere.
    assert!(mi.iter().any(|v| *v > 1e-3), "{mi:?}");
    Ok(())
}
