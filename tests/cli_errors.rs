//! Every bad input to `bnn train`, `bnn predict` and `bnn eval` exits non-zero
//! with a message that names what was wrong, where (file, 1-based line with
//! the header as line 1, column) and what was expected; never a panic.

use std::path::{Path, PathBuf};

mod common;

use common::{bnn, fails, text, Fixture, TARGET};

/// Rows of the real diabetes data used as the fixture (plus the header).
const ROWS: usize = 30;

/// Asserts that `stderr` contains every one of `needles`.
fn mentions(stderr: &str, needles: &[&str]) {
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "expected {needle:?} in the message, got: {stderr}"
        );
    }
}

impl Fixture {
    /// Trains a tiny model on the good fixture and returns its directory.
    fn trained_model(&self, name: &str) -> PathBuf {
        let data = self.good_csv();
        let model = self.path(name);
        let out = bnn(&self.train_args(&data, &model, 0));
        assert!(out.status.success(), "train failed: {}", text(&out.stderr));
        model
    }

    /// A `train` on `data` with `extra` flags that must fail, write no model
    /// directory, and whose stderr is returned.
    fn train_fails(&self, data: &Path, extra: &[&str]) -> String {
        let out_dir = self.path("never-written");
        let mut args = self.train_args(data, &out_dir, 0);
        apply(&mut args, extra);
        let stderr = fails(&args);
        assert!(
            !out_dir.exists(),
            "a failed train created {}",
            out_dir.display()
        );
        stderr
    }
}

/// Adds `extra` (flag, value pairs, or a lone `--flag=value`) to `args`,
/// replacing the value of a flag that is already there.
fn apply(args: &mut Vec<String>, extra: &[&str]) {
    let mut i = 0;
    while i < extra.len() {
        let flag = extra[i];
        if flag.contains('=') || i + 1 == extra.len() {
            args.push(flag.to_string());
            i += 1;
            continue;
        }
        let value = extra[i + 1].to_string();
        match args.iter().position(|a| a == flag) {
            Some(at) => args[at + 1] = value,
            None => args.extend([flag.to_string(), value]),
        }
        i += 2;
    }
}

fn predict_args(model: &Path, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "predict".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--data".into(),
        data.display().to_string(),
        "--samples".into(),
        "5".into(),
    ];
    apply(&mut args, extra);
    args
}

fn eval_args(model: &Path, data: &Path, extra: &[&str]) -> Vec<String> {
    let mut args = vec![
        "eval".to_string(),
        "--model".into(),
        model.display().to_string(),
        "--data".into(),
        data.display().to_string(),
    ];
    apply(&mut args, extra);
    args
}

fn tensor_file(model: &Path) -> PathBuf {
    let entries = std::fs::read_dir(model).unwrap_or_else(|e| panic!("{}: {e}", model.display()));
    let mut found = Vec::new();
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        if name.is_some_and(|n| n.starts_with("tensors-") && n.ends_with(".safetensors")) {
            found.push(path);
        }
    }
    assert_eq!(found.len(), 1, "expected one tensor file: {found:?}");
    found.remove(0)
}

// ---------------------------------------------------------------------------
// Data files
// ---------------------------------------------------------------------------

#[test]
fn missing_data_file() {
    let f = Fixture::new(ROWS);
    let data = f.path("no-such-file.csv");
    let stderr = f.train_fails(&data, &[]);
    mentions(&stderr, &["no-such-file.csv"]);
    assert!(
        stderr.contains("No such file") || stderr.contains("not found"),
        "expected 'No such file' or 'not found': {stderr}"
    );
}

#[test]
fn empty_file() {
    let f = Fixture::new(ROWS);
    let data = f.write("empty.csv", "");
    let stderr = f.train_fails(&data, &[]);
    mentions(&stderr, &["empty.csv", "empty", "header"]);
}

#[test]
fn header_without_rows() {
    let f = Fixture::new(ROWS);
    let data = f.write("header-only.csv", &format!("{}\n", f.lines[0]));
    let stderr = f.train_fails(&data, &[]);
    mentions(&stderr, &["header-only.csv", "header", "no data rows"]);
}

