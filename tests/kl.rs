//! Integration tests of the KL machinery: the closed-form Gaussian KL and its
//! L2 / rest split against hand-computed f64 values, Monte Carlo averages and
//! autodiff; the Monte Carlo KL of non-Gaussian priors against numerical
//! integration; and the ELBO's scaling of the KL (`elbo`).

use candle_bnn::elbo::{gaussian_prior_weight_decay, Elbo, KlSchedule};
use candle_bnn::noise::NoiseSource;
use candle_bnn::ops::{inverse_softplus_f64, softplus_f64};
use candle_bnn::posterior::{FactoredGaussian, KlTerms};
use candle_bnn::prior::LayerPrior;
use candle_bnn::{Error, Result};
use candle_core::{Device, Tensor, Var};

const LN_2PI: f64 = 1.837_877_066_409_345_3;

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(candle_core::DType::F64)?.to_scalar::<f64>()?)
}

/// A posterior with the given means and standard deviations, `rows` times
/// over (shape `[rows, d]`): `rows` independent copies of the same `d`
/// elements, so that one tensor call gives `rows` independent MC estimates.
/// Returns it with the f64 values of the f32 `mu` and of `sigma =
/// softplus(rho)` as stored (so that references see exactly what the crate sees).
fn posterior(
    mu: &[f64],
    sigma: &[f64],
    rows: usize,
) -> Result<(FactoredGaussian, Vec<f64>, Vec<f64>)> {
    let mu32: Vec<f32> = mu.iter().map(|m| *m as f32).collect();
    let rho32: Vec<f32> = sigma
        .iter()
        .map(|s| inverse_softplus_f64(*s) as f32)
        .collect();
    let tile = |v: &[f32]| -> Vec<f32> { (0..rows).flat_map(|_| v.iter().copied()).collect() };
    let d = mu.len();
    let mu_t = Tensor::from_vec(tile(&mu32), (rows, d), &Device::Cpu)?;
    let rho_t = Tensor::from_vec(tile(&rho32), (rows, d), &Device::Cpu)?;
    let q = FactoredGaussian::new(Var::from_tensor(&mu_t)?, Var::from_tensor(&rho_t)?)?;
    let mu64 = mu32.iter().map(|m| *m as f64).collect();
    let sigma64 = rho32.iter().map(|r| softplus_f64(*r as f64)).collect();
    Ok((q, mu64, sigma64))
}

/// Per-element closed-form KL(N(mu, s²) || N(m, sp²)) split into (l2, rest).
fn gaussian_kl_parts(mu: f64, s: f64, m: f64, sp: f64) -> (f64, f64) {
    let l2 = (mu - m).powi(2) / (2.0 * sp * sp);
    let rest = (sp / s).ln() + s * s / (2.0 * sp * sp) - 0.5;
    (l2, rest)
}

#[test]
fn closed_form_kl_matches_hand_computed_values_with_a_nonzero_prior_mean() -> Result<()> {
    // Two elements, prior N(0.5, 2²):
    //   mu = 1.5, sigma = 1: l2 = 1²/8 = 0.125,  rest = ln 2 + 1/8 - 1/2
    //   mu = -0.5, sigma = 0.5: l2 = 1²/8 = 0.125, rest = ln 4 + 0.25/8 - 1/2
    let prior = LayerPrior::Gaussian {
        mean: 0.5,
        sigma: 2.0,
    };
    let (q, _, _) = posterior(&[1.5, -0.5], &[1.0, 0.5], 1)?;
    let kl = q.kl_closed_form(&prior)?;
    let want_l2 = 0.25;
    let want_rest = (2f64.ln() + 0.125 - 0.5) + (4f64.ln() + 0.03125 - 0.5);
    // f32 arithmetic on O(1) values; rho -> sigma goes through an f32 softplus,
    // relative error ~1e-7 per op, so 1e-5 absolute is ample and still far
    // below any formula error (e.g. a missing 1/2 changes the result by 0.1+).
    assert!((scalar(&kl.l2)? - want_l2).abs() < 1e-5, "l2 {:?}", kl.l2);
    assert!(
        (scalar(&kl.rest)? - want_rest).abs() < 1e-5,
        "rest {} vs {want_rest}",
        scalar(&kl.rest)?
    );
    assert!((scalar(&kl.total()?)? - want_l2 - want_rest).abs() < 2e-5);
    // A non-Gaussian prior has no closed form: an error, not a wrong number.
    assert!(q.kl_closed_form(&LayerPrior::Laplace { b: 1.0 }).is_err());
    Ok(())
}

