//! The NNGP limit: closed-form kernels against Monte Carlo, finite networks
//! converging to them, and exact GP regression (the CLI's JSON is in
//! `studies_cli.rs`).

use candle_bnn::data::{toy_gap, Dataset};
use candle_bnn::layers::Activation;
use candle_bnn::studies::gauss_hermite::{GaussHermite, DEFAULT_NODES};
use candle_bnn::studies::gp::ExactGp;
use candle_bnn::studies::mean_field::{predicted_variances, LayerVariance};
use candle_bnn::studies::nngp::{self, NngpConfig};
use candle_bnn::studies::nngp_kernel::{erf_cross_moment, relu_cross_moment, NngpKernel};
use candle_bnn::studies::random_mlp::Norm;
use candle_bnn::{Prior, Result};
use candle_core::Device;
use nalgebra::DMatrix;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// Mean and standard error of `f(u, v)` over 10^6 draws of
/// `(u, v) ~ N(0, [[k11, k12], [k12, k22]])`.
fn monte_carlo(k11: f64, k22: f64, k12: f64, f: impl Fn(f64, f64) -> f64) -> (f64, f64) {
    let n = 1_000_000;
    let mut rng = StdRng::seed_from_u64(11);
    let (a, c) = (k11.sqrt(), k12 / k11.sqrt());
    let d = (k22 - c * c).max(0.0).sqrt();
    let (mut sum, mut sum2) = (0.0, 0.0);
    for _ in 0..n {
        let (e1, e2): (f64, f64) = (rng.sample(StandardNormal), rng.sample(StandardNormal));
        let y = f(a * e1, c * e1 + d * e2);
        sum += y;
        sum2 += y * y;
    }
    let mean = sum / n as f64;
    (mean, ((sum2 / n as f64 - mean * mean) / n as f64).sqrt())
}

/// Covariances from perfectly correlated to anti-correlated, small and large
/// scale. A correct closed form is within 5 standard errors of 10^6 draws
/// (a 1-in-10^6 event per check; the seed is fixed, so the test is
/// deterministic).
const COVARIANCES: [(f64, f64, f64); 6] = [
    (1.0, 1.0, 1.0),
    (1.0, 1.0, 0.5),
    (2.0, 0.5, 0.0),
    (1.0, 1.0, -0.7),
    (4.0, 9.0, 5.0),
    (0.1, 0.3, -0.12),
];

#[test]
fn arc_cosine_kernel_matches_monte_carlo() {
    for (k11, k22, k12) in COVARIANCES {
        let (mc, se) = monte_carlo(k11, k22, k12, |u, v| u.max(0.0) * v.max(0.0));
        let exact = relu_cross_moment(k11, k22, k12);
        assert!(
            (exact - mc).abs() < 5.0 * se,
            "{k11},{k22},{k12}: {exact} vs {mc} ± {se}"
        );
    }
}

#[test]
fn erf_kernel_matches_monte_carlo() {
    use statrs::function::erf::erf;
    for (k11, k22, k12) in COVARIANCES {
        let (mc, se) = monte_carlo(k11, k22, k12, |u, v| erf(u) * erf(v));
        let exact = erf_cross_moment(k11, k22, k12);
        assert!(
            (exact - mc).abs() < 5.0 * se,
            "{k11},{k22},{k12}: {exact} vs {mc} ± {se}"
        );
    }
}

/// On the diagonal the kernel recursion is the mean-field variance
/// recursion; both are closed forms here, so they agree to rounding.
#[test]
fn kernel_diagonal_is_the_mean_field_variance() -> Result<()> {
    let rule = GaussHermite::new(DEFAULT_NODES)?;
    let sizes = [3usize, 40, 40, 1];
    let x = [0.3, -1.2, 2.0];
    let m = x.iter().map(|v| v * v).sum::<f64>() / 3.0;
    for activation in [Activation::Relu, Activation::Erf] {
        let kernel = NngpKernel::new(&Prior::He, activation, &sizes)?;
        let layers = LayerVariance::of_mlp(&Prior::He, &sizes)?;
        let q = predicted_variances(m, &layers, activation, Norm::None, &rule);
        let k = kernel.diagonal(&x)[0];
        assert!(
            (k / q[q.len() - 1] - 1.0).abs() < 1e-12,
            "{activation}: {k} vs {q:?}"
        );
    }
    assert!(NngpKernel::new(&Prior::He, Activation::Tanh, &sizes).is_err());
    Ok(())
}

