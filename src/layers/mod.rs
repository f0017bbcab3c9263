//! Layers: the variational linear layer, MC dropout and activations.

pub mod activation;
pub mod dropout;
pub mod linear;

pub use activation::Activation;
pub use dropout::McDropout;
pub use linear::{BayesLinear, Estimator, LayerNoise};
