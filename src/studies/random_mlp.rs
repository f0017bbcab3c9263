//! Deep MLPs at initialization: every weight and bias a draw from the prior,
//! optionally reshaped (uniform) or normalized (LayerNorm, weight norm).
//!
//! ```text
//! h^1 = x W_1ᵀ + b_1,      h^{l+1} = φ(N(h^l)) W_{l+1}ᵀ + b_{l+1}
//! N = identity | LayerNorm (per example, over units; Ba et al. 2016)
//! W_l = V_l                              (no normalization, LayerNorm)
//! W_l = g · V_l / ‖V_l row‖,  g = 1      (weight norm; Salimans & Kingma 2016)
//! V_l, b_l ~ prior resolved at the layer's fan (the bias shares the weights'
//! prior, as in [`crate::layers::BayesLinear`])
//! ```
//!
//! The pre-activations `h^l` of every layer are returned, so the studies can
//! follow the signal through depth. Everything runs in f64: a fixed-σ prior
//! makes ReLU pre-activations grow like `(n/2)^l`, beyond f32's range within
//! twenty layers of width 256.

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor, Var};
use rand::RngExt;
use serde::{Deserialize, Serialize};

use crate::layers::Activation;
use crate::noise::NoiseSource;
use crate::prior::{Fan, LayerPrior, Prior};
use crate::{Error, Result};

/// The shape of the init distribution at the prior's variance.
///
/// ```text
/// gaussian   the prior itself (LayerPrior::sample: the initializer)
/// uniform    U(m - √3 σ, m + √3 σ), σ = the prior's std, m its mean
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InitShape {
    /// Draws from the prior.
    #[default]
    Gaussian,
    /// Uniform with the prior's mean and variance (the "uniform" variants of
    /// He/Glorot/LeCun init).
    Uniform,
}

/// Normalization inside every hidden layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Norm {
    /// Plain `φ(h)`.
    #[default]
    None,
    /// `φ(LayerNorm(h))`, no gain or shift: `(h - mean_units h) / √(var_units h + 1e-5)`.
    LayerNorm,
    /// Every weight row rescaled to unit norm (`g = 1`), whatever the prior's scale.
    WeightNorm,
}

/// LayerNorm's `eps` (PyTorch's default).
const LAYER_NORM_EPS: f64 = 1e-5;

macro_rules! cli_enum {
    ($ty:ident, $what:literal, $( $variant:ident => $name:literal ),+ $(,)?) => {
        impl fmt::Display for $ty {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(match self { $( $ty::$variant => $name ),+ })
            }
        }

        impl FromStr for $ty {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self> {
                match s.trim().to_ascii_lowercase().as_str() {
                    $( $name => Ok($ty::$variant), )+
                    _ => Err(Error::invalid($what, format!("'{s}'"), [$( $name ),+].join(" | "))),
                }
            }
        }
    };
}

cli_enum!(InitShape, "init shape", Gaussian => "gaussian", Uniform => "uniform");
cli_enum!(Norm, "norm", None => "none", LayerNorm => "layernorm", WeightNorm => "weightnorm");

/// A deep MLP whose parameters are one draw from the prior.
///
/// # Shapes
/// `sizes = [in, n_1, ..., n_L]`: weight `l` is `[n_l, n_{l-1}]`, bias `l` is
/// `[n_l]`; input `[batch, in]` -> pre-activations `[batch, n_l]` per layer.
#[derive(Debug, Clone)]
pub struct RandomMlp {
    weights: Vec<Var>,
    biases: Vec<Tensor>,
}

