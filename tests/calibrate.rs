//! Integration tests of recalibration on synthetic predictors whose
//! miscalibration is known: split-conformal coverage over many random
//! calibration/test splits, isotonic recalibration of a 2× overconfident
//! predictor, variance scaling recovering the factor 2, temperature scaling
//! of an overconfident classifier, invariance to a change of units, and
//! serde round trips of every fitted kind.

mod synthetic;

use candle_bnn::calibrate::{
    apply_temperature, fit, fit_temperature, fit_variance_scaling, pool_adjacent_violators,
    temper_probs, Recalibration, RecalibrationMethod,
};
use candle_bnn::metrics::{
    calibration_curve, calibration_curve_from_pit, calibration_error, calibration_levels,
    categorical_nll, ece, nll, picp, CalibrationPoint, ECE_BINS,
};
use candle_bnn::predictive::{CategoricalMixture, GaussianMixture};
use candle_bnn::{Error, Result};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// `n` rows with `x ~ U(-2, 2)`: the model predicts `t` components
/// `N(sin x + spread·sigma·(k - (t-1)/2), sigma²)`, `sigma = 0.3 + 0.2|x|`,
/// while the truth is `y = sin x + noise·sigma·eps` (noise = 2: the model is
/// 2× overconfident; noise = 1 and spread = 0: calibrated).
fn regression(
    rng: &mut StdRng,
    n: usize,
    t: usize,
    spread: f64,
    noise: f64,
) -> Result<(GaussianMixture, Vec<f64>)> {
    let (mut means, mut stds, mut ys) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let x = 4.0 * rng.random::<f64>() - 2.0;
        let sigma = 0.3 + 0.2 * x.abs();
        for k in 0..t {
            means.push(x.sin() + spread * sigma * (k as f64 - (t as f64 - 1.0) / 2.0));
            stds.push(sigma);
        }
        ys.push(x.sin() + noise * sigma * rng.sample::<f64, _>(StandardNormal));
    }
    Ok((GaussianMixture::new(n, t, means, stds)?, ys))
}

/// Observed coverage of the recalibrated intervals at each level.
fn recalibrated_curve(
    recal: &Recalibration,
    dist: &GaussianMixture,
    ys: &[f64],
    levels: &[f64],
) -> Result<Vec<CalibrationPoint>> {
    levels
        .iter()
        .map(|&nominal| {
            Ok(CalibrationPoint {
                nominal,
                observed: picp(&recal.interval(dist, nominal)?, ys)?,
            })
        })
        .collect()
}

/// Split conformal on a model that predicts std sigma for noise 2·sigma.
/// With n = 100 calibration rows and level 0.9, k = ⌈101·0.9⌉ = 91, so the
/// coverage of a split is Beta(91, 10)-distributed with mean 91/101 = 0.9010,
/// inside the guarantee [0.9, 0.9 + 1/101 = 0.9099]. Per split, sd ≈ 0.0296
/// (Beta) and sqrt(0.09/1000) = 0.0095 (1000 test rows), together 0.031; the
/// mean over 1000 splits has sd 0.00098, and the tolerance is 4 of those.
/// Level 0.5: k = ⌈50.5⌉ = 51, guarantee [0.5, 0.5099].
#[test]
fn split_conformal_covers_at_least_the_level_and_at_most_one_over_n_more() -> Result<()> {
    let (splits, n_cal, n_test) = (1000, 100, 1000);
    let mut rng = StdRng::seed_from_u64(2018);
    let (mut cov90, mut cov50, mut raw90) = (0.0, 0.0, 0.0);
    for _ in 0..splits {
        let (cal, y_cal) = regression(&mut rng, n_cal, 1, 0.0, 2.0)?;
        let (test, y_test) = regression(&mut rng, n_test, 1, 0.0, 2.0)?;
        let recal = fit(RecalibrationMethod::Conformal, &cal, &y_cal)?;
        cov90 += picp(&recal.interval(&test, 0.9)?, &y_test)?;
        cov50 += picp(&recal.interval(&test, 0.5)?, &y_test)?;
        raw90 += picp(&test.interval(0.9)?, &y_test)?;
    }
    let (cov90, cov50, raw90) = (
        cov90 / splits as f64,
        cov50 / splits as f64,
        raw90 / splits as f64,
    );
    let upper = 1.0 / (n_cal as f64 + 1.0);
    // sd of a Beta(51, 50) mean over 1000 splits ≈ 0.0497/√1000 = 0.0016 (+ test noise).
    let (tol90, tol50) = (4.0 * 0.000_98, 4.0 * 0.0017);
    assert!(
        cov90 >= 0.9 - tol90 && cov90 <= 0.9 + upper + tol90,
        "coverage at 0.9: {cov90}"
    );
    assert!(
        cov50 >= 0.5 - tol50 && cov50 <= 0.5 + upper + tol50,
        "coverage at 0.5: {cov50}"
    );
    // Uncalibrated: P(|2 eps| <= 1.645) = 2Φ(0.8224) - 1 = 0.589.
    assert!((raw90 - 0.589).abs() < 0.01, "raw coverage {raw90}");
    Ok(())
}

