//! Integration tests of the UCI benchmark protocol (`uci::run` and `bnn uci`)
//! on a tiny split directory written at test time: every method reports
//! consistent scores, the grid chooses from its candidates, invalid settings
//! error, the z-scoring makes the run equivariant to an affine change of the
//! target's units, and the CLI prints the JSON report.

mod split_dir;

use std::path::Path;
use std::process::Command;

use candle_bnn::calibrate::RecalibrationMethod;
use candle_bnn::data::load_split_dir;
use candle_bnn::noise_fit::NoiseFit;
use candle_bnn::prior::Prior;
use candle_bnn::uci::{
    self, mean_and_se, Hyper, UciConfig, UciMethod, UciReport, BBB_KL_BETAS, MAX_SEEDS, SEED_STRIDE,
};
use candle_bnn::{Error, Result};
use indicatif::ProgressBar;
use split_dir::{write_split_dir, RATES, TAUS};

/// The keys the CLI contract promises in `bnn uci --json` (DESIGN.md).
const REPORT_KEYS: [&str; 9] = [
    "dataset",
    "method",
    "splits",
    "rmse_mean",
    "rmse_se",
    "ll_mean",
    "ll_se",
    "picp95_mean",
    "seconds",
];

fn config(method: UciMethod, epochs: Option<usize>, grid: bool) -> UciConfig {
    UciConfig {
        epochs,
        splits: Some(2),
        grid,
        samples: Some(20),
        ..UciConfig::new(method)
    }
}

fn run(dir: &Path, config: &UciConfig) -> Result<UciReport> {
    uci::run(&load_split_dir(dir)?, config, &ProgressBar::hidden())
}

/// The name of an `InvalidParameter` error; panics on anything else.
fn invalid_name<T: std::fmt::Debug>(r: Result<T>) -> String {
    match r {
        Err(Error::InvalidParameter { name, .. }) => name,
        other => panic!("expected an InvalidParameter error, got {other:?}"),
    }
}

const METHODS: [UciMethod; 3] = [UciMethod::Bbb, UciMethod::McDropout, UciMethod::Ensemble];

#[test]
fn every_method_reports_consistent_scores_over_two_splits() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    for method in METHODS {
        let bar = ProgressBar::hidden();
        let r = uci::run(
            &load_split_dir(&dir)?,
            &config(method, Some(5), false),
            &bar,
        )?;
        assert_eq!((r.dataset.as_str(), r.method), ("toy", method));
        assert_eq!((r.splits, r.epochs, r.grid), (2, 5, false));
        // One bar step per epoch of each split's single fit.
        assert_eq!((bar.position(), bar.length()), (10, Some(10)));
        assert_eq!(r.per_split.len(), 2);
        let default_hyper = match method {
            UciMethod::Bbb => Hyper::Bbb {
                prior: Prior::default(),
                kl_beta: 1.0,
            },
            UciMethod::McDropout => Hyper::McDropout { p: 0.05, tau: None },
            UciMethod::Ensemble => Hyper::Ensemble { epochs: None },
        };
        for (i, s) in r.per_split.iter().enumerate() {
            assert_eq!(s.split, i);
            assert_eq!(s.hyper, default_hyper);
            assert!(s.rmse.is_finite() && s.rmse > 0.0, "{method} {s:?}");
            assert!(s.ll.is_finite(), "{method} {s:?}");
            assert!((0.0..=1.0).contains(&s.picp90), "{method} {s:?}");
            assert!((0.0..=1.0).contains(&s.picp95), "{method} {s:?}");
            // Central intervals are nested: the 95% one covers the 90% one.
            assert!(s.picp95 >= s.picp90, "{method} {s:?}");
            assert!(s.seconds >= 0.0 && s.seconds <= r.seconds);
        }
        let column = |f: fn(&uci::SplitScore) -> f64| {
            mean_and_se(&r.per_split.iter().map(f).collect::<Vec<_>>())
        };
        // The same f64 arithmetic on the same values: bitwise equal.
        assert_eq!((r.rmse_mean, r.rmse_se), column(|s| s.rmse));
        assert_eq!((r.ll_mean, r.ll_se), column(|s| s.ll));
        assert_eq!(r.picp90_mean, column(|s| s.picp90).0);
        assert_eq!(r.picp95_mean, column(|s| s.picp95).0);
        // The two splits test different rows, so their scores differ.
        assert_ne!(r.per_split[0].rmse, r.per_split[1].rmse);

        let json = serde_json::to_value(&r)?;
        for key in REPORT_KEYS {
            assert!(json.get(key).is_some(), "missing {key} in {json}");
        }
        assert_eq!(json["method"], method.to_string());
        assert_eq!(json["splits"], 2);
    }
    Ok(())
}