#[test]
fn non_numeric_cell() {
    let f = Fixture::new(ROWS);
    // Line 4 is the third data row; column 'bmi' is the third column.
    let data = f.write_edited("text-cell.csv", |line, fields| {
        if line == 4 {
            fields[2] = "abc".into();
        }
    });
    let stderr = f.train_fails(&data, &[]);
    mentions(
        &stderr,
        &[
            "text-cell.csv",
            "line 4",
            "'bmi'",
            "'abc'",
            "expected a number",
        ],
    );
}

#[test]
fn nan_cell() {
    let f = Fixture::new(ROWS);
    let data = f.write_edited("nan-cell.csv", |line, fields| {
        if line == 5 {
            fields[0] = "NaN".into();
        }
    });
    let stderr = f.train_fails(&data, &[]);
    mentions(
        &stderr,
        &["nan-cell.csv", "line 5", "'age'", "NaN", "finite"],
    );
}

#[test]
fn inf_cell() {
    let f = Fixture::new(ROWS);
    let data = f.write_edited("inf-cell.csv", |line, fields| {
        if line == 7 {
            fields[1] = "inf".into();
        }
    });
    let stderr = f.train_fails(&data, &[]);
    mentions(
        &stderr,
        &["inf-cell.csv", "line 7", "'sex'", "'inf'", "finite"],
    );
}

#[test]
fn nan_in_the_target_column() {
    let f = Fixture::new(ROWS);
    let data = f.write_edited("nan-target.csv", |line, fields| {
        if line == 9 {
            if let Some(last) = fields.last_mut() {
                *last = "nan".into();
            }
        }
    });
    let stderr = f.train_fails(&data, &[]);
    mentions(
        &stderr,
        &["nan-target.csv", "line 9", &format!("'{TARGET}'"), "finite"],
    );
}

#[test]
fn row_with_too_few_fields() {
    let f = Fixture::new(ROWS);
    let data = f.write_edited("short-row.csv", |line, fields| {
        if line == 6 {
            fields.pop();
        }
    });
    let stderr = f.train_fails(&data, &[]);
    mentions(
        &stderr,
        &["short-row.csv", "line 6", "found 10 fields", "expected 11"],
    );
}

#[test]
fn row_with_too_many_fields() {
    let f = Fixture::new(ROWS);
    let data = f.write_edited("long-row.csv", |line, fields| {
        if line == 8 {
            fields.push("5".into());
        }
    });
    let stderr = f.train_fails(&data, &[]);
    mentions(
        &stderr,
        &["long-row.csv", "line 8", "found 12 fields", "expected 11"],
    );
}

#[test]
fn missing_target_column() {
    let f = Fixture::new(ROWS);
    let data = f.good_csv();
    let out_dir = f.path("never-written");
    let mut args = f.train_args(&data, &out_dir, 0);
    let target = args.iter().position(|a| a == TARGET).unwrap_or(0);
    args[target] = "glucose".into();
    let stderr = fails(&args);
    mentions(
        &stderr,
        &[
            "good.csv",
            "'glucose'",
            "target",
            "available columns",
            "'bmi'",
        ],
    );
    assert!(!out_dir.exists());
}

#[test]
fn missing_feature_column() {
    let f = Fixture::new(ROWS);
    let data = f.good_csv();
    let stderr = f.train_fails(&data, &["--features", "age,weight,bmi"]);
    mentions(
        &stderr,
        &["good.csv", "'weight'", "feature", "available columns"],
    );
}

// ---------------------------------------------------------------------------
// Hyperparameters
// ---------------------------------------------------------------------------

#[test]
fn zero_epochs() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--epochs", "0"]);
    mentions(&stderr, &["epochs", "got 0", "at least 1"]);
}

#[test]
fn zero_batch_size() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--batch-size", "0"]);
    mentions(&stderr, &["batch", "got 0", "at least 1"]);
}

/// The message should name the parameter as the user typed it; `--kl-warmup`
/// does, `--batch-size` and `--init-scale` say `batch_size` / `init_scale`.
#[test]

fn hyperparameter_messages_use_the_flag_spelling() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--batch-size", "0"]);
    mentions(&stderr, &["batch-size"]);
    let stderr = f.train_fails(&f.good_csv(), &["--init-scale", "0"]);
    mentions(&stderr, &["init-scale"]);
}

