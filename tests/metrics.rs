//! Integration tests of the scores: each metric against hand-computed values
//! on tiny inputs, the closed-form mixture CRPS against a Monte Carlo
//! estimate and the single-Gaussian formula, ECE of calibrated and
//! overconfident classifiers within derived sampling tolerances, and the two
//! reports (consistency with the functions, serde round trips).

mod synthetic;

use candle_bnn::metrics::{
    accuracy, brier, calibration_curve, calibration_curve_from_pit, calibration_error,
    calibration_error_weighted, calibration_levels, categorical_nll, crps, ece, interval_metrics,
    interval_score, mae, mce, miscalibration_area, mpiw, nll, picp, reliability_diagram, rmse,
    sharpness, CalibrationPoint, ClassificationReport, IntervalMetrics, RegressionReport, ECE_BINS,
};
use candle_bnn::predictive::{CategoricalMixture, GaussianMixture, Intervals};
use candle_bnn::Result;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;
use statrs::distribution::{Continuous, ContinuousCDF, Normal};

fn close(a: f64, b: f64, tol: f64, what: &str) {
    assert!((a - b).abs() <= tol, "{what}: {a} vs {b} (tol {tol})");
}

fn point(nominal: f64, observed: f64) -> CalibrationPoint {
    CalibrationPoint { nominal, observed }
}

/// `sigma [z (2Φ(z) - 1) + 2 φ(z) - 1/√π]`, `z = (y - mu)/sigma` (Gneiting,
/// Raftery, Westveld & Goldman 2005), with statrs' normal.
fn crps_gaussian(mu: f64, sigma: f64, y: f64) -> f64 {
    let n = Normal::standard();
    let z = (y - mu) / sigma;
    sigma * (z * (2.0 * n.cdf(z) - 1.0) + 2.0 * n.pdf(z) - 1.0 / std::f64::consts::PI.sqrt())
}

#[test]
fn point_scores_by_hand() -> Result<()> {
    close(
        rmse(&[1.0, 2.0, 3.0], &[2.0, 4.0, 3.0])?,
        (5.0f64 / 3.0).sqrt(),
        1e-15,
        "rmse",
    );
    close(mae(&[1.0, 2.0, 3.0], &[2.0, 4.0, 3.0])?, 1.0, 1e-15, "mae");
    assert!(mae(&[1.0], &[1.0, 2.0]).is_err());
    Ok(())
}

#[test]
fn crps_of_one_gaussian_is_the_closed_form() -> Result<()> {
    // N(0, 1) at its mean: 2φ(0) - 1/√π = (√2 - 1)/√π = 0.233695…
    let std_normal = GaussianMixture::new(1, 1, vec![0.0], vec![1.0])?;
    let want = (2f64.sqrt() - 1.0) / std::f64::consts::PI.sqrt();
    close(crps(&std_normal, &[0.0])?, want, 1e-15, "CRPS N(0,1) at 0");
    close(want, 0.233_694_977_255_109_07, 1e-15, "reference value");

    let rows = [
        (0.0, 1.0, 0.3),
        (-3.5, 0.2, -3.1),
        (12.0, 4.0, 30.0),
        (1.0, 1e-3, 1.0),
    ];
    let dist = GaussianMixture::new(
        rows.len(),
        1,
        rows.iter().map(|r| r.0).collect(),
        rows.iter().map(|r| r.1).collect(),
    )?;
    for (i, (mu, s, y)) in rows.iter().enumerate() {
        let one = GaussianMixture::new(1, 1, vec![*mu], vec![*s])?;
        // Same formula, statrs' erf vs ours: a few ulps of sigma·(1 + |z|).
        close(
            crps(&one, &[*y])?,
            crps_gaussian(*mu, *s, *y),
            1e-13 * s.max(1.0) * (1.0 + (y - mu).abs() / s),
            &format!("row {i}"),
        );
    }
    let ys: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let mean = rows
        .iter()
        .map(|(m, s, y)| crps_gaussian(*m, *s, *y))
        .sum::<f64>()
        / 4.0;
    close(crps(&dist, &ys)?, mean, 1e-12, "mean over rows");
    Ok(())
}

