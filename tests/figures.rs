//! PNG figures: each function writes a PNG of its documented size, and bad
//! input is an error naming the argument, never a panic.

use std::path::Path;

use candle_bnn::figures::{
    plot_calibration_curve, plot_panels, plot_predicted_vs_actual, plot_predictive_1d, Band, Panel,
    Scale, Series, SeriesStyle, CALIBRATION_CURVE_SIZE, PANEL_SIZE, PREDICTED_VS_ACTUAL_SIZE,
    PREDICTIVE_1D_SIZE,
};

const PNG_SIGNATURE: [u8; 8] = [0x89, b'P', b'N', b'G', 0x0d, 0x0a, 0x1a, 0x0a];

/// Checks the PNG signature and reads (width, height) from the IHDR chunk.
fn png_size(path: &Path) -> (u32, u32) {
    let bytes = std::fs::read(path).expect("the PNG was written");
    assert!(
        bytes.len() > 24,
        "{} is too short for a PNG",
        path.display()
    );
    assert_eq!(bytes[..8], PNG_SIGNATURE, "not a PNG signature");
    assert_eq!(&bytes[12..16], b"IHDR", "the first chunk is not IHDR");
    let be = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
    (be(&bytes[16..20]), be(&bytes[20..24]))
}

/// A noisy sine, its "predictive" mean and two Gaussian central intervals.
struct Regression {
    train_x: Vec<f64>,
    train_y: Vec<f64>,
    grid_x: Vec<f64>,
    mean: Vec<f64>,
    /// (level, lower, upper)
    bands: Vec<(f64, Vec<f64>, Vec<f64>)>,
}

fn regression() -> Regression {
    let train_x: Vec<f64> = (0..40).map(|i| -3.0 + 6.0 * f64::from(i) / 39.0).collect();
    let train_y = train_x
        .iter()
        .enumerate()
        .map(|(i, x)| x.sin() + 0.2 * ((i * 7 % 11) as f64 / 5.0 - 1.0))
        .collect();
    let grid_x: Vec<f64> = (0..200)
        .map(|i| -5.0 + 10.0 * f64::from(i) / 199.0)
        .collect();
    let mean: Vec<f64> = grid_x.iter().map(|x| x.sin()).collect();
    let sd: Vec<f64> = grid_x.iter().map(|x| 0.2 + 0.1 * x * x).collect();
    let bands = [(0.9, 1.645), (0.5, 0.674)]
        .into_iter()
        .map(|(level, z)| {
            let lower = mean.iter().zip(&sd).map(|(m, s)| m - z * s).collect();
            let upper = mean.iter().zip(&sd).map(|(m, s)| m + z * s).collect();
            (level, lower, upper)
        })
        .collect();
    Regression {
        train_x,
        train_y,
        grid_x,
        mean,
        bands,
    }
}

fn bands(r: &Regression) -> Vec<Band<'_>> {
    r.bands
        .iter()
        .map(|(level, lower, upper)| Band {
            level: *level,
            lower,
            upper,
        })
        .collect()
}

#[test]
fn predictive_1d_writes_an_800_by_500_png() {
    let dir = tempfile::tempdir().unwrap();
    // A missing parent directory is created.
    let path = dir.path().join("figs").join("predictive.png");
    let r = regression();
    plot_predictive_1d(
        &path,
        "BBB on a noisy sine",
        &r.train_x,
        &r.train_y,
        &r.grid_x,
        &r.mean,
        &bands(&r),
    )
    .unwrap();
    assert_eq!(PREDICTIVE_1D_SIZE, (800, 500));
    assert_eq!(png_size(&path), PREDICTIVE_1D_SIZE);
}

#[test]
fn predictive_1d_accepts_no_training_data_and_no_bands() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("prior.png");
    let r = regression();
    plot_predictive_1d(&path, "", &[], &[], &r.grid_x, &r.mean, &[]).unwrap();
    assert_eq!(png_size(&path), PREDICTIVE_1D_SIZE);
}

#[test]
fn predictive_1d_rejects_bad_input_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    let r = regression();
    let b = bands(&r);
    let err = |train_x: &[f64], grid_x: &[f64], mean: &[f64], bands: &[Band]| {
        plot_predictive_1d(&path, "t", train_x, &r.train_y, grid_x, mean, bands)
            .unwrap_err()
            .to_string()
    };

    let msg = err(&r.train_x[1..], &r.grid_x, &r.mean, &b);
    assert!(msg.contains("train_y") && msg.contains("train_x"), "{msg}");
    let msg = err(&r.train_x, &r.grid_x, &r.mean[1..], &b);
    assert!(
        msg.contains("`mean` has 199") && msg.contains("`grid_x` has 200"),
        "{msg}"
    );
    let msg = err(&r.train_x, &[], &[], &[]);
    assert!(msg.contains("grid_x") && msg.contains("empty"), "{msg}");

    let short = Band {
        level: 0.9,
        lower: &r.mean[..10],
        upper: &r.mean,
    };
    let msg = err(&r.train_x, &r.grid_x, &r.mean, &[b[0], short]);
    assert!(msg.contains("bands[1].lower"), "{msg}");
    let wide = Band {
        level: 90.0,
        ..b[0]
    };
    let msg = err(&r.train_x, &r.grid_x, &r.mean, &[wide]);
    assert!(
        msg.contains("bands[0].level") && msg.contains("(0, 1)"),
        "{msg}"
    );

    let mut mean = r.mean.clone();
    mean[3] = f64::NAN;
    let msg = err(&r.train_x, &r.grid_x, &mean, &b);
    assert!(msg.contains("mean[3]") && msg.contains("finite"), "{msg}");
    assert!(!path.exists(), "no figure is written for bad input");
}