#[test]
fn closed_form_l2_and_rest_match_their_formulas_elementwise_summed() -> Result<()> {
    let mu = [0.9, -1.3, 0.0, 2.4, 0.31, -0.05];
    let sigma = [0.05, 0.3, 1.0, 2.5, 0.8, 1e-3];
    let prior = LayerPrior::Gaussian {
        mean: -0.4,
        sigma: 0.7,
    };
    let (q, mu64, s64) = posterior(&mu, &sigma, 1)?;
    let kl = q.kl_closed_form(&prior)?;
    let (mut l2, mut rest) = (0.0, 0.0);
    for (m, s) in mu64.iter().zip(&s64) {
        let (a, b) = gaussian_kl_parts(*m, *s, -0.4, 0.7);
        l2 += a;
        rest += b;
    }
    // Values up to ~10 in f32 (7 significant digits): 1e-5 relative.
    assert!((scalar(&kl.l2)? - l2).abs() < 1e-5 * l2, "l2 {l2}");
    assert!(
        (scalar(&kl.rest)? - rest).abs() < 1e-5 * rest,
        "rest {rest}"
    );
    Ok(())
}

/// Variance of the one-sample estimator `ln q(w) - ln p(w)` of one element for
/// a Gaussian prior. With `a = s/sp`, `d = (mu - m)/sp` and `w = mu + s eps`,
/// the estimator is `const + (a² - 1) eps²/2 + a d eps`, whose variance is
/// `(a² - 1)²/2 + a² d²` (Var eps² = 2, Cov(eps², eps) = 0).
fn gaussian_mc_var(mu: f64, s: f64, m: f64, sp: f64) -> f64 {
    let (a, d) = (s / sp, (mu - m) / sp);
    (a * a - 1.0).powi(2) / 2.0 + a * a * d * d
}

#[test]
fn closed_form_kl_equals_the_mean_of_monte_carlo_estimates() -> Result<()> {
    let (m, sp) = (0.3, 0.8);
    let prior = LayerPrior::Gaussian { mean: m, sigma: sp };
    let (rows, calls) = (500, 40);
    let (q, mu64, s64) = posterior(&[0.5, -1.0, 0.3, 2.0], &[0.2, 0.5, 1.0, 1.5], rows)?;
    let noise = NoiseSource::new(11);
    let mut sum = 0.0;
    for _ in 0..calls {
        let eps = noise.standard_normal((rows, 4), &Device::Cpu)?;
        let kl = q.kl_monte_carlo(&prior, &eps)?;
        assert_eq!(scalar(&kl.l2)?, 0.0, "the MC estimate is all in rest");
        sum += scalar(&kl.rest)?;
    }
    let n = (rows * calls) as f64;
    let mc = sum / n;
    let exact = scalar(
        &posterior(&[0.5, -1.0, 0.3, 2.0], &[0.2, 0.5, 1.0, 1.5], 1)?
            .0
            .kl_closed_form(&prior)?
            .total()?,
    )?;
    let var: f64 = mu64
        .iter()
        .zip(&s64)
        .map(|(mu, s)| gaussian_mc_var(*mu, *s, m, sp))
        .sum();
    // sd of the mean of n one-sample estimates is sqrt(var / n); 5 sd.
    let tol = 5.0 * (var / n).sqrt();
    assert!(
        (mc - exact).abs() < tol,
        "MC mean {mc} vs closed form {exact} (tol {tol})"
    );
    Ok(())
}