/// Near-point-mass components: CRPS of `½δ_a + ½δ_b` at `y` is
/// `(|a-y| + |b-y|)/2 - |a-b|/4`; with a=0, b=2, y=0.5: 1 - 0.5 = 0.5.
/// Identical components give the single Gaussian's CRPS.
#[test]
fn crps_of_mixtures_by_hand() -> Result<()> {
    let spikes = GaussianMixture::new(1, 2, vec![0.0, 2.0], vec![1e-9, 1e-9])?;
    close(crps(&spikes, &[0.5])?, 0.5, 1e-8, "two spikes");
    let twins = GaussianMixture::new(1, 3, vec![1.0; 3], vec![2.0; 3])?;
    close(
        crps(&twins, &[-0.7])?,
        crps_gaussian(1.0, 2.0, -0.7),
        1e-13,
        "identical components",
    );
    assert!(crps(&twins, &[f64::NAN]).is_err());
    assert!(crps(&twins, &[1.0, 2.0]).is_err());
    Ok(())
}

/// The closed form against `E|X - y| - ½ E|X - X'|` estimated from 10⁶
/// independent pairs `(X, X')` of the mixture per row. The estimator is a
/// mean of i.i.d. terms `d_k = |X_k - y| - ½|X_k - X'_k|`, so its error has
/// sd `sd(d)/√N`; the tolerance is 5 of those (a two-sided 5σ miss has
/// probability 6e-7 per row).
#[test]
fn mixture_crps_matches_monte_carlo() -> Result<()> {
    let means = vec![0.0, 1.5, -2.0, 3.0, 3.2, 2.9, -1.0, 4.0, 0.5];
    let stds = vec![1.0, 0.5, 2.0, 0.1, 0.3, 0.2, 3.0, 0.7, 1.1];
    let ys = [0.4, 5.0, -1.5];
    let dist = GaussianMixture::new(3, 3, means.clone(), stds.clone())?;
    let mut rng = StdRng::seed_from_u64(2006);
    const N: usize = 1_000_000;
    let draw = |i: usize, rng: &mut StdRng| {
        let t = 3 * i + rng.random_range(0..3usize);
        means[t] + stds[t] * rng.sample::<f64, _>(StandardNormal)
    };
    let mut total = 0.0;
    for (i, y) in ys.iter().enumerate() {
        let (mut sum, mut sum2) = (0.0, 0.0);
        for _ in 0..N {
            let (x, x2) = (draw(i, &mut rng), draw(i, &mut rng));
            let d = (x - y).abs() - 0.5 * (x - x2).abs();
            sum += d;
            sum2 += d * d;
        }
        let mc = sum / N as f64;
        let sd = ((sum2 / N as f64 - mc * mc) * N as f64 / (N - 1) as f64).sqrt();
        let row = GaussianMixture::new(
            1,
            3,
            means[3 * i..3 * i + 3].to_vec(),
            stds[3 * i..3 * i + 3].to_vec(),
        )?;
        let exact = crps(&row, &[*y])?;
        close(exact, mc, 5.0 * sd / (N as f64).sqrt(), &format!("row {i}"));
        total += exact;
    }
    close(crps(&dist, &ys)?, total / 3.0, 1e-14, "mean of rows");
    Ok(())
}

#[test]
fn intervals_coverage_width_and_score_by_hand() -> Result<()> {
    // Level 0.8, α = 0.2, penalty 2/α = 10 per unit outside:
    // y = 0.5 inside -> 1; y = -0.5 -> 1 + 10·0.5 = 6; y = 2 -> 1 + 10·1 = 11.
    let iv = Intervals {
        level: 0.8,
        lower: vec![0.0; 3],
        upper: vec![1.0; 3],
    };
    let ys = [0.5, -0.5, 2.0];
    close(interval_score(&iv, &ys)?, 6.0, 1e-14, "interval score");
    close(picp(&iv, &ys)?, 1.0 / 3.0, 1e-15, "picp");
    assert_eq!(mpiw(&iv), 1.0);
    let m = IntervalMetrics::of(&iv, &ys)?;
    assert_eq!((m.level, m.mpiw), (0.8, 1.0));

    // All inside: the score is the width.
    let wide = Intervals {
        level: 0.95,
        lower: vec![-1.0, 0.0, 2.0],
        upper: vec![1.0, 3.0, 2.5],
    };
    let inside = [0.0, 3.0, 2.0];
    close(
        interval_score(&wide, &inside)?,
        mpiw(&wide),
        1e-15,
        "score = width inside",
    );
    close(mpiw(&wide), (2.0 + 3.0 + 0.5) / 3.0, 1e-15, "mpiw");

    let bad_level = Intervals {
        level: 1.0,
        ..wide.clone()
    };
    assert!(interval_score(&bad_level, &inside).is_err());
    assert!(interval_score(&wide, &[0.0]).is_err());
    Ok(())
}

