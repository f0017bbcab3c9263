//! placeholder (crate docs come with the modules)
#![warn(missing_docs)]
pub mod data;
pub mod error;
pub mod figures;
pub use error::{Error, Result};