#[test]
fn kl_gradients_are_l2_decay_on_mu_and_the_variance_part_on_rho() -> Result<()> {
    let (m, sp) = (0.25, 0.6);
    let prior = LayerPrior::Gaussian { mean: m, sigma: sp };
    let mu = [1.0, -0.7, 0.25, 3.0];
    let sigma = [0.1, 0.6, 1.3, 0.02];
    let (q, mu64, s64) = posterior(&mu, &sigma, 1)?;
    let kl = q.kl_closed_form(&prior)?;
    let want_mu: Vec<f64> = mu64.iter().map(|v| (v - m) / (sp * sp)).collect();
    let grad_of = |loss: &Tensor, var: &Var| -> Result<Option<Vec<f64>>> {
        let grads = loss.backward()?;
        Ok(match grads.get(var) {
            Some(g) => Some(
                g.flatten_all()?
                    .to_dtype(candle_core::DType::F64)?
                    .to_vec1()?,
            ),
            None => None,
        })
    };
    // f32 gradients of O(1..10): 1e-5 relative plus 1e-6 absolute.
    let close = |got: &[f64], want: &[f64]| {
        got.iter()
            .zip(want)
            .all(|(g, w)| (g - w).abs() <= 1e-5 * w.abs() + 1e-6)
    };
    for (name, loss) in [("total", kl.total()?), ("l2", kl.l2.clone())] {
        let g = grad_of(&loss, q.mu())?.expect("mu gradient");
        assert!(close(&g, &want_mu), "{name}: d/dmu {g:?} vs {want_mu:?}");
    }
    // `rest` does not depend on mu: no gradient, or an all-zero one.
    if let Some(g) = grad_of(&kl.rest, q.mu())? {
        assert!(g.iter().all(|v| *v == 0.0), "d rest / d mu = {g:?}");
    }
    // d rest / d rho = (sigma / sp² - 1 / sigma) · sigmoid(rho), through the
    // stable softplus; l2 does not depend on rho.
    let rho64: Vec<f64> = sigma
        .iter()
        .map(|s| inverse_softplus_f64(*s) as f32 as f64)
        .collect();
    let want_rho: Vec<f64> = s64
        .iter()
        .zip(&rho64)
        .map(|(s, r)| (s / (sp * sp) - 1.0 / s) / (1.0 + (-r).exp()))
        .collect();
    let g = grad_of(&kl.rest, q.rho())?.expect("rho gradient");
    // The 1/sigma term at sigma = 0.02 is 50 in f32; 1e-4 relative covers the
    // f32 rounding of sigma itself (sigma carries ~1e-7 relative error, and
    // the log1p series in softplus ~1e-6).
    assert!(
        g.iter()
            .zip(&want_rho)
            .all(|(g, w)| (g - w).abs() <= 1e-4 * w.abs() + 1e-6),
        "d rest / d rho {g:?} vs {want_rho:?}"
    );
    if let Some(g) = grad_of(&kl.l2, q.rho())? {
        assert!(g.iter().all(|v| *v == 0.0), "d l2 / d rho = {g:?}");
    }
    Ok(())
}

/// `d rest / d rho` of one element for a prior `N(0, sp²)`, in f64:
/// `(sigma / sp² - 1 / sigma) · sigmoid(rho)`, with `sigmoid(rho) / sigma`
/// evaluated as a ratio that stays ≈ 1 however negative rho is.
fn rest_grad_rho(rho: f64, sp: f64) -> f64 {
    let s = softplus_f64(rho);
    let sig = 1.0 / (1.0 + (-rho).exp());
    s / (sp * sp) * sig - sig / s
}

/// Gradient of the closed-form `rest` w.r.t. each given rho (prior N(0, 1)).
fn rest_grad_at(rhos: &[f32]) -> Result<Vec<f64>> {
    let dev = Device::Cpu;
    let mu = Var::from_tensor(&Tensor::zeros(rhos.len(), candle_core::DType::F32, &dev)?)?;
    let rho = Var::new(rhos, &dev)?;
    let q = FactoredGaussian::new(mu, rho.clone())?;
    let prior = LayerPrior::Gaussian {
        mean: 0.0,
        sigma: 1.0,
    };
    let grads = q.kl_closed_form(&prior)?.rest.backward()?;
    let g = grads.get(&rho).expect("rho gradient");
    Ok(g.to_dtype(candle_core::DType::F64)?.to_vec1()?)
}

#[test]
fn rest_gradient_through_the_stable_softplus_is_right_at_zero_and_in_the_tails() -> Result<()> {
    // rho = 0 is the kink of relu and |x| inside the stable softplus: the two
    // one-sided pieces must add up to sigmoid(0) = 1/2, not 0 or 1. At -30 and
    // -80 sigma (1e-13, 2e-35) is tiny but a normal f32: the gradient tends to
    // -1 (d(-ln sigma)/d rho = -sigmoid/sigma).
    let rhos = [0.0f32, -30.0, -80.0, 5.0, 30.0];
    let got = rest_grad_at(&rhos)?;
    for (r, g) in rhos.iter().zip(&got) {
        let want = rest_grad_rho(*r as f64, 1.0);
        // f32 chain of ~6 ops on O(1..30) values: 1e-5 relative.
        assert!(
            (g - want).abs() <= 1e-5 * want.abs(),
            "rho {r}: {g} vs {want}"
        );
    }
    Ok(())
}