/// (nominal, observed) coverage pairs of one calibration curve.
type Curve = Vec<(f64, f64)>;

fn calibration_points() -> (Curve, Curve) {
    let levels = (1..=9).map(|i| f64::from(i) / 10.0);
    let before = levels.clone().map(|p| (p, p.powf(1.8))).collect();
    let after = levels
        .map(|p| (p, (p + 0.03 * (p * 9.0).sin()).clamp(0.0, 1.0)))
        .collect();
    (before, after)
}

#[test]
fn calibration_curve_writes_a_600_by_600_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("calibration.png");
    let (before, after) = calibration_points();
    plot_calibration_curve(
        &path,
        "Calibration of central intervals",
        &[
            ("before recalibration", &before),
            ("after recalibration", &after),
        ],
    )
    .unwrap();
    assert_eq!(CALIBRATION_CURVE_SIZE, (600, 600));
    assert_eq!(png_size(&path), CALIBRATION_CURVE_SIZE);
}

#[test]
fn calibration_curve_rejects_bad_input_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    let msg = plot_calibration_curve(&path, "t", &[])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("curves") && msg.contains("empty"), "{msg}");
    let (before, _) = calibration_points();
    let msg = plot_calibration_curve(&path, "t", &[("before", before.as_slice()), ("after", &[])])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("curves[1] (\"after\")") && msg.contains("empty"),
        "{msg}"
    );
    let msg = plot_calibration_curve(&path, "t", &[("before", &[(0.5, 0.4), (0.9, 1.5)])])
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("curves[0]") && msg.contains("point 1") && msg.contains("[0, 1]"),
        "{msg}"
    );
    assert!(!path.exists());
}

#[test]
fn predicted_vs_actual_writes_a_600_by_600_png() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pred_vs_actual.png");
    let actual: Vec<f64> = (0..60).map(|i| 50.0 + 5.0 * f64::from(i)).collect();
    let mean: Vec<f64> = actual
        .iter()
        .enumerate()
        .map(|(i, a)| a + 20.0 * ((i * 13 % 17) as f64 / 8.0 - 1.0))
        .collect();
    let lower: Vec<f64> = mean.iter().map(|m| m - 30.0).collect();
    let upper: Vec<f64> = mean.iter().map(|m| m + 30.0).collect();
    plot_predicted_vs_actual(&path, "Test set", &actual, &mean, &lower, &upper, 0.95).unwrap();
    assert_eq!(PREDICTED_VS_ACTUAL_SIZE, (600, 600));
    assert_eq!(png_size(&path), PREDICTED_VS_ACTUAL_SIZE);
}

#[test]
fn predicted_vs_actual_rejects_bad_input_naming_the_argument() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.png");
    let v = [1.0, 2.0, 3.0];
    let call = |actual: &[f64], mean: &[f64], lower: &[f64], upper: &[f64], level: f64| {
        plot_predicted_vs_actual(&path, "t", actual, mean, lower, upper, level)
            .unwrap_err()
            .to_string()
    };
    let msg = call(&[], &[], &[], &[], 0.95);
    assert!(msg.contains("actual") && msg.contains("empty"), "{msg}");
    let msg = call(&v, &v, &v[..2], &v, 0.95);
    assert!(
        msg.contains("`lower` has 2") && msg.contains("`actual` has 3"),
        "{msg}"
    );
    let msg = call(&v, &v, &v, &v[..1], 0.95);
    assert!(msg.contains("`upper` has 1"), "{msg}");
    let msg = call(&v, &v, &v, &v, 95.0);
    assert!(msg.contains("level") && msg.contains("(0, 1)"), "{msg}");
    let msg = call(&v, &[1.0, f64::INFINITY, 3.0], &v, &v, 0.95);
    assert!(msg.contains("mean[1]"), "{msg}");
    assert!(!path.exists());
}