#[test]
fn default_epochs_follow_the_protocol_and_runs_are_reproducible() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    // n_epochs.txt = 2: the 2016 protocol (10x, batches of 32, lr 1e-2) for
    // MC dropout and ensembles, the 2018 one (100x, 128, 1e-3) for BBB.
    for (method, protocol) in [
        (UciMethod::McDropout, (20, 32, 1e-2)),
        (UciMethod::Ensemble, (20, 32, 1e-2)),
        (UciMethod::Bbb, (200, 128, 1e-3)),
    ] {
        let a = run(&dir, &config(method, None, false))?;
        assert_eq!((a.epochs, a.batch_size, a.lr), protocol, "{method}");
        // Samples as configured; an ensemble's are its 5 members.
        let samples = if method == UciMethod::Ensemble { 5 } else { 20 };
        assert_eq!(a.samples, samples, "{method}");
        // Same seed, same scores (wall times aside).
        let b = run(&dir, &config(method, None, false))?;
        let scores = |r: &UciReport| -> Vec<(f64, f64, f64, f64)> {
            r.per_split
                .iter()
                .map(|s| (s.rmse, s.ll, s.picp90, s.picp95))
                .collect()
        };
        assert_eq!(scores(&a), scores(&b), "{method}");
        // A different seed gives different scores.
        let c = run(
            &dir,
            &UciConfig {
                seed: 1,
                ..config(method, None, false)
            },
        )?;
        assert_ne!(scores(&a), scores(&c), "{method}: seed ignored");
    }
    Ok(())
}

#[test]
fn the_grid_chooses_among_its_candidates_per_split() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);

    let bar = ProgressBar::hidden();
    let r = uci::run(
        &load_split_dir(&dir)?,
        &config(UciMethod::McDropout, Some(3), true),
        &bar,
    )?;
    assert!(r.grid);
    // 4 candidates + the final refit, per split, 3 epochs each, in the 2018
    // protocol's batches.
    assert_eq!((bar.position(), bar.length()), (30, Some(30)));
    assert_eq!((r.batch_size, r.lr), (128, 1e-3));
    for s in &r.per_split {
        match s.hyper {
            Hyper::McDropout { p, tau: Some(tau) } => {
                assert!(RATES.contains(&p), "p = {p} is not in the grid");
                assert!(TAUS.contains(&tau), "tau = {tau} is not in the grid");
            }
            other => panic!("split {}: {other:?} is not a grid point", s.split),
        }
        assert!(s.rmse.is_finite() && s.ll.is_finite());
    }

    Ok(())
}

/// BBB's grid chooses a KL weight per split among [`BBB_KL_BETAS`], with
/// the default prior, and its final model is the plain run with that
/// weight: the same bits as `kl_beta` without a grid. The weight reaches
/// the loss: 0.25 and 1 train different models.
#[test]
fn the_bbb_grid_chooses_the_kl_weight() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let with_beta = |kl_beta| UciConfig {
        kl_beta: Some(kl_beta),
        ..config(UciMethod::Bbb, Some(3), false)
    };
    let chosen = run(&dir, &config(UciMethod::Bbb, Some(3), true))?;
    for s in &chosen.per_split {
        let Hyper::Bbb {
            prior: Prior::He,
            kl_beta,
        } = s.hyper
        else {
            panic!("split {}: {:?} is no BBB grid point", s.split, s.hyper);
        };
        assert!(BBB_KL_BETAS.contains(&kl_beta), "{kl_beta}");
        let plain = run(&dir, &with_beta(kl_beta))?;
        let p = &plain.per_split[s.split];
        assert_eq!(p.hyper, s.hyper);
        assert_eq!(
            (p.rmse, p.ll, p.picp95),
            (s.rmse, s.ll, s.picp95),
            "split {}: the refit is not the plain run with kl beta {kl_beta}",
            s.split
        );
    }
    let (tempered, elbo) = (run(&dir, &with_beta(0.25))?, run(&dir, &with_beta(1.0))?);
    assert_ne!(tempered.per_split[0].ll, elbo.per_split[0].ll);
    let default = run(&dir, &config(UciMethod::Bbb, Some(3), false))?;
    let lls = |r: &UciReport| r.per_split.iter().map(|s| s.ll).collect::<Vec<_>>();
    assert_eq!(lls(&elbo), lls(&default), "the default is the ELBO");
    Ok(())
}

