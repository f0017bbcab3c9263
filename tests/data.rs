//! Integration tests of `candle_bnn::data`: CSV loading and its error
//! messages, the UCI split-directory loader (on a tiny hand-written fixture,
//! on broken copies of it, and on the real Boston data when present).

use std::fs;
use std::path::{Path, PathBuf};

use candle_bnn::data::{
    load_split_dir, read_csv, read_feature_csv, Dataset, SplitDir, Standardizer,
};
use candle_bnn::Error;

/// A tiny split directory in the UCI benchmark layout, written by hand: 6
/// rows × 4 columns (features 0..=2, target 3), two splits, no
/// `n_splits.txt` (the loader counts the `index_train_I.txt` files).
/// `data.txt` mixes tabs, runs of spaces, leading and trailing whitespace and
/// ends with a blank line; `index_target.txt` and `index_train_1.txt` write an
/// index as `3.0` / `5.0`. Written at test time, so no benchmark-shaped split
/// files live in the repository.
const UCI_TINY: &[(&str, &str)] = &[
    (
        "data.txt",
        "1.0\t2.0\t3.0\t10.0\n  4.0   5.0  6.0   20.0\n7\t 8  \t9\t30\n1.5e1 11 12 40.0\n13.0\t\t14.0 15.0 50\n16 17 18 60\t \n\n",
    ),
    ("dropout_rates.txt", "0.01\n0.1\n"),
    ("index_features.txt", "0\n1\n2\n"),
    ("index_target.txt", "3.0\n"),
    ("index_test_0.txt", "4\n5\n"),
    ("index_test_1.txt", "0\n1\n"),
    ("index_train_0.txt", "0\n1\n2\n3\n"),
    ("index_train_1.txt", "5.0\n4\n3\n2\n"),
    ("n_epochs.txt", "3\n"),
    ("n_hidden.txt", "8\n"),
    ("tau_values.txt", "0.5\t1.0\n"),
];

/// A fresh `uci_tiny` folder (inside a temporary directory), to read or break.
struct Fixture {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn path(&self) -> &Path {
        &self.dir
    }
}

/// Writes `content` to `name` inside `dir` and returns its path.
fn write(dir: &Path, name: &str, content: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, content).unwrap();
    p
}

fn fixture_copy() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("uci_tiny");
    fs::create_dir(&dir).unwrap();
    for (name, content) in UCI_TINY {
        write(&dir, name, content);
    }
    Fixture { _tmp: tmp, dir }
}

/// The error of a CSV read, as its message; fails the test on success.
fn csv_err(content: &str, target: &str, features: Option<&[String]>) -> (Error, String) {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "in.csv", content);
    let e = read_csv(&p, target, features).expect_err("expected a read error");
    let msg = e.to_string();
    assert!(
        msg.contains("in.csv"),
        "message should name the file: {msg}"
    );
    (e, msg)
}

fn assert_contains(msg: &str, parts: &[&str]) {
    for part in parts {
        assert!(msg.contains(part), "expected {part:?} in: {msg}");
    }
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

// --- CSV: successful reads ------------------------------------------------

#[test]
fn csv_reads_trimmed_cells_default_features_and_blank_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(
        tmp.path(),
        "d.csv",
        " a , b ,y\n 1, 2 ,3\n\n4,5.5,  -6e1\n   \n",
    );
    let ds = read_csv(&p, "y", None).unwrap();
    assert_eq!(ds.feature_names, names(&["a", "b"]));
    assert_eq!(ds.target_name, "y");
    assert_eq!(ds.x, vec![1.0, 2.0, 4.0, 5.5]);
    assert_eq!(ds.y, vec![3.0, -60.0]);
}

#[test]
fn csv_explicit_features_choose_columns_and_order() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "d.csv", "y,a,b,note\n1,2,3,text\n4,5,6,more\n");
    // `note` is not numeric, but it is not selected, so it is never parsed.
    let feats = names(&["b", "a"]);
    let ds = read_csv(&p, "y", Some(&feats)).unwrap();
    assert_eq!(ds.feature_names, feats);
    assert_eq!(ds.x, vec![3.0, 2.0, 6.0, 5.0]);
    assert_eq!(ds.y, vec![1.0, 4.0]);
    // With default features every other column must be numeric.
    let e = read_csv(&p, "y", None).unwrap_err().to_string();
    assert_contains(&e, &["line 2", "column 'note'", "'text'"]);
}

#[test]
fn feature_csv_ignores_extra_columns() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "p.csv", "id,b,a\nfoo,1,2\nbar,3,4\n");
    let (values, n) = read_feature_csv(&p, &names(&["a", "b"])).unwrap();
    assert_eq!(n, 2);
    assert_eq!(values, vec![2.0, 1.0, 4.0, 3.0]);
    let e = read_feature_csv(&p, &names(&["a", "c"]))
        .unwrap_err()
        .to_string();
    assert_contains(
        &e,
        &[
            "p.csv",
            "line 1",
            "'c'",
            "available columns: 'id', 'b', 'a'",
        ],
    );
}