#[test]
fn figures_are_written_from_several_threads_at_once() {
    // The font is registered once, whichever call comes first.
    let dir = tempfile::tempdir().unwrap();
    let (before, after) = calibration_points();
    std::thread::scope(|s| {
        for i in 0..4 {
            let path = dir.path().join(format!("c{i}.png"));
            let (before, after) = (&before, &after);
            s.spawn(move || {
                plot_calibration_curve(&path, "t", &[("before", before), ("after", after)])
                    .unwrap();
                assert_eq!(png_size(&path), CALIBRATION_CURVE_SIZE);
            });
        }
    });
}

#[test]
fn degenerate_but_valid_input_draws_a_figure() {
    // One grid point, a zero-width band and a title outside ASCII: the axis
    // ranges are widened around the single value instead of collapsing.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("one.png");
    let band = Band {
        level: 0.95,
        lower: &[1.0],
        upper: &[1.0],
    };
    plot_predictive_1d(
        &path,
        "σ_p = 1, μ ± 2σ",
        &[0.0],
        &[1.0],
        &[0.0],
        &[1.0],
        &[band],
    )
    .unwrap();
    assert_eq!(png_size(&path), PREDICTIVE_1D_SIZE);

    let path = dir.path().join("one_point.png");
    plot_calibration_curve(&path, "t", &[("single", &[(0.5, 0.5)])]).unwrap();
    assert_eq!(png_size(&path), CALIBRATION_CURVE_SIZE);

    let path = dir.path().join("constant.png");
    plot_predicted_vs_actual(&path, "t", &[2.0; 3], &[2.0; 3], &[2.0; 3], &[2.0; 3], 0.5).unwrap();
    assert_eq!(png_size(&path), PREDICTED_VS_ACTUAL_SIZE);
}

#[test]
fn unwritable_paths_are_errors_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let points = [(0.5, 0.5)];
    let curves = [("c", &points[..])];

    // The parent "directory" is a file: the directory cannot be created.
    let file = dir.path().join("not_a_dir");
    std::fs::write(&file, b"x").unwrap();
    let err = plot_calibration_curve(&file.join("fig.png"), "t", &curves).unwrap_err();
    assert!(matches!(err, candle_bnn::Error::Io { .. }), "{err:?}");
    assert!(err.to_string().contains("not_a_dir"), "{err}");

    // plotters cannot encode an unknown image format: Error::Plot with the path.
    let path = dir.path().join("fig.unknown");
    let err = plot_calibration_curve(&path, "t", &curves).unwrap_err();
    assert!(matches!(err, candle_bnn::Error::Plot { .. }), "{err:?}");
    assert!(err.to_string().contains("fig.unknown"), "{err}");
}

/// Panels: a grid of up to three columns plus a 40 px title strip; log axes
/// drop the points they cannot show (0 here) instead of failing; bad input
/// names the series.
#[test]
fn panels_draw_every_style_on_log_and_linear_axes() {
    let dir = tempfile::tempdir().unwrap();
    let x: Vec<f64> = (1..=50).map(f64::from).collect();
    let y: Vec<f64> = x.iter().map(|v| 10f64.powf(v * 2.0)).collect();
    let mut with_zero = y.clone();
    with_zero[3] = 0.0;
    let upper: Vec<f64> = y.iter().map(|v| v * 10.0).collect();
    let series = |style| Series {
        label: Some("curve"),
        colour: 9,
        style,
        x: &x,
        y: &with_zero,
    };
    let panel = |x_scale, y_scale| Panel {
        title: "panel",
        x_label: "layer",
        y_label: "variance",
        x_scale,
        y_scale,
        series: vec![
            Series {
                label: None,
                ..series(SeriesStyle::Band { upper: &upper })
            },
            series(SeriesStyle::Line),
            series(SeriesStyle::Dashed),
            series(SeriesStyle::Thin),
            series(SeriesStyle::Points),
        ],
    };
    let path = dir.path().join("panels.png");
    let panels = [
        panel(Scale::Linear, Scale::Log10),
        panel(Scale::Log2, Scale::Log10),
        panel(Scale::Linear, Scale::Linear),
        panel(Scale::Log10, Scale::Log2),
    ];
    plot_panels(&path, "four panels", &panels).unwrap();
    assert_eq!(png_size(&path), (3 * PANEL_SIZE.0, 2 * PANEL_SIZE.1 + 40));

    let short = Panel {
        series: vec![Series {
            y: &y[1..],
            ..series(SeriesStyle::Line)
        }],
        ..panel(Scale::Linear, Scale::Linear)
    };
    let msg = plot_panels(&path, "t", &[short]).unwrap_err().to_string();
    assert!(msg.contains("panels[0].series[0].y"), "{msg}");
    let zeros = vec![0.0; x.len()];
    let invisible = Panel {
        series: vec![Series {
            y: &zeros,
            ..series(SeriesStyle::Line)
        }],
        ..panel(Scale::Linear, Scale::Log10)
    };
    let msg = plot_panels(&path, "t", &[invisible])
        .unwrap_err()
        .to_string();
    assert!(msg.contains("panels[0]"), "{msg}");
    assert!(plot_panels(&path, "t", &[]).is_err());
}