#[test]
fn rest_gradient_is_finite_where_the_kl_is_finite() -> Result<()> {
    // sigma = softplus(-90) = 8e-40 and softplus(-100) = 4e-44 are f32
    // subnormals; the KL's rest (≈ -ln sigma = 89.5, 99.5) is finite and its
    // exact gradient is ≈ -1. A stable form uses ln sigma = rho (+ log1p
    // correction) for very negative rho instead of log(softplus(rho)).
    let rhos = [-90.0f32, -100.0];
    let got = rest_grad_at(&rhos)?;
    for (r, g) in rhos.iter().zip(&got) {
        let want = rest_grad_rho(*r as f64, 1.0);
        assert!((g - want).abs() <= 1e-4, "rho {r}: {g} vs {want}");
    }
    Ok(())
}

/// Composite Simpson's rule of `f` over `[a, b]` with `n` (even) intervals.
fn simpson(f: impl Fn(f64) -> f64, a: f64, b: f64, n: usize) -> f64 {
    let h = (b - a) / n as f64;
    let mut s = f(a) + f(b);
    for k in 1..n {
        let w = if k % 2 == 1 { 4.0 } else { 2.0 };
        s += w * f(a + k as f64 * h);
    }
    s * h / 3.0
}

fn ln_normal(x: f64, m: f64, s: f64) -> f64 {
    -0.5 * LN_2PI - s.ln() - (x - m).powi(2) / (2.0 * s * s)
}

/// f64 log density of a non-Gaussian prior.
fn ln_prior(p: &LayerPrior, w: f64) -> f64 {
    match *p {
        LayerPrior::Laplace { b } => -(2.0 * b).ln() - w.abs() / b,
        LayerPrior::ScaleMixture { pi, sigma1, sigma2 } => {
            let a = pi.ln() + ln_normal(w, 0.0, sigma1);
            let c = (1.0 - pi).ln() + ln_normal(w, 0.0, sigma2);
            let mx = a.max(c);
            mx + ((a - mx).exp() + (c - mx).exp()).ln()
        }
        LayerPrior::Gaussian { mean, sigma } => ln_normal(w, mean, sigma),
    }
}

/// Mean and variance under q = N(mu, s²) of `f(w) = ln q(w) - ln p(w)` (the
/// one-sample KL estimator of one element), by Simpson over mu ± 12 s (the
/// mass outside is 2e-33) with 20 000 intervals.
fn kl_by_quadrature(p: &LayerPrior, mu: f64, s: f64) -> (f64, f64) {
    let f = |w: f64| ln_normal(w, mu, s) - ln_prior(p, w);
    let q = |w: f64| ln_normal(w, mu, s).exp();
    let (a, b, n) = (mu - 12.0 * s, mu + 12.0 * s, 20_000);
    let m1 = simpson(|w| q(w) * f(w), a, b, n);
    let m2 = simpson(|w| q(w) * f(w).powi(2), a, b, n);
    (m1, m2 - m1 * m1)
}

#[test]
fn quadrature_reference_is_exact_where_a_closed_form_exists() {
    // Self-check of the reference: for a Gaussian prior it must reproduce the
    // closed-form KL and the analytic estimator variance; for Laplace, the
    // folded-normal mean E|w| = s sqrt(2/pi) e^{-mu²/2s²} + mu (1 - 2 Phi(-mu/s)).
    let g = LayerPrior::Gaussian {
        mean: 0.3,
        sigma: 0.8,
    };
    let (kl, var) = kl_by_quadrature(&g, -1.0, 0.5);
    let (l2, rest) = gaussian_kl_parts(-1.0, 0.5, 0.3, 0.8);
    assert!((kl - l2 - rest).abs() < 1e-10, "{kl} vs {}", l2 + rest);
    assert!((var - gaussian_mc_var(-1.0, 0.5, 0.3, 0.8)).abs() < 1e-9);

    let (mu, s, b): (f64, f64, f64) = (0.4, 0.7, 0.3);
    let phi = |z: f64| 0.5 * statrs::function::erf::erfc(-z / std::f64::consts::SQRT_2);
    let e_abs = s * (2.0 / std::f64::consts::PI).sqrt() * (-mu * mu / (2.0 * s * s)).exp()
        + mu * (1.0 - 2.0 * phi(-mu / s));
    let want = -0.5 * (2.0 * std::f64::consts::PI * std::f64::consts::E * s * s).ln()
        + (2.0 * b).ln()
        + e_abs / b;
    let (kl, _) = kl_by_quadrature(&LayerPrior::Laplace { b }, mu, s);
    // Simpson drops to second order at the kink of |w| at 0: the error there
    // is about h² q(0) / b with h = 24 s / 20000 ≈ 8e-4, i.e. ~1e-6; 1e-5.
    assert!((kl - want).abs() < 1e-5, "{kl} vs {want}");
}

