//! Saving and loading a trained [`BayesRegressor`] or [`BayesClassifier`]
//! (any family: BBB, MC dropout, ensemble) as a model directory.
//!
//! ```text
//! DIR/
//!   model.json                      everything but tensors (pretty JSON, versioned)
//!   tensors-<crc32 as 8 hex>.safetensors   every trainable variable, by checkpoint name
//! ```
//!
//! `model.json` holds `format_version`, `method` (`"bbb"`, `"mc-dropout"` or
//! `"ensemble"`) with the architecture `model` (a [`NetworkSpec`]), `task`
//! (`"regression"`, the default, or `"classification"`), `tensors` (the
//! tensor file's name) and `tensors_crc32` (its CRC-32), `feature_names`,
//! `target_name`, the scalings (`x_scaler`, and `y_scaler` for regression),
//! the training settings (`train`, whose seed also seeds the forward-pass
//! noise and the predictions), the training `report`, and the fitted
//! recalibration (`recalibration` for regression, `temperature` for
//! classification). The tensor file is named after its own checksum, so a
//! new save never overwrites the file an existing `model.json` points to.
//!
//! # Atomic saves
//!
//! A crash at any moment, or a failed save, never leaves a half-written model:
//! until the new model is complete, the directory loads exactly as before.
//! [`save`] uses only single-file renames, which the file system performs
//! atomically:
//!
//! 1. Check that the model can be written and read back: finite `f32`
//!    tensors, and a `model.json` that parses back (JSON has no NaN).
//! 2. Check the directory: create it if missing; refuse (and write nothing)
//!    if it holds anything but the files listed here, or a `model.json`
//!    without `format_version` and `method`, so that a save never writes
//!    into someone else's folder.
//! 3. Write the tensors to `.tensors-<unique>.tmp`, fsync, and rename it to
//!    `tensors-<crc32>.safetensors`; fsync the directory. A crash before this
//!    point leaves a stray `.tmp`; after it, an unreferenced tensor file. The
//!    old `model.json` still names the old tensor file, which is untouched.
//! 4. Write `model.json` to `.model.json-<unique>.tmp`, fsync, and rename it
//!    over `model.json`. **This rename is the commit point**: before it,
//!    loads see the old model; after it, the new one. Then fsync the
//!    directory so the commit is durable.
//! 5. Remove tensor files that `model.json` no longer names and stray `.tmp`
//!    files (best effort: leftovers are harmless, [`load`] ignores them and
//!    the next save removes them).
//!
//! One writer at a time: two processes saving into the same directory at
//! once may fail (one's cleanup can remove the other's temporary file), but
//! `model.json` always names a complete tensor file. A [`load`] that races a
//! save and finds its tensor file already cleaned up rereads `model.json`.
//!
//! # Loading
//!
//! [`load`] checks, in order, and answers [`Error::Checkpoint`] naming the
//! file and what was expected: the directory and `model.json` exist;
//! `model.json` is valid JSON (with serde's line and column); its
//! `format_version` is between 1 and [`FORMAT_VERSION`]; its `method` is
//! one this build knows; every field is present and well-typed; the tensor file exists
//! and its CRC-32 matches; it parses as safetensors; every tensor is finite
//! `f32`; the tensors are exactly those the architecture needs, with the
//! right shapes ([`NetworkSpec::from_named_tensors`]); the scalings and
//! names fit the model. Version 1 files (BBB regressors, before the other
//! families and classification) load unchanged. No input bytes make it panic.

