//! What the CLI test files share: running `bnn`, asserting a clean failure,
//! and a temporary folder of CSV files cut from the shipped diabetes data.

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The target column of `examples/data/diabetes_train.csv`.
pub const TARGET: &str = "disease_progression";

/// Runs the `bnn` binary with `args`.
pub fn bnn<S: AsRef<OsStr>>(args: &[S]) -> Output {
    match Command::new(env!("CARGO_BIN_EXE_bnn")).args(args).output() {
        Ok(out) => out,
        Err(e) => panic!("could not run bnn: {e}"),
    }
}

/// Lossy UTF-8 text of an output stream.
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `bnn args`, asserts that it failed cleanly (non-zero exit, no
/// signal, no panic, an error message), and returns its stderr.
pub fn fails<S: AsRef<OsStr>>(args: &[S]) -> String {
    let out = bnn(args);
    let shown: Vec<String> = args
        .iter()
        .map(|a| a.as_ref().to_string_lossy().into_owned())
        .collect();
    let shown = shown.join(" ");
    let stderr = text(&out.stderr);
    assert!(
        !out.status.success(),
        "bnn {shown} succeeded but should fail\nstdout: {}\nstderr: {stderr}",
        text(&out.stdout)
    );
    assert!(
        out.status.code().is_some(),
        "bnn {shown} was killed by a signal: {stderr}"
    );
    assert!(
        !stderr.contains("panicked"),
        "bnn {shown} panicked: {stderr}"
    );
    assert!(
        stderr.contains("error"),
        "bnn {shown}: stderr has no error message: {stderr}"
    );
    stderr
}

/// A temporary directory holding CSV files built from the header and the
/// first `rows` rows of `examples/data/diabetes_train.csv`.
pub struct Fixture {
    dir: tempfile::TempDir,
    /// The header, then the rows, as text lines.
    pub lines: Vec<String>,
}

impl Fixture {
    /// The header and the first `rows` data rows.
    pub fn new(rows: usize) -> Self {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/data/diabetes_train.csv");
        let all = std::fs::read_to_string(&source)
            .unwrap_or_else(|e| panic!("read {}: {e}", source.display()));
        let lines: Vec<String> = all.lines().take(rows + 1).map(str::to_string).collect();
        assert_eq!(lines.len(), rows + 1, "fixture too short");
        assert!(lines[0].ends_with(TARGET), "unexpected header {}", lines[0]);
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        Self { dir, lines }
    }

    /// A path inside the fixture's directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Writes `content` to `name` and returns its path.
    pub fn write(&self, name: &str, content: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, content).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Writes the fixture lines (header first), `edit` applied to each
    /// line's fields with its 1-based line number (the header is line 1).
    pub fn write_edited(&self, name: &str, edit: impl Fn(usize, &mut Vec<String>)) -> PathBuf {
        let mut out = String::new();
        for (i, line) in self.lines.iter().enumerate() {
            let mut fields: Vec<String> = line.split(',').map(str::to_string).collect();
            edit(i + 1, &mut fields);
            out.push_str(&fields.join(","));
            out.push('\n');
        }
        self.write(name, &out)
    }

    /// The fixture rows unchanged, as `good.csv`.
    pub fn good_csv(&self) -> PathBuf {
        self.write_edited("good.csv", |_, _| {})
    }

    /// `train` arguments for a tiny model (2 epochs, 8 units) from `data`
    /// into `out`, with `seed`.
    pub fn train_args(&self, data: &Path, out: &Path, seed: u64) -> Vec<String> {
        [
            "train",
            "--data",
            &data.display().to_string(),
            "--target",
            TARGET,
            "--out",
            &out.display().to_string(),
            "--epochs",
            "2",
            "--hidden",
            "8",
            "--seed",
            &seed.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }
}
