//! Data: an in-memory [`Dataset`] (a regression target, or class indices
//! stored as numbers), the [`Standardizer`] that z-scores it, and the loaders
//! that fill it: [`read_csv`] / [`read_feature_csv`] for user files,
//! [`load_split_dir`] for the UCI split-directory benchmark layout, and
//! [`diabetes`] and [`digits`] for embedded real data.
//!
//! This module knows nothing of models: it produces plain row-major `f64`
//! arrays and, on request, `f32` tensors on a caller-chosen [`Device`].
//!
//! Every loader error is a value ([`Error::Data`] or [`Error::Io`]) that names
//! the file, the 1-based line (a CSV header is line 1), the column, and what
//! was expected, so a user can fix the input without reading code.

use std::collections::HashSet;
use std::io::Cursor;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::error::{Error, Result};

/// Checks that row-major `values` are one or more whole rows of `n_cols`
/// finite numbers (the error names the 0-based row and column of a
/// non-finite one) and returns the number of rows.
fn check_rows(values: &[f64], n_cols: usize, context: &str) -> Result<usize> {
    if n_cols == 0 {
        return Err(Error::invalid("n_cols", 0, "at least 1 column"));
    }
    if values.is_empty() || values.len() % n_cols != 0 {
        return Err(Error::Shape {
            context: context.into(),
            message: format!(
                "got {} values for {n_cols} columns; expected a positive multiple of {n_cols} (row-major rows × columns)",
                values.len()
            ),
        });
    }
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(Error::invalid(
            format!("values[row {}, column {}]", k / n_cols, k % n_cols),
            values[k],
            "a finite number",
        ));
    }
    Ok(values.len() / n_cols)
}

/// An error about a whole file (no line or column to point at).
fn file_error(path: &Path, message: impl Into<String>) -> Error {
    Error::Data {
        path: path.to_path_buf(),
        line: None,
        column: None,
        message: message.into(),
    }
}

// ---------------------------------------------------------------------------
// Dataset
// ---------------------------------------------------------------------------

/// A regression dataset held in memory: `n` rows of `d` features and one
/// target per row.
///
/// # Shapes
///
/// ```text
/// x: row-major [n, d]   (x[i * d + j] is feature j of row i)
/// y: [n]
/// feature_names: [d]
/// ```
///
/// Build it with [`Dataset::new`], which checks the shapes and that every
/// value is finite; the fields are public for reading.
#[derive(Debug, Clone)]
pub struct Dataset {
    /// Features, row-major `n × d`.
    pub x: Vec<f64>,
    /// Targets, one per row.
    pub y: Vec<f64>,
    /// One name per feature column (`d` names).
    pub feature_names: Vec<String>,
    /// The target column's name.
    pub target_name: String,
}

impl Dataset {
    /// Builds a dataset after checking it.
    ///
    /// The number of features `d` is `feature_names.len()` and must be at
    /// least 1; `x.len()` must equal `y.len() * d`; every value of `x` and `y`
    /// must be finite (the error names the 0-based row and the column).
    pub fn new(
        x: Vec<f64>,
        y: Vec<f64>,
        feature_names: Vec<String>,
        target_name: impl Into<String>,
    ) -> Result<Self> {
        let target_name = target_name.into();
        let d = feature_names.len();
        if d == 0 {
            return Err(Error::invalid(
                "feature_names",
                "[]",
                "at least one feature column",
            ));
        }
        if x.len() != y.len() * d {
            return Err(Error::Shape {
                context: "Dataset::new".into(),
                message: format!(
                    "x has {} values but y has {} rows and there are {d} features; expected x.len() = {} (row-major rows × features)",
                    x.len(),
                    y.len(),
                    y.len() * d
                ),
            });
        }
        for (k, v) in x.iter().enumerate() {
            if !v.is_finite() {
                let (row, col) = (k / d, k % d);
                return Err(Error::invalid(
                    format!("x[row {row}, column '{}']", feature_names[col]),
                    v,
                    "a finite number",
                ));
            }
        }
        for (row, v) in y.iter().enumerate() {
            if !v.is_finite() {
                return Err(Error::invalid(
                    format!("y[row {row}, column '{target_name}']"),
                    v,
                    "a finite number",
                ));
            }
        }
        Ok(Self {
            x,
            y,
            feature_names,
            target_name,
        })
    }

    /// Number of rows `n`.
    pub fn len(&self) -> usize {
        self.y.len()
    }

    /// `true` when the dataset has no rows.
    pub fn is_empty(&self) -> bool {
        self.y.is_empty()
    }

    /// Number of feature columns `d`.
    pub fn n_features(&self) -> usize {
        self.feature_names.len()
    }

    /// The features of row `i` (0-based), a slice of length `d`.
    ///
    /// # Panics
    ///
    /// Like slice indexing, if `i >= self.len()`.
    pub fn row(&self, i: usize) -> &[f64] {
        let d = self.n_features();
        &self.x[i * d..(i + 1) * d]
    }

