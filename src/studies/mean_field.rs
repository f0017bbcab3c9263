//! The mean-field recursion of the pre-activation variance through depth
//! (Poole et al. 2016, "Exponential expressivity in deep neural networks
//! through transient chaos"; Schoenholz et al. 2017, "Deep Information
//! Propagation").
//!
//! In a wide MLP with zero-mean i.i.d. weights of variance `σ_w² / fan_in` and
//! biases of variance `σ_b²`, each pre-activation is a sum of many
//! independent terms, so it is Gaussian with a variance `q_l` that follows
//!
//! ```text
//! q_1     = σ_w² · mean_j x_j² + σ_b²
//! q_{l+1} = σ_w² · E_{z ~ N(0, q_l)}[φ(z)²] + σ_b²
//! ```
//!
//! with the expectation in closed form where one exists and by
//! Gauss–Hermite quadrature otherwise:
//!
//! ```text
//! relu   E[φ²] = q / 2
//! erf    E[φ²] = (2/π) arcsin(2q / (1 + 2q))                          (Williams 1997)
//! selu   E[φ²] = λ² [ q/2 + α² ( ½ erfcx(√(2q)) − erfcx(√(q/2)) + ½ ) ]
//!        from E[e^{tz} 1{z<0}] = e^{t²q/2} Φ(−t√q),  erfcx(x) = e^{x²} erfc(x)
//! tanh   E[φ²] by Gauss–Hermite
//! ```
//!
//! Normalization changes the recursion: after LayerNorm the input of `φ` has
//! unit variance whatever `q_l` was, `q_{l+1} = σ_w² E_{N(0,1)}[φ²] + σ_b²`;
//! weight norm with `g = 1` gives every weight row unit norm, i.e. `σ_w² = 1`
//! for any prior.
//!
//! Backward, the gradient `δ_l = ∂L/∂h^l` of a loss whose top gradient has
//! unit variance follows (Schoenholz et al. 2017, with the usual assumption
//! that backward weights are independent of forward ones)
//!
//! ```text
//! E[δ_L²] = 1,    E[δ_l²] = χ_l E[δ_{l+1}²],    χ_l = σ_{w,l+1}² · E_{z ~ N(0, q_l)}[φ'(z)²]
//! relu  E[φ'²] = ½          erf  E[φ'²] = (4/π) / √(1 + 4q)
//! selu  E[φ'²] = λ² [ ½ + (α²/2) erfcx(√(2q)) ]          tanh  by Gauss–Hermite
//! ```
//!
//! and LayerNorm divides it by `√q_l` on the way down: `χ_l = σ_w² E_{N(0,1)}[φ'²] / q_l`.

use serde::{Deserialize, Serialize};
use statrs::function::erf::erfc;

use crate::layers::activation::{SELU_ALPHA, SELU_LAMBDA};
use crate::layers::Activation;
use crate::prior::{Fan, LayerPrior, Prior};
use crate::studies::gauss_hermite::GaussHermite;
use crate::studies::random_mlp::Norm;
use crate::{Error, Result};

/// One layer's variances in mean-field units.
///
/// ```text
/// weight = σ_w² = fan_in · Var(W_ij)      bias = σ_b² = Var(b_i)
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LayerVariance {
    /// `σ_w²`: the weight variance times the fan-in.
    pub weight: f64,
    /// `σ_b²`: the bias variance (the bias shares the weights' prior).
    pub bias: f64,
}

impl LayerVariance {
    /// The variances of a layer of fan `fan` whose weights and bias are drawn
    /// from `prior`. The prior must have mean zero: the recursion assumes it.
    pub fn of(prior: &Prior, fan: Fan) -> Result<Self> {
        let layer = prior.resolve(fan)?;
        if let LayerPrior::Gaussian { mean, .. } = layer {
            if mean != 0.0 {
                return Err(Error::invalid(
                    "prior",
                    prior,
                    "a zero-mean prior (the mean-field and NNGP limits assume zero-mean weights)",
                ));
            }
        }
        let var = layer.std().powi(2);
        Ok(Self {
            weight: fan.fan_in as f64 * var,
            bias: var,
        })
    }

    /// The variances of every layer of an MLP of sizes `[in, n_1, ..., n_L]`.
    pub fn of_mlp(prior: &Prior, sizes: &[usize]) -> Result<Vec<Self>> {
        sizes
            .windows(2)
            .map(|io| {
                Self::of(
                    prior,
                    Fan {
                        fan_in: io[0],
                        fan_out: io[1],
                    },
                )
            })
            .collect()
    }
}

