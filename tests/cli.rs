//! The `bnn` binary: the demo runs end to end, `study l2` meets its bounds,
//! and errors exit non-zero with a message instead of a panic.

use std::process::Command;

fn bnn(args: &[&str]) -> std::process::Output {
    match Command::new(env!("CARGO_BIN_EXE_bnn")).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("could not run bnn: {e}"),
    }
}

fn json(out: &std::process::Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&out.stdout);
    match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("stdout is not one JSON object ({e}): {text}"),
    }
}

#[test]
fn study_l2_json_meets_the_bounds() {
    let out = bnn(&["study", "l2", "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    for key in [
        "kl_grad_max_abs_diff",
        "map_vs_l2_max_abs_diff",
        "weight_decay",
        "prior_sigma",
        "n_data",
    ] {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    // f32 gradients of O(1) means: exact up to rounding.
    assert!(
        v["kl_grad_max_abs_diff"].as_f64().unwrap_or(1.0) <= 1e-5,
        "{v}"
    );
    // Two SGD runs with equal gradients: only float rounding separates them,
    // while the parameters themselves moved by O(0.1).
    assert!(
        v["map_vs_l2_max_abs_diff"].as_f64().unwrap_or(1.0) <= 1e-4,
        "{v}"
    );
    assert!(
        v["max_param_change"].as_f64().unwrap_or(0.0) > 1e-2,
        "the runs did not move: {v}"
    );
    let (sigma, n) = (
        v["prior_sigma"].as_f64().unwrap_or(0.0),
        v["n_data"].as_f64().unwrap_or(0.0),
    );
    let lambda = v["weight_decay"].as_f64().unwrap_or(0.0);
    assert!(
        (lambda - 1.0 / (2.0 * sigma * sigma * n)).abs() < 1e-12,
        "{v}"
    );
}

#[test]
fn demo_trains_reports_metrics_and_writes_figures() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let out_dir = dir.path().join("figs");
    let out = bnn(&[
        "demo",
        "--epochs",
        "60",
        "--samples",
        "50",
        "--json",
        "--out",
        out_dir.to_str().unwrap_or(""),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v = json(&out);
    let m = &v["metrics"];
    // A regressor that learned anything beats predicting the training mean.
    let (rmse, baseline) = (
        m["rmse"].as_f64().unwrap_or(f64::MAX),
        v["baseline_rmse"].as_f64().unwrap_or(0.0),
    );
    assert!(rmse < 0.9 * baseline, "rmse {rmse} vs baseline {baseline}");
    for key in ["nll", "picp90", "mpiw90", "picp95", "mpiw95"] {
        assert!(m[key].as_f64().is_some_and(f64::is_finite), "{key} in {m}");
    }
    for name in [
        "toy_regression.png",
        "calibration.png",
        "diabetes_predicted_vs_actual.png",
    ] {
        let bytes = std::fs::read(out_dir.join(name)).unwrap_or_default();
        assert!(
            bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{name} is not a PNG"
        );
    }
}

#[test]
fn bad_arguments_exit_non_zero_without_panicking() {
    for args in [
        &["study", "l2", "--prior-sigma", "0"][..],
        &["study", "l2", "--steps", "0"],
        &["demo", "--epochs", "0"],
    ] {
        let out = bnn(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
        assert!(stderr.contains("error"), "{args:?}: {stderr}");
    }
}