/// Without grid files, MC dropout's grid is the default rates × noise
/// levels relative to each split's own training target std (ddof = 0):
/// every choice is such a point, computed here by hand from the split.
#[test]
fn without_grid_files_mc_dropout_searches_the_default_grid() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Targets in units where s_y ≈ 30, so a grid of absolute taus would show.
    let dir = write_split_dir(tmp.path(), "toy", 30.0, 5.0);
    // With only the rates given, they are the grid's rates.
    std::fs::remove_file(dir.join("tau_values.txt")).expect("remove tau_values.txt");
    let r = run(&dir, &config(UciMethod::McDropout, Some(1), true))?;
    for s in &r.per_split {
        assert!(
            matches!(s.hyper, Hyper::McDropout { p, tau: Some(_) } if RATES.contains(&p)),
            "split {}: {:?}",
            s.split,
            s.hyper
        );
    }
    std::fs::remove_file(dir.join("dropout_rates.txt")).expect("remove dropout_rates.txt");
    let split_dir = load_split_dir(&dir)?;
    let bar = ProgressBar::hidden();
    let r = uci::run(
        &split_dir,
        &config(UciMethod::McDropout, Some(2), true),
        &bar,
    )?;
    // 4 × 4 grid points and the refit, 2 epochs each, on 2 splits.
    assert_eq!((bar.position(), bar.length()), (68, Some(68)));
    for s in &r.per_split {
        let (train, _) = split_dir.split(s.split)?;
        let n = train.y.len() as f64;
        let mean = train.y.iter().sum::<f64>() / n;
        let s_y = (train.y.iter().map(|y| (y - mean).powi(2)).sum::<f64>() / n).sqrt();
        let Hyper::McDropout { p, tau: Some(tau) } = s.hyper else {
            panic!("split {}: {:?} is no grid point", s.split, s.hyper);
        };
        assert!(uci::DEFAULT_DROPOUT_RATES.contains(&p), "p = {p}");
        // The noise std 1/√tau is a fraction f of s_y (up to rounding).
        let f = 1.0 / (tau.sqrt() * s_y);
        assert!(
            uci::DEFAULT_NOISE_FRACTIONS
                .iter()
                .any(|g| (f / g - 1.0).abs() < 1e-9),
            "split {}: noise std {f} × s_y is no default fraction",
            s.split
        );
    }
    Ok(())
}

#[test]
fn invalid_settings_error_naming_the_setting() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    for splits in [0, 3] {
        let c = UciConfig {
            splits: Some(splits),
            ..config(UciMethod::McDropout, Some(1), false)
        };
        assert_eq!(invalid_name(run(&dir, &c)), "splits", "splits = {splits}");
    }
    let c = UciConfig {
        samples: Some(0),
        ..config(UciMethod::Bbb, Some(1), false)
    };
    assert_eq!(invalid_name(run(&dir, &c)), "samples");
    let c = UciConfig {
        lr: Some(0.0),
        ..config(UciMethod::Bbb, Some(1), false)
    };
    assert_eq!(invalid_name(run(&dir, &c)), "lr");
    let c = UciConfig {
        batch_size: Some(0),
        ..config(UciMethod::Ensemble, Some(1), false)
    };
    assert_eq!(invalid_name(run(&dir, &c)), "batch_size");
    // A calibration fraction must be a fraction, and comes with a recalibration.
    for (fraction, recalibrate) in [
        (0.0, Some(RecalibrationMethod::Conformal)),
        (1.0, Some(RecalibrationMethod::Conformal)),
        (f64::NAN, Some(RecalibrationMethod::Conformal)),
        (0.3, None),
    ] {
        let c = UciConfig {
            calibration_fraction: Some(fraction),
            recalibrate,
            ..config(UciMethod::McDropout, Some(1), false)
        };
        assert_eq!(
            invalid_name(run(&dir, &c)),
            "calibration_fraction",
            "{fraction} {recalibrate:?}"
        );
    }
    let c = UciConfig {
        splits: Some(1),
        calibration_fraction: Some(0.4),
        recalibrate: Some(RecalibrationMethod::Conformal),
        ..config(UciMethod::McDropout, Some(1), false)
    };
    assert_eq!(run(&dir, &c)?.calibration_fraction, Some(0.4));
    Ok(())
}