use std::collections::HashMap;
use std::fmt;
use std::fs::{self, File};
use std::io::{ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::calibrate::Recalibration;
use crate::classifier::BayesClassifier;
use crate::data::Standardizer;
use crate::model::StochasticModel;
use crate::network::{Network, NetworkSpec};
use crate::regressor::BayesRegressor;
use crate::train::{TrainConfig, TrainReport};
use crate::{Error, Result};

/// The model-directory format this build writes, and the newest it reads.
/// Version 2 added the `mc-dropout` and `ensemble` methods and `task`.
pub const FORMAT_VERSION: u32 = 2;

/// Name of the metadata file in a model directory.
pub const MODEL_FILE: &str = "model.json";

/// The `method`s this build loads.
const METHODS: [&str; 3] = ["bbb", "mc-dropout", "ensemble"];

const TENSOR_PREFIX: &str = "tensors-";
const TENSOR_SUFFIX: &str = ".safetensors";
const TMP_TENSOR_PREFIX: &str = ".tensors-";
const TMP_MODEL_PREFIX: &str = ".model.json";
const TMP_SUFFIX: &str = ".tmp";

/// How many times [`load`] rereads `model.json` when a concurrent save
/// replaced it between reading it and reading its tensor file.
const LOAD_ATTEMPTS: usize = 3;

/// What a model predicts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Task {
    /// A real-valued target: Gaussian-mixture predictives.
    #[default]
    Regression,
    /// Class labels: categorical predictives.
    Classification,
}

/// A trained model of either task, as [`load`] returns it.
#[derive(Debug, Clone)]
pub enum SavedModel {
    /// A regressor.
    Regressor(BayesRegressor),
    /// A classifier.
    Classifier(BayesClassifier),
}

impl SavedModel {
    /// The task it was trained for.
    pub fn task(&self) -> Task {
        match self {
            SavedModel::Regressor(_) => Task::Regression,
            SavedModel::Classifier(_) => Task::Classification,
        }
    }

    /// The trained network.
    pub fn network(&self) -> &Network {
        match self {
            SavedModel::Regressor(m) => m.model(),
            SavedModel::Classifier(m) => m.model(),
        }
    }

    /// Names of the feature columns, in model input order.
    pub fn feature_names(&self) -> &[String] {
        match self {
            SavedModel::Regressor(m) => m.feature_names(),
            SavedModel::Classifier(m) => m.feature_names(),
        }
    }

    /// Name of the target (or label) column.
    pub fn target_name(&self) -> &str {
        match self {
            SavedModel::Regressor(m) => m.target_name(),
            SavedModel::Classifier(m) => m.target_name(),
        }
    }

    /// This model with the recalibration of `other` (a regressor's
    /// [`crate::calibrate::Recalibration`], a classifier's temperature), e.g.
    /// one fitted on held-out rows by a model of the other rows, carried to
    /// a model retrained on all of them. Errors if the tasks differ.
    pub fn with_recalibration_of(self, other: &SavedModel) -> Result<Self> {
        match (self, other) {
            (SavedModel::Regressor(m), SavedModel::Regressor(o)) => {
                Ok(m.with_recalibration(o.recalibration().clone())?.into())
            }
            (SavedModel::Classifier(m), SavedModel::Classifier(o)) => {
                Ok(m.with_temperature(o.temperature())?.into())
            }
            (m, o) => Err(Error::invalid(
                "recalibration",
                format!("one of a {} model", o.task()),
                format!("one of a {} model, like the model it goes to", m.task()),
            )),
        }
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Task::Regression => "regression",
            Task::Classification => "classification",
        })
    }
}

impl From<BayesRegressor> for SavedModel {
    fn from(model: BayesRegressor) -> Self {
        SavedModel::Regressor(model)
    }
}

impl From<BayesClassifier> for SavedModel {
    fn from(model: BayesClassifier) -> Self {
        SavedModel::Classifier(model)
    }
}

/// A model to [`save`], borrowed.
#[derive(Debug, Clone, Copy)]
pub enum ModelRef<'a> {
    /// A regressor.
    Regressor(&'a BayesRegressor),
    /// A classifier.
    Classifier(&'a BayesClassifier),
}

impl<'a> From<&'a BayesRegressor> for ModelRef<'a> {
    fn from(model: &'a BayesRegressor) -> Self {
        ModelRef::Regressor(model)
    }
}

impl<'a> From<&'a BayesClassifier> for ModelRef<'a> {
    fn from(model: &'a BayesClassifier) -> Self {
        ModelRef::Classifier(model)
    }
}

