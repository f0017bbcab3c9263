//! Scores of predictive distributions against observed targets, in f64.
//!
//! ```text
//! RMSE      sqrt( mean_i (y_i - mean_i)² )
//! NLL       -mean_i ln p(y_i | x_i)                       (mixture density)
//! PICP_a    mean_i 1[lower_i <= y_i <= upper_i]           (coverage at level a)
//! MPIW_a    mean_i (upper_i - lower_i)                    (mean interval width)
//! calibration curve: observed PICP against nominal level, over levels
//! calibration error: Σ_j (level_j - PICP_j)² / J          (Kuleshov et al. 2018,
//!                                                          equal weights)
//! ```

use serde::{Deserialize, Serialize};

use crate::predictive::{GaussianMixture, Intervals};
use crate::{Error, Result};

/// The nominal levels of the calibration curve: 0.05, 0.10, …, 0.95.
pub fn calibration_levels() -> Vec<f64> {
    (1..=19).map(|j| j as f64 * 0.05).collect()
}

fn check_lengths(what: &str, a: usize, b: usize) -> Result<()> {
    if a != b || a == 0 {
        return Err(Error::Shape {
            context: what.into(),
            message: format!("{a} predictions for {b} targets (need equal, non-zero counts)"),
        });
    }
    Ok(())
}

/// Root mean squared error of point predictions.
pub fn rmse(predicted: &[f64], ys: &[f64]) -> Result<f64> {
    check_lengths("rmse", predicted.len(), ys.len())?;
    let mse = predicted
        .iter()
        .zip(ys)
        .map(|(p, y)| (p - y).powi(2))
        .sum::<f64>()
        / ys.len() as f64;
    Ok(mse.sqrt())
}

/// Average negative log predictive density (the mixture's, exactly).
pub fn nll(dist: &GaussianMixture, ys: &[f64]) -> Result<f64> {
    check_lengths("nll", dist.len(), ys.len())?;
    let ld = dist.log_density(ys)?;
    Ok(-ld.iter().sum::<f64>() / ld.len() as f64)
}

/// Prediction interval coverage probability: the fraction of targets inside.
pub fn picp(intervals: &Intervals, ys: &[f64]) -> Result<f64> {
    check_lengths("picp", intervals.lower.len(), ys.len())?;
    let inside = ys
        .iter()
        .zip(intervals.lower.iter().zip(&intervals.upper))
        .filter(|(y, (lo, hi))| *lo <= *y && *y <= *hi)
        .count();
    Ok(inside as f64 / ys.len() as f64)
}

/// Mean prediction interval width.
pub fn mpiw(intervals: &Intervals) -> f64 {
    let n = intervals.lower.len().max(1) as f64;
    intervals
        .upper
        .iter()
        .zip(&intervals.lower)
        .map(|(u, l)| u - l)
        .sum::<f64>()
        / n
}

/// One point of a calibration curve.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct CalibrationPoint {
    /// Nominal central-interval coverage.
    pub nominal: f64,
    /// Observed fraction of targets inside.
    pub observed: f64,
}

/// Observed coverage of central intervals at each nominal level.
pub fn calibration_curve(
    dist: &GaussianMixture,
    ys: &[f64],
    levels: &[f64],
) -> Result<Vec<CalibrationPoint>> {
    levels
        .iter()
        .map(|&nominal| {
            Ok(CalibrationPoint {
                nominal,
                observed: picp(&dist.interval(nominal)?, ys)?,
            })
        })
        .collect()
}

/// Mean squared gap between nominal and observed coverage over a curve.
pub fn calibration_error(curve: &[CalibrationPoint]) -> f64 {
    curve
        .iter()
        .map(|c| (c.nominal - c.observed).powi(2))
        .sum::<f64>()
        / curve.len().max(1) as f64
}

/// The headline regression scores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RegressionReport {
    /// Root mean squared error of the predictive mean.
    pub rmse: f64,
    /// Average negative log predictive density.
    pub nll: f64,
    /// Coverage of the central 90% intervals.
    pub picp90: f64,
    /// Mean width of the 90% intervals.
    pub mpiw90: f64,
    /// Coverage of the central 95% intervals.
    pub picp95: f64,
    /// Mean width of the 95% intervals.
    pub mpiw95: f64,
    /// Calibration error over the levels 0.05…0.95.
    pub calibration_error: f64,
}

impl RegressionReport {
    /// Scores `dist` against `ys`.
    pub fn new(dist: &GaussianMixture, ys: &[f64]) -> Result<Self> {
        dist.check_targets(ys)?;
        let (i90, i95) = (dist.interval(0.90)?, dist.interval(0.95)?);
        Ok(Self {
            rmse: rmse(&dist.mean(), ys)?,
            nll: nll(dist, ys)?,
            picp90: picp(&i90, ys)?,
            mpiw90: mpiw(&i90),
            picp95: picp(&i95, ys)?,
            mpiw95: mpiw(&i95),
            calibration_error: calibration_error(&calibration_curve(
                dist,
                ys,
                &calibration_levels(),
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_scores() -> Result<()> {
        assert!((rmse(&[1.0, 2.0], &[2.0, 4.0])? - (2.5f64).sqrt()).abs() < 1e-15);
        let iv = Intervals {
            level: 0.9,
            lower: vec![0.0, 0.0, 0.0, 0.0],
            upper: vec![1.0, 1.0, 2.0, 2.0],
        };
        assert_eq!(picp(&iv, &[0.5, 1.5, 1.5, -0.1])?, 0.5);
        assert_eq!(mpiw(&iv), 1.5);
        let curve = [
            CalibrationPoint {
                nominal: 0.5,
                observed: 0.4,
            },
            CalibrationPoint {
                nominal: 0.9,
                observed: 0.9,
            },
        ];
        assert!((calibration_error(&curve) - 0.005).abs() < 1e-15);
        assert!(rmse(&[1.0], &[1.0, 2.0]).is_err());
        Ok(())
    }

    /// The PIT shortcut of the calibration curve agrees with counting targets
    /// inside the bisected intervals, level by level (ties aside: a target
    /// within the bisection tolerance of a bound could flip; none is here).
    #[test]
    fn calibration_curve_from_pit_equals_interval_coverage() -> Result<()> {
        let (n, t) = (200, 3);
        let means: Vec<f64> = (0..n * t)
            .map(|k| ((k * 37) % 11) as f64 * 0.3 - 1.5)
            .collect();
        let stds: Vec<f64> = (0..n * t)
            .map(|k| 0.2 + ((k * 13) % 7) as f64 * 0.1)
            .collect();
        let dist = GaussianMixture::new(n, t, means, stds)?;
        let ys: Vec<f64> = (0..n)
            .map(|i| ((i * 7919) % 101) as f64 / 25.0 - 2.0)
            .collect();
        let levels = calibration_levels();
        for (point, level) in calibration_curve(&dist, &ys, &levels)?.iter().zip(&levels) {
            assert_eq!(
                point.observed,
                picp(&dist.interval(*level)?, &ys)?,
                "level {level}"
            );
        }
        Ok(())
    }
}
