//! Gauss–Hermite quadrature: Gaussian expectations of smooth functions.
//!
//! An `n`-point rule integrates `∫ e^{-x²} p(x) dx` exactly for every
//! polynomial `p` of degree `< 2n`. For a zero-mean Gaussian the change of
//! variables `z = √(2q) x` gives
//!
//! ```text
//! E_{z ~ N(0, q)}[f(z)] = (1/√π) Σ_i w_i f(√(2q) x_i)
//! ```
//!
//! The nodes `x_i` and weights `w_i` come from the Golub–Welsch algorithm
//! (Golub & Welsch 1969, "Calculation of Gauss Quadrature Rules"): the nodes
//! are the eigenvalues of the symmetric tridiagonal Jacobi matrix of the
//! Hermite polynomials, with off-diagonal entries `√(k/2)`, and
//! `w_i = √π · v_{i,0}²` where `v_i` is the unit eigenvector of `x_i`.
//! Convergence is fast for `f` smooth on the scale of the nodes; a kink
//! (ReLU, SELU at 0) slows it to algebraic, which is why the mean-field code
//! uses closed forms for those.
//!
//! The nodes near 0 are about `π √(q/n)` apart in `z`. An activation has
//! features of unit width (tanh turns over on `|z| ≲ 1`), which `n` nodes
//! stop resolving once `q` is large: at `q = 257` (tanh under N(0, 1)
//! weights, width 256) 160 nodes are 4 apart and `E[tanh'(z)²]` comes out
//! wrong by orders of magnitude. Above [`MAX_NODE_SPACING`] the expectation
//! therefore uses the trapezoid rule on a uniform grid of spacing
//! `h = min(1/4, π / (8 √(2q)))` over `|x| ≤ 6.5`, which for analytic
//! integrands converges like `e^{-2πd/h}` (`d`: distance of the nearest
//! complex singularity, `π / (2√(2q))` for tanh; Trefethen & Weideman 2014,
//! "The Exponentially Convergent Trapezoidal Rule"), here `e^{-4π} ≈ 4e-6`
//! relative or better.

use nalgebra::{DMatrix, SymmetricEigen};

use crate::{Error, Result};

/// The default number of nodes: enough for `E[tanh(z)²]` to ~1e-7 relative
/// for `q` up to ~300 (`tests/studies_signal.rs` checks it).
pub const DEFAULT_NODES: usize = 160;

/// Largest node spacing in `z` (about `π √(q/n)` near 0) at which a rule is
/// trusted with unit-width features: its error on `sech⁴` is then about
/// `e^{-2π·(π/2)/0.7} ≈ 1e-6`.
pub const MAX_NODE_SPACING: f64 = 0.7;

/// Half-width in `x` of the trapezoid fallback: `erfc(6.5) < 1e-19`.
const TRAPEZOID_HALF_WIDTH: f64 = 6.5;

/// An `n`-point Gauss–Hermite rule (weight function `e^{-x²}`).
#[derive(Debug, Clone, PartialEq)]
pub struct GaussHermite {
    nodes: Vec<f64>,
    weights: Vec<f64>,
}

impl GaussHermite {
    /// The rule with `n ≥ 1` nodes, by Golub–Welsch.
    pub fn new(n: usize) -> Result<Self> {
        if n == 0 {
            return Err(Error::invalid("quadrature nodes", 0, "at least 1"));
        }
        let jacobi = DMatrix::from_fn(n, n, |i, j| {
            if i + 1 == j || j + 1 == i {
                (i.max(j) as f64 / 2.0).sqrt()
            } else {
                0.0
            }
        });
        let eigen = SymmetricEigen::new(jacobi);
        let sqrt_pi = std::f64::consts::PI.sqrt();
        let mut pairs: Vec<(f64, f64)> = (0..n)
            .map(|i| {
                let v0 = eigen.eigenvectors[(0, i)];
                (eigen.eigenvalues[i], sqrt_pi * v0 * v0)
            })
            .collect();
        pairs.sort_by(|a, b| a.0.total_cmp(&b.0));
        Ok(Self {
            nodes: pairs.iter().map(|p| p.0).collect(),
            weights: pairs.iter().map(|p| p.1).collect(),
        })
    }

    /// The nodes `x_i`, ascending.
    pub fn nodes(&self) -> &[f64] {
        &self.nodes
    }

    /// The weights `w_i` (they sum to `√π`).
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// `E_{z ~ N(0, q)}[f(z)]` for a variance `q ≥ 0` (see the module formula;
    /// by the trapezoid rule when the nodes are too sparse for unit-width
    /// features of `f`).
    pub fn gaussian_expectation(&self, q: f64, f: impl Fn(f64) -> f64) -> f64 {
        let q = q.max(0.0);
        let scale = (2.0 * q).sqrt();
        let spacing = std::f64::consts::PI * (q / self.nodes.len() as f64).sqrt();
        if spacing > MAX_NODE_SPACING {
            let h = (0.25f64).min(std::f64::consts::PI / (8.0 * scale));
            let steps = (TRAPEZOID_HALF_WIDTH / h).ceil() as i64;
            let sum: f64 = (-steps..=steps)
                .map(|k| {
                    let x = k as f64 * h;
                    (-x * x).exp() * f(scale * x)
                })
                .sum();
            return sum * h / std::f64::consts::PI.sqrt();
        }
        let sum: f64 = self
            .nodes
            .iter()
            .zip(&self.weights)
            .map(|(x, w)| w * f(scale * x))
            .sum();
        sum / std::f64::consts::PI.sqrt()
    }
}
