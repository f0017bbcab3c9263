//! `bnn train` → `predict` / `eval` round trips: reproducible from the seed,
//! well-formed prediction tables and metrics, atomic model directories, and
//! complete `--help` texts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Output;

mod common;

use common::{bnn, fails, text, Fixture, TARGET};

/// Rows of the real diabetes data used as the fixture (plus the header).
const ROWS: usize = 40;

fn strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Runs `bnn args` and asserts success; returns the output.
fn succeeds(args: &[String]) -> Output {
    let out = bnn(args);
    assert!(
        out.status.success(),
        "bnn {} failed\nstdout: {}\nstderr: {}",
        args.join(" "),
        text(&out.stdout),
        text(&out.stderr)
    );
    out
}

impl Fixture {
    fn train(&self, name: &str, seed: u64) -> PathBuf {
        let model = self.path(name);
        succeeds(&self.train_args(&self.good_csv(), &model, seed));
        model
    }
}

fn predict(model: &Path, data: &Path, extra: &[&str]) -> Output {
    let mut args = strings(&[
        "predict",
        "--model",
        &p(model),
        "--data",
        &p(data),
        "--samples",
        "20",
    ]);
    with_flags(&mut args, extra);
    succeeds(&args)
}

/// Adds the flag-value pairs of `extra` to `args`, replacing the value of a
/// flag already there.
fn with_flags(args: &mut Vec<String>, extra: &[&str]) {
    for pair in extra.chunks(2) {
        match (args.iter().position(|a| a == pair[0]), pair.get(1)) {
            (Some(at), Some(value)) => args[at + 1] = value.to_string(),
            _ => args.extend(strings(pair)),
        }
    }
}

/// `bnn eval --json` of `model` on `data` with `extra` flags, parsed.
fn eval_json(model: &Path, data: &Path, extra: &[&str]) -> serde_json::Value {
    let mut args = strings(&["eval", "--model", &p(model), "--data", &p(data), "--json"]);
    with_flags(&mut args, extra);
    let stdout = text(&succeeds(&args).stdout);
    serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {stdout}"))
}

/// Every file of `dir` by name, with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut files = BTreeMap::new();
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries {
        let path = entry.unwrap_or_else(|e| panic!("{e}")).path();
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        files.insert(name, bytes);
    }
    files
}

fn model_json(model: &Path) -> serde_json::Value {
    let path = model.join("model.json");
    let json = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&json).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The prediction table: header and rows of numbers.
fn parse_table(csv: &str) -> (String, Vec<[f64; 6]>) {
    let mut lines = csv.lines();
    let header = lines.next().unwrap_or_default().to_string();
    let rows = lines
        .map(|line| {
            let values: Vec<f64> = line
                .split(',')
                .map(|v| {
                    v.parse()
                        .unwrap_or_else(|e| panic!("bad number {v:?} in {line:?}: {e}"))
                })
                .collect();
            match <[f64; 6]>::try_from(values) {
                Ok(row) => row,
                Err(v) => panic!("expected 6 values, got {}: {line:?}", v.len()),
            }
        })
        .collect();
    (header, rows)
}

// ---------------------------------------------------------------------------
// Reproducibility
// ---------------------------------------------------------------------------

/// `--early-stopping` trains for one of its checkpoints, says so in the
/// JSON, and saves a model that predicts.
#[test]
fn early_stopping_trains_a_checkpoints_length_and_saves_a_working_model() {
    let f = Fixture::new(ROWS);
    let model = f.path("early");
    let mut args = f.train_args(&f.good_csv(), &model, 0);
    with_flags(
        &mut args,
        &[
            "--method",
            "ensemble",
            "--epochs",
            "32",
            "--early-stopping",
            "--json",
        ],
    );
    let out = succeeds(&args);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).expect("one JSON object");
    let epochs = v["epochs"].as_u64().expect("epochs");
    assert!([2, 4, 8, 16, 32].contains(&epochs), "{v}");
    assert_eq!(v["early_stopping"]["max_epochs"], 32, "{v}");
    assert_eq!(v["early_stopping"]["validation_fraction"], 0.2, "{v}");
    let table = text(&predict(&model, &f.good_csv(), &[]).stdout);
    assert_eq!(table.lines().count(), ROWS + 1, "{table}");
}