#[test]
fn early_stopping_flags_are_checked_before_training() {
    let f = Fixture::new(ROWS);
    let cases: [(&[&str], &[&str]); 3] = [
        (
            &["--validation-fraction", "0.3"],
            &[
                "validation-fraction",
                "0.3",
                "only together with --early-stopping",
            ],
        ),
        (
            &["--early-stopping", "--validation-fraction", "1"],
            &["validation-fraction", "a fraction in (0, 1)"],
        ),
        (
            &["--early-stopping", "--task", "classify"],
            &["early-stopping", "--task regress"],
        ),
    ];
    for (extra, needles) in cases {
        mentions(&f.train_fails(&f.good_csv(), extra), needles);
    }
}

#[test]
fn zero_gaussian_prior_sigma() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--prior", "gaussian:0"]);
    mentions(&stderr, &["--prior", "gaussian:0", "sigma", "> 0"]);
}

#[test]
fn negative_gaussian_prior_sigma() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--prior", "gaussian:-1"]);
    mentions(&stderr, &["--prior", "gaussian:-1", "sigma", "> 0"]);
}

#[test]
fn unknown_prior() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--prior", "cauchy:1"]);
    mentions(
        &stderr,
        &["--prior", "cauchy:1", "gaussian", "laplace", "he"],
    );
}

#[test]
fn family_flags_must_match_the_method() {
    let f = Fixture::new(ROWS);
    let cases: [(&[&str], &[&str]); 8] = [
        (
            &["--method", "mc-dropout", "--estimator", "flipout"],
            &["--estimator", "only with --method bbb", "mc-dropout"],
        ),
        (
            &["--dropout", "0.1"],
            &["--dropout", "only with --method mc-dropout", "bbb"],
        ),
        (
            &["--method", "ensemble", "--keras-init"],
            &["--keras-init", "only with --method mc-dropout", "ensemble"],
        ),
        (
            &["--elbo-noise"],
            &["--elbo-noise", "only with --method mc-dropout", "bbb"],
        ),
        (
            &["--method", "bbb", "--members", "3"],
            &["--members", "only with --method ensemble"],
        ),
        (
            &["--method", "ensemble", "--init-scale", "0.1"],
            &["--init-scale", "only with --method bbb"],
        ),
        // An ensemble has no KL term to weigh or phase in.
        (
            &["--method", "ensemble", "--kl-beta", "0.5"],
            &[
                "--kl-beta",
                "only with --method bbb | mc-dropout",
                "ensemble",
            ],
        ),
        (
            &["--method", "ensemble", "--kl-warmup", "5"],
            &[
                "--kl-warmup",
                "only with --method bbb | mc-dropout",
                "ensemble",
            ],
        ),
    ];
    for (args, needles) in cases {
        mentions(&f.train_fails(&f.good_csv(), args), needles);
    }
}

#[test]
fn family_hyperparameters_are_validated() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--method", "mc-dropout", "--dropout", "1"]);
    mentions(&stderr, &["dropout", "[0, 1)"]);
    let stderr = f.train_fails(&f.good_csv(), &["--method", "ensemble", "--members", "0"]);
    mentions(&stderr, &["members", "at least 1"]);
}

#[test]
fn classify_refuses_real_valued_labels_and_a_likelihood() {
    let f = Fixture::new(ROWS);
    // The diabetes target is a real number: not class indices.
    let stderr = f.train_fails(&f.good_csv(), &["--task", "classify"]);
    mentions(&stderr, &["label", "classify", "0..K-1"]);
    let stderr = f.train_fails(
        &f.good_csv(),
        &["--task", "classify", "--likelihood", "heteroscedastic"],
    );
    mentions(&stderr, &["--likelihood", "categorical"]);
}

#[test]
fn recalibration_must_fit_the_task() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(
        &f.good_csv(),
        &[
            "--calibration-fraction",
            "0.2",
            "--recalibrate",
            "temperature",
        ],
    );
    mentions(&stderr, &["recalibrate", "temperature", "--task classify"]);
}

#[test]
fn unknown_method() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--method", "foo"]);
    mentions(
        &stderr,
        &["--method", "'foo'", "bbb", "mc-dropout", "ensemble"],
    );
}

