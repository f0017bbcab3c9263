//! A tiny split directory in the UCI layout, written at test time (never
//! the shared benchmark data), for the UCI benchmark and study tests.

use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// The MC-dropout grid's dropout rates (`dropout_rates.txt`).
#[allow(dead_code)] // read by the UCI grid tests, not by every test crate
pub const RATES: [f64; 2] = [0.01, 0.1];
/// The grid's model precisions in units of `1 / a²` (`tau_values.txt`).
#[allow(dead_code)] // read by the UCI grid tests, not by every test crate
pub const TAUS: [f64; 2] = [0.5, 20.0];

/// Writes a split directory `root/name`: 60 rows of three N(0, 1) features
/// and `y = a · (x0 + x1 + x2 + 0.1 eps) + b`; split 0 trains on rows 0..50
/// and tests on 50..60, split 1 trains on 10..60 and tests on 0..10. The grid
/// files hold `RATES` and `TAUS / a²` (tau is a precision in target units).
pub fn write_split_dir(root: &Path, name: &str, a: f64, b: f64) -> PathBuf {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).expect("create the split directory");
    let mut rng = StdRng::seed_from_u64(2024);
    let mut data = String::new();
    for _ in 0..60 {
        let x: Vec<f64> = (0..3).map(|_| rng.sample(StandardNormal)).collect();
        let eps: f64 = rng.sample(StandardNormal);
        let y = a * (x.iter().sum::<f64>() + 0.1 * eps) + b;
        // `{}` prints the shortest string that parses back to the same f64.
        data.push_str(&format!("{} {}\t{} {y}\n", x[0], x[1], x[2]));
    }
    let lines = |r: std::ops::Range<usize>| r.map(|i| format!("{i}\n")).collect::<String>();
    let taus: Vec<String> = TAUS.iter().map(|t| format!("{}", t / (a * a))).collect();
    let files = [
        ("data.txt", data),
        ("index_features.txt", "0\n1\n2\n".into()),
        ("index_target.txt", "3\n".into()),
        ("index_train_0.txt", lines(0..50)),
        ("index_test_0.txt", lines(50..60)),
        ("index_train_1.txt", lines(10..60)),
        ("index_test_1.txt", lines(0..10)),
        ("n_epochs.txt", "2\n".into()),
        ("n_hidden.txt", "8\n".into()),
        ("dropout_rates.txt", format!("{}\n{}\n", RATES[0], RATES[1])),
        ("tau_values.txt", taus.join("\n") + "\n"),
    ];
    for (file, text) in files {
        std::fs::write(dir.join(file), text).expect("write a split file");
    }
    dir
}