/// `--kl-beta` weighs the KL in the loss the JSON reports, `loss = nll +
/// beta kl / n_train` (per-epoch means, each term linear in the batches),
/// and is saved with the model.
#[test]
fn kl_beta_weighs_the_reported_loss_and_is_saved() {
    let f = Fixture::new(ROWS);
    let (model, v) = train_json(&f, &f.good_csv(), "tempered", &["--kl-beta", "0.25"]);
    let t = &v["final"];
    let term = |key: &str| t[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"));
    let n = v["n_train"].as_f64().expect("n_train");
    let want = term("nll") + 0.25 * term("kl") / n;
    // f32 sums of the per-batch terms: relative 1e-5.
    assert!(
        (term("loss") - want).abs() <= 1e-5 * want.abs(),
        "loss {} vs {want}",
        term("loss")
    );
    let saved = &model_json(&model)["train"]["kl_schedule"];
    assert_eq!(
        (&saved["kind"], &saved["beta"]),
        (&"constant".into(), &0.25.into())
    );
}

#[test]
fn same_seed_gives_identical_models_and_predictions() {
    let f = Fixture::new(ROWS);
    let a = f.train("a", 7);
    let b = f.train("b", 7);
    let (files_a, files_b) = (snapshot(&a), snapshot(&b));
    assert_eq!(
        files_a.keys().collect::<Vec<_>>(),
        files_b.keys().collect::<Vec<_>>(),
        "different file names"
    );
    for (name, bytes) in &files_a {
        if name != "model.json" {
            assert!(bytes == &files_b[name], "{name} differs between the runs");
        }
    }
    // model.json may record the training wall-clock time (report.seconds,
    // which differs between runs); everything else must be equal, and
    // without it the files must be byte-identical.
    let (mut ja, mut jb) = (model_json(&a), model_json(&b));
    let mut timed = false;
    for j in [&mut ja, &mut jb] {
        if let Some(report) = j["report"].as_object_mut() {
            timed |= report.remove("seconds").is_some();
        }
    }
    if !timed {
        assert!(
            files_a["model.json"] == files_b["model.json"],
            "model.json differs between the runs"
        );
    }
    assert_eq!(ja, jb, "model.json differs beyond report.seconds");

    let data = f.good_csv();
    let pa = predict(&a, &data, &[]).stdout;
    let pb = predict(&b, &data, &[]).stdout;
    assert!(!pa.is_empty());
    assert!(pa == pb, "predictions differ for the same seed");
    // Predicting twice from one model is deterministic too.
    assert!(pa == predict(&a, &data, &[]).stdout);
}

#[test]
fn different_seed_gives_different_predictions() {
    let f = Fixture::new(ROWS);
    let a = f.train("a", 7);
    let c = f.train("c", 8);
    let data = f.good_csv();
    let pa = predict(&a, &data, &[]).stdout;
    let pc = predict(&c, &data, &[]).stdout;
    assert!(pa != pc, "seeds 7 and 8 gave identical predictions");
    assert_ne!(model_json(&a)["tensors"], model_json(&c)["tensors"]);
}

// ---------------------------------------------------------------------------
// predict output
// ---------------------------------------------------------------------------

#[test]
fn predict_table_is_well_formed() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let out = predict(&model, &f.good_csv(), &[]);
    let csv = text(&out.stdout);
    let (header, rows) = parse_table(&csv);
    assert_eq!(header, "mean,std,lower,upper,epistemic_std,aleatoric_std");
    assert_eq!(rows.len(), ROWS, "one row per input row");
    for (i, [mean, std, lower, upper, epi, alea]) in rows.iter().copied().enumerate() {
        let row = i + 2;
        assert!(
            [mean, std, lower, upper, epi, alea]
                .iter()
                .all(|v| v.is_finite()),
            "line {row}: {:?}",
            rows[i]
        );
        assert!(lower < mean && mean < upper, "line {row}: {:?}", rows[i]);
        assert!(
            std > 0.0 && epi >= 0.0 && alea > 0.0,
            "line {row}: {:?}",
            rows[i]
        );
        let total = epi * epi + alea * alea;
        assert!(
            ((std * std - total) / total).abs() <= 1e-9,
            "line {row}: std^2 = {} but epistemic^2 + aleatoric^2 = {total}",
            std * std
        );
    }
}