impl<'a> From<&'a SavedModel> for ModelRef<'a> {
    fn from(model: &'a SavedModel) -> Self {
        match model {
            SavedModel::Regressor(m) => ModelRef::Regressor(m),
            SavedModel::Classifier(m) => ModelRef::Classifier(m),
        }
    }
}

/// Everything in `model.json`.
#[derive(Serialize, Deserialize)]
struct Manifest {
    format_version: u32,
    /// `method` and `model`.
    #[serde(flatten)]
    network: NetworkSpec,
    /// Absent in version 1 files: regression.
    #[serde(default)]
    task: Task,
    tensors: String,
    tensors_crc32: u32,
    feature_names: Vec<String>,
    target_name: String,
    x_scaler: Standardizer,
    /// Regression only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    y_scaler: Option<Standardizer>,
    train: TrainConfig,
    report: TrainReport,
    /// Regression only; absent in files saved before recalibration existed:
    /// none.
    #[serde(default)]
    recalibration: Recalibration,
    /// Classification only: the fitted temperature, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    temperature: Option<f64>,
}

impl Manifest {
    /// The manifest of `model`, before its tensor file is written.
    fn of(model: ModelRef<'_>) -> Self {
        // What every model has, then what only its task has.
        let (network, names, x_scaler, train, report) = match model {
            ModelRef::Regressor(r) => (
                r.model(),
                (r.feature_names(), r.target_name()),
                r.x_scaler(),
                r.train_config(),
                r.report(),
            ),
            ModelRef::Classifier(c) => (
                c.model(),
                (c.feature_names(), c.target_name()),
                c.x_scaler(),
                c.train_config(),
                c.report(),
            ),
        };
        let (task, y_scaler, recalibration, temperature) = match model {
            ModelRef::Regressor(r) => (
                Task::Regression,
                Some(r.y_scaler().clone()),
                r.recalibration().clone(),
                None,
            ),
            ModelRef::Classifier(c) => (
                Task::Classification,
                None,
                Recalibration::None,
                c.temperature(),
            ),
        };
        Manifest {
            format_version: FORMAT_VERSION,
            network: network.spec(),
            task,
            tensors: tensor_file_name(0),
            tensors_crc32: 0,
            feature_names: names.0.to_vec(),
            target_name: names.1.into(),
            x_scaler: x_scaler.clone(),
            y_scaler,
            train: train.clone(),
            report: report.clone(),
            recalibration,
            temperature,
        }
    }
}

/// The two fields read before the rest, so that a file from a newer format
/// or another method gets a version or method error, not a field error.
#[derive(Deserialize)]
struct Probe {
    format_version: Option<serde_json::Value>,
    method: Option<serde_json::Value>,
}

/// Saves `model` (a regressor or a classifier) into the model directory
/// `dir` (created if missing), replacing the model there atomically (see the
/// [module docs](self)).
///
/// # Errors
///
/// [`Error::Checkpoint`] if `dir` is a file or a directory that holds files
/// other than a model's (nothing is written then), or if the model holds a
/// non-finite number or a per-weight prior mean (which the format cannot
/// store); [`Error::Io`] if a file cannot be written. In every
/// case a model already in `dir` loads as before.
pub fn save<'a>(model: impl Into<ModelRef<'a>>, dir: &Path) -> Result<()> {
    let model = model.into();
    let network = match model {
        ModelRef::Regressor(r) => r.model(),
        ModelRef::Classifier(c) => c.model(),
    };
    let tensors = collect_tensors(network, dir)?;
    let mut manifest = Manifest::of(model);
    // Fail before touching the directory if model.json could not be read back.
    manifest_bytes(&manifest, dir)?;
    check_or_create_dir(dir)?;
    let (name, crc) = write_tensor_file(dir, &tensors)?;
    manifest.tensors = name;
    manifest.tensors_crc32 = crc;
    commit_manifest(dir, &manifest_bytes(&manifest, dir)?)?;
    remove_stale_files(dir, &manifest.tensors);
    Ok(())
}