#[test]
fn conformal_refuses_levels_its_calibration_set_cannot_support() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(1);
    let (cal, y_cal) = regression(&mut rng, 10, 1, 0.0, 1.0)?;
    let recal = fit(RecalibrationMethod::Conformal, &cal, &y_cal)?;
    // ⌈11·0.9⌉ = 10 <= 10 works; ⌈11·0.95⌉ = 11 > 10 does not.
    let iv = recal.interval(&cal, 0.9)?;
    assert!(iv.lower.iter().zip(&iv.upper).all(|(l, u)| l < u));
    let msg = recal
        .interval(&cal, 0.95)
        .map(|_| ())
        .unwrap_err()
        .to_string();
    assert!(msg.contains("n = 10") && msg.contains("0.95"), "{msg}");
    assert!(fit(RecalibrationMethod::Conformal, &cal, &[]).is_err());
    Ok(())
}

/// Isotonic recalibration of a 2× overconfident predictor (3 components):
/// fitted on 2000 rows, scored on 5000 fresh ones. Before, the curve is far
/// off (coverage 2Φ(z_a/2) - 1: 0.59 at 0.9); after, the only error left is
/// the sampling error of the fitted map (sd ≲ sqrt(¼/2000) = 0.011 per
/// level, plus 0.007 from the fresh rows), so the mean squared gap is
/// ~2e-4; the bound 1.5e-3 is ~3× the worst case of those sds.
#[test]
fn isotonic_recalibration_is_monotone_and_fixes_an_overconfident_predictor() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(2);
    let (cal, y_cal) = regression(&mut rng, 2000, 3, 0.1, 2.0)?;
    let (test, y_test) = regression(&mut rng, 5000, 3, 0.1, 2.0)?;
    let recal = fit(RecalibrationMethod::Isotonic, &cal, &y_cal)?;
    let (pit_in, pit_out) = match &recal {
        Recalibration::Isotonic { pit_in, pit_out } => (pit_in.clone(), pit_out.clone()),
        other => panic!("expected isotonic, got {other}"),
    };
    assert_eq!((pit_in[0], pit_in[pit_in.len() - 1]), (0.0, 1.0));
    assert!(pit_in.windows(2).all(|w| w[0] < w[1]));
    assert!(pit_out.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(pit_out[pit_out.len() - 1], 1.0);

    let levels = calibration_levels();
    let before = calibration_error(&calibration_curve(&test, &y_test, &levels)?);
    let after_curve = recalibrated_curve(&recal, &test, &y_test, &levels)?;
    let after = calibration_error(&after_curve);
    let after_pit = calibration_error(&calibration_curve_from_pit(
        &recal.pit(&test, &y_test)?,
        &levels,
    )?);
    assert!(before > 0.02, "before {before}");
    assert!(
        after < 1.5e-3 && after < before / 10.0,
        "before {before}, after {after}"
    );
    assert!(after_pit < 1.5e-3, "after (PIT) {after_pit}");
    // Nested intervals: a higher level is wider on every row.
    let (a, b) = (recal.interval(&test, 0.5)?, recal.interval(&test, 0.9)?);
    for i in 0..test.len() {
        assert!(
            b.lower[i] < a.lower[i] && a.upper[i] < b.upper[i],
            "row {i}"
        );
    }
    // The recalibrated CDF is monotone in y.
    let mut last = 0.0;
    for j in -40..=40 {
        let u = recal.cdf(&test, 0, j as f64 * 0.1)?;
        assert!(u >= last, "CDF decreased at y = {}", j as f64 * 0.1);
        last = u;
    }
    Ok(())
}

