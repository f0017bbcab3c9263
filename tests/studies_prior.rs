//! Prior predictive draws against the NNGP band, entropies at equal
//! variance (the CLI's JSON is in `studies_cli.rs`).

use candle_bnn::layers::Activation;
use candle_bnn::studies::prior_predictive::{self, entropies, PriorStudyConfig};
use candle_bnn::{Prior, Result};
use candle_core::Device;

/// Gaussian > Laplace > mixture > uniform at equal variance, with the
/// closed forms and the library's sample/log_prob agreeing. Each Monte Carlo
/// estimate has a standard error of ~0.003 from 10^5 draws; its f32
/// log-density sums add ~1e-4. 5 se + 1e-3 bounds both.
#[test]
fn gaussian_has_the_largest_entropy_at_equal_variance() -> Result<()> {
    let sigma = 0.3;
    let rows = entropies(sigma, 100_000, 1, &Device::Cpu)?;
    let order: Vec<&str> = rows.iter().map(|r| r.distribution.as_str()).collect();
    assert_eq!(order, ["gaussian", "laplace", "mixture", "uniform"]);
    let ln_sigma = sigma.ln();
    let closed = |name: &str| {
        rows.iter()
            .find(|r| r.distribution == name)
            .and_then(|r| r.entropy)
    };
    // ½ ln(2πe) = 1.41894, 1 + ln √2 = 1.34657, ln(2√3) = 1.24245 (plus ln σ).
    for (name, want) in [
        ("gaussian", 1.418_938_5),
        ("laplace", 1.346_573_6),
        ("uniform", 1.242_453_3),
    ] {
        let got = closed(name).unwrap_or(f64::NAN);
        assert!((got - (want + ln_sigma)).abs() < 1e-6, "{name}: {got}");
    }
    for r in &rows {
        if let (Some(mc), Some(se)) = (r.entropy_mc, r.entropy_mc_se) {
            let reference = r.entropy.unwrap_or(mc);
            assert!(
                (mc - reference).abs() < 5.0 * se + 1e-3,
                "{}: {mc} ± {se}",
                r.distribution
            );
            assert!(se > 0.0 && se < 0.01, "{}: se {se}", r.distribution);
        }
    }
    Ok(())
}

/// The draws' root-mean-square against √K(x, x). For ReLU the finite-width
/// second moment equals the recursion exactly in expectation, so only Monte
/// Carlo error is left: 200 draws give each point's mean square a relative
/// sd of about √(2/200) = 0.1 (more with finite-width kurtosis), and the
/// grid average of correlated points barely reduces it, so ±25% on the rms
/// ratio is over 4 sd of the rms (sd ≈ 0.05).
#[test]
fn prior_draws_follow_the_nngp_band() -> Result<()> {
    let config = PriorStudyConfig {
        priors: vec![Prior::He, Prior::standard()],
        width: 256,
        draws: 200,
        entropy_samples: 1000,
        ..PriorStudyConfig::default()
    };
    let r = prior_predictive::run(&config, &Device::Cpu)?;
    for p in &r.priors {
        assert_eq!(p.draws.len(), 200);
        assert!(
            (0.75..1.25).contains(&p.std_ratio),
            "{}: {}",
            p.prior,
            p.std_ratio
        );
    }
    // At x = 0 only biases feed the first layer: q_1 = σ_b² = 2 (He at fan-in
    // 1), then q_{l+1} = σ_w² q_l / 2 + σ_b² with σ_w² = 2, σ_b² = 2/256.
    let he = &r.priors[0];
    let mid = he.grid.len() / 2;
    let k0 = {
        let q1: f64 = 2.0;
        let q2 = 2.0 * q1 / 2.0 + 2.0 / 256.0;
        2.0 * q2 / 2.0 + 2.0 / 256.0
    };
    assert!(
        (he.nngp_std[mid] - k0.sqrt()).abs() < 1e-12,
        "{}",
        he.nngp_std[mid]
    );
    assert_eq!(r.activation, Activation::Relu);
    Ok(())
}