/// `refit` scores the model a run without recalibration scores (same
/// hyperparameters, same bits) and applies to it a recalibration fitted on
/// the held-out rows by a second model, which the progress bar counts.
#[test]
fn a_refit_recalibrates_the_model_trained_on_all_rows() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    // The ensemble's grid chooses a training length by early stopping on the
    // validation rows: the same choice with and without the refit shows the
    // choice is made on all the training rows, as in the plain run.
    for (method, grid) in [(UciMethod::McDropout, false), (UciMethod::Ensemble, true)] {
        let plain = run(&dir, &config(method, Some(5), grid))?;
        let refit = UciConfig {
            recalibrate: Some(RecalibrationMethod::Scale),
            refit: true,
            ..config(method, Some(5), grid)
        };
        let bar = ProgressBar::hidden();
        let r = uci::run(&load_split_dir(&dir)?, &refit, &bar)?;
        assert!(r.refit && r.recalibrate == Some(RecalibrationMethod::Scale));
        assert_eq!(bar.position(), bar.length().unwrap_or(0), "{method}");
        for (s, p) in r.per_split.iter().zip(&plain.per_split) {
            let ctx = format!("{method} split {}", s.split);
            assert_eq!((s.rmse, s.hyper), (p.rmse, p.hyper), "{ctx}");
            let raw = s.raw.unwrap_or_else(|| panic!("{ctx}: no raw scores"));
            assert_eq!(
                (raw.ll, raw.picp90, raw.picp95, raw.cal_error),
                (p.ll, p.picp90, p.picp95, p.cal_error),
                "{ctx}"
            );
            // A fitted scale s != 1 moves the log density; s = 1 exactly
            // would need the NLL's minimum at 1 to f64 precision.
            assert_ne!(s.ll, raw.ll, "{ctx}: the recalibration was not applied");
        }
        if !grid {
            // One bar step per epoch: a fixed-length fit of all the rows
            // and one of the rest, on each of the 2 splits.
            assert_eq!(bar.length(), Some(2 * 2 * 5));
        }
    }
    let c = UciConfig {
        refit: true,
        ..config(UciMethod::Ensemble, Some(1), false)
    };
    assert_eq!(invalid_name(run(&dir, &c)), "refit");
    Ok(())
}

#[test]
fn scores_are_equivariant_to_the_targets_units() -> Result<()> {
    // y' = 10 y + 3. z-scoring on the training rows maps y' to the same
    // standardized targets as y (up to f64 rounding, ~1e-16, far below the
    // f32 spacing, so the networks see bitwise the same numbers), and the
    // scores are computed back in original units: RMSE' = 10 RMSE and
    // LL' = LL - ln 10 (a density over a 10x wider scale), up to f64
    // rounding of the affine map and of the summaries (≤ 1e-12 relative);
    // 1e-9 leaves margin while any unit slip (e.g. scoring in standardized
    // units) is off by orders of magnitude more.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let scaled = write_split_dir(tmp.path(), "scaled", 10.0, 3.0);
    let cases = [
        (UciMethod::Bbb, false),
        (UciMethod::McDropout, false),
        (UciMethod::Ensemble, false),
        // With the grid, tau is a precision in target units; the scaled
        // directory's taus are / 100, so the same grid points are chosen.
        (UciMethod::McDropout, true),
    ];
    for (method, grid) in cases {
        let c = config(method, Some(5), grid);
        let (a, b) = (run(&dir, &c)?, run(&scaled, &c)?);
        for (s, t) in a.per_split.iter().zip(&b.per_split) {
            let ctx = format!("{method} grid={grid} split {}", s.split);
            assert!(
                (t.rmse - 10.0 * s.rmse).abs() <= 1e-9 * 10.0 * s.rmse,
                "{ctx}: RMSE {} vs 10 x {}",
                t.rmse,
                s.rmse
            );
            let want = s.ll - 10f64.ln();
            assert!(
                (t.ll - want).abs() <= 1e-9 * want.abs().max(1.0),
                "{ctx}: LL {} vs {want}",
                t.ll
            );
            // Interval bounds move by ~1e-15 relative; a test target would
            // have to sit that close to a bound to change the coverage.
            assert_eq!((t.picp90, t.picp95), (s.picp90, s.picp95), "{ctx}");
            match (s.hyper, t.hyper) {
                (
                    Hyper::McDropout { p, tau: Some(tau) },
                    Hyper::McDropout { p: q, tau: Some(u) },
                ) => {
                    assert_eq!(p, q, "{ctx}");
                    assert!(
                        (u * 100.0 - tau).abs() <= 1e-12 * tau,
                        "{ctx}: tau {tau} vs {u}"
                    );
                }
                (h, k) => assert_eq!(h, k, "{ctx}"),
            }
        }
    }
    Ok(())
}