/// Mean of `calls · rows` one-sample MC KL estimates for a `d`-element
/// posterior, against the quadrature reference; 5 sd of the mean.
fn check_mc_kl_is_unbiased(prior: LayerPrior, mu: &[f64], sigma: &[f64], seed: u64) -> Result<()> {
    let (rows, calls) = (500, 40);
    let (q, mu64, s64) = posterior(mu, sigma, rows)?;
    let noise = NoiseSource::new(seed);
    let mut sum = 0.0;
    for _ in 0..calls {
        let eps = noise.standard_normal((rows, mu.len()), &Device::Cpu)?;
        let kl = q.kl_monte_carlo(&prior, &eps)?;
        assert_eq!(scalar(&kl.l2)?, 0.0);
        sum += scalar(&kl.rest)?;
    }
    let n = (rows * calls) as f64;
    let mc = sum / n;
    let (mut want, mut var) = (0.0, 0.0);
    for (m, s) in mu64.iter().zip(&s64) {
        let (k, v) = kl_by_quadrature(&prior, *m, *s);
        want += k;
        var += v;
    }
    // The estimator's per-replica variance is `var` (quadrature); the mean of
    // n replicas has sd sqrt(var / n). 5 sd; the f32 evaluation adds ~1e-6
    // relative per element, far below that.
    let tol = 5.0 * (var / n).sqrt();
    assert!(
        (mc - want).abs() < tol,
        "{prior:?}: MC mean {mc} vs quadrature {want} (tol {tol})"
    );
    // The test can tell a biased estimator: the bias of dropping the entropy
    // term's constant (½ ln 2π per element) would be many tolerances.
    assert!(0.5 * LN_2PI > 10.0 * tol);
    Ok(())
}

#[test]
fn monte_carlo_kl_to_a_laplace_prior_is_unbiased() -> Result<()> {
    check_mc_kl_is_unbiased(
        LayerPrior::Laplace { b: 0.3 },
        &[0.0, 0.4, -1.2, 0.05],
        &[0.1, 0.7, 0.3, 0.02],
        21,
    )
}

#[test]
fn monte_carlo_kl_to_a_scale_mixture_prior_is_unbiased() -> Result<()> {
    check_mc_kl_is_unbiased(
        LayerPrior::ScaleMixture {
            pi: 0.25,
            sigma1: 1.0,
            sigma2: 0.05,
        },
        &[0.0, 0.02, 0.5, -1.0],
        &[0.01, 0.05, 0.3, 0.5],
        22,
    )
}

#[test]
fn kl_to_uses_the_closed_form_for_gaussian_and_monte_carlo_otherwise() -> Result<()> {
    let (q, _, _) = posterior(&[0.5, -0.2], &[0.3, 0.1], 1)?;
    let g = LayerPrior::Gaussian {
        mean: 0.0,
        sigma: 1.0,
    };
    let noise = NoiseSource::new(5);
    let a = q.kl_to(&g, &noise)?;
    let b = q.kl_closed_form(&g)?;
    assert_eq!(scalar(&a.l2)?, scalar(&b.l2)?);
    assert_eq!(scalar(&a.rest)?, scalar(&b.rest)?);
    // Laplace: the same eps the stream would give, replayed by reseeding.
    let lap = LayerPrior::Laplace { b: 0.5 };
    noise.reseed(9);
    let got = q.kl_to(&lap, &noise)?;
    noise.reseed(9);
    let eps = noise.standard_normal(2, &Device::Cpu)?.reshape((1, 2))?;
    let want = q.kl_monte_carlo(&lap, &eps)?;
    assert_eq!(scalar(&got.rest)?, scalar(&want.rest)?);
    assert_eq!(scalar(&got.l2)?, 0.0);
    Ok(())
}