impl RandomMlp {
    /// Draws every layer, in order, from `noise`: weights then bias of layer
    /// 1, then layer 2, ...
    pub fn draw(
        sizes: &[usize],
        prior: &Prior,
        shape: InitShape,
        noise: &NoiseSource,
        device: &Device,
    ) -> Result<Self> {
        if sizes.len() < 2 {
            return Err(Error::invalid(
                "layer sizes",
                format!("{sizes:?}"),
                "an input size and at least one layer",
            ));
        }
        let mut weights = Vec::with_capacity(sizes.len() - 1);
        let mut biases = Vec::with_capacity(sizes.len() - 1);
        for io in sizes.windows(2) {
            let (fan_in, fan_out) = (io[0], io[1]);
            let layer = prior.resolve(Fan { fan_in, fan_out })?;
            let w = draw_tensor(&layer, shape, (fan_out, fan_in), noise, device)?;
            weights.push(Var::from_tensor(&w)?);
            biases.push(draw_tensor(&layer, shape, (1, fan_out), noise, device)?);
        }
        Ok(Self { weights, biases })
    }

    /// The weight matrices (the direction `V` under weight norm), as
    /// variables whose gradients a backward pass through [`Self::forward`] fills.
    pub fn weights(&self) -> &[Var] {
        &self.weights
    }

    /// The pre-activations `h^1, ..., h^L` of `xs: [batch, in]` (f64).
    pub fn forward(&self, xs: &Tensor, activation: Activation, norm: Norm) -> Result<Vec<Tensor>> {
        self.forward_probed(xs, activation, norm, &[])
    }

    /// [`Self::forward`] with `probes[l]` (`[batch, n_l]`, zeros) added to
    /// `h^l`: a backward pass then gives `∂L/∂h^l` as the gradient of the
    /// probe variable (candle keeps gradients of variables only). Layers
    /// beyond `probes.len()` get none.
    pub fn forward_probed(
        &self,
        xs: &Tensor,
        activation: Activation,
        norm: Norm,
        probes: &[Var],
    ) -> Result<Vec<Tensor>> {
        let mut out = Vec::with_capacity(self.weights.len());
        let mut x = xs.to_dtype(DType::F64)?;
        for (l, (v, b)) in self.weights.iter().zip(&self.biases).enumerate() {
            if l > 0 {
                x = activation.apply(&match norm {
                    Norm::LayerNorm => layer_norm(&x)?,
                    Norm::None | Norm::WeightNorm => x,
                })?;
            }
            let w = match norm {
                Norm::WeightNorm => {
                    let v = v.as_tensor();
                    v.broadcast_div(&v.sqr()?.sum_keepdim(1)?.sqrt()?)?
                }
                Norm::None | Norm::LayerNorm => v.as_tensor().clone(),
            };
            let mut h = x.matmul(&w.t()?)?.broadcast_add(b)?;
            if let Some(probe) = probes.get(l) {
                h = (h + probe.as_tensor())?;
            }
            out.push(h.clone());
            x = h;
        }
        Ok(out)
    }
}

/// `(h - mean) / √(var + eps)` over the last dimension (units), per example.
fn layer_norm(h: &Tensor) -> Result<Tensor> {
    let centered = h.broadcast_sub(&h.mean_keepdim(1)?)?;
    let var = centered.sqr()?.mean_keepdim(1)?;
    Ok(centered.broadcast_div(&(var + LAYER_NORM_EPS)?.sqrt()?)?)
}

/// An f64 tensor of i.i.d. draws from `layer` in the given shape.
fn draw_tensor(
    layer: &LayerPrior,
    shape: InitShape,
    dims: (usize, usize),
    noise: &NoiseSource,
    device: &Device,
) -> Result<Tensor> {
    match shape {
        InitShape::Gaussian => Ok(layer.sample(dims, noise, device)?.to_dtype(DType::F64)?),
        InitShape::Uniform => {
            let mean = match *layer {
                LayerPrior::Gaussian { mean, .. } => mean,
                LayerPrior::Laplace { .. } | LayerPrior::ScaleMixture { .. } => 0.0,
            };
            let half_width = 3f64.sqrt() * layer.std();
            let values: Vec<f64> = noise.with_rng(|rng| {
                (0..dims.0 * dims.1)
                    .map(|_| mean + half_width * (2.0 * rng.random::<f64>() - 1.0))
                    .collect()
            });
            Ok(Tensor::from_vec(values, dims, device)?)
        }
    }
}
