//! The NNGP kernel: the covariance of an MLP's output over its prior, in the
//! limit of infinitely wide hidden layers (Neal 1996; Lee et al. 2018, "Deep
//! Neural Networks as Gaussian Processes"; Matthews et al. 2018).
//!
//! With per-layer variances `(σ_w², σ_b²)` ([`LayerVariance`]) the kernel
//! follows the layers:
//!
//! ```text
//! K_1(x, x')     = σ_b² + σ_w² · x·x' / d
//! K_{l+1}(x, x') = σ_b² + σ_w² · E_{(u,v) ~ N(0, Σ_l)}[φ(u) φ(v)],
//!                  Σ_l = [[K_l(x,x), K_l(x,x')], [K_l(x,x'), K_l(x',x')]]
//! ```
//!
//! and the output's kernel is `K_L`. The Gaussian expectation has a closed
//! form for two activations:
//!
//! ```text
//! relu  E = √(k11 k22) / (2π) · (sin θ + (π − θ) cos θ),  cos θ = k12 / √(k11 k22)
//!       (the arc-cosine kernel of degree 1, Cho & Saul 2009)
//! erf   E = (2/π) arcsin( 2 k12 / √((1 + 2 k11)(1 + 2 k22)) )       (Williams 1997)
//! ```

use nalgebra::DMatrix;

use crate::layers::Activation;
use crate::prior::Prior;
use crate::studies::mean_field::LayerVariance;
use crate::{Error, Result};

/// `E[relu(u) relu(v)]` for `(u, v) ~ N(0, [[k11, k12], [k12, k22]])`.
pub fn relu_cross_moment(k11: f64, k22: f64, k12: f64) -> f64 {
    let norm = (k11 * k22).sqrt();
    if norm == 0.0 {
        return 0.0;
    }
    let cos = (k12 / norm).clamp(-1.0, 1.0);
    let theta = cos.acos();
    norm / (2.0 * std::f64::consts::PI) * (theta.sin() + (std::f64::consts::PI - theta) * cos)
}

/// `E[erf(u) erf(v)]` for `(u, v) ~ N(0, [[k11, k12], [k12, k22]])`.
pub fn erf_cross_moment(k11: f64, k22: f64, k12: f64) -> f64 {
    let arg = 2.0 * k12 / ((1.0 + 2.0 * k11) * (1.0 + 2.0 * k22)).sqrt();
    2.0 / std::f64::consts::PI * arg.clamp(-1.0, 1.0).asin()
}

/// The NNGP kernel of an MLP with a closed-form activation.
#[derive(Debug, Clone)]
pub struct NngpKernel {
    /// `E[φ(u) φ(v)]` as a function of `(k11, k22, k12)`.
    moment: fn(f64, f64, f64) -> f64,
    input_dim: usize,
    layers: Vec<LayerVariance>,
}

impl NngpKernel {
    /// The kernel of an MLP of sizes `[d, n_1, ..., n_L]` whose weights and
    /// biases are drawn from `prior` (resolved at each layer's fan), with
    /// `activation` between layers: `relu` or `erf`.
    pub fn new(prior: &Prior, activation: Activation, sizes: &[usize]) -> Result<Self> {
        let moment = match activation {
            Activation::Relu => relu_cross_moment,
            Activation::Erf => erf_cross_moment,
            Activation::Tanh | Activation::Selu => {
                return Err(Error::invalid(
                    "activation",
                    activation,
                    "relu | erf (the activations with a closed-form NNGP kernel)",
                ))
            }
        };
        if sizes.len() < 2 {
            return Err(Error::invalid(
                "layer sizes",
                format!("{sizes:?}"),
                "an input size and at least one layer",
            ));
        }
        Ok(Self {
            moment,
            input_dim: sizes[0],
            layers: LayerVariance::of_mlp(prior, sizes)?,
        })
    }

    /// `K_L(x, y)` for two inputs of `d` features each.
    pub fn eval(&self, x: &[f64], y: &[f64]) -> f64 {
        let d = self.input_dim as f64;
        let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(u, v)| u * v).sum::<f64>() / d;
        let moment = self.moment;
        let (mut k11, mut k22, mut k12) = (dot(x, x), dot(y, y), dot(x, y));
        for (l, layer) in self.layers.iter().enumerate() {
            let (e11, e22, e12) = if l == 0 {
                (k11, k22, k12)
            } else {
                (
                    moment(k11, k11, k11),
                    moment(k22, k22, k22),
                    moment(k11, k22, k12),
                )
            };
            k11 = layer.bias + layer.weight * e11;
            k22 = layer.bias + layer.weight * e22;
            k12 = layer.bias + layer.weight * e12;
        }
        k12
    }

    /// The matrix `K[i, j] = K_L(a_i, b_j)` of row-major inputs `a: [n, d]`,
    /// `b: [m, d]`.
    pub fn matrix(&self, a: &[f64], b: &[f64]) -> Result<DMatrix<f64>> {
        let d = self.input_dim;
        for (name, x) in [("a", a), ("b", b)] {
            if x.len() % d != 0 {
                return Err(Error::Shape {
                    context: "NngpKernel::matrix".into(),
                    message: format!("`{name}` has {} values, not rows of {d}", x.len()),
                });
            }
        }
        let (n, m) = (a.len() / d, b.len() / d);
        Ok(DMatrix::from_fn(n, m, |i, j| {
            self.eval(&a[i * d..(i + 1) * d], &b[j * d..(j + 1) * d])
        }))
    }

    /// `K_L(x_i, x_i)` for each row of `x: [n, d]` (the prior variance of the
    /// output at each input).
    pub fn diagonal(&self, x: &[f64]) -> Vec<f64> {
        x.chunks_exact(self.input_dim)
            .map(|row| self.eval(row, row))
            .collect()
    }
}