#[test]
fn mean_and_se_match_hand_values_with_ddof_zero() {
    let close = |(m, se): (f64, f64), (want_m, want_se): (f64, f64)| {
        // A handful of f64 operations on small numbers.
        assert!(
            (m - want_m).abs() < 1e-15 && (se - want_se).abs() < 1e-15,
            "({m}, {se}) vs ({want_m}, {want_se})"
        );
    };
    // Population variance 1 -> SE = 1/√2 (ddof = 1 would give 1).
    close(mean_and_se(&[2.0, 4.0]), (3.0, 0.5f64.sqrt()));
    // Population variance 2 -> SE = √2/√5 (ddof = 1 would give √2.5/√5 = 0.707).
    close(
        mean_and_se(&[1.0, 2.0, 3.0, 4.0, 5.0]),
        (3.0, 0.4f64.sqrt()),
    );
    close(mean_and_se(&[-2.5]), (-2.5, 0.0));
    close(mean_and_se(&[7.0, 7.0, 7.0]), (7.0, 0.0));
}

fn bnn(args: &[&str]) -> std::process::Output {
    match Command::new(env!("CARGO_BIN_EXE_bnn")).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("could not run bnn: {e}"),
    }
}

#[test]
fn cli_prints_the_json_report_and_rejects_unknown_methods() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let dir_arg = dir.to_str().expect("a UTF-8 temp path");
    let out = bnn(&[
        "uci",
        "--dir",
        dir_arg,
        "--method",
        "mc-dropout",
        "--splits",
        "2",
        "--epochs",
        "3",
        "--json",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let v: serde_json::Value = match serde_json::from_str(&text) {
        Ok(v) => v,
        Err(e) => panic!("stdout is not one JSON object ({e}): {text}"),
    };
    for key in REPORT_KEYS {
        assert!(v.get(key).is_some(), "missing {key} in {v}");
    }
    assert_eq!(v["dataset"], "toy");
    assert_eq!(v["method"], "mc-dropout");
    assert_eq!(v["splits"], 2);
    assert_eq!(v["epochs"], 3);
    // MC dropout without a grid follows the 2016 protocol.
    assert_eq!(v["batch_size"], 32);
    assert_eq!(v["lr"], 1e-2);
    assert_eq!(v["samples"], 100);
    assert_eq!(v["noise_fit"], "residual");
    for key in ["rmse_mean", "ll_mean"] {
        assert!(v[key].as_f64().is_some_and(f64::is_finite), "{key} in {v}");
    }

    let out = bnn(&[
        "uci", "--dir", dir_arg, "--splits", "2", "--epochs", "2", "--seeds", "2", "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(v["seeds"], 2, "{}", String::from_utf8_lossy(&out.stderr));
    let seeds: Vec<_> = v["per_seed"].as_array().into_iter().flatten().collect();
    assert_eq!(
        seeds.iter().map(|s| s["seed"].as_u64()).collect::<Vec<_>>(),
        [Some(0), Some(SEED_STRIDE)]
    );

    let out = bnn(&[
        "uci",
        "--dir",
        dir_arg,
        "--method",
        "ensemble",
        "--splits",
        "1",
        "--epochs",
        "2",
        "--recalibrate",
        "scale",
        "--refit",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    assert_eq!(
        (&v["refit"], &v["recalibrate"]),
        (&true.into(), &"scale".into()),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = bnn(&["uci", "--dir", dir_arg, "--refit", "--epochs", "1"]);
    assert!(
        !out.status.success(),
        "--refit without --recalibrate succeeded"
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("refit") && err.contains("--recalibrate"),
        "{err}"
    );

    let out = bnn(&["uci", "--dir", dir_arg, "--method", "foo"]);
    assert!(!out.status.success(), "--method foo succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("foo") && err.contains("method"), "{err}");
    assert!(!err.contains("panicked"), "{err}");

    // A negative number reaches the validation, which names the flag.
    let out = bnn(&["uci", "--dir", dir_arg, "--lr", "-1", "--epochs", "1"]);
    assert!(!out.status.success(), "--lr -1 succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("invalid lr") && err.contains("-1"), "{err}");

    let out = bnn(&["uci", "--dir", dir_arg, "--kl-beta", "-1", "--epochs", "1"]);
    assert!(!out.status.success(), "--kl-beta -1 succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("invalid kl-beta") && err.contains("-1"),
        "{err}"
    );
    let out = bnn(&["uci", "--dir", dir_arg, "--kl-beta", "0.5", "--grid"]);
    assert!(!out.status.success(), "--kl-beta with --grid succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("kl-beta") && err.contains("--grid"), "{err}");

    let out = bnn(&["uci", "--dir", dir_arg, "--splits", "3", "--epochs", "1"]);
    assert!(!out.status.success(), "--splits 3 of 2 succeeded");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("splits") && err.contains('3'), "{err}");
}

/// The table of `bnn uci --grid` names the search and lists each split's
/// choice with its count; the JSON's `jobs` defaults to the cores available
/// (at most the splits); 0 epochs is refused by name.
#[test]
fn cli_table_lists_what_the_splits_chose() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let dir_arg = dir.to_str().expect("a UTF-8 temp path");
    let args = [
        "uci", "--dir", dir_arg, "--method", "ensemble", "--grid", "--epochs", "16",
    ];
    let out = bnn(&args);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("early-stopped between 1 and 128 epochs"),
        "{text}"
    );
    let (_, choices) = text
        .split_once("chosen on the validation rows (splits):")
        .unwrap_or_else(|| panic!("no list of choices in {text}"));
    // One line per distinct length, "N epochs: count", the counts summing
    // to the 2 splits.
    let counts: Vec<usize> = choices
        .lines()
        .filter_map(|l| l.trim().split_once(" epochs: "))
        .map(|(_, n)| n.parse().expect("a split count"))
        .collect();
    assert_eq!(counts.iter().sum::<usize>(), 2, "{choices}");

    let out = bnn(&[&args[..6], &["--epochs", "1", "--json"]].concat());
    let v: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("stdout is one JSON object");
    // One job per core, at most one per split (the toy has 2).
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    assert_eq!(v["jobs"], cores.min(2));

    let out = bnn(&[&args[..6], &["--epochs", "0"]].concat());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("invalid epochs"),
        "{err}"
    );
}

/// `dropout` sets MC dropout's rate when there is no grid, and is refused
/// where it would be ignored (other methods, or with the grid).
/// A method's own setting (MC dropout's rate, BBB's KL weight) is used
/// without a grid, and refused by name with a grid (which chooses its
/// own), for another method, or out of range.
#[test]
fn method_settings_are_used_without_a_grid_and_refused_elsewhere() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let dropout = |method, grid, p| UciConfig {
        dropout: Some(p),
        ..config(method, Some(2), grid)
    };
    let kl_beta = |method, grid, beta| UciConfig {
        kl_beta: Some(beta),
        ..config(method, Some(2), grid)
    };
    let report = run(&dir, &dropout(UciMethod::McDropout, false, 0.01))?;
    assert_eq!(report.noise_fit, Some(NoiseFit::Residual));
    let elbo_noise = |method, grid| UciConfig {
        elbo_noise: true,
        ..dropout(method, grid, 0.01)
    };
    let kept = run(&dir, &elbo_noise(UciMethod::McDropout, false))?;
    assert_eq!(kept.noise_fit, Some(NoiseFit::Elbo));
    assert_ne!(kept.per_split[0].ll, report.per_split[0].ll);
    for s in &report.per_split {
        assert!(
            matches!(s.hyper, Hyper::McDropout { p, tau: None } if p == 0.01),
            "{:?}",
            s.hyper
        );
    }
    let report = run(&dir, &kl_beta(UciMethod::Bbb, false, 0.5))?;
    for s in &report.per_split {
        assert_eq!(
            s.hyper,
            Hyper::Bbb {
                prior: Prior::He,
                kl_beta: 0.5
            }
        );
    }
    let refused = [
        (dropout(UciMethod::Bbb, false, 0.01), "dropout"),
        (dropout(UciMethod::McDropout, true, 0.01), "dropout"),
        (dropout(UciMethod::McDropout, false, 1.0), "dropout"),
        (kl_beta(UciMethod::McDropout, false, 0.5), "kl_beta"),
        (kl_beta(UciMethod::Ensemble, false, 0.5), "kl_beta"),
        (kl_beta(UciMethod::Bbb, true, 0.5), "kl_beta"),
        (kl_beta(UciMethod::Bbb, false, -0.5), "kl_beta"),
        (kl_beta(UciMethod::Bbb, false, f64::NAN), "kl_beta"),
        (
            UciConfig {
                elbo_noise: true,
                ..config(UciMethod::McDropout, Some(2), true)
            },
            "elbo_noise",
        ),
        (
            UciConfig {
                elbo_noise: true,
                ..config(UciMethod::Ensemble, Some(2), false)
            },
            "elbo_noise",
        ),
    ];
    for (config, name) in refused {
        assert_eq!(invalid_name(run(&dir, &config)), name, "{config:?}");
    }
    Ok(())
}

/// Whether `value` is `edge · ratio^k` for an integer `k ≥ 1` (to f64
/// rounding of repeated products).
fn steps_past(value: f64, edge: f64, ratio: f64) -> bool {
    let k = (value / edge).ln() / ratio.ln();
    k > 0.5 && (k - k.round()).abs() < 1e-9
}

/// A τ grid far below the toy data's precision (noise std 0.1, so τ ≈ 100
/// before model error) is followed past its largest value, on its own
/// spacing, and the test log-likelihood rises with it; without a numeric
/// grid the extension is refused.
#[test]
fn the_extended_grid_follows_an_edge_optimum_past_the_grid() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    std::fs::write(dir.join("tau_values.txt"), "0.01\n0.02\n").expect("write taus");
    let grid = |extend_grid| UciConfig {
        extend_grid,
        lr: Some(1e-2),
        ..config(UciMethod::McDropout, Some(100), true)
    };
    let plain = run(&dir, &grid(false))?;
    let bar = ProgressBar::hidden();
    let extended = uci::run(&load_split_dir(&dir)?, &grid(true), &bar)?;
    assert!(extended.extend_grid && !plain.extend_grid);
    // Every extra fit lengthened the bar before it ran.
    assert_eq!(Some(bar.position()), bar.length());
    assert!(bar.position() > 2 * 5 * 100, "no extra fit ran");
    for (p, e) in plain.per_split.iter().zip(&extended.per_split) {
        // The noise 1/√0.02 = 7 is 70× the data's: the plain grid takes its
        // largest τ, and the extension steps past it by 0.02/0.01 = 2.
        let (
            Hyper::McDropout {
                tau: Some(t_plain), ..
            },
            Hyper::McDropout {
                p: rate,
                tau: Some(t),
            },
        ) = (p.hyper, e.hyper)
        else {
            panic!("split {}: {:?} / {:?}", p.split, p.hyper, e.hyper);
        };
        assert_eq!(t_plain, 0.02, "split {}", p.split);
        assert!(steps_past(t, 0.02, 2.0), "split {}: tau = {t}", p.split);
        assert!(
            RATES.contains(&rate) || steps_past(rate, RATES[0], RATES[0] / RATES[1]),
            "split {}: p = {rate}",
            p.split
        );
        // ln p rises by about ½ ln(τ'/τ) - τ'·mse/2 per point: with τ' ≥ 4τ
        // and the model's RMSE well under the grid's noise, at least ½ ln 4.
        assert!(e.ll > p.ll + 0.5, "split {}: {} vs {}", p.split, e.ll, p.ll);
    }

    for c in [
        UciConfig {
            extend_grid: true,
            ..config(UciMethod::McDropout, Some(1), false)
        },
        UciConfig {
            extend_grid: true,
            ..config(UciMethod::Bbb, Some(1), true)
        },
        UciConfig {
            extend_grid: true,
            ..config(UciMethod::Ensemble, Some(1), true)
        },
    ] {
        assert_eq!(invalid_name(run(&dir, &c)), "extend_grid", "{c:?}");
    }
    Ok(())
}

/// With `--grid`, an ensemble's training length is chosen per split among
/// the early-stopping checkpoints `epochs / 16 … 8 epochs`, and the final
/// model is the plain run of that length: the same bits as a run without a
/// grid for that many epochs.
#[test]
fn the_ensembles_grid_chooses_the_training_length_by_early_stopping() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let bar = ProgressBar::hidden();
    let chosen = uci::run(
        &load_split_dir(&dir)?,
        &config(UciMethod::Ensemble, Some(16), true),
        &bar,
    )?;
    assert!(chosen.grid);
    assert_eq!(chosen.epochs, 16);
    // Early stopping shortened the bar by the epochs it did not train, and
    // lengthened it by each refit.
    assert_eq!(Some(bar.position()), bar.length());
    for s in &chosen.per_split {
        let Hyper::Ensemble {
            epochs: Some(epochs),
        } = s.hyper
        else {
            panic!("split {}: {:?} chose no length", s.split, s.hyper);
        };
        assert!(
            [1, 2, 4, 8, 16, 32, 64, 128].contains(&epochs),
            "split {}: {epochs} epochs is no checkpoint",
            s.split
        );
        let plain = run(&dir, &config(UciMethod::Ensemble, Some(epochs), false))?;
        let p = &plain.per_split[s.split];
        assert_eq!(
            (p.rmse, p.ll, p.picp95),
            (s.rmse, s.ll, s.picp95),
            "split {}: the refit is not the plain {epochs}-epoch run",
            s.split
        );
    }
    Ok(())
}

/// Splits run at once give the same bits as one at a time, for every
/// method (each split has its own seed and model, and no kernel depends on
/// its thread); zero jobs is refused.
#[test]
fn splits_run_in_parallel_score_the_same_bits() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let scores = |r: &UciReport| {
        r.per_split
            .iter()
            .map(|s| [s.rmse, s.ll, s.picp90, s.picp95, s.cal_error].map(f64::to_bits))
            .collect::<Vec<_>>()
    };
    for method in METHODS {
        let with = |jobs| UciConfig {
            jobs,
            ..config(method, Some(4), method == UciMethod::McDropout)
        };
        let (one, two) = (run(&dir, &with(1))?, run(&dir, &with(2))?);
        assert_eq!((one.jobs, two.jobs), (1, 2));
        assert_eq!(scores(&one), scores(&two), "{method}");
        let hypers = |r: &UciReport| r.per_split.iter().map(|s| s.hyper).collect::<Vec<_>>();
        assert_eq!(hypers(&one), hypers(&two), "{method}");
    }
    assert_eq!(
        invalid_name(run(
            &dir,
            &UciConfig {
                jobs: 0,
                ..config(UciMethod::Bbb, Some(1), false)
            }
        )),
        "jobs"
    );
    Ok(())
}

/// `seeds` runs the protocol at `seed`, `seed + SEED_STRIDE`, …: each run is
/// bit for bit the run of that seed alone, and the report averages each
/// split over the runs before the mean ± SE over splits.
#[test]
fn several_seeds_average_each_split_over_the_runs_of_those_seeds() -> Result<()> {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = write_split_dir(tmp.path(), "toy", 1.0, 0.0);
    let at = |seed| UciConfig {
        seed,
        ..config(UciMethod::McDropout, Some(3), false)
    };
    let both = run(
        &dir,
        &UciConfig {
            seeds: 2,
            jobs: 2,
            ..at(5)
        },
    )?;
    let (first, second) = (run(&dir, &at(5))?, run(&dir, &at(5 + SEED_STRIDE))?);
    let scores = |r: &UciReport| -> Vec<(usize, u64, f64, f64, f64)> {
        r.per_split
            .iter()
            .map(|s| (s.split, s.seed, s.rmse, s.ll, s.picp95))
            .collect()
    };
    let mut one_by_one = scores(&first);
    one_by_one.extend(scores(&second));
    assert_eq!(scores(&both), one_by_one);
    assert_eq!(both.seeds, 2);
    assert!(first.per_seed.is_empty(), "one seed lists no runs");
    let runs: Vec<(u64, f64, f64)> = both
        .per_seed
        .iter()
        .map(|s| (s.seed, s.rmse_mean, s.ll_mean))
        .collect();
    assert_eq!(
        runs,
        [
            (5, first.rmse_mean, first.ll_mean),
            (5 + SEED_STRIDE, second.rmse_mean, second.ll_mean)
        ]
    );
    // The two runs' per-split averages: the SE is over splits, not runs.
    let averaged: Vec<f64> = first
        .per_split
        .iter()
        .zip(&second.per_split)
        .map(|(a, b)| (a.ll + b.ll) / 2.0)
        .collect();
    let (mean, se) = mean_and_se(&averaged);
    assert!(
        (both.ll_mean - mean).abs() < 1e-12,
        "{} vs {mean}",
        both.ll_mean
    );
    assert!((both.ll_se - se).abs() < 1e-12, "{} vs {se}", both.ll_se);
    for seeds in [0, MAX_SEEDS + 1, usize::MAX] {
        let refused = UciConfig { seeds, ..at(5) };
        assert_eq!(invalid_name(run(&dir, &refused)), "seeds", "{seeds}");
    }
    Ok(())
}