/// Loads the model directory `dir` written by [`save`], with its tensors on
/// `device`. Predictions of the loaded model equal those of the saved one
/// bit for bit (both reseed from the training seed).
///
/// # Errors
///
/// [`Error::Checkpoint`] naming the file and what is wrong (see the
/// [module docs](self)); [`Error::Io`] if a file exists but cannot be read.
pub fn load(dir: &Path, device: &Device) -> Result<SavedModel> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(checkpoint_err(
                dir,
                "is not a directory; expected a model directory holding model.json",
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            return Err(checkpoint_err(
                dir,
                "does not exist; expected a model directory holding model.json",
            ))
        }
        Err(e) => return Err(io_err(dir, e)),
    }
    let model_path = dir.join(MODEL_FILE);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let json = read_model_json(dir, &model_path)?;
        let manifest = parse_manifest(&json, &model_path)?;
        let tensor_path = dir.join(&manifest.tensors);
        match fs::read(&tensor_path) {
            Ok(bytes) => return assemble(manifest, &bytes, &tensor_path, device),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                // A concurrent save may have committed a new model.json and
                // removed the tensor file this one names: read it again.
                let replaced = fs::read(&model_path).is_ok_and(|now| now != json);
                if !(replaced && attempt < LOAD_ATTEMPTS) {
                    return Err(checkpoint_err(
                        &tensor_path,
                        format!(
                            "tensor file is missing; {MODEL_FILE} names '{}' (CRC-32 {:08x}) in the same directory",
                            manifest.tensors, manifest.tensors_crc32
                        ),
                    ));
                }
            }
            Err(e) => return Err(io_err(&tensor_path, e)),
        }
    }
}

/// [`load`] for a directory that must hold a regressor.
///
/// # Errors
///
/// Those of [`load`], and [`Error::Checkpoint`] if it holds a classifier.
pub fn load_regressor(dir: &Path, device: &Device) -> Result<BayesRegressor> {
    match load(dir, device)? {
        SavedModel::Regressor(m) => Ok(m),
        other => Err(wrong_task(dir, other.task(), Task::Regression)),
    }
}

/// [`load`] for a directory that must hold a classifier.
///
/// # Errors
///
/// Those of [`load`], and [`Error::Checkpoint`] if it holds a regressor.
pub fn load_classifier(dir: &Path, device: &Device) -> Result<BayesClassifier> {
    match load(dir, device)? {
        SavedModel::Classifier(m) => Ok(m),
        other => Err(wrong_task(dir, other.task(), Task::Classification)),
    }
}

fn wrong_task(dir: &Path, found: Task, expected: Task) -> Error {
    checkpoint_err(
        dir,
        format!("holds a {found} model; expected a {expected} model"),
    )
}

// ---------------------------------------------------------------------------
// Saving
// ---------------------------------------------------------------------------

/// Creates `dir` if missing; otherwise checks that it holds only the files of
/// a model directory (refusing to write into anyone else's folder).
fn check_or_create_dir(dir: &Path) -> Result<()> {
    match fs::metadata(dir) {
        Ok(m) if m.is_dir() => {}
        Ok(_) => {
            return Err(checkpoint_err(
                dir,
                "exists and is not a directory; refusing to save a model there",
            ))
        }
        Err(e) if e.kind() == ErrorKind::NotFound => {
            fs::create_dir_all(dir).map_err(|e| io_err(dir, e))?;
            // Make the new directory's entry in its parent durable too.
            return match dir.parent().filter(|p| !p.as_os_str().is_empty()) {
                Some(parent) => sync_dir(parent),
                None => Ok(()),
            };
        }
        Err(e) => return Err(io_err(dir, e)),
    }
    let mut foreign = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| io_err(dir, e))? {
        let entry = entry.map_err(|e| io_err(dir, e))?;
        let is_file = entry.file_type().map_err(|e| io_err(dir, e))?.is_file();
        let name = entry.file_name();
        let ours = is_file && name.to_str().is_some_and(|n| owned_file(n).is_some());
        if !ours {
            foreign.push(name.to_string_lossy().into_owned());
        }
    }
    if !foreign.is_empty() {
        foreign.sort();
        let shown: Vec<String> = foreign.iter().take(5).map(|n| format!("'{n}'")).collect();
        let more = if foreign.len() > 5 {
            format!(" and {} more", foreign.len() - 5)
        } else {
            String::new()
        };
        return Err(checkpoint_err(
            dir,
            format!(
                "refusing to save: the directory is not a model directory (it holds {}{more}); expected a missing or empty directory, or one written by checkpoint::save",
                shown.join(", ")
            ),
        ));
    }
    let model_path = dir.join(MODEL_FILE);
    if let Ok(bytes) = fs::read(&model_path) {
        let ours = serde_json::from_slice::<Probe>(&bytes)
            .is_ok_and(|p| p.format_version.is_some() && p.method.is_some());
        if !ours {
            return Err(checkpoint_err(
                &model_path,
                "refusing to overwrite: this model.json was not written by checkpoint::save (no format_version and method); move it away or choose another directory",
            ));
        }
    }
    Ok(())
}