#[test]
fn predict_keeps_the_row_order() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let forward = f.good_csv();
    let mut reversed_lines = vec![f.lines[0].clone()];
    reversed_lines.extend(f.lines[1..].iter().rev().cloned());
    let reversed = f.write("reversed.csv", &(reversed_lines.join("\n") + "\n"));
    let (_, fwd) = parse_table(&text(
        &predict(&model, &forward, &["--samples", "200"]).stdout,
    ));
    let (_, rev) = parse_table(&text(
        &predict(&model, &reversed, &["--samples", "200"]).stdout,
    ));
    assert_eq!(fwd.len(), rev.len());
    // Sampling noise is drawn per position, so the means agree only up to
    // Monte Carlo error; rows differ from each other by much more.
    let mut max_err: f64 = 0.0;
    for (i, row) in fwd.iter().enumerate() {
        let other = rev[fwd.len() - 1 - i];
        let tol = 6.0 * (row[4] + other[4]) / (200f64).sqrt() + 1e-9;
        max_err = max_err.max((row[0] - other[0]).abs() / tol);
        assert!(
            (row[0] - other[0]).abs() <= tol,
            "row {i}: mean {} forward vs {} reversed (tolerance {tol})",
            row[0],
            other[0]
        );
    }
    // The rows are distinguishable: mismatching them would be caught.
    let spread = fwd
        .windows(2)
        .map(|w| (w[0][0] - w[1][0]).abs())
        .fold(f64::INFINITY, f64::min);
    assert!(spread > 0.0, "two neighbouring rows have equal means");
    assert!(max_err <= 1.0);
}

#[test]
fn predict_ignores_extra_columns_and_their_order() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let plain = predict(&model, &f.good_csv(), &[]).stdout;
    // A text column first, the columns reversed, and a target that is not
    // even a number: only the model's features are read, by name.
    let messy = f.write_edited("messy.csv", |line, fields| {
        if line > 1 {
            if let Some(last) = fields.last_mut() {
                *last = "n/a".into();
            }
        }
        fields.reverse();
        let note = if line == 1 {
            "note".to_string()
        } else {
            format!("patient {line}, \"quoted\"")
        };
        fields.insert(0, format!("\"{}\"", note.replace('"', "\"\"")));
    });
    let messy_out = predict(&model, &messy, &[]).stdout;
    assert!(
        plain == messy_out,
        "extra or reordered columns changed the predictions:\n{}\nvs\n{}",
        text(&plain),
        text(&messy_out)
    );
}

#[test]
fn predict_out_file_equals_stdout() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let data = f.good_csv();
    let stdout = predict(&model, &data, &["--level", "0.8"]).stdout;
    let out_path = f.path("preds.csv");
    let out = predict(&model, &data, &["--level", "0.8", "--out", &p(&out_path)]);
    assert!(out.stdout.is_empty(), "--out also wrote to stdout");
    let written = std::fs::read(&out_path).unwrap_or_else(|e| panic!("{e}"));
    assert!(written == stdout, "--out and stdout differ");
    // No temporary file is left beside it.
    let names: Vec<String> = std::fs::read_dir(f.path(""))
        .unwrap_or_else(|e| panic!("{e}"))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        !names.iter().any(|n| n.ends_with(".tmp")),
        "leftover temporary file: {names:?}"
    );
}

#[test]
fn wider_level_gives_wider_intervals() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let data = f.good_csv();
    let (_, narrow) = parse_table(&text(&predict(&model, &data, &["--level", "0.5"]).stdout));
    let (_, wide) = parse_table(&text(&predict(&model, &data, &["--level", "0.99"]).stdout));
    for (n, w) in narrow.iter().zip(&wide) {
        assert_eq!(n[0], w[0], "the level changed the mean");
        assert!(w[3] - w[2] > n[3] - n[2], "{n:?} vs {w:?}");
    }
}