// --- CSV: errors ----------------------------------------------------------

#[test]
fn csv_missing_file_is_io_error_naming_path() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("nope.csv");
    let e = read_csv(&p, "y", None).unwrap_err();
    assert!(matches!(&e, Error::Io { path, .. } if path == &p), "{e:?}");
    assert!(e.to_string().contains("nope.csv"));
}

#[test]
fn csv_empty_file() {
    let (e, msg) = csv_err("", "y", None);
    assert!(matches!(e, Error::Data { .. }));
    assert_contains(&msg, &["empty"]);
    let (_, msg) = csv_err("\n\n", "y", None);
    assert_contains(&msg, &["empty"]);
}

#[test]
fn csv_header_without_rows() {
    let (_, msg) = csv_err("a,b,y\n", "y", None);
    assert_contains(&msg, &["no data rows"]);
}

#[test]
fn csv_non_numeric_cell_names_line_column_and_text() {
    let (e, msg) = csv_err("a,b,y\n1,2,3\n4,abc,6\n", "y", None);
    assert!(
        matches!(&e, Error::Data { line: Some(3), column: Some(c), .. } if c == "b"),
        "{e:?}"
    );
    assert_contains(&msg, &["line 3", "column 'b'", "'abc'"]);
}

#[test]
fn csv_line_numbers_count_blank_lines() {
    let (_, msg) = csv_err("a,b,y\n1,2,3\n\n4,x,6\n", "y", None);
    assert_contains(&msg, &["line 4", "column 'b'", "'x'"]);
    // CRLF endings, several blank lines, and a quoted cell spanning two lines.
    let (_, msg) = csv_err(
        "a,b,y\r\n1,2,3\r\n\r\n\r\n\"4\",\"5\n\",6\r\n7,8,?\r\n",
        "y",
        None,
    );
    // Lines: 1 header, 2 data, 3-4 blank, 5-6 the quoted cell, 7 the bad row.
    assert_contains(&msg, &["line 7", "column 'y'", "'?'"]);
}

#[test]
fn csv_invalid_utf8_names_line() {
    let tmp = tempfile::tempdir().unwrap();
    let p = tmp.path().join("bin.csv");
    fs::write(&p, b"a,b,y\n1,2,3\n\n1,\xff,3\n").unwrap();
    let e = read_csv(&p, "y", None).unwrap_err();
    assert!(matches!(e, Error::Data { line: Some(4), .. }), "{e:?}");
    assert_contains(&e.to_string(), &["bin.csv", "line 4", "UTF-8"]);
}

#[test]
fn csv_rejects_nan_and_infinity() {
    let (_, msg) = csv_err("a,b,y\n1,NaN,3\n", "y", None);
    assert_contains(
        &msg,
        &["line 2", "column 'b'", "'NaN'", "not a finite number"],
    );
    let (_, msg) = csv_err("a,b,y\n1,2,3\n1,2,-inf\n", "y", None);
    assert_contains(&msg, &["line 3", "column 'y'", "'-inf'"]);
    let (_, msg) = csv_err("a,b,y\n1e400,2,3\n", "y", None);
    assert_contains(&msg, &["line 2", "column 'a'", "'1e400'"]);
}

#[test]
fn csv_empty_cell() {
    let (_, msg) = csv_err("a,b,y\n1,,3\n", "y", None);
    assert_contains(&msg, &["line 2", "column 'b'", "empty cell"]);
}

#[test]
fn csv_too_few_and_too_many_fields() {
    let (_, msg) = csv_err("a,b,y\n1,2,3\n4,5\n", "y", None);
    assert_contains(&msg, &["line 3", "found 2 fields, expected 3"]);
    let (_, msg) = csv_err("a,b,y\n1,2,3,4\n", "y", None);
    assert_contains(&msg, &["line 2", "found 4 fields, expected 3"]);
}

#[test]
fn csv_missing_target_lists_available_columns() {
    let (_, msg) = csv_err("a,b,y\n1,2,3\n", "price", None);
    assert_contains(
        &msg,
        &[
            "line 1",
            "column 'price'",
            "target",
            "available columns: 'a', 'b', 'y'",
        ],
    );
}

#[test]
fn csv_missing_feature_lists_available_columns() {
    let (_, msg) = csv_err("a,b,y\n1,2,3\n", "y", Some(&names(&["a", "c"])));
    assert_contains(
        &msg,
        &["column 'c'", "feature", "available columns: 'a', 'b', 'y'"],
    );
}