#[test]
fn pool_adjacent_violators_gives_the_monotone_least_squares_fit() -> Result<()> {
    let values = [1.0, 3.0, 2.0, 2.0, 5.0, 0.0, 6.0];
    let fit = pool_adjacent_violators(&values, &[1.0; 7])?;
    assert!(fit.windows(2).all(|w| w[0] <= w[1]), "{fit:?}");
    // Pools keep the total: the weighted sum is unchanged.
    assert!((fit.iter().sum::<f64>() - values.iter().sum::<f64>()).abs() < 1e-12);
    // 3 > 2 pools to 2.5, then with the next 2 to 7/3; 5 > 0 pools to 2.5,
    // which is >= 7/3, so it stays a block (1 and 6 are in order).
    let third = 7.0 / 3.0;
    for (f, want) in fit.iter().zip([1.0, third, third, third, 2.5, 2.5, 6.0]) {
        assert!((f - want).abs() < 1e-12, "{fit:?}");
    }
    assert!(pool_adjacent_violators(&[1.0, 2.0], &[1.0]).is_err());
    Ok(())
}

/// On a 2× overconfident single-Gaussian predictor, s² = mean z² with
/// z = 2 eps: sd(s²) = sqrt(32/n) = 0.08 for n = 5000, so sd(s) = 0.02 and
/// the tolerance is 4 sd. T = 1 also checks the closed form (golden section
/// to 1e-10 in ln s; the NLL's flatness near its minimum limits it to ~1e-8).
#[test]
fn variance_scaling_recovers_the_factor_and_matches_the_closed_form() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(3);
    let (cal, y_cal) = regression(&mut rng, 5000, 1, 0.0, 2.0)?;
    let s = fit_variance_scaling(&cal, &y_cal)?;
    assert!((s - 2.0).abs() < 0.08, "s = {s}");
    let mean_z2 = y_cal
        .iter()
        .enumerate()
        .map(|(i, y)| ((y - cal.component_means(i)[0]) / cal.component_stds(i)[0]).powi(2))
        .sum::<f64>()
        / y_cal.len() as f64;
    assert!(
        (s - mean_z2.sqrt()).abs() < 1e-6 * s,
        "{s} vs {}",
        mean_z2.sqrt()
    );

    // Three identical components: the same mixture, the same s.
    let mut rng = StdRng::seed_from_u64(3);
    let (cal3, y_cal3) = regression(&mut rng, 5000, 3, 0.0, 2.0)?;
    assert!((fit_variance_scaling(&cal3, &y_cal3)? - s).abs() < 1e-6 * s);

    // Applied: stds × s, means unchanged, fresh NLL and coverage improve.
    let recal = fit(RecalibrationMethod::Scale, &cal, &y_cal)?;
    let (test, y_test) = regression(&mut rng, 5000, 1, 0.0, 2.0)?;
    let scaled = recal.apply_to_mixture(&test)?;
    assert_eq!(scaled.component_means(7), test.component_means(7));
    assert!((scaled.component_stds(7)[0] - s * test.component_stds(7)[0]).abs() < 1e-15);
    assert!(nll(&scaled, &y_test)? < nll(&test, &y_test)? - 0.1);
    let cov = picp(&recal.interval(&scaled, 0.9)?, &y_test)?;
    assert!((cov - 0.9).abs() < 0.02, "coverage {cov}"); // binomial sd 0.0042
    Ok(())
}