// ---------------------------------------------------------------------------
// eval
// ---------------------------------------------------------------------------

#[test]
fn eval_json_has_finite_metrics() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let data = f.good_csv();
    let v = eval_json(&model, &data, &["--samples", "20"]);
    let num = |key: &str| -> f64 {
        match v.get(key).and_then(serde_json::Value::as_f64) {
            Some(x) => x,
            None => panic!("missing or non-numeric {key} in {v}"),
        }
    };
    for key in [
        "rmse", "ll", "picp50", "picp90", "picp95", "mpiw50", "mpiw90", "mpiw95",
    ] {
        assert!(num(key).is_finite(), "{key} not finite in {v}");
    }
    assert!(num("rmse") > 0.0, "{v}");
    for key in ["picp50", "picp90", "picp95"] {
        let x = num(key);
        assert!((0.0..=1.0).contains(&x), "{key} = {x}");
    }
    assert!(
        0.0 < num("mpiw50") && num("mpiw50") < num("mpiw90") && num("mpiw90") < num("mpiw95"),
        "mpiw not increasing with the level: {v}"
    );
    assert!(
        num("picp50") <= num("picp90") && num("picp90") <= num("picp95"),
        "{v}"
    );
    assert_eq!(v["n"], serde_json::json!(ROWS), "{v}");
    assert_eq!(v["target"], serde_json::json!(TARGET), "{v}");
}

// ---------------------------------------------------------------------------
// Atomic model directories
// ---------------------------------------------------------------------------

#[test]
fn failed_train_leaves_an_existing_model_unchanged() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let data = f.good_csv();
    let before = snapshot(&model);
    let predictions = predict(&model, &data, &[]).stdout;

    // A bad CSV (fails while reading).
    let bad = f.write_edited("bad.csv", |line, fields| {
        if line == 20 {
            fields[4] = "oops".into();
        }
    });
    let stderr = fails(&f.train_args(&bad, &model, 2));
    assert!(stderr.contains("line 20"), "{stderr}");
    assert!(
        before == snapshot(&model),
        "a failed train (bad CSV) changed the model"
    );

    // An invalid hyperparameter (fails before reading).
    let mut args = f.train_args(&data, &model, 2);
    let at = args.iter().position(|a| a == "--epochs").unwrap_or(0);
    args[at + 1] = "0".into();
    fails(&args);
    assert!(
        before == snapshot(&model),
        "a failed train (--epochs 0) changed the model"
    );

    // A missing target column.
    let mut args = f.train_args(&data, &model, 2);
    let at = args.iter().position(|a| a == TARGET).unwrap_or(0);
    args[at] = "glucose".into();
    fails(&args);
    assert!(
        before == snapshot(&model),
        "a failed train (no target) changed the model"
    );

    assert!(predictions == predict(&model, &data, &[]).stdout);
}

#[test]
fn successful_retrain_replaces_the_model() {
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let data = f.good_csv();
    let old = predict(&model, &data, &[]).stdout;
    let old_tensors = model_json(&model)["tensors"].clone();
    succeeds(&f.train_args(&data, &model, 2));
    let files = snapshot(&model);
    assert_eq!(
        files.len(),
        2,
        "expected model.json and one tensor file: {:?}",
        files.keys()
    );
    assert_ne!(model_json(&model)["tensors"], old_tensors);
    assert!(old != predict(&model, &data, &[]).stdout);
}

#[test]
fn train_refuses_a_folder_with_unrelated_files() {
    let f = Fixture::new(ROWS);
    let folder = f.path("notes");
    std::fs::create_dir(&folder).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(folder.join("notes.txt"), "my notes\n").unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(folder.join("data.bin"), [0u8, 1, 2, 255]).unwrap_or_else(|e| panic!("{e}"));
    let before = snapshot(&folder);
    let stderr = fails(&f.train_args(&f.good_csv(), &folder, 1));
    assert!(
        stderr.contains("notes.txt") && stderr.contains("refusing"),
        "{stderr}"
    );
    assert!(before == snapshot(&folder), "the folder was changed");
}

