//! Integration tests of model directories: a saved and reloaded regressor
//! predicts bit for bit as the one in memory; saves are reproducible and
//! atomic (a crash at any step leaves a loadable model, a refused or failed
//! save changes nothing); every kind of damage gets a load error that says
//! what is wrong.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};

use candle_bnn::checkpoint::{self, FORMAT_VERSION, MODEL_FILE};
use candle_bnn::data::{Dataset, Standardizer};
use candle_bnn::model::{BayesMlpConfig, StochasticModel};
use candle_bnn::regressor::BayesRegressor;
use candle_bnn::train::TrainConfig;
use candle_bnn::{Error, Result};
use candle_core::{Device, Tensor};
use serde_json::Value;

/// `n` rows of two features (`age`, `dose`) and a target `response`, all
/// from a small deterministic generator.
fn two_feature_data(n: usize) -> Result<Dataset> {
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64
    };
    let (mut x, mut y) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let age = 20.0 + 60.0 * next();
        let dose = 5.0 * next();
        x.extend([age, dose]);
        y.push(0.1 * age + (dose * 1.3).sin() * 4.0 + 0.3 * (next() - 0.5));
    }
    Dataset::new(x, y, vec!["age".into(), "dose".into()], "response")
}

fn train_config(seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 4,
        batch_size: 16,
        seed,
        progress: false,
        ..TrainConfig::default()
    }
}

fn fit(seed: u64) -> Result<BayesRegressor> {
    let data = two_feature_data(96)?;
    BayesRegressor::fit(
        &data,
        BayesMlpConfig::new(2, &[16]),
        &train_config(seed),
        &Device::Cpu,
    )
}

/// Query points in original units (row-major, 2 features).
fn queries() -> Vec<f64> {
    vec![25.0, 0.5, 40.0, 2.5, 61.0, 4.9, 79.0, 0.0, 50.0, -1.0]
}

/// Every number the predictive carries, as bit patterns.
fn prediction_bits(model: &BayesRegressor) -> Result<Vec<u64>> {
    let p = model.predict(&queries(), 32)?;
    let mut bits: Vec<u64> = p
        .mean()
        .iter()
        .chain(&p.std())
        .map(|v| v.to_bits())
        .collect();
    for i in 0..p.len() {
        bits.extend(p.component_means(i).iter().map(|v| v.to_bits()));
        bits.extend(p.component_stds(i).iter().map(|v| v.to_bits()));
    }
    Ok(bits)
}

/// Every file under `dir` (recursively) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            let rel = path.strip_prefix(root).unwrap().to_path_buf();
            if path.is_dir() {
                out.insert(rel.join(""), Vec::new());
                walk(root, &path, out);
            } else {
                out.insert(rel, fs::read(&path).unwrap());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(dir, dir, &mut out);
    out
}

fn file_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn tensor_files(dir: &Path) -> Vec<String> {
    file_names(dir)
        .into_iter()
        .filter(|n| n.starts_with("tensors-"))
        .collect()
}

fn read_json(dir: &Path) -> Value {
    serde_json::from_slice(&fs::read(dir.join(MODEL_FILE)).unwrap()).unwrap()
}

fn write_json(dir: &Path, v: &Value) {
    fs::write(dir.join(MODEL_FILE), serde_json::to_vec_pretty(v).unwrap()).unwrap();
}

fn tensor_path(dir: &Path) -> PathBuf {
    dir.join(read_json(dir)["tensors"].as_str().unwrap())
}

/// Replaces the tensor file with `bytes` and points model.json at it with a
/// matching CRC, so that only what comes after the checksum is tested.
fn replace_tensor_bytes(dir: &Path, bytes: &[u8]) {
    fs::remove_file(tensor_path(dir)).unwrap();
    let crc = crc32fast::hash(bytes);
    let name = format!("tensors-{crc:08x}.safetensors");
    fs::write(dir.join(&name), bytes).unwrap();
    let mut v = read_json(dir);
    v["tensors"] = name.into();
    v["tensors_crc32"] = crc.into();
    write_json(dir, &v);
}

fn safetensors_bytes(tensors: &HashMap<String, Tensor>) -> Vec<u8> {
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("t.safetensors");
    candle_core::safetensors::save(tensors, &path).unwrap();
    fs::read(path).unwrap()
}

