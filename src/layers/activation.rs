//! Elementwise nonlinearities of the MLP.

use std::fmt;
use std::str::FromStr;

use candle_core::Tensor;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// SELU's fixed-point constants (Klambauer et al. 2017, "Self-Normalizing
/// Neural Networks"): with LeCun-scaled weights they keep mean 0, variance 1.
/// This is `alpha`, the negative branch's saturation.
pub const SELU_ALPHA: f64 = 1.673_263_242_354_377_3;
/// SELU's scale `lambda` (see [`SELU_ALPHA`]).
pub const SELU_LAMBDA: f64 = 1.050_700_987_355_480_5;

/// The hidden-layer nonlinearity.
///
/// ```text
/// relu(x) = max(x, 0)
/// tanh(x)
/// selu(x) = lambda · (x if x > 0 else alpha (e^x - 1))
/// erf(x)  = 2/√π ∫_0^x e^{-t²} dt
/// ```
///
/// `erf` is the sigmoid with a closed-form infinite-width kernel (Williams
/// 1997), used by the NNGP study.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Activation {
    /// Rectified linear unit.
    #[default]
    Relu,
    /// Hyperbolic tangent.
    Tanh,
    /// Scaled exponential linear unit.
    Selu,
    /// The error function, a sigmoid with range (-1, 1).
    Erf,
}

impl Activation {
    /// Applies the nonlinearity elementwise.
    pub fn apply(&self, xs: &Tensor) -> Result<Tensor> {
        Ok(match self {
            Activation::Relu => xs.relu()?,
            Activation::Tanh => xs.tanh()?,
            Activation::Selu => (xs.elu(SELU_ALPHA)? * SELU_LAMBDA)?,
            Activation::Erf => xs.erf()?,
        })
    }

    /// `act(pre + bias)`, `bias` broadcast over `pre`'s leading dimensions:
    /// for ReLU one fused pass with the same bits as the two ops
    /// (`src/bias_relu.rs`).
    pub fn apply_after_bias(&self, pre: &Tensor, bias: &Tensor) -> Result<Tensor> {
        match self {
            Activation::Relu => crate::bias_relu::bias_relu(pre, bias),
            _ => self.apply(&pre.broadcast_add(bias)?),
        }
    }
}

impl fmt::Display for Activation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Activation::Relu => "relu",
            Activation::Tanh => "tanh",
            Activation::Selu => "selu",
            Activation::Erf => "erf",
        })
    }
}

impl FromStr for Activation {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "relu" => Ok(Activation::Relu),
            "tanh" => Ok(Activation::Tanh),
            "selu" => Ok(Activation::Selu),
            "erf" => Ok(Activation::Erf),
            _ => Err(Error::invalid(
                "activation",
                format!("'{s}'"),
                "relu | tanh | selu | erf",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn selu_matches_its_definition() -> Result<()> {
        let xs = Tensor::new(&[-1.0f32, 0.0, 2.0], &Device::Cpu)?;
        let got = Activation::Selu.apply(&xs)?.to_vec1::<f32>()?;
        let want = [
            SELU_LAMBDA * SELU_ALPHA * ((-1f64).exp() - 1.0),
            0.0,
            SELU_LAMBDA * 2.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((*g as f64 - w).abs() < 1e-6, "{g} vs {w}");
        }
        Ok(())
    }
}