/// On a calibrated predictor, s = 1 + O(sqrt(1/(2n))) = 1 ± 0.01 and the
/// fresh-data NLL excess is ≈ (ln s)² ± |ln s|·sqrt(2/n): at 4 sd of s
/// (ln s = 0.04) that is 0.0016 + 0.0008; the bound is 0.003.
#[test]
fn variance_scaling_does_not_hurt_a_calibrated_predictor() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(4);
    let (cal, y_cal) = regression(&mut rng, 5000, 1, 0.0, 1.0)?;
    let (test, y_test) = regression(&mut rng, 5000, 1, 0.0, 1.0)?;
    let recal = fit(RecalibrationMethod::Scale, &cal, &y_cal)?;
    if let Recalibration::VarianceScaling { s } = recal {
        assert!((s - 1.0).abs() < 0.04, "s = {s}");
    }
    let excess = nll(&recal.apply_to_mixture(&test)?, &y_test)? - nll(&test, &y_test)?;
    assert!(excess < 0.003, "NLL got worse by {excess}");
    Ok(())
}

/// Every regression kind is invariant under a change of units
/// (`y' = 3 + 2.5 y`): the same s, knots and scores up to rounding.
#[test]
fn recalibration_is_invariant_to_units() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(5);
    let (cal, y_cal) = regression(&mut rng, 300, 4, 0.2, 1.7)?;
    let cal2 = cal.affine(3.0, 2.5)?;
    let y2: Vec<f64> = y_cal.iter().map(|y| 3.0 + 2.5 * y).collect();
    for method in [
        RecalibrationMethod::Scale,
        RecalibrationMethod::Isotonic,
        RecalibrationMethod::Conformal,
    ] {
        let (a, b) = (fit(method, &cal, &y_cal)?, fit(method, &cal2, &y2)?);
        let (va, vb) = match (&a, &b) {
            (Recalibration::VarianceScaling { s: x }, Recalibration::VarianceScaling { s: y }) => {
                (vec![*x], vec![*y])
            }
            (
                Recalibration::Isotonic { pit_in: x, .. },
                Recalibration::Isotonic { pit_in: y, .. },
            ) => (x.clone(), y.clone()),
            (Recalibration::Conformal { scores: x }, Recalibration::Conformal { scores: y }) => {
                (x.clone(), y.clone())
            }
            _ => panic!("{method}: {a} vs {b}"),
        };
        assert_eq!(va.len(), vb.len(), "{method}");
        for (x, y) in va.iter().zip(&vb) {
            assert!(
                (x - y).abs() < 1e-6 * x.abs().max(1e-3),
                "{method}: {x} vs {y}"
            );
        }
        // The recalibrated interval maps with the units.
        let (ia, ib) = (a.interval(&cal, 0.8)?, b.interval(&cal2, 0.8)?);
        assert!(
            ((3.0 + 2.5 * ia.upper[0]) - ib.upper[0]).abs() < 1e-6,
            "{method}"
        );
    }
    Ok(())
}

#[test]
fn every_recalibration_survives_a_serde_round_trip() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(6);
    let (cal, y_cal) = regression(&mut rng, 200, 2, 0.1, 1.5)?;
    let (test, y_test) = regression(&mut rng, 50, 2, 0.1, 1.5)?;
    let mut kinds = vec![Recalibration::None];
    for method in ["scale", "isotonic", "conformal"] {
        let method: RecalibrationMethod = method.parse()?;
        assert_eq!(method.to_string().parse::<RecalibrationMethod>()?, method);
        let recal = fit(method, &cal, &y_cal)?;
        assert_eq!(recal.method(), Some(method));
        kinds.push(recal);
    }
    for recal in kinds {
        let json = serde_json::to_string(&recal)?;
        let back: Recalibration = serde_json::from_str(&json)?;
        assert_eq!(back, recal, "{json}");
        assert_eq!(back.interval(&test, 0.9)?, recal.interval(&test, 0.9)?);
        assert_eq!(back.pit(&test, &y_test)?, recal.pit(&test, &y_test)?);
    }
    assert_eq!(
        serde_json::to_string(&Recalibration::VarianceScaling { s: 2.0 })?,
        r#"{"kind":"variance_scaling","s":2.0}"#
    );
    let msg = "platt"
        .parse::<RecalibrationMethod>()
        .unwrap_err()
        .to_string();
    assert!(msg.contains("scale, isotonic, conformal"), "{msg}");
    Ok(())
}