fn model_tensors(model: &BayesRegressor) -> HashMap<String, Tensor> {
    model
        .model()
        .named_vars()
        .into_iter()
        .map(|(n, v)| (n, v.as_tensor().clone()))
        .collect()
}

/// A saved model in a fresh temporary directory.
fn saved(seed: u64) -> Result<(tempfile::TempDir, PathBuf, BayesRegressor)> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let model = fit(seed)?;
    checkpoint::save(&model, &dir)?;
    Ok((tmp, dir, model))
}

/// The load error's message, checked to be a checkpoint error.
fn load_error(dir: &Path) -> String {
    match checkpoint::load_regressor(dir, &Device::Cpu) {
        Ok(_) => panic!("loading {} should fail", dir.display()),
        Err(e @ Error::Checkpoint { .. }) => e.to_string(),
        Err(e) => panic!("expected a checkpoint error, got {e:?}"),
    }
}

fn assert_mentions(message: &str, words: &[&str]) {
    for w in words {
        assert!(message.contains(w), "{message:?} should mention {w:?}");
    }
}

// ---------------------------------------------------------------------------
// Round trip and reproducibility
// ---------------------------------------------------------------------------

#[test]
fn reloaded_model_predicts_bit_for_bit_and_keeps_its_metadata() -> Result<()> {
    let (_tmp, dir, model) = saved(3)?;
    let loaded = checkpoint::load_regressor(&dir, &Device::Cpu)?;
    assert_eq!(prediction_bits(&loaded)?, prediction_bits(&model)?);
    // Predicting twice does not drift either (predict reseeds).
    assert_eq!(prediction_bits(&loaded)?, prediction_bits(&loaded)?);

    assert_eq!(loaded.feature_names(), ["age", "dose"]);
    assert_eq!(loaded.target_name(), "response");
    assert_eq!(loaded.x_scaler(), model.x_scaler());
    assert_eq!(loaded.y_scaler(), model.y_scaler());
    assert_eq!(loaded.model().spec(), model.model().spec());
    // Everything but the progress-bar choice, which is not saved.
    let progress = model.train_config().progress;
    assert_eq!(
        &TrainConfig {
            progress,
            ..loaded.train_config().clone()
        },
        model.train_config()
    );
    assert_eq!(
        serde_json::to_value(loaded.report())?,
        serde_json::to_value(model.report())?,
        "f64s must read back exactly: serde_json needs its `float_roundtrip` feature"
    );
    for ((na, va), (nb, vb)) in loaded
        .model()
        .named_vars()
        .iter()
        .zip(model.model().named_vars().iter())
    {
        assert_eq!(na, nb);
        let a: Vec<u32> = va
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect();
        let b: Vec<u32> = vb
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect();
        assert_eq!(a, b, "tensor {na}");
    }

    let v = read_json(&dir);
    assert_eq!(v["format_version"], FORMAT_VERSION);
    assert_eq!(v["method"], "bbb");
    assert_eq!(v["train"]["seed"], 3);
    assert_eq!(file_names(&dir).len(), 2, "{:?}", file_names(&dir));
    Ok(())
}

/// f64 values whose shortest decimal form serde_json's default (fast) float
/// parser reads back one ulp off; a scaling must survive them exactly, or a
/// reloaded model's predictions differ in the last bits.
#[test]
fn scalings_survive_json_bit_for_bit() -> Result<()> {
    let model = fit(5)?;
    let x_scaler = Standardizer {
        mean: vec![-15.167165182513429, 2.2104859145879813e-48],
        scale: vec![118.39125726132977, 0.1],
        constant: vec![false, false],
    };
    let y_scaler = Standardizer {
        mean: vec![103.43034726178713],
        scale: vec![118.39125726132977],
        constant: vec![false],
    };
    let odd = BayesRegressor::from_parts(
        model.model().clone(),
        (x_scaler.clone(), y_scaler.clone()),
        (model.feature_names().to_vec(), model.target_name().into()),
        model.train_config().clone(),
        model.report().clone(),
    )?;
    let tmp = tempfile::tempdir().unwrap();
    checkpoint::save(&odd, tmp.path())?;
    let loaded = checkpoint::load_regressor(tmp.path(), &Device::Cpu)?;
    let bits = |s: &Standardizer| -> Vec<u64> {
        s.mean.iter().chain(&s.scale).map(|v| v.to_bits()).collect()
    };
    let hint = "f64s must read back exactly: serde_json needs its `float_roundtrip` feature";
    assert_eq!(bits(loaded.x_scaler()), bits(&x_scaler), "{hint}");
    assert_eq!(bits(loaded.y_scaler()), bits(&y_scaler), "{hint}");
    assert_eq!(prediction_bits(&loaded)?, prediction_bits(&odd)?);
    Ok(())
}