/// Standard normal rows at their quantile levels: the 50% interval is
/// ±z, z = Φ⁻¹(0.75) = 0.674489…; targets 0, 0.5 inside, 1, 3 outside.
#[test]
fn interval_metrics_at_several_levels() -> Result<()> {
    let dist = GaussianMixture::new(4, 1, vec![0.0; 4], vec![1.0; 4])?;
    let ys = [0.0, 0.5, 1.0, 3.0];
    let z50 = Normal::standard().inverse_cdf(0.75);
    let z90 = Normal::standard().inverse_cdf(0.95);
    let got = interval_metrics(&dist, &ys, &[0.5, 0.9])?;
    assert_eq!(got.len(), 2);
    assert_eq!((got[0].level, got[0].picp), (0.5, 0.5));
    close(got[0].mpiw, 2.0 * z50, 1e-9, "mpiw50");
    let is50 = 2.0 * z50 + 4.0 * ((1.0 - z50) + (3.0 - z50)) / 4.0;
    close(got[0].interval_score, is50, 1e-8, "IS50");
    assert_eq!(got[1].picp, 0.75);
    close(
        got[1].interval_score,
        2.0 * z90 + 20.0 * (3.0 - z90) / 4.0,
        1e-8,
        "IS90",
    );
    Ok(())
}

#[test]
fn calibration_errors_and_area_by_hand() -> Result<()> {
    let curve = [point(0.5, 0.4), point(0.9, 0.8)];
    close(
        calibration_error(&curve),
        (0.01 + 0.01) / 2.0,
        1e-15,
        "equal weights",
    );
    close(
        calibration_error_weighted(&curve, &[0.5, 0.5])?,
        calibration_error(&curve),
        1e-15,
        "w = 1/J",
    );
    close(
        calibration_error_weighted(&curve, &[1.0, 3.0])?,
        0.04,
        1e-15,
        "weighted",
    );
    assert!(calibration_error_weighted(&curve, &[1.0]).is_err());
    assert!(calibration_error_weighted(&curve, &[1.0, -1.0]).is_err());

    // One point (0.5, 0.4): the triangle (0,0)-(0.5,0.4)-(1,1) against the
    // diagonal has area ½ · 1 · 0.1 = 0.05.
    close(
        miscalibration_area(&[point(0.5, 0.4)])?,
        0.05,
        1e-15,
        "one point",
    );
    // Trapezoids: gaps -0.1, -0.1 at 0.5, 0.9 -> 0.025 + 0.04 + 0.005 = 0.07.
    close(miscalibration_area(&curve)?, 0.07, 1e-15, "two points");
    assert_eq!(
        miscalibration_area(&[point(0.3, 0.3), point(0.7, 0.7)])?,
        0.0
    );
    // Worst case: nothing covered below 1 -> area ½.
    close(
        miscalibration_area(&[point(0.999_999, 0.0)])?,
        0.5,
        1e-6,
        "worst case",
    );
    assert!(miscalibration_area(&[point(0.5, 1.2)]).is_err());
    Ok(())
}

/// The PIT route and the interval route of the calibration curve agree on
/// random mixtures (ties at bisection tolerance have probability ~0).
#[test]
fn calibration_curve_equals_counting_inside_intervals() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let (n, t) = (300, 4);
    let means: Vec<f64> = (0..n * t).map(|_| rng.sample(StandardNormal)).collect();
    let stds: Vec<f64> = (0..n * t).map(|_| 0.2 + rng.random::<f64>()).collect();
    let ys: Vec<f64> = (0..n)
        .map(|_| 1.5 * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let dist = GaussianMixture::new(n, t, means, stds)?;
    let levels = calibration_levels();
    let curve = calibration_curve(&dist, &ys, &levels)?;
    for (c, level) in curve.iter().zip(&levels) {
        assert_eq!(
            c.observed,
            picp(&dist.interval(*level)?, &ys)?,
            "level {level}"
        );
    }
    assert_eq!(calibration_curve_from_pit(&dist.pit(&ys)?, &levels)?, curve);
    assert!(calibration_curve_from_pit(&[0.5, 1.5], &levels).is_err());
    assert!(calibration_curve_from_pit(&[0.5], &[0.0]).is_err());
    Ok(())
}