    /// A new dataset holding the rows `indices` in that order (repeats
    /// allowed), with the same column names.
    ///
    /// # Panics
    ///
    /// Like slice indexing, if an index is `>= self.len()`.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let d = self.n_features();
        let mut x = Vec::with_capacity(indices.len() * d);
        let mut y = Vec::with_capacity(indices.len());
        for &i in indices {
            x.extend_from_slice(self.row(i));
            y.push(self.y[i]);
        }
        Dataset {
            x,
            y,
            feature_names: self.feature_names.clone(),
            target_name: self.target_name.clone(),
        }
    }

    /// Splits the rows at random into `(train, test)`.
    ///
    /// ```text
    /// n_test  = round(n * test_fraction)
    /// n_train = n - n_test
    /// perm    = shuffle(0..n) with StdRng::seed_from_u64(seed)
    /// train   = rows perm[..n_train],  test = rows perm[n_train..]
    /// ```
    ///
    /// The same seed gives the same split. `test_fraction` must lie in the
    /// open interval (0, 1) and leave at least one row on each side; otherwise
    /// this returns [`Error::InvalidParameter`].
    pub fn train_test_split(&self, test_fraction: f64, seed: u64) -> Result<(Dataset, Dataset)> {
        if !(test_fraction > 0.0 && test_fraction < 1.0) {
            return Err(Error::invalid(
                "test_fraction",
                test_fraction,
                "a fraction in the open interval (0, 1)",
            ));
        }
        let n = self.len();
        let n_test = (n as f64 * test_fraction).round() as usize;
        if n_test == 0 || n_test >= n {
            return Err(Error::invalid(
                "test_fraction",
                test_fraction,
                format!(
                    "a fraction that leaves at least one row on each side of the split of {n} rows (it gives {n_test} test rows)"
                ),
            ));
        }
        let mut perm: Vec<usize> = (0..n).collect();
        perm.shuffle(&mut StdRng::seed_from_u64(seed));
        let (train, test) = perm.split_at(n - n_test);
        Ok((self.subset(train), self.subset(test)))
    }

    /// The features as an `f32` tensor of shape `[n, d]` on `device`.
    pub fn x_tensor(&self, device: &Device) -> Result<Tensor> {
        let data: Vec<f32> = self.x.iter().map(|&v| v as f32).collect();
        Ok(Tensor::from_vec(
            data,
            (self.len(), self.n_features()),
            device,
        )?)
    }

    /// The targets as an `f32` tensor of shape `[n, 1]` on `device`.
    pub fn y_tensor(&self, device: &Device) -> Result<Tensor> {
        let data: Vec<f32> = self.y.iter().map(|&v| v as f32).collect();
        Ok(Tensor::from_vec(data, (self.len(), 1), device)?)
    }

    /// A copy with features transformed by `x_std` and targets by `y_std`
    /// (see [`Standardizer::transform`]).
    pub fn standardized(&self, x_std: &Standardizer, y_std: &Standardizer) -> Dataset {
        Dataset {
            x: x_std.transform(&self.x),
            y: y_std.transform(&self.y),
            feature_names: self.feature_names.clone(),
            target_name: self.target_name.clone(),
        }
    }
}

// ---------------------------------------------------------------------------
// Standardizer
// ---------------------------------------------------------------------------

/// Per-column z-scoring, fitted on training data and reused on any other
/// data (test rows, prediction inputs, a saved model's inputs).
///
/// # Formula
///
/// ```text
/// mean_j  = (1/n) Σ_i x_ij
/// std_j   = sqrt( (1/n) Σ_i (x_ij - mean_j)^2 )        population std, ddof = 0
/// scale_j = std_j   if std_j >= 1e-12 * max(1, |mean_j|)
///           1       otherwise (a constant column: constant_j = true)
/// transform: z_ij = (x_ij - mean_j) / scale_j
/// inverse:   x_ij = z_ij * scale_j + mean_j
/// ```
///
/// This is the protocol of the published UCI benchmark (a zero-std column
/// gets std 1). It serializes (serde), so a saved model carries its scaling.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Standardizer {
    /// Per-column mean.
    pub mean: Vec<f64>,
    /// Per-column divisor: the population std, or 1 for a constant column.
    pub scale: Vec<f64>,
    /// Per-column flag: `true` where the column was constant when fitted
    /// (its scale was set to 1). Absent in older files, read as all `false`.
    #[serde(default)]
    pub constant: Vec<bool>,
}