#[test]
fn csv_duplicate_column_names() {
    let (_, msg) = csv_err("a, b ,a,y\n1,2,3,4\n", "y", None);
    assert_contains(&msg, &["line 1", "column 'a'", "duplicate"]);
}

#[test]
fn csv_rejects_target_among_features_and_target_only_files() {
    let tmp = tempfile::tempdir().unwrap();
    let p = write(tmp.path(), "d.csv", "a,y\n1,2\n");
    let e = read_csv(&p, "y", Some(&names(&["a", "y"]))).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidParameter { name, .. } if name == "features"),
        "{e:?}"
    );
    let (_, msg) = csv_err("y\n1\n2\n", "y", None);
    assert_contains(&msg, &["no feature columns"]);
}

// --- Split directory: the tiny fixture -----------------------------------

#[test]
fn split_dir_fixture_loads_with_whitespace_variants() {
    let fixture = fixture_copy();
    let sd = load_split_dir(fixture.path()).unwrap();
    assert_eq!(sd.name, "uci_tiny");
    assert_eq!((sd.n_rows(), sd.n_cols), (6, 4));
    assert_eq!(&sd.data[12..16], &[15.0, 11.0, 12.0, 40.0]);
    assert_eq!(&sd.data[20..24], &[16.0, 17.0, 18.0, 60.0]);
    assert_eq!(sd.feature_cols, vec![0, 1, 2]);
    assert_eq!(sd.target_col, 3);
    assert_eq!(sd.n_splits(), 2);
    assert_eq!(sd.splits[1], (vec![5, 4, 3, 2], vec![0, 1]));
    assert_eq!(sd.n_hidden, Some(8));
    assert_eq!(sd.n_epochs, Some(3));
    assert_eq!(sd.dropout_rates, Some(vec![0.01, 0.1]));
    assert_eq!(sd.tau_values, Some(vec![0.5, 1.0]));

    let (train, test) = sd.split(1).unwrap();
    assert_eq!(train.feature_names, names(&["x0", "x1", "x2"]));
    assert_eq!(train.target_name, "y");
    assert_eq!(train.y, vec![60.0, 50.0, 40.0, 30.0]);
    assert_eq!(train.row(0), &[16.0, 17.0, 18.0]);
    assert_eq!(test.x, vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(test.y, vec![10.0, 20.0]);

    let e = sd.split(2).unwrap_err();
    assert!(
        matches!(&e, Error::InvalidParameter { name, .. } if name == "split"),
        "{e:?}"
    );
}

#[test]
fn split_dir_respects_n_splits_file() {
    let tmp = fixture_copy();
    write(tmp.path(), "n_splits.txt", "1\n");
    assert_eq!(load_split_dir(tmp.path()).unwrap().n_splits(), 1);
    // More splits announced than present: the first missing file is named.
    write(tmp.path(), "n_splits.txt", "3\n");
    let e = load_split_dir(tmp.path()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_contains(&e.to_string(), &["index_train_2.txt"]);
}

#[test]
fn split_dir_optional_files_may_be_absent() {
    let tmp = fixture_copy();
    for f in [
        "n_hidden.txt",
        "n_epochs.txt",
        "dropout_rates.txt",
        "tau_values.txt",
    ] {
        fs::remove_file(tmp.path().join(f)).unwrap();
    }
    let sd = load_split_dir(tmp.path()).unwrap();
    assert_eq!(sd.n_hidden, None);
    assert_eq!(sd.n_epochs, None);
    assert_eq!(sd.dropout_rates, None);
    assert_eq!(sd.tau_values, None);
}

// --- Split directory: errors ---------------------------------------------

fn split_dir_err(file: &str, content: &str) -> String {
    let tmp = fixture_copy();
    write(tmp.path(), file, content);
    let e = load_split_dir(tmp.path()).expect_err("expected a load error");
    assert!(matches!(e, Error::Data { .. }), "{e:?}");
    e.to_string()
}

#[test]
fn split_dir_row_index_out_of_range_names_file_line_value_and_range() {
    let msg = split_dir_err("index_test_1.txt", "0\n99\n");
    assert_contains(
        &msg,
        &["index_test_1.txt", "line 2", "99", "6 rows", "0..=5"],
    );
}

#[test]
fn split_dir_column_index_out_of_range() {
    let msg = split_dir_err("index_features.txt", "0\n1\n7\n");
    assert_contains(&msg, &["index_features.txt", "line 3", "7", "0..=3"]);
    let msg = split_dir_err("index_target.txt", "4\n");
    assert_contains(&msg, &["index_target.txt", "line 1", "4", "0..=3"]);
}

#[test]
fn split_dir_fractional_or_negative_index() {
    let msg = split_dir_err("index_train_0.txt", "0\n1\n2.5\n");
    assert_contains(&msg, &["index_train_0.txt", "line 3", "'2.5'"]);
    let msg = split_dir_err("index_train_0.txt", "-1\n");
    assert_contains(&msg, &["index_train_0.txt", "line 1", "'-1'"]);
}

#[test]
fn split_dir_non_number_in_data() {
    let msg = split_dir_err("data.txt", "1 2 3 4\n5 6 7 8\n9 abc 11 12\n");
    assert_contains(&msg, &["data.txt", "line 3", "'abc'"]);
}

#[test]
fn split_dir_ragged_data() {
    let msg = split_dir_err("data.txt", "1 2 3 4\n5\t6 7\n");
    assert_contains(&msg, &["data.txt", "line 2", "found 3 values, expected 4"]);
}

#[test]
fn split_dir_empty_split() {
    let msg = split_dir_err("index_test_0.txt", "\n");
    assert_contains(&msg, &["index_test_0.txt", "no row indices"]);
}

#[test]
fn split_dir_target_among_features() {
    let msg = split_dir_err("index_features.txt", "0\n3\n");
    assert_contains(&msg, &["index_features.txt", "target"]);
}

#[test]
fn split_dir_bad_grid_values() {
    let msg = split_dir_err("dropout_rates.txt", "0.1\n1.5\n");
    assert_contains(&msg, &["dropout_rates.txt", "line 2", "1.5", "[0, 1)"]);
    let msg = split_dir_err("n_hidden.txt", "fifty\n");
    assert_contains(&msg, &["n_hidden.txt", "line 1", "'fifty'"]);
}

#[test]
fn split_dir_missing_dir_and_files() {
    let tmp = tempfile::tempdir().unwrap();
    let missing = tmp.path().join("absent");
    let e = load_split_dir(&missing).unwrap_err();
    assert!(
        matches!(&e, Error::Io { path, .. } if path == &missing),
        "{e:?}"
    );

    let copy = fixture_copy();
    fs::remove_file(copy.path().join("data.txt")).unwrap();
    let e = load_split_dir(copy.path()).unwrap_err();
    assert!(matches!(e, Error::Io { .. }), "{e:?}");
    assert_contains(&e.to_string(), &["data.txt"]);

    let copy = fixture_copy();
    fs::remove_file(copy.path().join("index_test_1.txt")).unwrap();
    let e = load_split_dir(copy.path()).unwrap_err();
    assert_contains(&e.to_string(), &["index_test_1.txt"]);
}

// --- Real data (only where the shared folder exists) ---------------------

#[test]
fn boston_split_dir_matches_published_shape() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/uci/bostonHousing");
    if !dir.is_dir() {
        eprintln!("skipping: {} not found", dir.display());
        return;
    }
    let sd = load_split_dir(&dir).unwrap();
    assert_eq!(sd.name, "bostonHousing");
    assert_eq!((sd.n_rows(), sd.n_cols), (506, 14));
    assert_eq!(sd.feature_cols, (0..13).collect::<Vec<_>>());
    assert_eq!(sd.target_col, 13);
    assert_eq!(sd.n_splits(), 20);
    assert_eq!(sd.n_hidden, Some(50));
    assert_eq!(sd.n_epochs, Some(40));
    for i in 0..sd.n_splits() {
        let (train, test) = sd.split(i).unwrap();
        assert_eq!((train.len(), test.len()), (455, 51), "split {i}");
        assert_eq!(train.n_features(), 13);
    }
    // First row of the published data: CRIM 0.00632 ... MEDV 24.0.
    assert_eq!(sd.data[0], 0.00632);
    assert_eq!(sd.data[13], 24.0);
}

#[test]
fn all_shared_uci_dirs_load_with_partitioning_splits() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/data/uci");
    if !root.is_dir() {
        eprintln!("skipping: {} not found", root.display());
        return;
    }
    // (folder, rows, features, target column), from the data README.
    for (name, rows, d, target) in [
        ("bostonHousing", 506, 13, 13),
        ("concrete", 1030, 8, 8),
        ("energy", 768, 8, 8),
        ("kin8nm", 8192, 8, 8),
        ("yacht", 308, 6, 6),
    ] {
        let sd = load_split_dir(&root.join(name)).unwrap();
        assert_eq!(sd.n_rows(), rows, "{name}");
        assert_eq!(sd.feature_cols.len(), d, "{name}");
        assert_eq!(sd.target_col, target, "{name}");
        assert_eq!(sd.n_splits(), 20, "{name}");
        for (i, (train, test)) in sd.splits.iter().enumerate() {
            let mut all: Vec<usize> = train.iter().chain(test).copied().collect();
            all.sort_unstable();
            assert_eq!(all, (0..rows).collect::<Vec<_>>(), "{name} split {i}");
        }
    }
}

// --- Types ----------------------------------------------------------------

#[test]
fn public_types_are_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Dataset>();
    check::<Standardizer>();
    check::<SplitDir>();
}
