//! placeholder (crate docs come with the modules)
#![warn(missing_docs)]
pub mod data;
pub mod error;
pub mod figures;
pub mod layers;
pub mod likelihood;
pub mod model;
pub mod noise;
pub mod ops;
pub mod posterior;
pub mod prior;
pub use error::{Error, Result};
pub mod elbo;
pub mod metrics;
pub mod predictive;
pub mod regressor;
pub mod studies;
pub mod train;