#[test]
fn train_refuses_a_foreign_model_json() {
    let f = Fixture::new(ROWS);
    let folder = f.path("other");
    std::fs::create_dir(&folder).unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(folder.join("model.json"), "{\"layers\": [3, 4]}\n")
        .unwrap_or_else(|e| panic!("{e}"));
    let before = snapshot(&folder);
    let stderr = fails(&f.train_args(&f.good_csv(), &folder, 1));
    assert!(
        stderr.contains("model.json") && stderr.contains("refusing"),
        "{stderr}"
    );
    assert!(before == snapshot(&folder), "the folder was changed");
}

#[test]
fn train_refuses_an_out_path_that_is_a_file() {
    let f = Fixture::new(ROWS);
    let file = f.write("model.txt", "not a directory\n");
    let stderr = fails(&f.train_args(&f.good_csv(), &file, 1));
    assert!(
        stderr.contains("model.txt") && stderr.contains("not a directory"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap_or_default(),
        "not a directory\n"
    );
}

/// Both files of a model directory follow the umask: a model shared with
/// other users is readable as a whole, not just its model.json.
#[cfg(unix)]
#[test]
fn tensor_file_has_the_same_permissions_as_model_json() {
    use std::os::unix::fs::PermissionsExt;
    let f = Fixture::new(ROWS);
    let model = f.train("model", 1);
    let tensors = model.join(model_json(&model)["tensors"].as_str().unwrap_or_default());
    let mode = |path: &Path| {
        std::fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
    };
    assert_eq!(
        format!("{:o}", mode(&tensors)),
        format!("{:o}", mode(&model.join("model.json")))
    );
}

// ---------------------------------------------------------------------------
// --help
// ---------------------------------------------------------------------------

fn help_mentions(args: &[&str], needles: &[&str]) {
    let out = succeeds(&strings(args));
    let help = text(&out.stdout);
    for needle in needles {
        assert!(
            help.contains(needle),
            "bnn {} does not mention {needle}:\n{help}",
            args.join(" ")
        );
    }
}

#[test]
fn top_level_help_lists_every_subcommand() {
    help_mentions(
        &["--help"],
        &["train", "predict", "eval", "demo", "study", "--version"],
    );
}

#[test]
fn train_help_lists_every_flag() {
    help_mentions(
        &["train", "--help"],
        &[
            "--data",
            "--target",
            "--out",
            "--features",
            "--method",
            "--hidden",
            "--activation",
            "--prior",
            "--estimator",
            "--likelihood",
            "--init-scale",
            "--dropout",
            "--length-scale",
            "--keras-init",
            "--elbo-noise",
            "--epochs",
            "--batch-size",
            "--lr",
            "--kl-warmup",
            "--kl-beta",
            "--calibration-fraction",
            "--recalibrate",
            "--refit",
            "--seed",
            "--json",
            // The values, too.
            "bbb",
            "mc-dropout",
            "ensemble",
            "gaussian:SIGMA",
        ],
    );
}

#[test]
fn predict_help_lists_every_flag() {
    help_mentions(
        &["predict", "--help"],
        &["--model", "--data", "--level", "--samples", "--out"],
    );
}

#[test]
fn eval_help_lists_every_flag() {
    help_mentions(
        &["eval", "--help"],
        &["--model", "--data", "--target", "--samples", "--json"],
    );
}

#[test]
fn help_subcommand_works_too() {
    help_mentions(&["help", "train"], &["--data", "--target", "--out"]);
}

// ---------------------------------------------------------------------------
// MC dropout, ensembles, and classification
// ---------------------------------------------------------------------------

/// `bnn train --json` with `extra` flags on `data`; returns the model
/// directory and the parsed JSON.
fn train_json(
    f: &Fixture,
    data: &Path,
    name: &str,
    extra: &[&str],
) -> (PathBuf, serde_json::Value) {
    let model = f.path(name);
    let mut args = f.train_args(data, &model, 1);
    with_flags(&mut args, extra);
    args.push("--json".into());
    let out = succeeds(&args);
    let json = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("train --json: {e}: {}", text(&out.stdout)));
    (model, json)
}