#[test]
fn zero_width_hidden_layer() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--hidden", "50,0"]);
    mentions(&stderr, &["hidden[1]", "got 0", "at least 1"]);
}

#[test]
fn zero_learning_rate() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--lr", "0"]);
    mentions(&stderr, &["lr", "got 0", "> 0"]);
}

#[test]
fn non_finite_learning_rate() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--lr", "nan"]);
    mentions(&stderr, &["lr", "NaN", "finite"]);
}

#[test]
fn zero_kl_warmup() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--kl-warmup", "0"]);
    mentions(&stderr, &["kl-warmup", "got 0", "> 0"]);
}

/// A KL weight must be ≥ 0, and is refused beside a warm-up (which sets
/// the weight itself).
#[test]
fn negative_kl_beta_and_kl_beta_with_a_warm_up() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--kl-beta", "-0.5"]);
    mentions(&stderr, &["kl-beta", "got -0.5", ">= 0"]);
    let stderr = f.train_fails(&f.good_csv(), &["--kl-beta", "0.5", "--kl-warmup", "3"]);
    mentions(
        &stderr,
        &["--kl-beta", "--kl-warmup", "cannot be used with"],
    );
}

/// `--lr -1` (space-separated) is taken by clap for an unknown flag `-1`:
/// "unexpected argument '-1' found", which does not say the value was
/// accepted syntax but out of range. `--lr=-1` gives the right message.
#[test]

fn negative_value_after_a_space_names_the_parameter() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--lr", "-1"]);
    mentions(&stderr, &["lr", "> 0"]);
}

#[test]
fn negative_learning_rate_with_equals_sign() {
    let f = Fixture::new(ROWS);
    let stderr = f.train_fails(&f.good_csv(), &["--lr=-1"]);
    mentions(&stderr, &["lr", "got -1", "> 0"]);
}

// ---------------------------------------------------------------------------
// predict and eval
// ---------------------------------------------------------------------------

fn predict_level_fails(level: &str) {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let data = f.good_csv();
    let stderr = fails(&predict_args(&model, &data, &["--level", level]));
    mentions(&stderr, &["level", &format!("got {level}"), "(0, 1)"]);
}

#[test]
fn predict_level_zero() {
    predict_level_fails("0");
}

#[test]
fn predict_level_one() {
    predict_level_fails("1");
}

#[test]
fn predict_level_above_one() {
    predict_level_fails("1.5");
}

#[test]
fn predict_zero_samples() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let data = f.good_csv();
    let stderr = fails(&predict_args(&model, &data, &["--samples", "0"]));
    mentions(&stderr, &["samples", "got 0", "at least 1"]);
}

#[test]
fn eval_zero_samples() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let data = f.good_csv();
    let stderr = fails(&eval_args(&model, &data, &["--samples", "0"]));
    mentions(&stderr, &["samples", "got 0", "at least 1"]);
}

#[test]
fn predict_with_a_missing_model_dir() {
    let f = Fixture::new(ROWS);
    let data = f.good_csv();
    let model = f.path("no-such-model");
    let stderr = fails(&predict_args(&model, &data, &[]));
    mentions(&stderr, &["no-such-model", "does not exist", "model.json"]);
}

#[test]
fn predict_on_data_lacking_a_feature_column() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    // Drop column 's3' (index 6).
    let data = f.write_edited("no-s3.csv", |_, fields| {
        fields.remove(6);
    });
    let stderr = fails(&predict_args(&model, &data, &[]));
    mentions(&stderr, &["no-s3.csv", "line 1", "'s3'", "feature"]);
}

#[test]
fn predict_on_data_with_a_bad_cell() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let data = f.write_edited("bad-cell.csv", |line, fields| {
        if line == 12 {
            fields[3] = "1.2.3".into();
        }
    });
    let stderr = fails(&predict_args(&model, &data, &[]));
    mentions(
        &stderr,
        &["bad-cell.csv", "line 12", "'bp'", "'1.2.3'", "number"],
    );
}

#[test]
fn eval_with_a_missing_target_column() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let data = f.write_edited("no-target.csv", |_, fields| {
        fields.pop();
    });
    let stderr = fails(&eval_args(&model, &data, &[]));
    mentions(
        &stderr,
        &["no-target.csv", "line 1", &format!("'{TARGET}'"), "target"],
    );
}

