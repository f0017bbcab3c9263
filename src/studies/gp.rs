//! Exact Gaussian-process regression from Gram matrices (Rasmussen &
//! Williams 2006, "Gaussian Processes for Machine Learning", Alg. 2.1).
//!
//! ```text
//! L = chol(K + σ_n² I),   α = Lᵀ \ (L \ y)
//! mean(x*) = k*ᵀ α,       var(y*) = k(x*, x*) − ‖L \ k*‖² + σ_n²
//! ln p(y | X) = −½ yᵀ α − Σ_i ln L_ii − (n/2) ln 2π
//! ```
//!
//! The noise variance `σ_n²` is chosen on the training rows by the largest
//! log marginal likelihood over a grid (type-II maximum likelihood). The
//! kernel is whatever filled the Gram matrices; this module knows none.

use nalgebra::{Cholesky, DMatrix, DVector, Dyn};

use crate::{Error, Result};

const LN_2PI: f64 = 1.837_877_066_409_345_3;

/// A GP conditioned on training targets, with its noise variance.
#[derive(Debug, Clone)]
pub struct ExactGp {
    chol: Cholesky<f64, Dyn>,
    alpha: DVector<f64>,
    noise_var: f64,
    log_marginal_likelihood: f64,
}

impl ExactGp {
    /// Conditions on targets `y` with train Gram matrix `k: [n, n]` and
    /// observation noise variance `noise_var > 0`.
    pub fn fit(k: &DMatrix<f64>, y: &[f64], noise_var: f64) -> Result<Self> {
        let n = y.len();
        if k.nrows() != n || k.ncols() != n || n == 0 {
            return Err(Error::Shape {
                context: "ExactGp::fit".into(),
                message: format!(
                    "Gram matrix is {}x{} for {n} targets; expected a square matrix of their size (n >= 1)",
                    k.nrows(),
                    k.ncols()
                ),
            });
        }
        if !(noise_var.is_finite() && noise_var > 0.0) {
            return Err(Error::invalid(
                "noise variance",
                noise_var,
                "a finite number > 0",
            ));
        }
        let mut shifted = k.clone();
        for i in 0..n {
            shifted[(i, i)] += noise_var;
        }
        let chol = Cholesky::new(shifted).ok_or_else(|| {
            Error::invalid(
                "noise variance",
                noise_var,
                "one that makes K + noise·I positive definite (the Gram matrix is not a covariance)",
            )
        })?;
        let y = DVector::from_column_slice(y);
        let alpha = chol.solve(&y);
        let log_det_half: f64 = chol.l_dirty().diagonal().iter().map(|v| v.ln()).sum();
        let log_marginal_likelihood = -0.5 * y.dot(&alpha) - log_det_half - 0.5 * n as f64 * LN_2PI;
        Ok(Self {
            chol,
            alpha,
            noise_var,
            log_marginal_likelihood,
        })
    }

    /// The fit whose noise variance in `grid` has the largest log marginal
    /// likelihood (grid values that do not give a positive definite matrix
    /// are skipped).
    pub fn fit_noise(k: &DMatrix<f64>, y: &[f64], grid: &[f64]) -> Result<Self> {
        let mut best: Option<Self> = None;
        for &noise_var in grid {
            let candidate = match Self::fit(k, y, noise_var) {
                Ok(gp) => gp,
                Err(Error::InvalidParameter { .. }) => continue,
                Err(e) => return Err(e),
            };
            if best
                .as_ref()
                .is_none_or(|b| candidate.log_marginal_likelihood > b.log_marginal_likelihood)
            {
                best = Some(candidate);
            }
        }
        best.ok_or_else(|| {
            Error::invalid(
                "noise grid",
                format!("{grid:?}"),
                "at least one finite noise variance > 0 that makes K + noise·I positive definite",
            )
        })
    }

    /// Predictive means and variances of noisy targets at `m` test inputs,
    /// from the cross Gram matrix `k_cross: [m, n]` and the test inputs'
    /// prior variances `k_test_diag: [m]`.
    pub fn predict(
        &self,
        k_cross: &DMatrix<f64>,
        k_test_diag: &[f64],
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        let n = self.alpha.len();
        if k_cross.ncols() != n || k_cross.nrows() != k_test_diag.len() {
            return Err(Error::Shape {
                context: "ExactGp::predict".into(),
                message: format!(
                    "cross Gram matrix is {}x{} with {} test variances; expected m x {n} with m variances",
                    k_cross.nrows(),
                    k_cross.ncols(),
                    k_test_diag.len()
                ),
            });
        }
        let means = (k_cross * &self.alpha).iter().copied().collect();
        let v = self
            .chol
            .l_dirty()
            .solve_lower_triangular(&k_cross.transpose())
            .ok_or_else(|| Error::Shape {
                context: "ExactGp::predict".into(),
                message: "the Cholesky factor has a zero on its diagonal".into(),
            })?;
        let vars = k_test_diag
            .iter()
            .enumerate()
            .map(|(j, kss)| (kss - v.column(j).norm_squared()).max(0.0) + self.noise_var)
            .collect();
        Ok((means, vars))
    }

    /// The observation noise variance `σ_n²`.
    pub fn noise_var(&self) -> f64 {
        self.noise_var
    }

    /// `ln p(y | X)` at this noise variance.
    pub fn log_marginal_likelihood(&self) -> f64 {
        self.log_marginal_likelihood
    }
}
