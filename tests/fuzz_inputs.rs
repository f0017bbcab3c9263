//! Property tests: whatever bytes a user hands the readers — as a CSV file,
//! as `model.json`, as a tensor file, or as a damaged checkpoint — they
//! answer `Ok` or `Err`, and never panic.
//!
//! Each test wraps the call in `catch_unwind`, so a panic is reported as a
//! failing case (with proptest's shrunk input) instead of aborting the run.
//! The generator seed is fixed, so a run is the same every time.

use std::fs;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::sync::OnceLock;

use candle_bnn::checkpoint::{self, MODEL_FILE};
use candle_bnn::data::{read_csv, read_feature_csv, toy_gap};
use candle_bnn::model::BayesMlpConfig;
use candle_bnn::regressor::BayesRegressor;
use candle_bnn::train::TrainConfig;
use candle_core::Device;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};

fn config(cases: u32) -> Config {
    Config {
        cases,
        rng_seed: RngSeed::Fixed(0x0b17_5eed),
        // Shrunk failures are reported in the test output; write no files.
        failure_persistence: None,
        ..Config::default()
    }
}

/// Runs `f`, turning a panic into a failed case.
fn no_panic<T>(what: &str, f: impl FnOnce() -> T) -> Result<T, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|_| TestCaseError::fail(format!("{what} panicked")))
}

// ---------------------------------------------------------------------------
// CSV
// ---------------------------------------------------------------------------

/// Bytes biased toward what CSV files are made of, with arbitrary bytes mixed in.
fn csv_bytes() -> impl Strategy<Value = Vec<u8>> {
    let alphabet: &[u8] = b"0123456789.,-+eE\"\n\r \txyna;\t\\";
    let byte = prop_oneof![
        3 => proptest::sample::select(alphabet.to_vec()),
        1 => any::<u8>(),
    ];
    proptest::collection::vec(byte, 0..400)
}

/// One CSV cell: numbers, blanks, non-finite and textual tokens, quotes.
fn cell() -> impl Strategy<Value = String> {
    prop_oneof![
        4 => any::<f64>().prop_map(|v| v.to_string()),
        2 => (-1000i64..1000).prop_map(|v| v.to_string()),
        1 => Just(String::new()),
        1 => proptest::sample::select(vec![
            "nan", "NaN", "inf", "-inf", "+infinity", "1e400", "-1e-400", "0x1F", "1_000",
            "abc", "  7  ", "\"2.5\"", "\"unterminated", "\"a,b\"", "\"\"", "１２", "1.2.3",
            "-", ".", "e5", "\u{feff}3", "\"x\"\"y\"",
        ])
        .prop_map(String::from),
        1 => "[ -~]{0,6}",
    ]
}

/// A header name: usually `x0`..`x3` or `y` (so columns repeat now and then),
/// sometimes empty, quoted or odd.
fn header_name() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(vec!["x0", "x1", "x2", "x3", "y"]).prop_map(String::from),
        1 => proptest::sample::select(vec!["", "\"y\"", " y ", "\"a,b\"", "é", "\"", "y\ny"])
            .prop_map(String::from),
        1 => "[a-z]{1,3}",
    ]
}

/// A whole malformed-or-not CSV text: a header, rows of random field
/// counts, random line endings and blank lines.
fn structured_csv() -> impl Strategy<Value = String> {
    let header = proptest::collection::vec(header_name(), 0..5);
    let rows = proptest::collection::vec(proptest::collection::vec(cell(), 0..6), 0..8);
    let eol = proptest::sample::select(vec!["\n", "\r\n", "\n\n", "\r", ""]);
    (header, rows, eol, any::<bool>()).prop_map(|(header, rows, eol, trailing)| {
        let mut text = header.join(",");
        for row in rows {
            text.push_str(eol);
            text.push_str(&row.join(","));
        }
        if trailing {
            text.push('\n');
        }
        text
    })
}