#[test]
fn mc_dropout_and_ensemble_train_predict_and_eval() {
    let f = Fixture::new(ROWS);
    let data = f.good_csv();
    for (method, extra) in [
        ("mc-dropout", &["--dropout", "0.1", "--keras-init"][..]),
        ("ensemble", &["--members", "4"][..]),
    ] {
        let mut flags = vec!["--method", method];
        flags.extend(extra);
        let (model, json) = train_json(&f, &data, method, &flags);
        assert_eq!(json["method"], method);
        assert_eq!(json["task"], "regression");
        assert_eq!(model_json(&model)["method"], method);
        if method == "mc-dropout" {
            assert_eq!(model_json(&model)["model"]["init"], "keras");
            assert_eq!(model_json(&model)["model"]["noise_fit"], "residual");
        }
        // 20 samples: a multiple of the 4 members. Reloading replays the
        // same masks, so two predictions are identical.
        let first = text(&predict(&model, &data, &[]).stdout);
        assert_eq!(first, text(&predict(&model, &data, &[]).stdout), "{method}");
        let (header, rows) = parse_table(&first);
        assert_eq!(header, "mean,std,lower,upper,epistemic_std,aleatoric_std");
        assert_eq!(rows.len(), ROWS);
        for [mean, std, lower, upper, epistemic, aleatoric] in rows {
            assert!(
                lower < mean && mean < upper,
                "{method}: {lower} {mean} {upper}"
            );
            // total variance = epistemic + aleatoric (f64 rounding only).
            let total = epistemic * epistemic + aleatoric * aleatoric;
            assert!((std * std - total).abs() <= 1e-9 * total, "{method}");
        }
        let eval = eval_json(&model, &data, &[]);
        assert!(eval["rmse"].as_f64().is_some_and(f64::is_finite), "{eval}");
    }
    // An ensemble's mixture weighs every member equally: the sample count
    // must be a multiple of the members.
    let stderr = fails(&strings(&[
        "predict",
        "--model",
        &p(&f.path("ensemble")),
        "--data",
        &p(&data),
        "--samples",
        "7",
    ]));
    assert!(
        stderr.contains("samples") && stderr.contains("multiple"),
        "{stderr}"
    );
}

