//! The `bnn study signal|nngp|prior` command lines: their JSON contracts,
//! figures and clean failures.

// Each test file uses a different part of the shared helpers.
#[allow(dead_code)]
mod common;

use candle_bnn::data::toy_gap;
use candle_bnn::Prior;
use common::{bnn, fails, text};

/// The JSON contract: `{"depth", "width", "results": [{"prior", "activation",
/// "norm", "ratio_empirical", "ratio_predicted", ...}]}`, one result per
/// prior × activation × shape × norm, priors spelled as on the CLI.
#[test]
fn signal_json_has_the_documented_shape() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let out = bnn(&[
        "study", "signal", "--depth", "3", "--width", "16", "--batch", "8", "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout))?;
    assert_eq!(v["depth"], 3);
    assert_eq!(v["width"], 16);
    let results = v["results"].as_array().ok_or("results is not an array")?;
    assert_eq!(results.len(), 7 * 3 * 2 * 3);
    for r in results {
        for key in ["ratio_empirical", "ratio_predicted"] {
            assert!(r[key].as_f64().is_some_and(f64::is_finite), "{key} in {r}");
        }
        let norm = r["norm"].as_str().ok_or("norm")?;
        assert!(
            ["none", "layernorm", "weightnorm"].contains(&norm),
            "{norm}"
        );
        let activation = r["activation"].as_str().ok_or("activation")?;
        assert!(
            ["relu", "tanh", "selu"].contains(&activation),
            "{activation}"
        );
        let prior = r["prior"].as_str().ok_or("prior")?;
        assert_eq!(prior.parse::<Prior>()?.to_string(), prior);
    }
    let priors: Vec<&str> = results.iter().filter_map(|r| r["prior"].as_str()).collect();
    for p in [
        "gaussian:1",
        "fanin:0.5",
        "lecun",
        "fanin:1.5",
        "he",
        "fanin:2",
        "glorot",
    ] {
        assert!(priors.contains(&p), "{p} missing");
    }
    Ok(())
}

/// A tiny split directory (40 rows, 3 features, one split) in a temp folder.
fn split_dir() -> std::result::Result<tempfile::TempDir, Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let data = toy_gap(40, 0.2, 5)?;
    let rows: Vec<String> = (0..data.len())
        .map(|i| {
            let x = data.row(i)[0];
            format!("{x} {} {} {}", x * x, (3.0 * x).cos(), data.y[i])
        })
        .collect();
    std::fs::write(dir.path().join("data.txt"), rows.join("\n"))?;
    std::fs::write(dir.path().join("index_features.txt"), "0\n1\n2\n")?;
    std::fs::write(dir.path().join("index_target.txt"), "3\n")?;
    let ids = |r: std::ops::Range<usize>| r.map(|i| i.to_string()).collect::<Vec<_>>().join("\n");
    std::fs::write(dir.path().join("index_train_0.txt"), ids(0..32))?;
    std::fs::write(dir.path().join("index_test_0.txt"), ids(32..40))?;
    Ok(dir)
}

/// The JSON contract: `{"widths", "max_rel_err", "slope", "gp_test_rmse",
/// "gp_test_ll", "bnn_test_rmse", "bnn_test_ll"}`, and the figures.
#[test]
fn nngp_json_has_the_documented_shape() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = split_dir()?;
    let plots = dir.path().join("plots");
    let out = bnn(&[
        "study",
        "nngp",
        "--dir",
        &dir.path().display().to_string(),
        "--widths",
        "16",
        "64",
        "--networks",
        "2",
        "--points",
        "4",
        "--hidden",
        "8",
        "--epochs",
        "2",
        "--samples",
        "5",
        "--plots",
        &plots.display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout))?;
    assert_eq!(v["widths"], serde_json::json!([16, 64]));
    assert_eq!(v["max_rel_err"].as_array().map(Vec::len), Some(2));
    for key in [
        "slope",
        "gp_test_rmse",
        "gp_test_ll",
        "bnn_test_rmse",
        "bnn_test_ll",
    ] {
        assert!(
            v[key].as_f64().is_some_and(f64::is_finite),
            "{key}: {}",
            v[key]
        );
    }
    for png in ["nngp_convergence.png", "nngp_kernel.png"] {
        let bytes = std::fs::read(plots.join(png))?;
        assert!(bytes.starts_with(b"\x89PNG"), "{png}");
    }
    let err = fails(&[
        "study",
        "nngp",
        "--dir",
        &dir.path().display().to_string(),
        "--widths",
        "64",
    ]);
    assert!(err.contains("widths"), "{err}");
    Ok(())
}

/// The JSON of `bnn study prior`: per-prior summaries without the draws,
/// entropies largest first, and the figure.
#[test]
fn prior_json_has_the_documented_shape() -> std::result::Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let out = bnn(&[
        "study",
        "prior",
        "--width",
        "32",
        "--draws",
        "4",
        "--entropy-samples",
        "1000",
        "--activation",
        "tanh",
        "--plots",
        &dir.path().display().to_string(),
        "--json",
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let v: serde_json::Value = serde_json::from_str(&text(&out.stdout))?;
    let priors = v["priors"].as_array().ok_or("priors")?;
    assert_eq!(priors.len(), 5);
    for p in priors {
        assert!(p["std_ratio"].as_f64().is_some_and(f64::is_finite));
        assert!(p.get("draws").is_none(), "draws are not serialized");
    }
    let entropy = v["entropy"].as_array().ok_or("entropy")?;
    assert_eq!(entropy[0]["distribution"], "gaussian");
    assert_eq!(entropy.len(), 4);
    let png = std::fs::read(dir.path().join("prior_draws_tanh.png"))?;
    assert!(png.starts_with(b"\x89PNG"));
    Ok(())
}