impl Standardizer {
    /// Fits the per-column mean and scale of row-major `values` with `n_cols`
    /// columns (see the type's formula).
    ///
    /// Errors if `n_cols` is 0, if `values.len()` is not a positive multiple
    /// of `n_cols`, or if a value is not finite (the error names the 0-based
    /// row and column).
    pub fn fit(values: &[f64], n_cols: usize) -> Result<Self> {
        let n = check_rows(values, n_cols, "Standardizer::fit")? as f64;
        let mut mean = vec![0.0; n_cols];
        for row in values.chunks_exact(n_cols) {
            for (m, v) in mean.iter_mut().zip(row) {
                *m += v;
            }
        }
        for m in &mut mean {
            *m /= n;
        }
        let mut var = vec![0.0; n_cols];
        for row in values.chunks_exact(n_cols) {
            for ((s, v), m) in var.iter_mut().zip(row).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let mut scale = Vec::with_capacity(n_cols);
        let mut constant = Vec::with_capacity(n_cols);
        for (s, m) in var.iter().zip(&mean) {
            let std = (s / n).sqrt();
            let is_constant = std.is_nan() || std < 1e-12 * m.abs().max(1.0);
            scale.push(if is_constant { 1.0 } else { std });
            constant.push(is_constant);
        }
        Ok(Self {
            mean,
            scale,
            constant,
        })
    }

    /// Fits one standardizer to a dataset's features (`d` columns) and one to
    /// its targets (1 column): `(x_std, y_std)`.
    pub fn fit_dataset(data: &Dataset) -> Result<(Standardizer, Standardizer)> {
        Ok((
            Self::fit(&data.x, data.n_features())?,
            Self::fit(&data.y, 1)?,
        ))
    }

    /// Standardizes row-major `values` (whole rows of `n_cols`, all finite)
    /// into an f32 tensor `[rows, n_cols]` on `device`: a model's input.
    pub fn transform_tensor(&self, values: &[f64], device: &Device) -> Result<Tensor> {
        let d = self.n_cols();
        check_rows(values, d, "Standardizer::transform_tensor")?;
        let scaled: Vec<f32> = self
            .transform(values)
            .into_iter()
            .map(|v| v as f32)
            .collect();
        Ok(Tensor::from_vec(scaled, (values.len() / d, d), device)?)
    }

    /// Number of columns this standardizer was fitted on.
    pub fn n_cols(&self) -> usize {
        self.mean.len()
    }

    /// 0-based indices of the columns that were constant when fitted (their
    /// scale is 1), so a caller can warn about them.
    pub fn constant_columns(&self) -> Vec<usize> {
        self.constant
            .iter()
            .enumerate()
            .filter_map(|(j, &c)| c.then_some(j))
            .collect()
    }

    /// `z = (x - mean_j) / scale_j` for row-major `values`, where element `k`
    /// belongs to column `j = k % n_cols`.
    pub fn transform(&self, values: &[f64]) -> Vec<f64> {
        self.map(values, |v, m, s| (v - m) / s)
    }

    /// `x = z * scale_j + mean_j`, the inverse of [`Standardizer::transform`].
    pub fn inverse(&self, values: &[f64]) -> Vec<f64> {
        self.map(values, |z, m, s| z * s + m)
    }

    /// `sigma_x = sigma_z * scale_j`: maps a standard deviation (or an
    /// interval width) from the standardized scale back to the original one;
    /// unlike [`Standardizer::inverse`] it adds no mean.
    pub fn inverse_scale(&self, values: &[f64]) -> Vec<f64> {
        self.map(values, |z, _, s| z * s)
    }

    /// Applies `f(value, mean_j, scale_j)` element-wise with `j = k % n_cols`.
    /// A standardizer with no columns leaves values unchanged; a missing
    /// scale entry (mismatched field lengths) counts as 1.
    fn map(&self, values: &[f64], f: impl Fn(f64, f64, f64) -> f64) -> Vec<f64> {
        let n_cols = self.mean.len();
        if n_cols == 0 {
            return values.to_vec();
        }
        values
            .iter()
            .enumerate()
            .map(|(k, &v)| {
                let j = k % n_cols;
                f(v, self.mean[j], self.scale.get(j).copied().unwrap_or(1.0))
            })
            .collect()
    }
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// Reads a regression dataset from a CSV file with a header row.
///
/// - `target`: the target column's name.
/// - `features`: the feature columns' names, in the order wanted; `None`
///   means every column except the target, in file order. Columns not
///   selected are not read.
///
/// Cells are trimmed of surrounding whitespace; every selected cell must be a
/// finite number (`nan`, `inf` are rejected). Blank lines are skipped.
///
/// # Errors
///
/// [`Error::Io`] if the file cannot be read; [`Error::Data`] naming the file,
/// the 1-based line (the header is line 1) and the column for: an empty file,
/// a header with no data rows, a non-numeric or non-finite cell (quoting its
/// text), a row with too few or too many fields, a missing target or feature
/// column (listing the available ones), duplicate or empty column names.
/// [`Error::InvalidParameter`] if `features` is empty, repeats a name or
/// contains the target.
pub fn read_csv(path: &Path, target: &str, features: Option<&[String]>) -> Result<Dataset> {
    let mut table = CsvTable::open(path)?;
    let target_col = table.column(target, "target")?;
    let feature_cols: Vec<usize> = match features {
        Some(names) => {
            if names.iter().any(|f| f == target) {
                return Err(Error::invalid(
                    "features",
                    format!("{names:?}"),
                    format!("feature columns other than the target '{target}'"),
                ));
            }
            table.columns(names)?
        }
        None => (0..table.header.len())
            .filter(|&j| j != target_col)
            .collect(),
    };
    if feature_cols.is_empty() {
        return Err(Error::Data {
            path: path.to_path_buf(),
            line: Some(1),
            column: None,
            message: format!("no feature columns: the header holds only the target '{target}'"),
        });
    }
    let feature_names: Vec<String> = feature_cols
        .iter()
        .map(|&j| table.header[j].clone())
        .collect();
    let mut wanted = feature_cols;
    wanted.push(target_col);
    let (values, n_rows) = table.read_rows(&wanted)?;
    let d = feature_names.len();
    let mut x = Vec::with_capacity(n_rows * d);
    let mut y = Vec::with_capacity(n_rows);
    for row in values.chunks_exact(d + 1) {
        x.extend_from_slice(&row[..d]);
        y.push(row[d]);
    }
    Dataset::new(x, y, feature_names, target)
}

/// Reads only the named feature columns of a CSV file with a header row, for
/// prediction files that carry no target; other columns are ignored (not
/// parsed). Returns the row-major values `[n_rows, features.len()]` (columns
/// in the order of `features`) and `n_rows`.
///
/// Parsing and errors are those of [`read_csv`].
pub fn read_feature_csv(path: &Path, features: &[String]) -> Result<(Vec<f64>, usize)> {
    let mut table = CsvTable::open(path)?;
    let cols = table.columns(features)?;
    table.read_rows(&cols)
}

/// An opened CSV file whose header has been read and checked.
///
/// The file is read into memory so that line numbers can be computed from
/// byte offsets: the csv crate's own line count skips blank lines.
struct CsvTable {
    path: PathBuf,
    header: Vec<String>,
    reader: csv::Reader<Cursor<Vec<u8>>>,
}

impl CsvTable {
    /// Opens `path`, reads the header, rejects an empty file and empty or
    /// duplicate column names.
    fn open(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|source| Error::Io {
            path: path.to_path_buf(),
            source,
        })?;
        let mut reader = csv::ReaderBuilder::new()
            .has_headers(true)
            .flexible(true)
            .trim(csv::Trim::All)
            .from_reader(Cursor::new(bytes));
        let header: Vec<String> = match reader.headers() {
            Ok(h) => h.clone(),
            Err(e) => return Err(csv_error(path, e, reader.get_ref().get_ref())),
        }
        .iter()
        .map(str::to_string)
        .collect();
        let data_error = |column: Option<String>, message: String| Error::Data {
            path: path.to_path_buf(),
            line: Some(1),
            column,
            message,
        };
        if header.is_empty() || (header.len() == 1 && header[0].is_empty()) {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line: None,
                column: None,
                message:
                    "the file is empty; expected a header row of column names followed by data rows"
                        .into(),
            });
        }
        if let Some(j) = header.iter().position(String::is_empty) {
            return Err(data_error(
                None,
                format!(
                    "header field {} of {} is empty; every column needs a name",
                    j + 1,
                    header.len()
                ),
            ));
        }
        let mut seen = HashSet::new();
        for name in &header {
            if !seen.insert(name.as_str()) {
                return Err(data_error(
                    Some(name.clone()),
                    format!("duplicate column name '{name}'; column names must be unique"),
                ));
            }
        }
        Ok(Self {
            path: path.to_path_buf(),
            header,
            reader,
        })
    }

    /// The index of the column called `name`; `role` ("target", "feature")
    /// words the error, which lists the available columns.
    fn column(&self, name: &str, role: &str) -> Result<usize> {
        self.header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| Error::Data {
                path: self.path.clone(),
                line: Some(1),
                column: Some(name.to_string()),
                message: format!(
                    "no {role} column named '{name}' in the header; available columns: {}",
                    self.header
                        .iter()
                        .map(|h| format!("'{h}'"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// Column indices of the feature `names`, which must be non-empty,
    /// distinct and present.
    fn columns(&self, names: &[String]) -> Result<Vec<usize>> {
        if names.is_empty() {
            return Err(Error::invalid(
                "features",
                "[]",
                "at least one feature column name",
            ));
        }
        let mut seen = HashSet::new();
        for name in names {
            if !seen.insert(name.as_str()) {
                return Err(Error::invalid(
                    "features",
                    format!("{names:?}"),
                    format!("distinct column names ('{name}' appears twice)"),
                ));
            }
        }
        names.iter().map(|n| self.column(n, "feature")).collect()
    }

    /// Reads every data row and parses the cells of columns `cols` (in that
    /// order) as finite numbers: row-major `[n_rows, cols.len()]` and
    /// `n_rows`.
    fn read_rows(&mut self, cols: &[usize]) -> Result<(Vec<f64>, usize)> {
        let width = self.header.len();
        let mut values = Vec::new();
        let mut n_rows = 0;
        let mut record = csv::StringRecord::new();
        let mut lines = LineCounter::default();
        loop {
            match self.reader.read_record(&mut record) {
                Ok(true) => {}
                Ok(false) => break,
                Err(e) => return Err(csv_error(&self.path, e, self.reader.get_ref().get_ref())),
            }
            let bytes = self.reader.get_ref().get_ref();
            let line = record
                .position()
                .map(|p| lines.record_line(bytes, p.byte()));
            // A whitespace-only line trims to one empty field: treat it as blank.
            if width > 1 && record.len() == 1 && record.get(0).is_some_and(str::is_empty) {
                continue;
            }
            if record.len() != width {
                return Err(Error::Data {
                    path: self.path.clone(),
                    line,
                    column: None,
                    message: format!(
                        "found {} field{}, expected {width} (one per header column)",
                        record.len(),
                        if record.len() == 1 { "" } else { "s" }
                    ),
                });
            }
            for &j in cols {
                let cell = record.get(j).unwrap_or("");
                values.push(parse_finite(cell).map_err(|message| Error::Data {
                    path: self.path.clone(),
                    line,
                    column: Some(self.header[j].clone()),
                    message,
                })?);
            }
            n_rows += 1;
        }
        if n_rows == 0 {
            return Err(Error::Data {
                path: self.path.clone(),
                line: None,
                column: None,
                message: "the file has a header (line 1) but no data rows".into(),
            });
        }
        Ok((values, n_rows))
    }
}

/// Converts a csv crate error (reading from memory, so in practice invalid
/// UTF-8) to [`Error::Data`] at the right line of `bytes`.
fn csv_error(path: &Path, e: csv::Error, bytes: &[u8]) -> Error {
    let line = e
        .position()
        .map(|p| LineCounter::default().record_line(bytes, p.byte()));
    let message = match e.kind() {
        csv::ErrorKind::Utf8 { err, .. } => format!(
            "field {} is not valid UTF-8 text; expected a UTF-8 encoded CSV file",
            err.field() + 1
        ),
        _ => e.to_string(),
    };
    Error::Data {
        path: path.to_path_buf(),
        line,
        column: None,
        message,
    }
}

/// Turns the byte offsets at which the csv crate says records start into
/// 1-based line numbers. Records are asked for in increasing order, so
/// newlines are counted once.
#[derive(Default)]
struct LineCounter {
    /// Bytes already scanned.
    offset: usize,
    /// Newlines in `bytes[..offset]`.
    newlines: usize,
}

impl LineCounter {
    /// The line on which the record reported at `byte` starts: the csv crate
    /// reports the offset just after the previous record, before any blank
    /// lines it skipped, so those are skipped here too.
    fn record_line(&mut self, bytes: &[u8], byte: u64) -> usize {
        let mut at = usize::try_from(byte).map_or(bytes.len(), |b| b.min(bytes.len()));
        if at < self.offset {
            *self = Self::default();
        }
        while let Some(&b) = bytes.get(at) {
            if b != b'\n' && b != b'\r' {
                break;
            }
            at += 1;
        }
        self.newlines += bytes[self.offset..at]
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        self.offset = at;
        self.newlines + 1
    }
}

/// Parses one trimmed cell as a finite `f64`; the error message quotes it.
fn parse_finite(cell: &str) -> std::result::Result<f64, String> {
    if cell.is_empty() {
        return Err("empty cell; expected a number".into());
    }
    match cell.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        Ok(_) => Err(format!(
            "'{cell}' is not a finite number; NaN and infinite values are not accepted"
        )),
        Err(_) => Err(format!("expected a number, got '{cell}'")),
    }
}

// ---------------------------------------------------------------------------
// UCI split directory
// ---------------------------------------------------------------------------

/// A dataset in the split-directory layout of the standard UCI regression
/// benchmark (Hernández-Lobato & Adams 2015; Gal & Ghahramani 2016), with its
/// published train/test splits and protocol constants. Load it with
/// [`load_split_dir`]; get split `i` as datasets with [`SplitDir::split`].
///
/// # Layout
///
/// ```text
/// data.txt                 whitespace-separated numbers, one row per line
/// index_features.txt       0-based feature column indices, one per line
/// index_target.txt         the 0-based target column index
/// index_train_I.txt        0-based row indices of split I's training rows
/// index_test_I.txt         0-based row indices of split I's test rows
/// n_splits.txt             optional: number of splits (else: count index_train_I files)
/// n_hidden.txt, n_epochs.txt, dropout_rates.txt, tau_values.txt   optional
/// ```
#[derive(Debug, Clone)]
pub struct SplitDir {
    /// The directory's name (e.g. `bostonHousing`).
    pub name: String,
    /// All of `data.txt`, row-major `[n_rows, n_cols]`.
    pub data: Vec<f64>,
    /// Number of columns of `data.txt`.
    pub n_cols: usize,
    /// 0-based feature columns (from `index_features.txt`).
    pub feature_cols: Vec<usize>,
    /// 0-based target column (from `index_target.txt`).
    pub target_col: usize,
    /// `(train, test)` 0-based row indices of each split.
    pub splits: Vec<(Vec<usize>, Vec<usize>)>,
    /// Hidden units of the published protocol (`n_hidden.txt`), if given.
    pub n_hidden: Option<usize>,
    /// Base number of epochs (`n_epochs.txt`), if given.
    pub n_epochs: Option<usize>,
    /// MC-dropout grid of dropout rates (`dropout_rates.txt`), if given.
    pub dropout_rates: Option<Vec<f64>>,
    /// MC-dropout grid of model precisions tau (`tau_values.txt`), if given.
    pub tau_values: Option<Vec<f64>>,
}

impl SplitDir {
    /// Number of rows of `data.txt`.
    pub fn n_rows(&self) -> usize {
        self.data.len().checked_div(self.n_cols).unwrap_or(0)
    }

    /// Number of train/test splits.
    pub fn n_splits(&self) -> usize {
        self.splits.len()
    }

    /// Split `i` as `(train, test)` datasets. Feature names are `x{c}` with
    /// `c` the feature's 0-based column in `data.txt` (`x0, x1, ...` for the
    /// published files); the target is named `y`.
    pub fn split(&self, i: usize) -> Result<(Dataset, Dataset)> {
        let (train, test) = self.splits.get(i).ok_or_else(|| {
            Error::invalid(
                "split",
                i,
                format!(
                    "a split index in 0..{} for '{}'",
                    self.splits.len(),
                    self.name
                ),
            )
        })?;
        Ok((self.rows(train)?, self.rows(test)?))
    }

    /// Gathers `rows` into a dataset of the feature and target columns.
    fn rows(&self, rows: &[usize]) -> Result<Dataset> {
        let n_rows = self.n_rows();
        let get = |r: usize, c: usize| -> Result<f64> {
            if r >= n_rows || c >= self.n_cols {
                return Err(Error::Shape {
                    context: format!("split directory '{}'", self.name),
                    message: format!(
                        "cell (row {r}, column {c}) is outside data of {n_rows} rows × {} columns",
                        self.n_cols
                    ),
                });
            }
            Ok(self.data[r * self.n_cols + c])
        };
        let mut x = Vec::with_capacity(rows.len() * self.feature_cols.len());
        let mut y = Vec::with_capacity(rows.len());
        for &r in rows {
            for &c in &self.feature_cols {
                x.push(get(r, c)?);
            }
            y.push(get(r, self.target_col)?);
        }
        let names = self.feature_cols.iter().map(|c| format!("x{c}")).collect();
        Dataset::new(x, y, names, "y")
    }
}

/// Loads a directory in the UCI split layout (see [`SplitDir`]).
///
/// `data.txt` may mix spaces and tabs and have blank lines (skipped, as
/// `numpy.loadtxt` does); all rows must have the same number of values.
/// Index files hold one or more whitespace-separated integers per line,
/// written `3` or `3.0`.
///
/// # Errors
///
/// [`Error::Io`] for a missing directory or required file; [`Error::Data`]
/// naming the file and 1-based line for: a value that is not a number, a
/// ragged row, an index that is not a non-negative integer, a row index
/// `>= n_rows` or column index `>= n_cols` (with the valid range), an empty
/// index file or split, the target among the features, an out-of-range
/// dropout rate or tau.
pub fn load_split_dir(dir: &Path) -> Result<SplitDir> {
    let meta = std::fs::metadata(dir).map_err(|source| Error::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(file_error(dir, "not a directory; expected a folder holding data.txt, index_features.txt, index_target.txt and index_train_I.txt / index_test_I.txt"));
    }
    let name = dir
        .file_name()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| dir.display().to_string());

    let (data, n_rows, n_cols) = read_data_txt(&dir.join("data.txt"))?;

    let feature_path = dir.join("index_features.txt");
    let feature_cols = read_indices(&feature_path, "column", n_cols)?;
    let target_path = dir.join("index_target.txt");
    let target_col = read_single_index(&target_path, "column", n_cols)?;
    if let Some(k) = feature_cols.iter().position(|&c| c == target_col) {
        return Err(Error::Data {
            path: feature_path,
            line: None,
            column: None,
            message: format!(
                "feature column {} (entry {}) is the target column from index_target.txt; the target must not be a feature",
                target_col,
                k + 1
            ),
        });
    }

    let n_splits = match read_optional(&dir.join("n_splits.txt"))? {
        Some((path, text)) => {
            let n = parse_single_count(&path, &text)?;
            if n == 0 {
                return Err(Error::Data {
                    path,
                    line: Some(1),
                    column: None,
                    message: "n_splits is 0; expected at least 1 split".into(),
                });
            }
            n
        }
        None => {
            let n = (0..)
                .take_while(|i| dir.join(format!("index_train_{i}.txt")).is_file())
                .count();
            if n == 0 {
                return Err(Error::Data {
                    path: dir.join("index_train_0.txt"),
                    line: None,
                    column: None,
                    message: "no splits: neither n_splits.txt nor index_train_0.txt is present"
                        .into(),
                });
            }
            n
        }
    };
    let mut splits = Vec::with_capacity(n_splits);
    for i in 0..n_splits {
        let train = read_indices(&dir.join(format!("index_train_{i}.txt")), "row", n_rows)?;
        let test = read_indices(&dir.join(format!("index_test_{i}.txt")), "row", n_rows)?;
        splits.push((train, test));
    }

    let n_hidden = read_optional(&dir.join("n_hidden.txt"))?
        .map(|(p, t)| parse_single_count(&p, &t))
        .transpose()?;
    let n_epochs = read_optional(&dir.join("n_epochs.txt"))?
        .map(|(p, t)| parse_single_count(&p, &t))
        .transpose()?;
    let dropout_rates = read_optional(&dir.join("dropout_rates.txt"))?
        .map(|(p, t)| {
            parse_grid(
                &p,
                &t,
                |v| (0.0..1.0).contains(&v),
                "a dropout rate in [0, 1)",
            )
        })
        .transpose()?;
    let tau_values = read_optional(&dir.join("tau_values.txt"))?
        .map(|(p, t)| parse_grid(&p, &t, |v| v > 0.0, "a model precision tau > 0"))
        .transpose()?;

    Ok(SplitDir {
        name,
        data,
        n_cols,
        feature_cols,
        target_col,
        splits,
        n_hidden,
        n_epochs,
        dropout_rates,
        tau_values,
    })
}

/// Reads a whole text file, mapping failures to [`Error::Io`].
fn read_text(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Reads an optional file: `None` if it does not exist.
fn read_optional(path: &Path) -> Result<Option<(PathBuf, String)>> {
    if path.exists() {
        Ok(Some((path.to_path_buf(), read_text(path)?)))
    } else {
        Ok(None)
    }
}

/// The whitespace-separated tokens of `text` with their 1-based line numbers,
/// skipping blank lines.
fn tokens(text: &str) -> impl Iterator<Item = (usize, &str)> {
    text.lines()
        .enumerate()
        .flat_map(|(i, l)| l.split_whitespace().map(move |t| (i + 1, t)))
}

/// Parses `data.txt`: `(row-major values, n_rows, n_cols)`.
fn read_data_txt(path: &Path) -> Result<(Vec<f64>, usize, usize)> {
    let text = read_text(path)?;
    let mut data = Vec::new();
    let mut width: Option<(usize, usize)> = None; // (n_cols, line it was set on)
    let mut n_rows = 0;
    for (i, line) in text.lines().enumerate() {
        let line_no = i + 1;
        let start = data.len();
        for (j, tok) in line.split_whitespace().enumerate() {
            let v = parse_finite(tok).map_err(|message| Error::Data {
                path: path.to_path_buf(),
                line: Some(line_no),
                column: Some(j.to_string()),
                message,
            })?;
            data.push(v);
        }
        let k = data.len() - start;
        if k == 0 {
            continue;
        }
        match width {
            None => width = Some((k, line_no)),
            Some((w, first)) if w != k => {
                return Err(Error::Data {
                    path: path.to_path_buf(),
                    line: Some(line_no),
                    column: None,
                    message: format!(
                        "found {k} values, expected {w} (as on line {first}); all rows must have the same width"
                    ),
                })
            }
            Some(_) => {}
        }
        n_rows += 1;
    }
    match width {
        Some((n_cols, _)) => Ok((data, n_rows, n_cols)),
        None => Err(file_error(
            path,
            "no data: expected rows of whitespace-separated numbers",
        )),
    }
}

/// Parses one token as a non-negative integer written `3` or `3.0`.
fn parse_index(path: &Path, line: usize, tok: &str) -> Result<usize> {
    let bad = |what: &str| Error::Data {
        path: path.to_path_buf(),
        line: Some(line),
        column: None,
        message: format!("expected a non-negative integer, got '{tok}'{what}"),
    };
    if let Ok(v) = tok.parse::<usize>() {
        return Ok(v);
    }
    let v: f64 = tok.parse().map_err(|_| bad(""))?;
    // 2^53: every integer up to here is exact in f64.
    if v.is_finite() && v >= 0.0 && v.fract() == 0.0 && v <= 9_007_199_254_740_992.0 {
        Ok(v as usize)
    } else {
        Err(bad(" (not a whole number >= 0)"))
    }
}

/// Reads an index file whose values must lie in `0..bound` (`kind` is
/// "row" or "column" and words the error); it must hold at least one index.
fn read_indices(path: &Path, kind: &str, bound: usize) -> Result<Vec<usize>> {
    let text = read_text(path)?;
    let mut out = Vec::new();
    for (line, tok) in tokens(&text) {
        let v = parse_index(path, line, tok)?;
        if v >= bound {
            return Err(Error::Data {
                path: path.to_path_buf(),
                line: Some(line),
                column: None,
                message: format!(
                    "{kind} index {v} is out of range: data.txt has {bound} {kind}s, so valid {kind} indices are 0..={}",
                    bound.saturating_sub(1)
                ),
            });
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(file_error(
            path,
            format!("no {kind} indices; expected at least one 0-based {kind} index"),
        ));
    }
    Ok(out)
}

/// Reads an index file that must hold exactly one index in `0..bound`.
fn read_single_index(path: &Path, kind: &str, bound: usize) -> Result<usize> {
    let v = read_indices(path, kind, bound)?;
    match v.as_slice() {
        [one] => Ok(*one),
        _ => Err(file_error(
            path,
            format!("found {} {kind} indices, expected exactly one", v.len()),
        )),
    }
}

/// Parses a file holding exactly one non-negative integer (`n_splits.txt`,
/// `n_hidden.txt`, `n_epochs.txt`).
fn parse_single_count(path: &Path, text: &str) -> Result<usize> {
    let toks: Vec<(usize, &str)> = tokens(text).collect();
    match toks.as_slice() {
        [(line, tok)] => parse_index(path, *line, tok),
        _ => Err(file_error(
            path,
            format!("found {} values, expected exactly one integer", toks.len()),
        )),
    }
}

/// Parses a non-empty grid of finite numbers, each accepted by `ok`
/// (`expected` words the error).
fn parse_grid(
    path: &Path,
    text: &str,
    ok: impl Fn(f64) -> bool,
    expected: &str,
) -> Result<Vec<f64>> {
    let mut out = Vec::new();
    for (line, tok) in tokens(text) {
        let err = |message: String| Error::Data {
            path: path.to_path_buf(),
            line: Some(line),
            column: None,
            message,
        };
        let v = parse_finite(tok).map_err(err)?;
        if !ok(v) {
            return Err(err(format!("got {v}, expected {expected}")));
        }
        out.push(v);
    }
    if out.is_empty() {
        return Err(file_error(
            path,
            format!("no values; expected one or more, each {expected}"),
        ));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------
// Embedded data
// ---------------------------------------------------------------------------

/// The diabetes regression data (Efron et al. 2004), embedded in the binary
/// via smartcore: 442 patients × 10 baseline features (`Age`, `Sex`, `BMI`,
/// `BP`, `S1`..`S6`), target `disease_progression` (a quantitative measure
/// one year after baseline). Nothing is downloaded.
pub fn diabetes() -> Dataset {
    let ds = smartcore::dataset::diabetes::load_dataset();
    let d = ds.num_features;
    // Trust only what is consistent: at most as many rows as both arrays hold.
    let n = ds
        .data
        .len()
        .checked_div(d)
        .map_or(0, |rows| rows.min(ds.target.len()));
    let feature_names = if ds.feature_names.len() == d {
        ds.feature_names
    } else {
        (0..d).map(|j| format!("x{j}")).collect()
    };
    Dataset {
        x: ds.data[..n * d].iter().map(|&v| f64::from(v)).collect(),
        y: ds.target[..n].iter().map(|&v| f64::from(v)).collect(),
        feature_names,
        target_name: "disease_progression".into(),
    }
}

/// The optical handwritten digits (Alpaydin & Kaynak 1998, UCI; the
/// scikit-learn `load_digits` copy), embedded in the binary via smartcore:
/// 1797 images of 8×8 pixels, each pixel an ink count in 0..=16, and the
/// digit 0–9 each image shows. Nothing is downloaded.
///
/// ```text
/// x: row-major [1797, 64],  x[i*64 + 8r + c] = pixel (row r, column c) of image i
/// y: [1797], the digit as a class index 0.0..=9.0
/// feature_names: pixel_{r}_{c};  target_name: digit
/// ```
///
/// A classification set in the [`Dataset`] layout: `y` holds class indices
/// (see [`crate::classifier::class_labels`]). smartcore's own feature and
/// target names for this set are the iris ones, so they are not used.
pub fn digits() -> Dataset {
    let ds = smartcore::dataset::digits::load_dataset();
    let d = ds.num_features;
    // Trust only what is consistent: at most as many rows as both arrays hold.
    let n = ds
        .data
        .len()
        .checked_div(d)
        .map_or(0, |rows| rows.min(ds.target.len()));
    // Images are 8 pixels wide, stored row by row.
    let feature_names = (0..d)
        .map(|j| format!("pixel_{}_{}", j / 8, j % 8))
        .collect();
    Dataset {
        x: ds.data[..n * d].iter().map(|&v| f64::from(v)).collect(),
        y: ds.target[..n].iter().map(|&v| f64::from(v)).collect(),
        feature_names,
        target_name: "digit".into(),
    }
}

/// The 1-D toy regression with a gap in its inputs (used by the demo, an
/// example and the coverage tests): `n` rows with
///
/// ```text
/// x ~ U([-3, -1] ∪ [1, 3]),   y = toy_gap_function(x) + noise_std · eps,   eps ~ N(0, 1)
/// ```
///
/// No training input falls in `(-1, 1)`, where a Bayesian model should be
/// less certain. Errors if `n` is 0 or `noise_std` is negative or not finite.
pub fn toy_gap(n: usize, noise_std: f64, seed: u64) -> Result<Dataset> {
    if n == 0 {
        return Err(Error::invalid("n", 0, "at least 1 row"));
    }
    if !(noise_std.is_finite() && noise_std >= 0.0) {
        return Err(Error::invalid(
            "noise_std",
            noise_std,
            "a finite number >= 0",
        ));
    }
    let mut rng = StdRng::seed_from_u64(seed);
    let (mut x, mut y) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for _ in 0..n {
        let u: f64 = rng.random_range(1.0..3.0);
        let xi = if rng.random::<bool>() { u } else { -u };
        let eps: f64 = rng.sample(StandardNormal);
        x.push(xi);
        y.push(toy_gap_function(xi) + noise_std * eps);
    }
    Dataset::new(x, y, vec!["x".into()], "y")
}

/// The noiseless function behind [`toy_gap`]: `f(x) = sin(2x) + x / 2`.
pub fn toy_gap_function(x: f64) -> f64 {
    (2.0 * x).sin() + 0.5 * x
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toy(n: usize) -> Result<Dataset> {
        let x = (0..n).flat_map(|i| [i as f64, 10.0 * i as f64]).collect();
        let y = (0..n).map(|i| 100.0 + i as f64).collect();
        Dataset::new(x, y, vec!["a".into(), "b".into()], "t")
    }

    #[test]
    fn standardizer_matches_hand_computed_population_std() -> Result<()> {
        // Columns: [1, 2, 3] and [10, 20, 60].
        // mean = [2, 30]; var (ddof=0) = [(1+0+1)/3, (400+100+900)/3] = [2/3, 1400/3].
        let values = [1.0, 10.0, 2.0, 20.0, 3.0, 60.0];
        let s = Standardizer::fit(&values, 2)?;
        assert_eq!(s.mean, vec![2.0, 30.0]);
        assert!((s.scale[0] - (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((s.scale[1] - (1400.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!(s.constant_columns().is_empty());
        let z = s.transform(&values);
        assert!((z[0] + 1.0 / (2.0f64 / 3.0).sqrt()).abs() < 1e-12);
        assert!((z[5] - 30.0 / (1400.0f64 / 3.0).sqrt()).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn standardizer_constant_column_gets_scale_one() -> Result<()> {
        // Column 1 is exactly constant; column 2 varies by 1e-9 around 1e6,
        // std ~ 4.7e-10 < 1e-12 * 1e6 = 1e-6, so it counts as constant too.
        let values = [
            1.0,
            5.0,
            1e6, //
            2.0,
            5.0,
            1e6 + 1e-9, //
            4.0,
            5.0,
            1e6,
        ];
        let s = Standardizer::fit(&values, 3)?;
        assert_eq!(s.scale[1], 1.0);
        assert_eq!(s.scale[2], 1.0);
        assert_eq!(s.constant_columns(), vec![1, 2]);
        assert_eq!(s.constant, vec![false, true, true]);
        let z = s.transform(&values);
        assert_eq!(z[1], 0.0);
        assert_eq!(z[4], 0.0);
        Ok(())
    }

    #[test]
    fn standardizer_inverse_undoes_transform() -> Result<()> {
        let values = [3.5, -2.0, 0.25, 7.0, 1e3, 4.0, -8.0, 0.0];
        let s = Standardizer::fit(&values, 2)?;
        let back = s.inverse(&s.transform(&values));
        for (a, b) in values.iter().zip(&back) {
            assert!((a - b).abs() < 1e-9, "{a} vs {b}");
        }
        // Standardized columns have mean 0 and population std 1.
        let z = s.transform(&values);
        let z_fit = Standardizer::fit(&z, 2)?;
        for (m, sc) in z_fit.mean.iter().zip(&z_fit.scale) {
            assert!(m.abs() < 1e-12 && (sc - 1.0).abs() < 1e-12);
        }
        assert_eq!(
            s.inverse_scale(&[1.0, 2.0]),
            vec![s.scale[0], 2.0 * s.scale[1]]
        );
        Ok(())
    }

    #[test]
    fn standardizer_rejects_bad_input() -> Result<()> {
        assert!(matches!(
            Standardizer::fit(&[1.0], 0),
            Err(Error::InvalidParameter { .. })
        ));
        assert!(matches!(
            Standardizer::fit(&[1.0, 2.0, 3.0], 2),
            Err(Error::Shape { .. })
        ));
        assert!(matches!(
            Standardizer::fit(&[], 2),
            Err(Error::Shape { .. })
        ));
        let e = Standardizer::fit(&[1.0, 2.0, 3.0, f64::NAN], 2).unwrap_err();
        assert!(e.to_string().contains("row 1, column 1"), "{e}");
        Ok(())
    }

    #[test]
    fn standardizer_serde_round_trip_and_old_format() -> Result<()> {
        let s = Standardizer::fit(&[1.0, 5.0, 2.0, 5.0], 2)?;
        let json = serde_json::to_string(&s)?;
        let back: Standardizer = serde_json::from_str(&json)?;
        assert_eq!(back, s);
        let old: Standardizer = serde_json::from_str(r#"{"mean":[1.0],"scale":[2.0]}"#)?;
        assert!(old.constant_columns().is_empty());
        assert_eq!(old.transform(&[5.0]), vec![2.0]);
        Ok(())
    }

    #[test]
    fn dataset_new_validates_shape_and_finiteness() -> Result<()> {
        let names = || vec!["a".to_string(), "b".to_string()];
        assert!(matches!(
            Dataset::new(vec![1.0; 5], vec![0.0; 3], names(), "t"),
            Err(Error::Shape { .. })
        ));
        let e = Dataset::new(
            vec![1.0, 2.0, 3.0, f64::INFINITY],
            vec![0.0; 2],
            names(),
            "t",
        )
        .unwrap_err();
        let msg = e.to_string();
        assert!(
            msg.contains("row 1") && msg.contains("'b'") && msg.contains("inf"),
            "{msg}"
        );
        let e = Dataset::new(vec![1.0; 4], vec![0.0, f64::NAN], names(), "t").unwrap_err();
        assert!(e.to_string().contains("y[row 1, column 't']"), "{e}");
        assert!(Dataset::new(vec![], vec![], vec![], "t").is_err());
        Ok(())
    }

    #[test]
    fn dataset_accessors_and_subset() -> Result<()> {
        let ds = toy(4)?;
        assert_eq!(ds.len(), 4);
        assert!(!ds.is_empty());
        assert_eq!(ds.n_features(), 2);
        assert_eq!(ds.row(2), &[2.0, 20.0]);
        let sub = ds.subset(&[3, 1]);
        assert_eq!(sub.x, vec![3.0, 30.0, 1.0, 10.0]);
        assert_eq!(sub.y, vec![103.0, 101.0]);
        assert_eq!(sub.feature_names, ds.feature_names);
        Ok(())
    }

    #[test]
    fn split_is_a_seeded_partition() -> Result<()> {
        let ds = toy(10)?;
        let (train, test) = ds.train_test_split(0.3, 7)?;
        assert_eq!((train.len(), test.len()), (7, 3));
        // Every row lands on exactly one side; y identifies rows (100 + i).
        let mut all: Vec<f64> = train.y.iter().chain(&test.y).copied().collect();
        all.sort_by(f64::total_cmp);
        assert_eq!(all, ds.y);
        // Rows stay intact.
        for (i, &yv) in train.y.iter().enumerate() {
            let r = (yv - 100.0) as usize;
            assert_eq!(train.row(i), ds.row(r));
        }
        // Same seed, same split; another seed, (here) another split.
        let (train2, _) = ds.train_test_split(0.3, 7)?;
        assert_eq!(train2.y, train.y);
        let (train3, _) = ds.train_test_split(0.3, 8)?;
        assert_ne!(train3.y, train.y);
        Ok(())
    }

    #[test]
    fn split_rejects_bad_fractions() -> Result<()> {
        let ds = toy(10)?;
        for f in [0.0, 1.0, -0.1, 1.5, f64::NAN] {
            let e = ds.train_test_split(f, 0).unwrap_err();
            assert!(
                matches!(&e, Error::InvalidParameter { name, .. } if name == "test_fraction"),
                "{e}"
            );
        }
        // 10 * 0.01 rounds to 0 test rows; 10 * 0.99 rounds to 10.
        assert!(ds.train_test_split(0.01, 0).is_err());
        assert!(ds.train_test_split(0.99, 0).is_err());
        assert!(toy(1)?.train_test_split(0.5, 0).is_err());
        Ok(())
    }

    #[test]
    fn tensors_have_expected_shapes_and_values() -> Result<()> {
        let ds = toy(3)?;
        let x = ds.x_tensor(&Device::Cpu)?;
        let y = ds.y_tensor(&Device::Cpu)?;
        assert_eq!(x.dims(), &[3, 2]);
        assert_eq!(y.dims(), &[3, 1]);
        assert_eq!(x.dtype(), candle_core::DType::F32);
        assert_eq!(
            x.to_vec2::<f32>()?,
            vec![vec![0.0, 0.0], vec![1.0, 10.0], vec![2.0, 20.0]]
        );
        assert_eq!(y.to_vec2::<f32>()?[2], vec![102.0]);
        Ok(())
    }

    #[test]
    fn standardized_dataset_uses_both_standardizers() -> Result<()> {
        let ds = toy(5)?;
        let (xs, ys) = Standardizer::fit_dataset(&ds)?;
        let z = ds.standardized(&xs, &ys);
        assert_eq!(z.x, xs.transform(&ds.x));
        assert_eq!(z.y, ys.transform(&ds.y));
        assert_eq!(ys.mean, vec![102.0]);
        assert!((ys.scale[0] - 2f64.sqrt()).abs() < 1e-12);
        Ok(())
    }

    #[test]
    fn diabetes_is_442_by_10() -> Result<()> {
        let ds = diabetes();
        assert_eq!(ds.len(), 442);
        assert_eq!(ds.n_features(), 10);
        assert_eq!(ds.x.len(), 4420);
        assert_eq!(ds.target_name, "disease_progression");
        assert_eq!(ds.feature_names[2], "BMI");
        // Targets of the published data range from 25 to 346.
        let (lo, hi) =
            ds.y.iter()
                .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
        assert_eq!((lo, hi), (25.0, 346.0));
        assert!(ds.x.iter().all(|v| v.is_finite()));
        Ok(())
    }

    #[test]
    fn parse_index_accepts_integral_floats_only() -> Result<()> {
        let p = Path::new("i.txt");
        assert_eq!(parse_index(p, 1, "3")?, 3);
        assert_eq!(parse_index(p, 1, "3.0")?, 3);
        assert_eq!(parse_index(p, 1, "4e0")?, 4);
        for bad in ["3.5", "-1", "nan", "inf", "x", "1e300"] {
            let e = parse_index(p, 9, bad).unwrap_err().to_string();
            assert!(e.contains("line 9") && e.contains(bad), "{e}");
        }
        Ok(())
    }
}