/// `E_{z ~ N(0, q)}[φ(z)²]` (see the module table).
pub fn second_moment(activation: Activation, q: f64, rule: &GaussHermite) -> f64 {
    match activation {
        Activation::Relu => q / 2.0,
        Activation::Erf => 2.0 / std::f64::consts::PI * (2.0 * q / (1.0 + 2.0 * q)).asin(),
        Activation::Selu => {
            let negative = 0.5 * erfcx((2.0 * q).sqrt()) - erfcx((q / 2.0).sqrt()) + 0.5;
            SELU_LAMBDA * SELU_LAMBDA * (q / 2.0 + SELU_ALPHA * SELU_ALPHA * negative)
        }
        Activation::Tanh => rule.gaussian_expectation(q, |z| z.tanh().powi(2)),
    }
}

/// `E_{z ~ N(0, q)}[φ'(z)²]` (see the module table).
pub fn derivative_second_moment(activation: Activation, q: f64, rule: &GaussHermite) -> f64 {
    match activation {
        Activation::Relu => 0.5,
        Activation::Erf => 4.0 / std::f64::consts::PI / (1.0 + 4.0 * q).sqrt(),
        Activation::Selu => {
            SELU_LAMBDA
                * SELU_LAMBDA
                * (0.5 + 0.5 * SELU_ALPHA * SELU_ALPHA * erfcx((2.0 * q).sqrt()))
        }
        Activation::Tanh => rule.gaussian_expectation(q, |z| (1.0 - z.tanh().powi(2)).powi(2)),
    }
}

/// Above this argument `e^{x²}` would overflow before `erfc(x)` underflows
/// meets it; the asymptotic series is then accurate to ~1e-11 relative.
const ERFCX_ASYMPTOTIC_ABOVE: f64 = 25.0;

/// The scaled complementary error function `erfcx(x) = e^{x²} erfc(x)`, `x ≥ 0`:
/// directly below 25, by its asymptotic series
/// `(1/(x√π)) (1 − 1/(2x²) + 3/(4x⁴) − 15/(8x⁶))` above.
fn erfcx(x: f64) -> f64 {
    if x < ERFCX_ASYMPTOTIC_ABOVE {
        (x * x).exp() * erfc(x)
    } else {
        let u = 1.0 / (2.0 * x * x);
        (1.0 - u + 3.0 * u * u - 15.0 * u * u * u) / (x * std::f64::consts::PI.sqrt())
    }
}

/// The predicted `q_1, ..., q_L` of an MLP with the given layers, for inputs
/// whose mean squared entry is `input_second_moment` (see the module formula).
pub fn predicted_variances(
    input_second_moment: f64,
    layers: &[LayerVariance],
    activation: Activation,
    norm: Norm,
    rule: &GaussHermite,
) -> Vec<f64> {
    let sigma_w2 = |layer: &LayerVariance| match norm {
        Norm::WeightNorm => 1.0,
        Norm::None | Norm::LayerNorm => layer.weight,
    };
    let mut out: Vec<f64> = Vec::with_capacity(layers.len());
    for layer in layers {
        let signal = match out.last() {
            None => input_second_moment,
            Some(&q) => {
                let q_in = if norm == Norm::LayerNorm { 1.0 } else { q };
                second_moment(activation, q_in, rule)
            }
        };
        out.push(sigma_w2(layer) * signal + layer.bias);
    }
    out
}

/// The predicted gradient variances `E[δ_1²], ..., E[δ_L²]` (`E[δ_L²] = 1`)
/// of an MLP whose forward variances are `forward = q_1, ..., q_L`
/// (from [`predicted_variances`]), by the backward recursion of the module.
pub fn predicted_gradient_variances(
    forward: &[f64],
    layers: &[LayerVariance],
    activation: Activation,
    norm: Norm,
    rule: &GaussHermite,
) -> Vec<f64> {
    let mut out = vec![1.0; forward.len()];
    for l in (0..forward.len().saturating_sub(1)).rev() {
        let chi = match norm {
            Norm::None => {
                layers[l + 1].weight * derivative_second_moment(activation, forward[l], rule)
            }
            Norm::WeightNorm => derivative_second_moment(activation, forward[l], rule),
            Norm::LayerNorm => {
                layers[l + 1].weight * derivative_second_moment(activation, 1.0, rule) / forward[l]
            }
        };
        out[l] = chi * out[l + 1];
    }
    out
}