/// Corrupted saved recalibrations are reported, never applied.
#[test]
fn invalid_recalibrations_are_rejected_on_use() -> Result<()> {
    let dist = GaussianMixture::new(1, 1, vec![0.0], vec![1.0])?;
    for json in [
        r#"{"kind":"variance_scaling","s":-1.0}"#,
        r#"{"kind":"conformal","scores":[2.0,1.0]}"#,
        r#"{"kind":"conformal","scores":[]}"#,
        r#"{"kind":"isotonic","pit_in":[0.0,0.7,0.5,1.0],"pit_out":[0.0,0.2,0.3,1.0]}"#,
        r#"{"kind":"isotonic","pit_in":[0.0,1.0],"pit_out":[0.5,0.4]}"#,
    ] {
        let recal: Recalibration = serde_json::from_str(json)?;
        assert!(recal.validate().is_err(), "{json}");
        assert!(recal.interval(&dist, 0.5).is_err(), "{json}");
        assert!(recal.apply_to_mixture(&dist).is_err(), "{json}");
        assert!(recal.pit(&dist, &[0.0]).is_err(), "{json}");
    }
    assert!(matches!(
        Recalibration::None.interval(&dist, 1.0),
        Err(Error::InvalidParameter { .. })
    ));
    Ok(())
}

/// A classifier reporting softmax(3z) for truth softmax(z) has population
/// NLL-optimal temperature exactly 3. The tolerances (±0.3 for T, ±0.1 for
/// the calibrated T = 1) are ~3× the largest miss seen over 8 seeds at
/// n = 5000 (T in 2.97…3.12, T₁ in 0.966…1.016). After tempering, ECE is
/// bounded as for a calibrated classifier (tests/metrics.rs):
/// ½·sqrt(15/5000) + sqrt(ln(1e6)/(2·5000)) = 0.065; it was 0.012…0.029
/// over those seeds, against 0.22…0.25 before.
#[test]
fn temperature_scaling_softens_an_overconfident_classifier() -> Result<()> {
    let mut rng = StdRng::seed_from_u64(2017);
    let (cal, y_cal) = synthetic::classifier(&mut rng, 5000, 4, 3.0)?;
    let (test, y_test) = synthetic::classifier(&mut rng, 5000, 4, 3.0)?;
    let t = fit_temperature(&cal, &y_cal)?;
    assert!((t - 3.0).abs() < 0.3, "T = {t}");
    let tempered = apply_temperature(&test, t)?;
    let (ece0, ece1) = (
        ece(&test, &y_test, ECE_BINS)?,
        ece(&tempered, &y_test, ECE_BINS)?,
    );
    let (nll0, nll1) = (
        categorical_nll(&test, &y_test)?,
        categorical_nll(&tempered, &y_test)?,
    );
    let bound = 0.5 * (ECE_BINS as f64 / 5000.0).sqrt() + (1e6f64.ln() / 10_000.0).sqrt();
    assert!(ece1 < ece0 / 3.0 && ece1 < bound, "ECE {ece0} -> {ece1}");
    assert!(nll1 < nll0 - 0.1, "NLL {nll0} -> {nll1}");
    // Temperature never changes the predicted class.
    assert_eq!(tempered.predicted_class(), test.predicted_class());

    let (calibrated, y) = synthetic::classifier(&mut rng, 5000, 4, 1.0)?;
    let t1 = fit_temperature(&calibrated, &y)?;
    assert!((t1 - 1.0).abs() < 0.1, "T = {t1}");
    Ok(())
}

#[test]
fn tempering_checks_its_input() -> Result<()> {
    // T = 1 is the identity (up to the renormalization's rounding).
    let p = [0.2, 0.5, 0.3, 0.9, 0.05, 0.05];
    for (a, b) in temper_probs(&p, 3, 1.0)?.iter().zip(p) {
        assert!((a - b).abs() < 1e-15);
    }
    assert!(temper_probs(&p, 4, 1.0).is_err());
    assert!(temper_probs(&p, 3, 0.0).is_err());
    assert!(temper_probs(&[0.5, f64::NAN], 2, 1.0).is_err());
    let dist = CategoricalMixture::new(2, 1, 3, p.to_vec())?;
    assert!(fit_temperature(&dist, &[0]).is_err());
    assert!(fit_temperature(&dist, &[0, 3]).is_err());
    assert!(apply_temperature(&dist, f64::INFINITY).is_err());
    Ok(())
}

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Recalibration>();
    check::<RecalibrationMethod>();
}