#[test]
fn eval_with_an_unknown_target_flag() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let data = f.good_csv();
    let stderr = fails(&eval_args(&model, &data, &["--target", "glucose"]));
    mentions(&stderr, &["good.csv", "'glucose'", "target"]);
}

// ---------------------------------------------------------------------------
// Damaged checkpoints
// ---------------------------------------------------------------------------

#[test]
fn truncated_tensor_file() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let tensors = tensor_file(&model);
    let len = std::fs::metadata(&tensors).map_or(0, |m| m.len());
    assert!(len > 16, "tensor file too small: {len}");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(&tensors)
        .unwrap_or_else(|e| panic!("{e}"));
    file.set_len(len / 2).unwrap_or_else(|e| panic!("{e}"));
    drop(file);
    let stderr = fails(&predict_args(&model, &f.good_csv(), &[]));
    mentions(&stderr, &["tensors-", "truncated", "checksum"]);
}

#[test]
fn flipped_byte_in_tensor_file() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let tensors = tensor_file(&model);
    let mut bytes = std::fs::read(&tensors).unwrap_or_else(|e| panic!("{e}"));
    // The last byte is tensor data (not the JSON header).
    let last = bytes.len() - 1;
    bytes[last] ^= 0x40;
    std::fs::write(&tensors, &bytes).unwrap_or_else(|e| panic!("{e}"));
    let stderr = fails(&predict_args(&model, &f.good_csv(), &[]));
    mentions(&stderr, &["tensors-", "corrupted", "checksum"]);
}

#[test]
fn missing_tensor_file() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let tensors = tensor_file(&model);
    std::fs::remove_file(&tensors).unwrap_or_else(|e| panic!("{e}"));
    let stderr = fails(&predict_args(&model, &f.good_csv(), &[]));
    mentions(&stderr, &["tensors-", "missing"]);
}

#[test]
fn garbage_model_json() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    std::fs::write(model.join("model.json"), "this is {not json").unwrap_or_else(|e| panic!("{e}"));
    let stderr = fails(&predict_args(&model, &f.good_csv(), &[]));
    mentions(&stderr, &["model.json", "JSON", "line 1"]);
}

#[test]
fn newer_format_version() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let path = model.join("model.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        v["format_version"],
        serde_json::json!(candle_bnn::checkpoint::FORMAT_VERSION),
        "{json}"
    );
    v["format_version"] = serde_json::json!(99);
    let edited = serde_json::to_string_pretty(&v).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, edited).unwrap_or_else(|e| panic!("{e}"));
    let stderr = fails(&predict_args(&model, &f.good_csv(), &[]));
    mentions(&stderr, &["model.json", "version 99", "upgrade"]);
}

#[test]
fn model_json_missing_a_field() {
    let f = Fixture::new(ROWS);
    let model = f.trained_model("model");
    let path = model.join("model.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{e}"));
    let mut v: serde_json::Value = serde_json::from_str(&json).unwrap_or_else(|e| panic!("{e}"));
    if let Some(map) = v.as_object_mut() {
        map.remove("feature_names");
    }
    let edited = serde_json::to_string_pretty(&v).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(&path, edited).unwrap_or_else(|e| panic!("{e}"));
    let stderr = fails(&predict_args(&model, &f.good_csv(), &[]));
    mentions(&stderr, &["model.json", "feature_names"]);
}

// ---------------------------------------------------------------------------
// Warnings
// ---------------------------------------------------------------------------

#[test]
fn constant_feature_trains_with_a_warning() {
    let f = Fixture::new(ROWS);
    let data = f.write_edited("constant-s4.csv", |line, fields| {
        if line > 1 {
            fields[7] = "0.25".into();
        }
    });
    let model = f.path("model");
    let out = bnn(&f.train_args(&data, &model, 0));
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "train failed: {stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    mentions(&stderr, &["warning", "'s4'", "constant", "constant-s4.csv"]);
    // Only the constant column is named.
    assert!(!stderr.contains("'s3'"), "{stderr}");
    // And the model predicts.
    let out = bnn(&predict_args(&model, &data, &[]));
    assert!(out.status.success(), "{}", text(&out.stderr));
}
