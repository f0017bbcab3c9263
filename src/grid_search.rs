//! Widening a hyperparameter grid past the edge its optimum sits on.
//!
//! A grid search whose best point lies on the grid's first or last value
//! along some axis has not found the optimum, only a bound on it: the
//! published MC-dropout grids (Gal & Ghahramani 2016; Mukhoti et al. 2018)
//! cap the model precision `tau` below what nearly noiseless targets call
//! for, and every split of such a dataset then picks the largest `tau` and
//! the smallest dropout rate.
//!
//! [`extend_past_edges`] continues from the grid's best point as a
//! coordinate search on the grid's own geometric spacing. While the best
//! point is at an edge of an axis, it tries the next step beyond that edge,
//!
//! ```text
//! next = last · (last / second_to_last)      (past the largest value)
//! next = first · (first / second)            (past the smallest value)
//! ```
//!
//! with the other coordinates held at the best point's, and moves there if it
//! scores better. It stops when no step improves, when a step would leave
//! the axis's open bounds, or after a budget of evaluations. A best point inside the grid costs no
//! evaluation at all, so a well-chosen grid gives the plain grid search's
//! answer.

use std::cmp::Ordering;

use crate::Result;

/// One axis of a grid: the values tried so far (ascending, distinct) and
/// the open interval no step may leave.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    values: Vec<f64>,
    lower: f64,
    upper: f64,
}

impl Axis {
    /// An axis over `values` (any order; sorted and deduplicated here)
    /// inside the open interval `(lower, upper)`.
    pub fn new(values: &[f64], lower: f64, upper: f64) -> Self {
        let mut values = values.to_vec();
        values.sort_by(f64::total_cmp);
        values.dedup();
        Self {
            values,
            lower,
            upper,
        }
    }

    /// The values tried so far, ascending.
    pub fn values(&self) -> &[f64] {
        &self.values
    }

    /// The geometric step past the edge `value` sits on, if it sits on one,
    /// the axis has two values to take a ratio from, and the step stays
    /// inside the bounds.
    fn step_past(&self, value: f64) -> Option<f64> {
        let v = &self.values;
        if v.len() < 2 {
            return None;
        }
        let (first, second, last, second_last) = (v[0], v[1], v[v.len() - 1], v[v.len() - 2]);
        let next = if value == last {
            last * (last / second_last)
        } else if value == first {
            first * (first / second)
        } else {
            return None;
        };
        (next.is_finite() && next > self.lower && next < self.upper).then_some(next)
    }

    /// Adds a value, keeping the values ascending.
    fn insert(&mut self, value: f64) {
        let at = self.values.partition_point(|&v| v < value);
        self.values.insert(at, value);
    }
}