/// The kinds of files [`save`] writes into a model directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OwnedFile {
    Model,
    Tensors,
    Temporary,
}

fn owned_file(name: &str) -> Option<OwnedFile> {
    if name == MODEL_FILE {
        return Some(OwnedFile::Model);
    }
    if let Some(hex) = name
        .strip_prefix(TENSOR_PREFIX)
        .and_then(|rest| rest.strip_suffix(TENSOR_SUFFIX))
    {
        let is_crc = hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit());
        return is_crc.then_some(OwnedFile::Tensors);
    }
    let temporary = (name.starts_with(TMP_TENSOR_PREFIX) || name.starts_with(TMP_MODEL_PREFIX))
        && name.ends_with(TMP_SUFFIX);
    temporary.then_some(OwnedFile::Temporary)
}

fn tensor_file_name(crc: u32) -> String {
    format!("{TENSOR_PREFIX}{crc:08x}{TENSOR_SUFFIX}")
}

/// A name no other save of this process uses (pid and a counter).
fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// The model's variables by checkpoint name, checked to be finite `f32`.
fn collect_tensors(network: &Network, dir: &Path) -> Result<HashMap<String, Tensor>> {
    // The format stores the config's prior only; a per-weight prior mean
    // would be silently lost, and the reloaded model's KL would differ.
    if let Network::Bbb(model) = network {
        if let Some(i) = model.layers().iter().position(|l| l.prior_mean().is_some()) {
            return Err(checkpoint_err(
                dir,
                format!("refusing to save: layer {i} has a per-weight prior mean, which the model format cannot store"),
            ));
        }
    }
    let mut tensors = HashMap::new();
    for (name, var) in network.named_vars() {
        let tensor = var.as_tensor().clone();
        check_tensor(&name, &tensor)
            .map_err(|message| checkpoint_err(dir, format!("refusing to save: {message}")))?;
        tensors.insert(name, tensor);
    }
    Ok(tensors)
}

/// `Err(message)` unless `tensor` is `f32` and finite everywhere.
fn check_tensor(name: &str, tensor: &Tensor) -> std::result::Result<(), String> {
    if tensor.dtype() != DType::F32 {
        return Err(format!(
            "tensor '{name}' has dtype {:?}, expected F32",
            tensor.dtype()
        ));
    }
    let values = tensor
        .flatten_all()
        .and_then(|t| t.to_vec1::<f32>())
        .map_err(|e| format!("tensor '{name}' cannot be read: {e}"))?;
    if let Some(k) = values.iter().position(|v| !v.is_finite()) {
        return Err(format!(
            "tensor '{name}' holds the non-finite value {} at flat index {k}; expected finite parameters",
            values[k]
        ));
    }
    Ok(())
}

/// Pretty JSON plus a final newline, checked to parse back: JSON has no NaN
/// or infinity (serde_json writes them as `null`), so a report or scaling
/// holding one would otherwise produce a model that cannot be loaded.
fn manifest_bytes(manifest: &Manifest, dir: &Path) -> Result<Vec<u8>> {
    let mut bytes = serde_json::to_vec_pretty(manifest)?;
    bytes.push(b'\n');
    if let Err(e) = serde_json::from_slice::<Manifest>(&bytes) {
        return Err(checkpoint_err(
            dir,
            format!(
                "refusing to save: {MODEL_FILE} would not read back ({e}); a non-finite number (NaN or infinity) in the scalings, training settings or report is the usual cause"
            ),
        ));
    }
    Ok(bytes)
}