#[test]
fn sharpness_is_the_rms_of_total_std() -> Result<()> {
    let two_rows = GaussianMixture::new(2, 1, vec![0.0, 5.0], vec![1.0, 7.0])?;
    close(sharpness(&two_rows)?, 5.0, 1e-15, "sqrt((1 + 49)/2)");
    // Components N(0,1), N(2,1): aleatoric 1 + epistemic 1 = variance 2.
    let spread = GaussianMixture::new(1, 2, vec![0.0, 2.0], vec![1.0, 1.0])?;
    close(sharpness(&spread)?, 2f64.sqrt(), 1e-15, "mixture variance");
    assert!(sharpness(&GaussianMixture::new(0, 1, vec![], vec![])?).is_err());
    Ok(())
}

/// Four rows, three classes, hand-computed:
///
/// ```text
/// p̄                 y  hit  conf  -ln p̄_y   Brier
/// 0.7  0.2  0.1     0   1   0.7   ln(1/0.7)  0.09+0.04+0.01   = 0.14
/// 0.1  0.6  0.3     2   0   0.6   ln(1/0.3)  0.01+0.36+0.49   = 0.86
/// 0.2  0.2  0.6     2   1   0.6   ln(1/0.6)  0.04+0.04+0.16   = 0.24
/// 0.05 0.9  0.05    1   1   0.9   ln(1/0.9)  0.0025+0.01+0.0025 = 0.015
/// ```
///
/// 15 bins: 0.7 in (0.667, 0.733], both 0.6 in (0.533, 0.6], 0.9 in
/// (0.867, 0.933]; ECE = ¼·0.3 + ½·|0.5 - 0.6| + ¼·0.1 = 0.15, MCE = 0.3.
/// Each row is given as two samples whose mean is p̄ (the metrics score the
/// predictive, not the samples).
#[test]
fn classification_scores_by_hand() -> Result<()> {
    let rows = [
        [0.7, 0.2, 0.1],
        [0.1, 0.6, 0.3],
        [0.2, 0.2, 0.6],
        [0.05, 0.9, 0.05],
    ];
    let labels = [0, 2, 2, 1];
    let mut probs = Vec::new();
    for r in rows {
        // p̄ ± d with d summing to 0 and keeping both inside [0, 1].
        let d = [0.04, -0.02, -0.02];
        probs.extend(r.iter().zip(d).map(|(p, d)| p + d));
        probs.extend(r.iter().zip(d).map(|(p, d)| p - d));
    }
    let dist = CategoricalMixture::new(4, 2, 3, probs)?;
    close(accuracy(&dist, &labels)?, 0.75, 1e-15, "accuracy");
    let nll = -(0.7f64.ln() + 0.3f64.ln() + 0.6f64.ln() + 0.9f64.ln()) / 4.0;
    close(categorical_nll(&dist, &labels)?, nll, 1e-14, "nll");
    close(
        brier(&dist, &labels)?,
        (0.14 + 0.86 + 0.24 + 0.015) / 4.0,
        1e-14,
        "brier",
    );
    close(ece(&dist, &labels, ECE_BINS)?, 0.15, 1e-14, "ece");
    close(mce(&dist, &labels, ECE_BINS)?, 0.3, 1e-14, "mce");
    let bins = reliability_diagram(&dist, &labels, ECE_BINS)?;
    assert_eq!(bins.iter().map(|b| b.count).sum::<usize>(), 4);
    // Both 0.6 rows share a bin ((0.533, 0.6], or the next if rounding of
    // the two-sample mean lands a hair above 0.6).
    let pair = bins
        .iter()
        .find(|b| b.count == 2)
        .map(|b| (b.confidence, b.accuracy));
    let (conf, acc) = pair.unwrap_or((f64::NAN, f64::NAN));
    close(conf, 0.6, 1e-14, "shared bin confidence");
    assert_eq!(acc, 0.5);

    let report = ClassificationReport::new(&dist, &labels)?;
    assert_eq!(report.accuracy, accuracy(&dist, &labels)?);
    assert_eq!(report.ece, ece(&dist, &labels, ECE_BINS)?);
    assert!(report.mutual_information > 0.0);
    let mean_entropy = dist.entropy().iter().sum::<f64>() / 4.0;
    close(report.entropy, mean_entropy, 1e-15, "mean entropy");
    let back: ClassificationReport = serde_json::from_str(&serde_json::to_string(&report)?)?;
    assert_eq!(back, report);

    assert!(
        accuracy(&dist, &[0, 1, 2, 3]).is_err(),
        "label 3 of 3 classes"
    );
    assert!(brier(&dist, &[0, 1]).is_err());
    assert!(ece(&dist, &labels, 0).is_err());
    Ok(())
}