/// The best point found by continuing a grid search past its edges, and its
/// score (higher is better).
///
/// `best` is the grid's best point (one coordinate per axis, each one of
/// that axis's values) and `best_score` its score; `score` evaluates a new
/// point. One axis at a time, steps past the edge the best point sits on
/// while they improve the score (a line search on the grid's spacing); an
/// improving step joins its axis. The sweep over the axes repeats while it
/// moves the best point, and no point is scored twice. At most
/// `max_evaluations` new points are scored. Returns `best` unchanged,
/// without calling `score`, when no coordinate is at an edge.
pub fn extend_past_edges(
    axes: &mut [Axis],
    best: Vec<f64>,
    best_score: f64,
    max_evaluations: usize,
    mut score: impl FnMut(&[f64]) -> Result<f64>,
) -> Result<(Vec<f64>, f64)> {
    let (mut best, mut best_score) = (best, best_score);
    let mut tried: Vec<Vec<f64>> = Vec::new();
    loop {
        let mut moved = false;
        for axis in 0..axes.len() {
            while let Some(next) = axes[axis].step_past(best[axis]) {
                let mut point = best.clone();
                point[axis] = next;
                if tried.contains(&point) {
                    break;
                }
                if tried.len() == max_evaluations {
                    return Ok((best, best_score));
                }
                let s = score(&point)?;
                tried.push(point.clone());
                // A NaN score (a diverged fit) never improves.
                if s.partial_cmp(&best_score) != Some(Ordering::Greater) {
                    break;
                }
                axes[axis].insert(next);
                (best, best_score, moved) = (point, s, true);
            }
        }
        if !moved {
            return Ok((best, best_score));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A concave score in log-coordinates, peaked at `peak`.
    fn log_quadratic(peak: [f64; 2]) -> impl Fn(&[f64]) -> f64 {
        move |x: &[f64]| {
            -x.iter()
                .zip(peak)
                .map(|(v, p)| (v.ln() - p.ln()).powi(2))
                .sum::<f64>()
        }
    }

    /// The grid's argmax, as the plain grid search picks it.
    fn grid_best(axes: &[Axis], f: &impl Fn(&[f64]) -> f64) -> (Vec<f64>, f64) {
        let mut best = (vec![], f64::NEG_INFINITY);
        for &a in axes[0].values() {
            for &b in axes[1].values() {
                let s = f(&[a, b]);
                if s > best.1 {
                    best = (vec![a, b], s);
                }
            }
        }
        best
    }

    fn published_grid() -> Vec<Axis> {
        vec![
            Axis::new(&[0.005, 0.01, 0.05, 0.1], 0.0, 1.0),
            Axis::new(&[0.25, 0.5, 0.75], 0.0, f64::INFINITY),
        ]
    }

    /// The plain grid search's best point for a score peaked at `peak`,
    /// extended with a budget of `budget`: the point, its score, the
    /// number of scores taken, and the axes afterwards.
    fn extend_from_grid(
        peak: [f64; 2],
        budget: usize,
    ) -> Result<(Vec<f64>, f64, usize, Vec<Axis>)> {
        let f = log_quadratic(peak);
        let mut axes = published_grid();
        let (best, s) = grid_best(&axes, &f);
        let mut calls = 0;
        let (got, got_s) = extend_past_edges(&mut axes, best, s, budget, |x| {
            calls += 1;
            Ok(f(x))
        })?;
        Ok((got, got_s, calls, axes))
    }

    #[test]
    fn an_interior_optimum_costs_no_evaluation() -> Result<()> {
        let f = log_quadratic([0.02, 0.6]);
        let mut axes = published_grid();
        let (best, s) = grid_best(&axes, &f);
        let (got, got_s) = extend_past_edges(&mut axes, best.clone(), s, 10, |_| {
            panic!("no step when the optimum is inside the grid")
        })?;
        assert_eq!((got, got_s), (best, s));
        Ok(())
    }

    #[test]
    fn walks_to_an_optimum_outside_the_grid_on_the_grid_spacing() -> Result<()> {
        // Optimum at p = 0.002, tau = 3: below the smallest rate and above
        // the largest precision, as on the nearly noiseless UCI targets.
        let f = log_quadratic([0.002, 3.0]);
        assert_eq!(grid_best(&published_grid(), &f).0, vec![0.005, 0.75]);
        let (got, got_s, calls, axes) = extend_from_grid([0.002, 3.0], 20)?;
        // tau steps by 0.75/0.5 = 1.5: of 0.75 · 1.5^k the closest to 3 in
        // log is k = 3 (2.53: |ln 2.53/3| = 0.17 against 0.24 for k = 4);
        // p halves: of 0.005 / 2^k the closest to 0.002 is k = 1 (0.0025:
        // 0.22 against 0.47 for k = 2).
        assert!((got[0] - 0.0025).abs() < 1e-12, "{got:?}");
        assert!((got[1] - 0.75 * 1.5f64.powi(3)).abs() < 1e-9, "{got:?}");
        assert_eq!(got_s, f(&got));
        assert!(axes[1].values().contains(&got[1]));
        // p: 0.0025 up, 0.00125 down; tau: three up, one down; then p once
        // more at the new tau; tau's failed step is not scored again.
        assert_eq!(calls, 7);
        Ok(())
    }

    #[test]
    fn stops_at_the_budget_and_at_the_bounds() -> Result<()> {
        let (got, _, calls, _) = extend_from_grid([0.9, 1e6], 5)?;
        assert_eq!(calls, 5);
        // p doubles 0.1 -> 0.2 -> 0.4 -> 0.8; 1.6 would leave (0, 1).
        assert!(got[0] < 1.0);
        let mut axes = vec![Axis::new(&[0.1, 0.4], 0.0, 1.0)];
        let g = |x: &[f64]| x[0];
        let (got, _) = extend_past_edges(&mut axes, vec![0.4], 0.4, 100, |x| Ok(g(x)))?;
        assert_eq!(got, vec![0.4], "0.4 · 4 = 1.6 is outside (0, 1)");
        Ok(())
    }

    #[test]
    fn a_single_value_axis_never_moves() -> Result<()> {
        let mut axes = vec![Axis::new(&[0.5], 0.0, 1.0)];
        let (got, _) = extend_past_edges(&mut axes, vec![0.5], 0.0, 10, |_| {
            panic!("no ratio to step by with one value")
        })?;
        assert_eq!(got, vec![0.5]);
        Ok(())
    }

    #[test]
    fn a_nan_score_never_improves() -> Result<()> {
        let mut axes = published_grid();
        let mut calls = 0;
        let (got, s) = extend_past_edges(&mut axes, vec![0.005, 0.75], -1.0, 10, |_| {
            calls += 1;
            Ok(f64::NAN)
        })?;
        assert_eq!((got, s, calls), (vec![0.005, 0.75], -1.0, 2));
        Ok(())
    }

    #[test]
    fn errors_from_the_score_propagate() -> Result<()> {
        let mut axes = published_grid();
        let err = extend_past_edges(&mut axes, vec![0.005, 0.75], 0.0, 10, |_| {
            Err(crate::Error::invalid("fit", "x", "y"))
        });
        assert!(
            matches!(&err, Err(crate::Error::InvalidParameter { name, .. }) if name == "fit"),
            "{err:?}"
        );
        Ok(())
    }
}