#[test]
fn gaussian_prior_weight_decay_is_kl_l2_per_squared_mean_and_example() -> Result<()> {
    let mu = [0.8, -1.1, 0.05, 2.0, -0.3];
    let (q, mu64, _) = posterior(&mu, &[0.1; 5], 1)?;
    let n_data = 250;
    for sp in [0.1, 0.7, 3.0] {
        let prior = LayerPrior::Gaussian {
            mean: 0.0,
            sigma: sp,
        };
        let l2 = scalar(&q.kl_closed_form(&prior)?.l2)?;
        let sum_sq: f64 = mu64.iter().map(|m| m * m).sum();
        let lambda = gaussian_prior_weight_decay(sp, n_data)?;
        let implied = l2 / (n_data as f64 * sum_sq);
        // f32 l2: 1e-6 relative.
        assert!(
            (implied / lambda - 1.0).abs() < 1e-6,
            "sigma_p {sp}: {implied} vs {lambda}"
        );
        assert!((lambda - 1.0 / (2.0 * sp * sp * n_data as f64)).abs() < 1e-15 * lambda.max(1.0));
    }
    Ok(())
}

#[test]
fn elbo_loss_is_nll_over_temperature_plus_beta_kl_over_n() -> Result<()> {
    let dev = Device::Cpu;
    let n_data = 200;
    let elbo = Elbo::new(n_data)?
        .with_schedule(KlSchedule::LinearWarmup { epochs: 4.0 })?
        .with_temperature(0.5)?;
    assert_eq!(elbo.n_data(), n_data);
    let nll = Tensor::new(1.25f32, &dev)?;
    let kl = KlTerms {
        l2: Tensor::new(30.0f32, &dev)?,
        rest: Tensor::new(10.0f32, &dev)?,
    };
    // beta = min(1, e / 4): 0 at the start, 0.25 after one epoch, 1 from 4 on.
    for (epochs_done, beta) in [(0.0, 0.0), (1.0, 0.25), (3.0, 0.75), (4.0, 1.0), (9.5, 1.0)] {
        let t = elbo.terms(&nll, &kl, epochs_done)?;
        assert_eq!(t.beta, beta, "beta after {epochs_done} epochs");
        let v = t.values()?;
        let want = 1.25 / 0.5 + beta * 40.0 / n_data as f64;
        // Values are exact in binary except 1/200; f32: 1e-6.
        assert!(
            (v.loss - want).abs() < 1e-6,
            "epoch {epochs_done}: {} vs {want}",
            v.loss
        );
        assert_eq!((v.nll, v.kl, v.kl_l2, v.kl_rest), (1.25, 40.0, 30.0, 10.0));
    }
    // The plain ELBO: beta = 1, T = 1.
    let v = Elbo::new(n_data)?.terms(&nll, &kl, 0.0)?.values()?;
    assert!((v.loss - (1.25 + 40.0 / 200.0)).abs() < 1e-6);
    Ok(())
}

fn invalid_name(r: Result<impl std::fmt::Debug>) -> String {
    match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("expected an InvalidParameter error, got {other:?}"),
    }
}

#[test]
fn invalid_elbo_settings_error_naming_the_parameter() {
    assert!(invalid_name(Elbo::new(0)).contains("n_data"));
    let elbo = Elbo::new(10).unwrap();
    for t in [0.0, -1.0, f64::NAN, f64::INFINITY] {
        assert!(invalid_name(elbo.with_temperature(t)).contains("temperature"));
    }
    for e in [0.0, -2.0, f64::NAN] {
        let name = invalid_name(elbo.with_schedule(KlSchedule::LinearWarmup { epochs: e }));
        assert!(name.contains("warm-up"), "{name}");
    }
    let name = invalid_name(elbo.with_schedule(KlSchedule::Constant { beta: -0.1 }));
    assert!(name.contains("beta"), "{name}");
    assert!(invalid_name(gaussian_prior_weight_decay(0.0, 10)).contains("sigma"));
    assert!(invalid_name(gaussian_prior_weight_decay(1.0, 0)).contains("n_data"));
    // The message carries the name too.
    let msg = Elbo::new(10)
        .unwrap()
        .with_temperature(-1.0)
        .unwrap_err()
        .to_string();
    assert!(msg.contains("temperature") && msg.contains("-1"), "{msg}");
}
