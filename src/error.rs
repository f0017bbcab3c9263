//! The crate's one error type.
//!
//! Every message says what was wrong, where (parameter, file, line, column) and
//! what was expected, so that a user can fix the input without reading code.

use std::path::PathBuf;

/// Errors returned by every fallible function of the crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A hyperparameter or argument outside its valid range.
    #[error("invalid {name}: got {value}, expected {expected}")]
    InvalidParameter {
        /// The parameter's name as the user spells it (e.g. `sigma`, `hidden[1]`).
        name: String,
        /// The offending value, formatted.
        value: String,
        /// What would have been accepted.
        expected: String,
    },

    /// Bad content in a data file: a location and what is wrong there.
    #[error("{path}{location}: {message}", path = path.display(), location = fmt_location(*line, column.as_deref()))]
    Data {
        /// The file being read.
        path: PathBuf,
        /// 1-based line number (the header is line 1), when known.
        line: Option<usize>,
        /// Column name (or index), when known.
        column: Option<String>,
        /// What is wrong and what was expected.
        message: String,
    },

    /// A file could not be read or written.
    #[error("{path}: {source}", path = path.display())]
    Io {
        /// The file involved.
        path: PathBuf,
        /// The underlying I/O error.
        source: std::io::Error,
    },

    /// Training produced a non-finite number; no parameter was updated with it.
    #[error("training diverged: {term} is {value} at step {step} (epoch {epoch}); parameters were left at their last finite values. Try a smaller learning rate or a smaller initial posterior scale")]
    NonFinite {
        /// Which term: `nll`, `kl`, or `gradient of <parameter>`.
        term: String,
        /// The non-finite value (NaN, inf, -inf).
        value: f64,
        /// 0-based optimizer step.
        step: usize,
        /// 0-based epoch.
        epoch: usize,
    },

    /// Shapes that do not fit together (data vs model, tensors vs config).
    #[error("shape mismatch in {context}: {message}")]
    Shape {
        /// Where the mismatch was found.
        context: String,
        /// The shapes involved and what was expected.
        message: String,
    },

    /// A model directory that cannot be loaded: missing, truncated, corrupted,
    /// inconsistent, or from a newer format.
    #[error("model {path}: {message}", path = path.display())]
    Checkpoint {
        /// The model directory or the file in it.
        path: PathBuf,
        /// What is wrong and what was expected.
        message: String,
    },

    /// A figure could not be drawn or written.
    #[error("could not draw figure {path}: {message}", path = path.display())]
    Plot {
        /// The PNG being written.
        path: PathBuf,
        /// What plotters reported.
        message: String,
    },

    /// An error from candle's tensor operations.
    #[error(transparent)]
    Candle(#[from] candle_core::Error),

    /// A JSON (de)serialization error.
    #[error(transparent)]
    Json(#[from] serde_json::Error),
}

/// `Result` with the crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    /// Shorthand for [`Error::InvalidParameter`].
    pub fn invalid(
        name: impl Into<String>,
        value: impl std::fmt::Display,
        expected: impl Into<String>,
    ) -> Self {
        Error::InvalidParameter {
            name: name.into(),
            value: value.to_string(),
            expected: expected.into(),
        }
    }
}

fn fmt_location(line: Option<usize>, column: Option<&str>) -> String {
    match (line, column) {
        (Some(l), Some(c)) => format!(", line {l}, column '{c}'"),
        (Some(l), None) => format!(", line {l}"),
        (None, Some(c)) => format!(", column '{c}'"),
        (None, None) => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_error_names_file_line_and_column() {
        let e = Error::Data {
            path: "train.csv".into(),
            line: Some(7),
            column: Some("age".into()),
            message: "expected a number, got 'abc'".into(),
        };
        assert_eq!(
            e.to_string(),
            "train.csv, line 7, column 'age': expected a number, got 'abc'"
        );
    }
}