/// `--refit` saves the model of all the rows, bit for bit the model a
/// plain `train` saves, with the recalibration (scale or temperature) that
/// a model of the other rows fitted on the held-out ones.
#[test]
fn refit_saves_the_model_of_all_rows_with_the_held_out_recalibration() {
    let f = Fixture::new(ROWS);
    let regression = f.good_csv();
    let classes = three_class_csv(&f);
    for (data, task, method, key) in [
        (&regression, "regress", "scale", "recalibration"),
        (&classes, "classify", "temperature", "temperature"),
    ] {
        let task = ["--task", task];
        let held_out = [
            &task[..],
            &["--calibration-fraction", "0.25", "--recalibrate", method],
        ]
        .concat();
        let (plain, plain_json) = train_json(&f, data, "plain", &task);
        let (held, held_json) = train_json(&f, data, "held", &held_out);
        let (refit, json) = train_json(&f, data, "refit", &[&held_out[..], &["--refit"]].concat());
        let ctx = format!("{task:?}: {json}");
        assert_eq!(json["n_train"], ROWS, "{ctx}");
        assert_eq!(json["n_calibration"], ROWS / 4, "{ctx}");
        assert_eq!(
            (&json["refit"], &held_json["n_train"]),
            (&true.into(), &(ROWS - ROWS / 4).into()),
            "{ctx}"
        );
        assert_eq!(
            json["final"], plain_json["final"],
            "{ctx}: not the plain model's training"
        );
        assert_eq!(model_json(&refit)[key], model_json(&held)[key], "{ctx}");
        assert!(model_json(&refit)[key] != serde_json::Value::Null, "{ctx}");
        // The same weights: the plain model's predictions, through the
        // recalibration (which moves a regressor's intervals, not its mean,
        // and every probability of a classifier).
        let (a, b) = (
            text(&predict(&plain, data, &[]).stdout),
            text(&predict(&refit, data, &[]).stdout),
        );
        assert_ne!(a, b, "{ctx}: the recalibration was not applied");
        if method == "scale" {
            let (a, b) = (parse_table(&a).1, parse_table(&b).1);
            assert!(
                a.iter().zip(&b).all(|(p, q)| p[0] == q[0]),
                "{ctx}: means differ"
            );
        }
        for dir in [plain, held, refit] {
            std::fs::remove_dir_all(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        }
    }
    // Nothing to refit without a recalibration.
    let mut args = f.train_args(&regression, &f.path("never"), 0);
    args.push("--refit".into());
    let stderr = fails(&args);
    assert!(
        stderr.contains("refit") && stderr.contains("--recalibrate"),
        "{stderr}"
    );
}

/// The fixture with its target replaced by a class: which third of the
/// target's range (0, 1, 2) a row falls in.
fn three_class_csv(f: &Fixture) -> PathBuf {
    let target: Vec<f64> = f.lines[1..]
        .iter()
        .map(|l| {
            l.rsplit(',')
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(f64::NAN)
        })
        .collect();
    let (lo, hi) = target
        .iter()
        .fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    f.write_edited("classes.csv", |line, fields| {
        if line > 1 {
            let v = target[line - 2];
            let class = ((v - lo) / (hi - lo) * 3.0).floor().min(2.0);
            if let Some(last) = fields.last_mut() {
                *last = class.to_string();
            }
        }
    })
}

#[test]
fn classify_end_to_end_with_temperature() {
    let f = Fixture::new(120);
    let data = three_class_csv(&f);
    let (model, json) = train_json(
        &f,
        &data,
        "clf",
        &[
            "--task",
            "classify",
            "--epochs",
            "40",
            "--hidden",
            "16",
            "--calibration-fraction",
            "0.25",
            "--recalibrate",
            "temperature",
        ],
    );
    assert_eq!(json["task"], "classification");
    assert_eq!(json["classes"], 3);
    assert_eq!(json["n_calibration"], 30);
    assert!(model_json(&model)["temperature"]
        .as_f64()
        .is_some_and(|t| t > 0.0));

    let table = text(&predict(&model, &data, &[]).stdout);
    let mut lines = table.lines();
    assert_eq!(
        lines.next(),
        Some("class,confidence,entropy,mutual_information,p_0,p_1,p_2")
    );
    for line in lines {
        let v: Vec<f64> = line
            .split(',')
            .map(|x| x.parse().unwrap_or(f64::NAN))
            .collect();
        let probs = &v[4..];
        assert!((probs.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{line}");
        // The class is the most probable one, and its probability the confidence.
        assert_eq!(probs[v[0] as usize], v[1], "{line}");
        assert!(probs.iter().all(|&q| q <= v[1]), "{line}");
        // Entropy of three classes lies in [0, ln 3].
        assert!((0.0..=3f64.ln() + 1e-12).contains(&v[2]), "{line}");
    }

    let plots = f.path("plots");
    let eval = eval_json(&model, &data, &["--plots", &p(&plots)]);
    for key in [
        "accuracy",
        "nll",
        "brier",
        "ece",
        "mce",
        "entropy",
        "mutual_information",
    ] {
        assert!(
            eval[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {eval}"
        );
    }
    // A third of the rows per class would be chance; the training rows are
    // far easier than that after 40 epochs (measured 0.69; the bound leaves
    // room for float differences across machines).
    assert!(
        eval["accuracy"].as_f64().is_some_and(|a| a > 0.45),
        "{eval}"
    );
    assert!(plots.join("reliability.png").is_file());

    // Regression recalibrations do not apply to a classifier.
    let stderr = fails(&strings(&[
        "calibrate",
        "--model",
        &p(&model),
        "--data",
        &p(&data),
        "--method",
        "scale",
    ]));
    assert!(stderr.contains("temperature"), "{stderr}");
}