/// Reads `bytes` as a CSV file in every way the crate offers; checks that a
/// dataset read without error is well formed.
fn read_every_way(bytes: &[u8], target: &str) -> Result<(), TestCaseError> {
    let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    let path = tmp.path().join("data.csv");
    fs::write(&path, bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    if let Ok(data) = no_panic("read_csv", || read_csv(&path, target, None))? {
        let d = data.n_features();
        prop_assert!(d >= 1);
        prop_assert_eq!(data.x.len(), data.y.len() * d);
        prop_assert!(data.x.iter().chain(&data.y).all(|v| v.is_finite()));
        prop_assert_eq!(&data.target_name, target);
    }
    let features = ["x0".to_string(), "x1".to_string()];
    let _ = no_panic("read_csv(features)", || {
        read_csv(&path, target, Some(&features))
    })?;
    if let Ok((values, rows)) = no_panic("read_feature_csv", || read_feature_csv(&path, &features))?
    {
        prop_assert_eq!(values.len(), rows * features.len());
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(1024))]

    #[test]
    fn random_bytes_as_csv_never_panic(bytes in csv_bytes()) {
        read_every_way(&bytes, "y")?;
    }

    #[test]
    fn malformed_csv_never_panics(text in structured_csv(), target in header_name()) {
        read_every_way(text.as_bytes(), &target)?;
        read_every_way(text.as_bytes(), "y")?;
    }
}

// ---------------------------------------------------------------------------
// Checkpoints
// ---------------------------------------------------------------------------

/// The files of one valid model directory, trained once per test binary.
struct Fixture {
    model_json: Vec<u8>,
    tensor_name: String,
    tensors: Vec<u8>,
}

fn fixture() -> &'static Fixture {
    static FIXTURE: OnceLock<Fixture> = OnceLock::new();
    FIXTURE.get_or_init(|| {
        let data = toy_gap(64, 0.2, 0).unwrap();
        let train = TrainConfig {
            epochs: 2,
            progress: false,
            ..TrainConfig::default()
        };
        let model =
            BayesRegressor::fit(&data, BayesMlpConfig::new(1, &[8]), &train, &Device::Cpu).unwrap();
        let tmp = tempfile::tempdir().unwrap();
        checkpoint::save(&model, tmp.path()).unwrap();
        let model_json = fs::read(tmp.path().join(MODEL_FILE)).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&model_json).unwrap();
        let tensor_name = v["tensors"].as_str().unwrap().to_string();
        let tensors = fs::read(tmp.path().join(&tensor_name)).unwrap();
        Fixture {
            model_json,
            tensor_name,
            tensors,
        }
    })
}

/// A model.json like the fixture's, naming `tensor_name` with `crc`.
fn model_json_pointing_to(tensor_name: &str, crc: u32) -> Vec<u8> {
    let mut v: serde_json::Value = serde_json::from_slice(&fixture().model_json).unwrap();
    v["tensors"] = tensor_name.into();
    v["tensors_crc32"] = crc.into();
    serde_json::to_vec_pretty(&v).unwrap()
}