/// A zero probability on the label costs ≈ 708 nats, not infinity.
#[test]
fn categorical_nll_is_finite_for_a_zero_probability() -> Result<()> {
    let dist = CategoricalMixture::new(1, 1, 2, vec![1.0, 0.0])?;
    let v = categorical_nll(&dist, &[1])?;
    assert!(v.is_finite() && v > 700.0, "{v}");
    Ok(())
}

/// Tolerance for a calibrated classifier: with confidence c_i = P(correct),
/// each bin's |acc_b - conf_b| has mean at most sqrt(¼/n_b), so E[ECE] <=
/// ½·sqrt(B/n) = 0.0087 for B = 15, n = 50 000; one label moves ECE by at
/// most 1/n, so by McDiarmid P(ECE > E + t) <= exp(-2 t² n), and t = 0.0118
/// makes that 1e-6. Bound: 0.0087 + 0.0118 = 0.0205.
#[test]
fn ece_is_near_zero_when_calibrated_and_large_when_overconfident() -> Result<()> {
    let n = 50_000;
    let bound =
        0.5 * (ECE_BINS as f64 / n as f64).sqrt() + (6.0 * 10f64.ln() / (2.0 * n as f64)).sqrt();
    let (calibrated, labels) = synthetic::classifier(&mut StdRng::seed_from_u64(17), n, 3, 1.0)?;
    let e = ece(&calibrated, &labels, ECE_BINS)?;
    assert!(e < bound, "calibrated ECE {e} >= {bound}");
    let (overconfident, labels) = synthetic::classifier(&mut StdRng::seed_from_u64(17), n, 3, 3.0)?;
    let e_over = ece(&overconfident, &labels, ECE_BINS)?;
    assert!(
        e_over > 0.05 && e_over > 4.0 * bound,
        "overconfident ECE {e_over}"
    );
    assert!(mce(&overconfident, &labels, ECE_BINS)? >= e_over);
    Ok(())
}

#[test]
fn regression_report_agrees_with_the_functions_and_round_trips() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(11);
    let (n, t) = (400, 5);
    let means: Vec<f64> = (0..n * t)
        .map(|_| 0.3 * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let stds: Vec<f64> = (0..n * t)
        .map(|_| 0.5 + 0.5 * rng.random::<f64>())
        .collect();
    let ys: Vec<f64> = (0..n).map(|_| rng.sample(StandardNormal)).collect();
    let dist = GaussianMixture::new(n, t, means, stds)?;
    let r = RegressionReport::new(&dist, &ys)?;
    let mean = dist.mean();
    assert_eq!(r.rmse, rmse(&mean, &ys)?);
    assert_eq!(r.mae, mae(&mean, &ys)?);
    assert_eq!(r.nll, nll(&dist, &ys)?);
    assert_eq!(r.crps, crps(&dist, &ys)?);
    assert_eq!(r.sharpness, sharpness(&dist)?);
    let at = interval_metrics(&dist, &ys, &[0.5, 0.9, 0.95])?;
    assert_eq!(
        [r.picp50, r.picp90, r.picp95],
        [at[0].picp, at[1].picp, at[2].picp]
    );
    assert_eq!(
        [r.mpiw50, r.mpiw90, r.mpiw95],
        [at[0].mpiw, at[1].mpiw, at[2].mpiw]
    );
    assert_eq!(r.interval_score95, at[2].interval_score);
    let curve = calibration_curve(&dist, &ys, &calibration_levels())?;
    assert_eq!(r.calibration_error, calibration_error(&curve));
    assert_eq!(r.miscalibration_area, miscalibration_area(&curve)?);
    assert!(r.mpiw50 < r.mpiw90 && r.mpiw90 < r.mpiw95);
    let json = serde_json::to_string(&r)?;
    for field in [
        "\"crps\"",
        "\"mae\"",
        "\"picp50\"",
        "\"miscalibration_area\"",
        "\"sharpness\"",
        "\"interval_score95\"",
    ] {
        assert!(json.contains(field), "{field} missing from {json}");
    }
    let back: RegressionReport = serde_json::from_str(&json)?;
    assert_eq!(back, r);
    assert!(RegressionReport::new(&dist, &ys[1..]).is_err());
    Ok(())
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RegressionReport>();
    check::<ClassificationReport>();
    check::<IntervalMetrics>();
    check::<CalibrationPoint>();
}
