//! Layers: the variational linear layer and activations.

pub mod activation;
pub mod linear;

pub use activation::Activation;
pub use linear::{BayesLinear, Estimator, LayerNoise};