#[test]
fn same_seed_gives_byte_identical_files() -> Result<()> {
    let (_ta, a, _) = saved(11)?;
    let (_tb, b, _) = saved(11)?;
    let (ta, tb) = (tensor_files(&a), tensor_files(&b));
    assert_eq!(ta, tb, "content-named tensor files");
    assert_eq!(
        fs::read(a.join(&ta[0])).unwrap(),
        fs::read(b.join(&tb[0])).unwrap()
    );
    // Wall time is not saved, so the metadata is byte-identical too.
    assert_eq!(
        fs::read(a.join(MODEL_FILE)).unwrap(),
        fs::read(b.join(MODEL_FILE)).unwrap()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Atomicity
// ---------------------------------------------------------------------------

#[test]
fn saving_over_a_model_replaces_it_and_leaves_one_tensor_file() -> Result<()> {
    let (_tmp, dir, first) = saved(1)?;
    let second = fit(2)?;
    assert_ne!(prediction_bits(&first)?, prediction_bits(&second)?);
    let old_tensors = tensor_files(&dir);
    checkpoint::save(&second, &dir)?;
    let names = file_names(&dir);
    assert_eq!(names.len(), 2, "{names:?}");
    assert_ne!(tensor_files(&dir), old_tensors);
    let loaded = checkpoint::load_regressor(&dir, &Device::Cpu)?;
    assert_eq!(prediction_bits(&loaded)?, prediction_bits(&second)?);
    assert_eq!(loaded.train_config().seed, 2);

    // Saving the same model again is idempotent.
    let before = snapshot(&dir);
    checkpoint::save(&second, &dir)?;
    let after = snapshot(&dir);
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    Ok(())
}

/// Recreates on disk what a crash leaves after each step of a save of B over
/// A, and checks that A loads exactly until B's model.json is in place.
#[test]
fn a_crash_at_any_step_leaves_a_loadable_model() -> Result<()> {
    let (_ta, dir, a) = saved(21)?;
    let (_tb, b_dir, b) = saved(22)?;
    let a_bits = prediction_bits(&a)?;
    let b_tensor = tensor_files(&b_dir).remove(0);

    // Crash while writing the tensor file: a partial temporary file.
    let partial = fs::read(b_dir.join(&b_tensor)).unwrap();
    fs::write(
        dir.join(".tensors-999-0.tmp"),
        &partial[..partial.len() / 2],
    )
    .unwrap();
    assert_eq!(
        prediction_bits(&checkpoint::load_regressor(&dir, &Device::Cpu)?)?,
        a_bits
    );

    // Crash after the tensor rename, while writing model.json.
    fs::copy(b_dir.join(&b_tensor), dir.join(&b_tensor)).unwrap();
    let b_json = fs::read(b_dir.join(MODEL_FILE)).unwrap();
    fs::write(
        dir.join(".model.json-999-1.tmp"),
        &b_json[..b_json.len() / 3],
    )
    .unwrap();
    assert_eq!(
        prediction_bits(&checkpoint::load_regressor(&dir, &Device::Cpu)?)?,
        a_bits
    );

    // Crash after the commit rename, before cleanup: B, with debris.
    fs::write(dir.join(MODEL_FILE), &b_json).unwrap();
    assert_eq!(file_names(&dir).len(), 5);
    assert_eq!(
        prediction_bits(&checkpoint::load_regressor(&dir, &Device::Cpu)?)?,
        prediction_bits(&b)?
    );

    // The next save accepts the debris as its own and removes it.
    checkpoint::save(&a, &dir)?;
    assert_eq!(file_names(&dir).len(), 2, "{:?}", file_names(&dir));
    assert_eq!(
        prediction_bits(&checkpoint::load_regressor(&dir, &Device::Cpu)?)?,
        a_bits
    );
    Ok(())
}

#[test]
fn refuses_to_write_into_a_folder_that_is_not_a_model_directory() -> Result<()> {
    let model = fit(4)?;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    fs::write(dir.join("notes.txt"), "my thesis, chapter 3").unwrap();
    fs::create_dir(dir.join("data")).unwrap();
    fs::write(dir.join("data").join("train.csv"), "x,y\n1,2\n").unwrap();
    let before = snapshot(dir);
    let err = checkpoint::save(&model, dir).unwrap_err().to_string();
    assert_mentions(&err, &["not a model directory", "notes.txt", "data"]);
    assert_eq!(snapshot(dir), before);

    // A model.json someone else wrote is not overwritten either.
    let other = tempfile::tempdir().unwrap();
    fs::write(other.path().join(MODEL_FILE), r#"{"name": "my-web-app"}"#).unwrap();
    let before = snapshot(other.path());
    let err = checkpoint::save(&model, other.path())
        .unwrap_err()
        .to_string();
    assert_mentions(&err, &["refusing to overwrite", "model.json"]);
    assert_eq!(snapshot(other.path()), before);

    // A file where the directory should be.
    let file = tmp.path().join("notes.txt");
    let err = checkpoint::save(&model, &file).unwrap_err().to_string();
    assert_mentions(&err, &["not a directory"]);
    assert_eq!(fs::read(&file).unwrap(), b"my thesis, chapter 3");
    Ok(())
}

#[test]
fn a_failed_save_leaves_the_existing_model_unchanged() -> Result<()> {
    let (_tmp, dir, good) = saved(8)?;
    let before = snapshot(&dir);

    // A report holding NaN cannot be written as JSON (it would read back as null).
    let mut report = good.report().clone();
    report.epochs[0].terms.loss = f64::NAN;
    let nan_report = BayesRegressor::from_parts(
        good.model().clone(),
        (good.x_scaler().clone(), good.y_scaler().clone()),
        (good.feature_names().to_vec(), good.target_name().into()),
        good.train_config().clone(),
        report,
    )?;
    let err = checkpoint::save(&nan_report, &dir).unwrap_err().to_string();
    assert_mentions(&err, &["refusing to save", "non-finite"]);
    assert_eq!(snapshot(&dir), before);

    // Non-finite parameters are refused too.
    let mut tensors = model_tensors(&good);
    let mu = tensors["l0.weight.mu"].clone();
    let mut values = mu.flatten_all()?.to_vec1::<f32>()?;
    values[3] = f32::NAN;
    tensors.insert(
        "l0.weight.mu".into(),
        Tensor::from_vec(values, mu.dims(), &Device::Cpu)?,
    );
    let broken = BayesRegressor::from_parts(
        good.model().spec().from_named_tensors(tensors, 8)?,
        (good.x_scaler().clone(), good.y_scaler().clone()),
        (good.feature_names().to_vec(), good.target_name().into()),
        good.train_config().clone(),
        good.report().clone(),
    )?;
    let err = checkpoint::save(&broken, &dir).unwrap_err().to_string();
    assert_mentions(&err, &["l0.weight.mu", "non-finite"]);
    assert_eq!(snapshot(&dir), before);
    assert_eq!(
        prediction_bits(&checkpoint::load_regressor(&dir, &Device::Cpu)?)?,
        prediction_bits(&good)?
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// Load errors
// ---------------------------------------------------------------------------

#[test]
fn load_errors_for_missing_or_wrong_directories() {
    let tmp = tempfile::tempdir().unwrap();
    assert_mentions(&load_error(&tmp.path().join("nope")), &["does not exist"]);
    fs::write(tmp.path().join("file"), "x").unwrap();
    assert_mentions(&load_error(&tmp.path().join("file")), &["not a directory"]);
    assert_mentions(
        &load_error(tmp.path()),
        &["not a model directory: no model.json"],
    );
}

#[test]
fn load_errors_for_damaged_tensor_files() -> Result<()> {
    let (_tmp, dir, model) = saved(6)?;
    let path = tensor_path(&dir);
    let good = fs::read(&path).unwrap();

    fs::write(&path, &good[..good.len() - 7]).unwrap();
    assert_mentions(&load_error(&dir), &["corrupted or truncated", "checksum"]);

    let mut flipped = good.clone();
    let k = flipped.len() - 10;
    flipped[k] ^= 0x01;
    fs::write(&path, &flipped).unwrap();
    assert_mentions(&load_error(&dir), &["corrupted or truncated", "checksum"]);

    fs::remove_file(&path).unwrap();
    assert_mentions(&load_error(&dir), &["missing", "tensors-"]);

    fs::write(&path, &good).unwrap();
    checkpoint::load_regressor(&dir, &Device::Cpu)?;

    // Bytes that are not safetensors, with a matching checksum.
    replace_tensor_bytes(&dir, b"definitely not a safetensors file");
    assert_mentions(&load_error(&dir), &["not a valid safetensors"]);

    // A tensor the architecture does not have.
    let mut extra = model_tensors(&model);
    extra.insert(
        "l9.weight.mu".into(),
        Tensor::zeros((2, 2), candle_core::DType::F32, &Device::Cpu)?,
    );
    replace_tensor_bytes(&dir, &safetensors_bytes(&extra));
    assert_mentions(
        &load_error(&dir),
        &["architecture", "unexpected tensor 'l9.weight.mu'"],
    );

    // A tensor missing.
    let mut fewer = model_tensors(&model);
    fewer.remove("l1.bias.rho");
    replace_tensor_bytes(&dir, &safetensors_bytes(&fewer));
    assert_mentions(&load_error(&dir), &["'l1.bias.rho' is missing"]);

    // A NaN parameter.
    let mut nan = model_tensors(&model);
    nan.insert("l1.bias.mu".into(), Tensor::new(&[f32::NAN], &Device::Cpu)?);
    replace_tensor_bytes(&dir, &safetensors_bytes(&nan));
    assert_mentions(&load_error(&dir), &["l1.bias.mu", "non-finite"]);

    // A wrong dtype.
    let mut f64s = model_tensors(&model);
    let t = f64s["l1.bias.mu"].to_dtype(candle_core::DType::F64)?;
    f64s.insert("l1.bias.mu".into(), t);
    replace_tensor_bytes(&dir, &safetensors_bytes(&f64s));
    assert_mentions(&load_error(&dir), &["l1.bias.mu", "F64", "expected F32"]);
    Ok(())
}

#[test]
fn load_errors_for_damaged_model_json() -> Result<()> {
    let (_tmp, dir, _model) = saved(7)?;
    let good = read_json(&dir);
    let edit = |f: &dyn Fn(&mut Value)| {
        let mut v = good.clone();
        f(&mut v);
        write_json(&dir, &v);
        load_error(&dir)
    };

    fs::write(
        dir.join(MODEL_FILE),
        "{\n  \"format_version\": 1,\n  oops\n}",
    )
    .unwrap();
    assert_mentions(&load_error(&dir), &["not valid JSON", "line 3"]);
    fs::write(dir.join(MODEL_FILE), "").unwrap();
    assert_mentions(&load_error(&dir), &["not valid JSON"]);

    assert_mentions(
        &edit(&|v| v["format_version"] = (FORMAT_VERSION + 1).into()),
        &[
            &format!("written by format version {}", FORMAT_VERSION + 1),
            &format!("reads versions up to {FORMAT_VERSION}"),
            "upgrade candle-bnn",
        ],
    );
    assert_mentions(
        &edit(&|v| v["format_version"] = 0.into()),
        &["format_version 0"],
    );
    assert_mentions(
        &edit(&|v| v["format_version"] = "1".into()),
        &["format_version"],
    );
    assert_mentions(
        &edit(&|v| v["method"] = "svgd".into()),
        &["svgd", "\"bbb\"", "\"mc-dropout\"", "\"ensemble\""],
    );
    assert_mentions(
        &edit(&|v| {
            v.as_object_mut().unwrap().remove("x_scaler");
        }),
        &["missing field `x_scaler`", "line"],
    );
    assert_mentions(
        &edit(&|v| v["train"]["seed"] = "zero".into()),
        &["invalid type", "line"],
    );
    assert_mentions(
        &edit(&|v| v["tensors"] = "../../etc/passwd".into()),
        &["must be 'tensors-"],
    );
    // Another architecture: the tensors no longer fit.
    assert_mentions(
        &edit(&|v| v["model"]["hidden"] = serde_json::json!([8])),
        &[
            "do not fit the architecture",
            "l0.weight.mu",
            "[16, 2]",
            "needs [8, 2]",
        ],
    );
    assert_mentions(
        &edit(&|v| v["model"]["hidden"] = serde_json::json!([16, 16])),
        &["do not fit the architecture"],
    );
    assert_mentions(
        &edit(&|v| v["model"]["hidden"] = serde_json::json!([0])),
        &["architecture is invalid"],
    );
    // Metadata inconsistent with the model.
    assert_mentions(
        &edit(&|v| v["feature_names"] = serde_json::json!(["age"])),
        &["inconsistent", "feature names"],
    );
    assert_mentions(
        &edit(&|v| v["y_scaler"]["scale"] = serde_json::json!([0.0])),
        &["y_scaler.scale[0]", "> 0"],
    );

    write_json(&dir, &good);
    checkpoint::load_regressor(&dir, &Device::Cpu)?;
    Ok(())
}

/// Every family and both tasks reload bit for bit: regressors of MC dropout
/// and ensembles (their masks and members come back), classifiers of BBB and
/// MC dropout with a fitted temperature; and a directory of one task refuses
/// to load as the other.
#[test]
fn every_family_and_task_round_trips() -> Result<()> {
    use candle_bnn::classifier::{bbb_classifier, mc_dropout_classifier, BayesClassifier};
    use candle_bnn::ensemble::EnsembleConfig;
    use candle_bnn::McDropoutConfig;

    let data = two_feature_data(96)?;
    let tmp = tempfile::tempdir().unwrap();
    let regressors = [
        BayesRegressor::fit(
            &data,
            McDropoutConfig::new(2, &[16]),
            &train_config(3),
            &Device::Cpu,
        )?,
        BayesRegressor::fit(
            &data,
            EnsembleConfig::new(2, &[8], 3),
            &train_config(4),
            &Device::Cpu,
        )?,
    ];
    for (k, model) in regressors.iter().enumerate() {
        let dir = tmp.path().join(format!("regressor{k}"));
        checkpoint::save(model, &dir)?;
        let loaded = checkpoint::load_regressor(&dir, &Device::Cpu)?;
        assert_eq!(loaded.model().spec(), model.model().spec());
        // 30 samples: a multiple of the ensemble's 3 members.
        let bits = |m: &BayesRegressor| -> Result<Vec<u64>> {
            let p = m.predict(&queries(), 30)?;
            Ok(p.mean()
                .iter()
                .chain(&p.std())
                .map(|v| v.to_bits())
                .collect())
        };
        assert_eq!(bits(&loaded)?, bits(model)?, "{}", model.model());
    }

    // Labels: which side of the response's median a row lies.
    let mut sorted = data.y.clone();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    let labels: Vec<f64> = data.y.iter().map(|&y| f64::from(y > median)).collect();
    let classes = Dataset::new(data.x.clone(), labels, data.feature_names.clone(), "high")?;
    for (k, spec) in [
        bbb_classifier(2, &[16], 2),
        mc_dropout_classifier(2, &[16], 2, 0.1),
    ]
    .iter()
    .enumerate()
    {
        let mut model = BayesClassifier::fit(&classes, spec, &train_config(5), &Device::Cpu)?;
        model.calibrate(&classes, 16)?;
        let dir = tmp.path().join(format!("classifier{k}"));
        checkpoint::save(&model, &dir)?;
        let loaded = checkpoint::load_classifier(&dir, &Device::Cpu)?;
        assert_eq!(loaded.temperature(), model.temperature());
        assert!(model.temperature().is_some());
        let probs = |m: &BayesClassifier| -> Result<Vec<u64>> {
            let p = m.predict_raw(&queries(), 16)?;
            Ok((0..p.len())
                .flat_map(|i| p.mean_probs(i))
                .map(f64::to_bits)
                .collect())
        };
        assert_eq!(probs(&loaded)?, probs(&model)?, "{}", model.model());
        let err = checkpoint::load_regressor(&dir, &Device::Cpu)
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert_mentions(
            &err,
            &["classification model", "expected a regression model"],
        );
    }
    Ok(())
}

/// A version 1 file (BBB regressors only: no `task`, `method` "bbb") still
/// loads, and predicts as the version 2 file it was cut from.
#[test]
fn version_1_files_load_unchanged() -> Result<()> {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("model");
    let model = fit(2)?;
    checkpoint::save(&model, &dir)?;
    let mut v = read_json(&dir);
    assert_eq!(v["task"], "regression");
    v["format_version"] = 1.into();
    v.as_object_mut().unwrap().remove("task");
    write_json(&dir, &v);
    let loaded = checkpoint::load_regressor(&dir, &Device::Cpu)?;
    assert_eq!(prediction_bits(&loaded)?, prediction_bits(&model)?);
    Ok(())
}