/// The gap to the NNGP kernel shrinks like width^-1/2: from 64 to 1024
/// units a factor √16 = 4 is expected. The error of one width is a maximum
/// over noisy entries (its spread between seeds is about ±40% at 4
/// networks), so the test asks for a factor 2 and a slope below -0.25.
#[test]
fn finite_networks_approach_the_nngp_kernel() -> Result<()> {
    let config = NngpConfig {
        widths: vec![64, 1024],
        networks: 4,
        points: 8,
        ..NngpConfig::default()
    };
    for gap in nngp::kernel_convergence(&config, &Device::Cpu)? {
        let (narrow, wide) = (gap.max_rel_err[0], gap.max_rel_err[1]);
        assert!(
            wide < narrow / 2.0,
            "{}: {narrow} -> {wide}",
            gap.activation
        );
        assert!(gap.slope < -0.25, "{}: slope {}", gap.activation, gap.slope);
    }
    Ok(())
}

/// The log marginal likelihood against its definition with an explicit
/// inverse and determinant; the prediction against the textbook formulas.
/// All in f64 on a 6x6 system: 1e-10.
#[test]
fn exact_gp_matches_its_formulas() -> Result<()> {
    let x: Vec<f64> = (0..8).map(|i| -2.0 + 0.5 * i as f64).collect();
    let y: Vec<f64> = x[..6].iter().map(|v| v.sin()).collect();
    let kernel = NngpKernel::new(&Prior::He, Activation::Relu, &[1, 50, 1])?;
    let k = kernel.matrix(&x[..6], &x[..6])?;
    let noise = 0.05;
    let gp = ExactGp::fit(&k, &y, noise)?;
    let c = &k + DMatrix::identity(6, 6) * noise;
    let inv = c
        .clone()
        .try_inverse()
        .ok_or_else(|| candle_bnn::Error::invalid("c", "", ""))?;
    let yv = nalgebra::DVector::from_column_slice(&y);
    let want = -0.5 * (yv.transpose() * &inv * &yv)[(0, 0)]
        - 0.5 * c.determinant().ln()
        - 3.0 * (2.0 * std::f64::consts::PI).ln();
    assert!((gp.log_marginal_likelihood() - want).abs() < 1e-10);

    let ks = kernel.matrix(&x[6..], &x[..6])?;
    let (means, vars) = gp.predict(&ks, &kernel.diagonal(&x[6..]))?;
    for j in 0..2 {
        let kj = ks.row(j).transpose();
        let mean = (kj.transpose() * &inv * &yv)[(0, 0)];
        let var =
            kernel.diagonal(&x[6 + j..7 + j])[0] - (kj.transpose() * &inv * &kj)[(0, 0)] + noise;
        assert!((means[j] - mean).abs() < 1e-10 && (vars[j] - var).abs() < 1e-10);
    }

    // The noise chosen from a grid is the grid's argmax of the likelihood.
    let grid = [1e-3, 1e-2, 0.1, 1.0];
    let best = ExactGp::fit_noise(&k, &y, &grid)?;
    for g in grid {
        assert!(
            ExactGp::fit(&k, &y, g)?.log_marginal_likelihood() <= best.log_marginal_likelihood()
        );
    }
    Ok(())
}

fn split(data: &Dataset, n_train: usize) -> (Dataset, Dataset) {
    let train: Vec<usize> = (0..n_train).collect();
    let test: Vec<usize> = (n_train..data.len()).collect();
    (data.subset(&train), data.subset(&test))
}

/// On y = sin(2x) + x/2 + noise(0.2) both predictors beat the constant
/// (the target's std is ≈ 1.2), and the GP picks a noise level of the right
/// size (0.2 up to the grid's spacing and the fit: within a factor 2.5).
#[test]
fn gp_and_bbb_baseline_runs_on_synthetic_data() -> Result<()> {
    let data = toy_gap(160, 0.2, 3)?;
    let (train, test) = split(&data, 120);
    let config = NngpConfig {
        epochs: 30,
        samples: 20,
        hidden: 16,
        ..NngpConfig::default()
    };
    let b = nngp::baseline(&train, &test, &config, &Device::Cpu)?;
    let mean = test.y.iter().sum::<f64>() / test.len() as f64;
    let sd = (test.y.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / test.len() as f64).sqrt();
    assert!(
        b.gp_test_rmse < 0.5 * sd,
        "GP {} vs sd {sd}",
        b.gp_test_rmse
    );
    assert!(b.bnn_test_rmse < sd, "BBB {} vs sd {sd}", b.bnn_test_rmse);
    assert!(b.gp_test_ll.is_finite() && b.bnn_test_ll.is_finite());
    assert!(
        (0.08..0.5).contains(&b.gp_noise_std),
        "noise {}",
        b.gp_noise_std
    );
    Ok(())
}