/// A temporary file removed on drop unless [`TempFile::keep`] was called, so
/// that a save failing half-way leaves no debris.
struct TempFile {
    path: PathBuf,
    armed: bool,
}

impl TempFile {
    fn new(path: PathBuf) -> Self {
        Self { path, armed: true }
    }

    fn keep(mut self) {
        self.armed = false;
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.armed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

/// Writes `bytes` to a fresh temporary file in `dir` and fsyncs it.
fn write_temp(dir: &Path, prefix: &str, bytes: &[u8]) -> Result<TempFile> {
    let tmp = TempFile::new(dir.join(format!("{prefix}{}{TMP_SUFFIX}", unique_suffix())));
    let mut file = File::create(&tmp.path).map_err(|e| io_err(&tmp.path, e))?;
    file.write_all(bytes).map_err(|e| io_err(&tmp.path, e))?;
    file.sync_all().map_err(|e| io_err(&tmp.path, e))?;
    Ok(tmp)
}

/// Step 3: the tensors, serialized in memory (so no file but ours is ever
/// created in the directory), to a temporary file, fsynced, renamed to their
/// content name. Returns the name and the CRC-32.
fn write_tensor_file(dir: &Path, tensors: &HashMap<String, Tensor>) -> Result<(String, u32)> {
    let bytes = safetensors::serialize(tensors.iter().map(|(k, v)| (k.as_str(), v)), None)
        .map_err(|e| checkpoint_err(dir, format!("could not serialize the tensors: {e}")))?;
    let tmp = write_temp(dir, TMP_TENSOR_PREFIX, &bytes)?;
    let crc = crc32fast::hash(&bytes);
    let name = tensor_file_name(crc);
    let target = dir.join(&name);
    // A file of that name from an earlier save is either these very bytes
    // (nothing to write) or a CRC collision, which must not replace the file
    // the current model.json may name.
    if let Ok(existing) = fs::read(&target) {
        if existing == bytes {
            return Ok((name, crc));
        }
        return Err(checkpoint_err(
            &target,
            "refusing to save: a different tensor file has the same checksum name; save to a new directory",
        ));
    }
    fs::rename(&tmp.path, &target).map_err(|e| io_err(&target, e))?;
    tmp.keep();
    sync_dir(dir)?;
    Ok((name, crc))
}

/// Step 4: `model.json` to a temporary file, fsynced, renamed over
/// `model.json` (the commit point), then the directory fsynced.
fn commit_manifest(dir: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = write_temp(dir, &format!("{TMP_MODEL_PREFIX}-"), bytes)?;
    let target = dir.join(MODEL_FILE);
    fs::rename(&tmp.path, &target).map_err(|e| io_err(&target, e))?;
    tmp.keep();
    sync_dir(dir)
}

/// Step 5: removes temporary files and the tensor files `model.json` no
/// longer names. Best effort; tensor files are kept unless `model.json`
/// still names `keep` (another writer may have committed since).
fn remove_stale_files(dir: &Path, keep: &str) {
    let still_ours = fs::read(dir.join(MODEL_FILE))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .is_some_and(|v| v.get("tensors").and_then(|t| t.as_str()) == Some(keep));
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let stale = match owned_file(name) {
            Some(OwnedFile::Temporary) => true,
            Some(OwnedFile::Tensors) => still_ours && name != keep,
            _ => false,
        };
        if stale && entry.file_type().is_ok_and(|t| t.is_file()) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Makes renames in `dir` durable (a no-op where directories cannot be
/// opened, as on Windows).
fn sync_dir(dir: &Path) -> Result<()> {
    #[cfg(unix)]
    {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(|e| io_err(dir, e))?;
    }
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

// ---------------------------------------------------------------------------
// Loading
// ---------------------------------------------------------------------------

fn read_model_json(dir: &Path, model_path: &Path) -> Result<Vec<u8>> {
    match fs::read(model_path) {
        Ok(bytes) => Ok(bytes),
        Err(e) if e.kind() == ErrorKind::NotFound => Err(checkpoint_err(
            dir,
            format!("not a model directory: no {MODEL_FILE}"),
        )),
        Err(e) => Err(io_err(model_path, e)),
    }
}

/// Parses `model.json`: syntax, then version and method, then every field.
fn parse_manifest(json: &[u8], path: &Path) -> Result<Manifest> {
    let probe = serde_json::from_slice::<Probe>(json).map_err(|e| {
        let message = if e.is_data() {
            format!("expected a JSON object with the model's fields: {e}")
        } else {
            format!("not valid JSON: {e}")
        };
        checkpoint_err(path, message)
    })?;
    let version = match probe.format_version {
        None => {
            return Err(checkpoint_err(
                path,
                "no format_version field; expected a model.json written by checkpoint::save",
            ))
        }
        Some(v) => v.as_u64().ok_or_else(|| {
            checkpoint_err(
                path,
                format!(
                    "format_version is {v}; expected a whole number from 1 to {FORMAT_VERSION}"
                ),
            )
        })?,
    };
    if version == 0 {
        return Err(checkpoint_err(
            path,
            format!("format_version 0 is not a valid version; expected 1 to {FORMAT_VERSION}"),
        ));
    }
    if version > u64::from(FORMAT_VERSION) {
        return Err(checkpoint_err(
            path,
            format!(
                "written by format version {version}; this build reads versions up to {FORMAT_VERSION}: upgrade candle-bnn"
            ),
        ));
    }
    let known = METHODS.map(|m| format!("\"{m}\"")).join(", ");
    match probe.method {
        Some(serde_json::Value::String(m)) if METHODS.contains(&m.as_str()) => {}
        Some(m) => {
            return Err(checkpoint_err(
                path,
                format!("method is {m}; this build loads {known}"),
            ))
        }
        None => {
            return Err(checkpoint_err(
                path,
                format!("no method field; expected one of {known}"),
            ))
        }
    }
    let manifest = serde_json::from_slice::<Manifest>(json).map_err(|e| {
        checkpoint_err(
            path,
            format!("does not match format version {version}: {e}"),
        )
    })?;
    let expected = tensor_file_name(manifest.tensors_crc32);
    if manifest.tensors != expected {
        return Err(checkpoint_err(
            path,
            format!(
                "names the tensor file '{}', but its tensors_crc32 {:08x} means it must be '{expected}'",
                manifest.tensors, manifest.tensors_crc32
            ),
        ));
    }
    Ok(manifest)
}

/// Checks the tensor bytes against the manifest and builds the model.
fn assemble(
    manifest: Manifest,
    bytes: &[u8],
    tensor_path: &Path,
    device: &Device,
) -> Result<SavedModel> {
    let crc = crc32fast::hash(bytes);
    if crc != manifest.tensors_crc32 {
        return Err(checkpoint_err(
            tensor_path,
            format!(
                "corrupted or truncated: checksum {crc:08x} of its {} bytes, {MODEL_FILE} expects {:08x}",
                bytes.len(),
                manifest.tensors_crc32
            ),
        ));
    }
    let tensors = candle_core::safetensors::load_buffer(bytes, device)
        .map_err(|e| checkpoint_err(tensor_path, format!("not a valid safetensors file: {e}")))?;
    let mut names: Vec<&String> = tensors.keys().collect();
    names.sort();
    for name in names {
        if let Some(t) = tensors.get(name) {
            check_tensor(name, t).map_err(|m| checkpoint_err(tensor_path, m))?;
        }
    }
    let model_path = tensor_path.with_file_name(MODEL_FILE);
    manifest.network.validate().map_err(|e| {
        checkpoint_err(
            &model_path,
            format!("the model architecture is invalid: {e}"),
        )
    })?;
    let network = manifest
        .network
        .from_named_tensors(tensors, manifest.train.seed)
        .map_err(|e| {
            checkpoint_err(
                tensor_path,
                format!(
                    "the tensors do not fit the architecture in {MODEL_FILE} (method {}): {e}",
                    manifest.network.method()
                ),
            )
        })?;
    check_scaler("x_scaler", &manifest.x_scaler, &model_path)?;
    let names = (manifest.feature_names, manifest.target_name);
    let model = match manifest.task {
        Task::Regression => {
            let y_scaler = manifest.y_scaler.ok_or_else(|| {
                checkpoint_err(&model_path, "a regression model needs a y_scaler field")
            })?;
            check_scaler("y_scaler", &y_scaler, &model_path)?;
            BayesRegressor::from_parts(
                network,
                (manifest.x_scaler, y_scaler),
                names,
                manifest.train,
                manifest.report,
            )
            .and_then(|r| r.with_recalibration(manifest.recalibration))
            .map(SavedModel::Regressor)
        }
        Task::Classification => BayesClassifier::from_parts(
            network,
            manifest.x_scaler,
            names,
            (manifest.train, manifest.report),
            manifest.temperature,
        )
        .map(SavedModel::Classifier),
    };
    model.map_err(|e| checkpoint_err(&model_path, format!("inconsistent model: {e}")))
}

/// A scaling read from a file: equal-length fields, finite means, finite
/// positive scales.
fn check_scaler(field: &str, s: &Standardizer, path: &Path) -> Result<()> {
    let n = s.mean.len();
    if s.scale.len() != n || !(s.constant.is_empty() || s.constant.len() == n) {
        return Err(checkpoint_err(
            path,
            format!(
                "{field} has {n} means, {} scales and {} constant flags; expected equal lengths",
                s.scale.len(),
                s.constant.len()
            ),
        ));
    }
    if let Some(j) = s.mean.iter().position(|m| !m.is_finite()) {
        return Err(checkpoint_err(
            path,
            format!(
                "{field}.mean[{j}] is {}; expected a finite number",
                s.mean[j]
            ),
        ));
    }
    if let Some(j) = s.scale.iter().position(|v| !(v.is_finite() && *v > 0.0)) {
        return Err(checkpoint_err(
            path,
            format!(
                "{field}.scale[{j}] is {}; expected a finite number > 0",
                s.scale[j]
            ),
        ));
    }
    Ok(())
}

fn checkpoint_err(path: &Path, message: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        message: message.into(),
    }
}

fn io_err(path: &Path, source: std::io::Error) -> Error {
    Error::Io {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognizes_only_the_files_it_writes() {
        assert_eq!(owned_file("model.json"), Some(OwnedFile::Model));
        assert_eq!(
            owned_file(&tensor_file_name(0xdead_beef)),
            Some(OwnedFile::Tensors)
        );
        assert_eq!(owned_file("tensors-0.safetensors"), None);
        assert_eq!(owned_file("tensors-xyzxyzxy.safetensors"), None);
        assert_eq!(owned_file(".tensors-12-0.tmp"), Some(OwnedFile::Temporary));
        assert_eq!(
            owned_file(".model.json-12-3.tmp"),
            Some(OwnedFile::Temporary)
        );
        assert_eq!(owned_file("notes.txt"), None);
        assert_eq!(owned_file("model.json.bak"), None);
    }

    #[test]
    fn version_and_method_are_checked_before_fields() {
        let path = Path::new("m/model.json");
        let err = |json: &str| match parse_manifest(json.as_bytes(), path) {
            Err(e) => e.to_string(),
            Ok(_) => String::from("parsed"),
        };
        assert!(err(r#"{"format_version": 3}"#).contains("upgrade candle-bnn"));
        assert!(err(r#"{"format_version": 0}"#).contains("not a valid version"));
        assert!(err(r#"{"format_version": 2, "method": "svgd"}"#).contains("\"mc-dropout\""));
        assert!(err(r#"{"format_version": 1, "method": "bbb"}"#).contains("missing field"));
        assert!(err("{").contains("not valid JSON"));
        assert!(err("[1]").contains("JSON object"));
    }
}