/// Writes a model directory from the given files and loads it.
fn load_files(files: &[(&str, &[u8])]) -> Result<candle_bnn::Result<()>, TestCaseError> {
    let tmp = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
    for (name, bytes) in files {
        fs::write(tmp.path().join(name), bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
    load_dir(tmp.path())
}

fn load_dir(dir: &Path) -> Result<candle_bnn::Result<()>, TestCaseError> {
    no_panic("checkpoint::load", || {
        checkpoint::load_regressor(dir, &Device::Cpu).map(|_| ())
    })
}

/// `(dtype, bits per element)` of safetensors dtypes, and one that is not.
const DTYPES: &[(&str, usize)] = &[
    ("F32", 32),
    ("F64", 64),
    ("F16", 16),
    ("BF16", 16),
    ("U8", 8),
    ("I64", 64),
    ("U16", 16),
    ("BOOL", 8),
    ("F8_E4M3", 8),
    ("F8_E8M0", 8),
    ("F4", 4),
    ("F6_E2M3", 6),
    ("XX", 32),
];

/// Bytes shaped like a safetensors file: a length, a JSON header with
/// names (mostly the model's), dtypes and shapes, and data. Usually the
/// offsets and the data length agree with the shapes, so the file parses and
/// the dtype, shape and name checks are reached; sometimes they are skewed.
fn safetensors_like() -> impl Strategy<Value = Vec<u8>> {
    let name = proptest::sample::select(vec![
        "l0.weight.mu",
        "l0.weight.rho",
        "l0.bias.mu",
        "l0.bias.rho",
        "l1.weight.mu",
        "l1.weight.rho",
        "l1.bias.mu",
        "l1.bias.rho",
        "likelihood.noise_rho",
        "l7.weight.mu",
        "",
    ]);
    let dtype = prop_oneof![4 => Just(0usize), 1 => 0..DTYPES.len()];
    let shape = proptest::collection::vec(
        prop_oneof![8 => 0usize..9, 1 => Just(1usize << 40), 1 => Just(usize::MAX / 3)],
        0..3,
    );
    let entries = proptest::collection::vec((name, dtype, shape), 0..10);
    let skew = prop_oneof![6 => Just(0i64), 1 => -9i64..9];
    (entries, skew.clone(), skew, any::<u64>()).prop_map(|(entries, len_skew, data_skew, seed)| {
        let mut offset = 0usize;
        let mut fields = Vec::new();
        for (name, d, shape) in &entries {
            let (dtype, bits) = DTYPES[*d];
            let n = shape
                .iter()
                .try_fold(1usize, |acc, &x| acc.checked_mul(x))
                .unwrap_or(usize::MAX);
            let len = if n > 1 << 16 { 4 } else { (n * bits).div_ceil(8) };
            fields.push(format!(
                "\"{name}\":{{\"dtype\":\"{dtype}\",\"shape\":{shape:?},\"data_offsets\":[{offset},{}]}}",
                offset + len
            ));
            offset += len;
        }
        let header = format!("{{{}}}", fields.join(","));
        let header_len = (header.len() as i64 + len_skew).max(0) as u64;
        let mut bytes = header_len.to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        // Data: small floats mostly, so that F32 tensors are often finite.
        let mut state = seed | 1;
        let data_len = (offset as i64 + data_skew).max(0) as usize;
        for k in 0..data_len {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            bytes.push(if k % 4 == 3 { 0x3f } else { state as u8 });
        }
        bytes
    })
}

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn random_bytes_as_model_json_fail_cleanly(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let f = fixture();
        let result = load_files(&[(MODEL_FILE, &bytes), (&f.tensor_name, &f.tensors)])?;
        prop_assert!(result.is_err());
    }

    /// A valid model.json with a span replaced by JSON-ish text: some edits
    /// still load (a changed report number), none panic.
    #[test]
    fn edited_model_json_never_panics(
        start in 0.0f64..1.0,
        len in 0usize..40,
        text in "[\\[\\]{}\",:0-9a-z.eE+-]{0,12}",
    ) {
        let f = fixture();
        let json = &f.model_json;
        let a = ((json.len() as f64) * start) as usize;
        let b = (a + len).min(json.len());
        let mut edited = json[..a].to_vec();
        edited.extend_from_slice(text.as_bytes());
        edited.extend_from_slice(&json[b..]);
        let _ = load_files(&[(MODEL_FILE, &edited), (&f.tensor_name, &f.tensors)])?;
    }

    #[test]
    fn random_bytes_as_tensor_file_fail_cleanly(
        bytes in proptest::collection::vec(any::<u8>(), 0..600),
        matching_crc in any::<bool>(),
    ) {
        let crc = if matching_crc { crc32fast::hash(&bytes) } else { crc32fast::hash(&bytes) ^ 1 };
        let name = format!("tensors-{crc:08x}.safetensors");
        let json = model_json_pointing_to(&name, crc);
        let result = load_files(&[(MODEL_FILE, &json), (&name, &bytes)])?;
        prop_assert!(result.is_err());
    }

    /// Safetensors-shaped bytes with a matching checksum reach the parser
    /// and the architecture checks: errors, never panics.
    #[test]
    fn safetensors_like_bytes_fail_cleanly(bytes in safetensors_like()) {
        let crc = crc32fast::hash(&bytes);
        let name = format!("tensors-{crc:08x}.safetensors");
        let json = model_json_pointing_to(&name, crc);
        let result = load_files(&[(MODEL_FILE, &json), (&name, &bytes)])?;
        prop_assert!(result.is_err());
    }

    /// Truncating or flipping a bit of a valid checkpoint: the tensor file's
    /// checksum catches every such damage; a damaged model.json may still
    /// parse (a flipped digit in the report), but never panics. Undamaged,
    /// it loads.
    #[test]
    fn truncated_or_flipped_checkpoints_fail_cleanly(
        in_tensors in any::<bool>(),
        truncate in any::<bool>(),
        at in 0.0f64..1.0,
        bit in 0u8..8,
        damage in any::<bool>(),
    ) {
        let f = fixture();
        let mut json = f.model_json.clone();
        let mut tensors = f.tensors.clone();
        let target = if in_tensors { &mut tensors } else { &mut json };
        if damage {
            let k = ((target.len() as f64) * at) as usize;
            if truncate {
                target.truncate(k);
            } else if let Some(byte) = target.get_mut(k) {
                *byte ^= 1 << bit;
            }
        }
        let changed = json != f.model_json || tensors != f.tensors;
        let result = load_files(&[(MODEL_FILE, &json), (&f.tensor_name, &tensors)])?;
        if !changed {
            prop_assert!(result.is_ok(), "{:?}", result.err());
        } else if tensors != f.tensors {
            prop_assert!(result.is_err());
        }
    }
}
