//! PNG figures of predictive distributions.
//!
//! Pictures that show whether a predictive distribution can be trusted:
//!
//! - [`plot_predictive_1d`]: a 1-D regression, its predictive mean and central
//!   intervals ([`Band`]s) over a grid, with the training data on top;
//! - [`plot_calibration_curve`]: observed against nominal coverage of central
//!   intervals, one line per curve (e.g. before and after recalibration);
//! - [`plot_predicted_vs_actual`]: predicted mean with interval error bars
//!   against the actual value, one point per test example;
//! - [`plot_reliability_diagram`]: a classifier's accuracy against its
//!   confidence per bin, with the ECE (Guo et al. 2017);
//! - [`plot_lines`]: named curves `y(x)` on shared axes (a study's sweep or
//!   a quantity over training epochs).
//! - [`plot_panels`]: a grid of line charts (lines, dashed lines, points,
//!   shaded bands; linear or logarithmic axes), for the studies.
//!
//! The functions take plain slices, never a model, so they draw whatever the
//! predictive and metrics code computed. Inputs are validated first (lengths,
//! emptiness, finiteness, levels) and every failure is an [`Error`], never a
//! panic. Text is drawn with the DejaVu Sans font shipped in `assets/`, so no
//! system font or library is needed.

use std::ops::Range;
use std::path::Path;
use std::sync::OnceLock;

use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::{register_font, FontStyle};

use crate::error::{Error, Result};

/// Size in pixels (width, height) of [`plot_predictive_1d`]'s PNG.
pub const PREDICTIVE_1D_SIZE: (u32, u32) = (800, 500);
/// Size in pixels (width, height) of [`plot_calibration_curve`]'s PNG.
pub const CALIBRATION_CURVE_SIZE: (u32, u32) = (600, 600);
/// Size in pixels (width, height) of [`plot_predicted_vs_actual`]'s PNG.
pub const PREDICTED_VS_ACTUAL_SIZE: (u32, u32) = (600, 600);

/// Size in pixels (width, height) of [`plot_lines`]'s PNG.
pub const LINES_SIZE: (u32, u32) = (800, 500);
/// [`plot_lines`] marks every point of a curve with at most this many points
/// (a sweep); longer curves (e.g. one point per epoch) are lines only.
pub const MAX_MARKED_POINTS: usize = 40;

/// One named curve of [`plot_lines`]: `(x, y)` points, drawn in the given order.
#[derive(Debug, Clone, Copy)]
pub struct Line<'a> {
    /// Legend text.
    pub label: &'a str,
    /// The points.
    pub points: &'a [(f64, f64)],
}

/// A central predictive interval over a grid: at each grid point, the
/// interval `[lower, upper]` that holds a fraction `level` of the predictive
/// mass (e.g. `level = 0.9` for the 5% and 95% quantiles).
#[derive(Debug, Clone, Copy)]
pub struct Band<'a> {
    /// Nominal coverage in (0, 1), e.g. `0.9`; shown as "90% interval".
    pub level: f64,
    /// Lower end of the interval, one value per grid point.
    pub lower: &'a [f64],
    /// Upper end of the interval, one value per grid point.
    pub upper: &'a [f64],
}

/// Draws a 1-D regression figure: shaded central intervals (the widest first,
/// in the lightest shade), the predictive mean as a line, and the training
/// data as small dots. The PNG is [`PREDICTIVE_1D_SIZE`] (800×500), with
/// axes labelled "x" and "y" and the y-range fitted to data and bands.
///
/// `grid_x` need not be sorted; `mean` and each band's `lower`/`upper` are
/// read in the same order as `grid_x`. The training data may be empty (e.g.
/// for a prior predictive); the grid may not. The parent directory of `path`
/// is created when missing.
///
/// # Errors
///
/// - [`Error::Shape`] when `train_x`/`train_y`, or `grid_x` and `mean` or a
///   band's `lower`/`upper`, differ in length;
/// - [`Error::InvalidParameter`] when `grid_x` is empty, a value is not
///   finite, or a band's level is outside (0, 1);
/// - [`Error::Io`] when the parent directory cannot be created;
/// - [`Error::Plot`] when drawing or writing the PNG fails.
pub fn plot_predictive_1d(
    path: &Path,
    title: &str,
    train_x: &[f64],
    train_y: &[f64],
    grid_x: &[f64],
    mean: &[f64],
    bands: &[Band],
) -> Result<()> {
    const CONTEXT: &str = "plot_predictive_1d";
    check_same_len(CONTEXT, ("train_y", train_y), ("train_x", train_x))?;
    check_non_empty("grid_x", grid_x)?;
    check_same_len(CONTEXT, ("mean", mean), ("grid_x", grid_x))?;
    check_finite("train_x", train_x)?;
    check_finite("train_y", train_y)?;
    check_finite("grid_x", grid_x)?;
    check_finite("mean", mean)?;
    for (i, band) in bands.iter().enumerate() {
        check_level(&format!("bands[{i}].level"), band.level)?;
        let lower = format!("bands[{i}].lower");
        let upper = format!("bands[{i}].upper");
        check_same_len(CONTEXT, (&lower, band.lower), ("grid_x", grid_x))?;
        check_same_len(CONTEXT, (&upper, band.upper), ("grid_x", grid_x))?;
        check_finite(&lower, band.lower)?;
        check_finite(&upper, band.upper)?;
    }

    // Draw along increasing x, whatever order the grid came in.
    let mut order: Vec<usize> = (0..grid_x.len()).collect();
    order.sort_by(|&a, &b| grid_x[a].total_cmp(&grid_x[b]));
    // Widest interval first, so the narrower ones are painted over it.
    let mut bands: Vec<&Band> = bands.iter().collect();
    bands.sort_by(|a, b| b.level.total_cmp(&a.level));

    let x_range = padded_range(path, train_x.iter().chain(grid_x), 0.02)?;
    let y_values = train_y
        .iter()
        .chain(mean)
        .chain(bands.iter().flat_map(|b| b.lower.iter().chain(b.upper)));
    let y_range = padded_range(path, y_values, 0.08)?;

    let band_labels: Vec<String> = bands
        .iter()
        .map(|b| format!("{} interval", percent(b.level)))
        .collect();
    let mut labels: Vec<&str> = band_labels.iter().map(String::as_str).collect();
    labels.push("predictive mean");
    if !train_x.is_empty() {
        labels.push("training data");
    }
    let mut ink: Vec<Ink> = train_x
        .iter()
        .zip(train_y)
        .map(|(&x, &y)| [x, y, y])
        .collect();
    ink.extend(grid_x.iter().zip(mean).map(|(&x, &m)| [x, m, m]));
    for band in &bands {
        let (lower, upper) = (band.lower.iter(), band.upper.iter());
        ink.extend(
            grid_x
                .iter()
                .zip(lower.zip(upper))
                .map(|(&x, (&lo, &hi))| [x, lo.min(hi), lo.max(hi)]),
        );
    }

    render(path, PREDICTIVE_1D_SIZE, |root| {
        let mut chart = chart(root, title, x_range, y_range, ("x", "y"))?;
        let n_bands = bands.len();
        for (k, (band, label)) in bands.iter().zip(&band_labels).enumerate() {
            // Lightest shade for the widest band, darker towards the centre.
            let depth = if n_bands > 1 {
                k as f64 / (n_bands - 1) as f64
            } else {
                0.5
            };
            let colour = tint(BAND_BLUE, 0.25 + 0.4 * depth);
            let outline = order
                .iter()
                .map(|&i| (grid_x[i], band.upper[i]))
                .chain(order.iter().rev().map(|&i| (grid_x[i], band.lower[i])))
                .collect::<Vec<_>>();
            chart
                .draw_series(std::iter::once(Polygon::new(outline, colour.filled())))?
                .label(label)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 6), (x + 20, y + 6)], colour.filled())
                });
        }
        chart
            .draw_series(LineSeries::new(
                order.iter().map(|&i| (grid_x[i], mean[i])),
                MEAN_BLUE.stroke_width(2),
            ))?
            .label("predictive mean")
            .legend(|(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], MEAN_BLUE.stroke_width(2))
            });
        if !train_x.is_empty() {
            chart
                .draw_series(
                    train_x
                        .iter()
                        .zip(train_y)
                        .map(|(&x, &y)| Circle::new((x, y), 2, BLACK.filled())),
                )?
                .label("training data")
                .legend(|(x, y)| Circle::new((x + 10, y), 3, BLACK.filled()));
        }
        legend(&mut chart, &labels, &ink)
    })
}

/// Draws a calibration curve: for central intervals, the observed coverage
/// (fraction of targets inside, y) against the nominal level (x), both in
/// [0, 1]. The diagonal, a dashed grey "ideal" line, is where a calibrated
/// model lies; each `(label, points)` curve is one coloured line with markers
/// (e.g. "before recalibration" and "after recalibration"). Points are
/// `(nominal, observed)` pairs, in any order. The PNG is
/// [`CALIBRATION_CURVE_SIZE`] (600×600); the parent directory of `path` is
/// created when missing.
///
/// # Errors
///
/// - [`Error::InvalidParameter`] when `curves` or a curve's points are empty,
///   or a coordinate is not a finite number in [0, 1];
/// - [`Error::Io`] when the parent directory cannot be created;
/// - [`Error::Plot`] when drawing or writing the PNG fails.
pub fn plot_calibration_curve(
    path: &Path,
    title: &str,
    curves: &[(&str, &[(f64, f64)])],
) -> Result<()> {
    check_non_empty("curves", curves)?;
    let mut sorted = Vec::with_capacity(curves.len());
    for (i, &(label, points)) in curves.iter().enumerate() {
        let name = format!("curves[{i}] (\"{label}\")");
        check_non_empty(&name, points)?;
        for (j, &(nominal, observed)) in points.iter().enumerate() {
            let in_unit = |v: f64| (0.0..=1.0).contains(&v);
            if !(in_unit(nominal) && in_unit(observed)) {
                return Err(Error::invalid(
                    format!("{name} point {j}"),
                    format!("({nominal}, {observed})"),
                    "a (nominal, observed) pair of coverages, each in [0, 1]",
                ));
            }
        }
        let mut points = points.to_vec();
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
        sorted.push((label, points));
    }

    render(path, CALIBRATION_CURVE_SIZE, |root| {
        let unit = -0.02..1.02;
        let labels = ("nominal coverage", "observed coverage");
        let mut chart = chart(root, title, unit.clone(), unit, labels)?;
        draw_ideal_diagonal(&mut chart, 0.0..1.0)?;
        for (k, (label, points)) in sorted.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let style = colour.stroke_width(2);
            chart.draw_series(
                points
                    .iter()
                    .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
            )?;
            chart
                .draw_series(LineSeries::new(points.iter().copied(), style))?
                .label(*label)
                .legend(move |(x, y)| {
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], style)
                        + Circle::new((10, 0), 4, colour.filled())
                });
        }
        let labels: Vec<&str> = std::iter::once("ideal")
            .chain(sorted.iter().map(|(label, _)| *label))
            .collect();
        let mut ink = segment_ink(&[(0.0, 0.0), (1.0, 1.0)]);
        for (_, points) in &sorted {
            ink.extend(segment_ink(points));
        }
        legend(&mut chart, &labels, &ink)
    })
}

/// Draws predicted against actual values: for each example, the predictive
/// mean (y) at its actual value (x), with a vertical error bar from `lower`
/// to `upper`, the central interval of nominal coverage `level` (legend
/// "95% interval" for `level = 0.95`). The dashed diagonal is where a perfect
/// predictor lies. Both axes share one range so the diagonal is at 45°. The
/// PNG is [`PREDICTED_VS_ACTUAL_SIZE`] (600×600); the parent directory of
/// `path` is created when missing.
///
/// # Errors
///
/// - [`Error::Shape`] when `mean`, `lower` or `upper` differs in length from
///   `actual`;
/// - [`Error::InvalidParameter`] when `actual` is empty, a value is not
///   finite, or `level` is outside (0, 1);
/// - [`Error::Io`] when the parent directory cannot be created;
/// - [`Error::Plot`] when drawing or writing the PNG fails.
pub fn plot_predicted_vs_actual(
    path: &Path,
    title: &str,
    actual: &[f64],
    mean: &[f64],
    lower: &[f64],
    upper: &[f64],
    level: f64,
) -> Result<()> {
    const CONTEXT: &str = "plot_predicted_vs_actual";
    check_non_empty("actual", actual)?;
    for (name, values) in [("mean", mean), ("lower", lower), ("upper", upper)] {
        check_same_len(CONTEXT, (name, values), ("actual", actual))?;
    }
    for (name, values) in [
        ("actual", actual),
        ("mean", mean),
        ("lower", lower),
        ("upper", upper),
    ] {
        check_finite(name, values)?;
    }
    check_level("level", level)?;

    let all = actual.iter().chain(mean).chain(lower).chain(upper);
    let range = padded_range(path, all, 0.05)?;

    let interval = format!("{} interval", percent(level));
    let mut ink = segment_ink(&[(range.start, range.start), (range.end, range.end)]);
    for i in 0..actual.len() {
        let lo = lower[i].min(upper[i]).min(mean[i]);
        let hi = lower[i].max(upper[i]).max(mean[i]);
        ink.push([actual[i], lo, hi]);
    }

    render(path, PREDICTED_VS_ACTUAL_SIZE, |root| {
        let labels = ("actual", "predicted");
        let mut chart = chart(root, title, range.clone(), range.clone(), labels)?;
        draw_ideal_diagonal(&mut chart, range.clone())?;
        let bar = tint(BAND_BLUE, 0.6).stroke_width(1);
        chart
            .draw_series(
                actual
                    .iter()
                    .zip(lower)
                    .zip(upper)
                    .map(|((&x, &lo), &hi)| PathElement::new(vec![(x, lo), (x, hi)], bar)),
            )?
            .label(&interval)
            .legend(move |(x, y)| {
                EmptyElement::at((x + 10, y))
                    + PathElement::new(vec![(0, -7), (0, 7)], bar)
                    + PathElement::new(vec![(-3, -7), (3, -7)], bar)
                    + PathElement::new(vec![(-3, 7), (3, 7)], bar)
            });
        // End caps, a few pixels wide whatever the data scale.
        let cap = |x: f64, y: f64| {
            EmptyElement::at((x, y)) + PathElement::new(vec![(-3, 0), (3, 0)], bar)
        };
        chart.draw_series(
            actual
                .iter()
                .zip(lower.iter().zip(upper))
                .flat_map(|(&x, (&lo, &hi))| [cap(x, lo), cap(x, hi)]),
        )?;
        chart
            .draw_series(
                actual
                    .iter()
                    .zip(mean)
                    .map(|(&x, &y)| Circle::new((x, y), 3, MEAN_BLUE.filled())),
            )?
            .label("predictive mean")
            .legend(|(x, y)| Circle::new((x + 10, y), 3, MEAN_BLUE.filled()));
        legend(&mut chart, &["ideal", &interval, "predictive mean"], &ink)
    })
}

/// Draws a reliability diagram (Guo, Pleiss, Sun & Weinberger 2017, "On
/// Calibration of Modern Neural Networks", Fig. 1): for each non-empty
/// confidence bin `(lower, upper]`, a blue bar up to the bin's accuracy and a
/// red box spanning the gap between accuracy and mean confidence (drawn over
/// the bar where the bin is underconfident, above it where overconfident), with the
/// dashed diagonal where a calibrated classifier's bars end. The legend
/// carries `ece`, which is the count-weighted mean of the red boxes' heights:
///
/// ```text
/// ECE = Σ_b (n_b / n) |acc_b - conf_b|
/// ```
///
/// `bins` is what [`crate::metrics::reliability_diagram`] returns; empty bins
/// (`count == 0`) are not drawn. The PNG is 600×600; the parent directory of
/// `path` is created when missing.
///
/// # Errors
///
/// - [`Error::InvalidParameter`] when `bins` is empty, a bin's edges are not
///   `0 <= lower < upper <= 1`, its confidence or accuracy is not a finite
///   number in [0, 1], or `ece` is not;
/// - [`Error::Io`] when the parent directory cannot be created;
/// - [`Error::Plot`] when drawing or writing the PNG fails.
pub fn plot_reliability_diagram(
    path: &Path,
    title: &str,
    bins: &[crate::metrics::ReliabilityBin],
    ece: f64,
) -> Result<()> {
    const SIZE: (u32, u32) = (600, 600);
    check_non_empty("bins", bins)?;
    let in_unit = |v: f64| (0.0..=1.0).contains(&v);
    for (i, bin) in bins.iter().enumerate() {
        if !(in_unit(bin.lower) && in_unit(bin.upper) && bin.lower < bin.upper) {
            return Err(Error::invalid(
                format!("bins[{i}] edges"),
                format!("({}, {}]", bin.lower, bin.upper),
                "0 <= lower < upper <= 1",
            ));
        }
        for (name, value) in [("confidence", bin.confidence), ("accuracy", bin.accuracy)] {
            if !in_unit(value) {
                return Err(Error::invalid(
                    format!("bins[{i}].{name}"),
                    value,
                    "a number in [0, 1]",
                ));
            }
        }
    }
    if !in_unit(ece) {
        return Err(Error::invalid("ece", ece, "a number in [0, 1]"));
    }
    let drawn: Vec<_> = bins.iter().filter(|b| b.count > 0).collect();
    let gap_label = format!("gap to confidence (ECE {ece:.3})");
    let labels = ["accuracy", gap_label.as_str(), "ideal"];
    let mut ink = segment_ink(&[(0.0, 0.0), (1.0, 1.0)]);
    for bin in &drawn {
        let top = bin.accuracy.max(bin.confidence);
        ink.extend((0..=4).map(|k| {
            let x = bin.lower + (bin.upper - bin.lower) * f64::from(k) / 4.0;
            [x, 0.0, top]
        }));
    }

    render(path, SIZE, |root| {
        // Headroom above accuracy 1 keeps the legend off the bars.
        let (x, y) = (-0.02..1.02, -0.02..1.25);
        let mut chart = chart(root, title, x, y, ("confidence", "accuracy"))?;
        let bar = tint(BAND_BLUE, 0.75);
        let edge = MEAN_BLUE.stroke_width(1);
        let gap = tint(PALETTE[0], 0.35);
        let gap_edge = PALETTE[0].stroke_width(1);
        let gap_box = |b: &&crate::metrics::ReliabilityBin| {
            let (lo, hi) = (b.accuracy.min(b.confidence), b.accuracy.max(b.confidence));
            [(b.lower, lo), (b.upper, hi)]
        };
        // Gap fills first, accuracy bars over them, gap outlines last: an
        // overconfident bin shows its gap above the bar, an underconfident
        // one as a red outline inside its (taller) bar.
        chart
            .draw_series(
                drawn
                    .iter()
                    .map(|b| Rectangle::new(gap_box(b), gap.filled())),
            )?
            .label(labels[1])
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], gap.filled()));
        chart
            .draw_series(drawn.iter().flat_map(|b| {
                let corners = [(b.lower, 0.0), (b.upper, b.accuracy)];
                [
                    Rectangle::new(corners, bar.filled()),
                    Rectangle::new(corners, edge),
                ]
            }))?
            .label(labels[0])
            .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 20, y + 6)], bar.filled()));
        chart.draw_series(drawn.iter().map(|b| Rectangle::new(gap_box(b), gap_edge)))?;
        draw_ideal_diagonal(&mut chart, 0.0..1.0)?;
        legend(&mut chart, &labels, &ink)
    })
}

/// Draws named curves `y(x)` on shared axes, one colour each, with markers
/// on curves of at most [`MAX_MARKED_POINTS`] points, axis labels
/// `(x_label, y_label)` and a legend in the emptiest corner. The PNG is
/// [`LINES_SIZE`] (800×500); the parent directory of `path` is created when
/// missing.
///
/// # Errors
///
/// - [`Error::InvalidParameter`] when `lines` or a line's points are empty,
///   or a coordinate is not finite;
/// - [`Error::Io`] when the parent directory cannot be created;
/// - [`Error::Plot`] when drawing or writing the PNG fails.
pub fn plot_lines(
    path: &Path,
    title: &str,
    (x_label, y_label): (&str, &str),
    lines: &[Line],
) -> Result<()> {
    check_non_empty("lines", lines)?;
    for (i, line) in lines.iter().enumerate() {
        let name = format!("lines[{i}] (\"{}\")", line.label);
        check_non_empty(&name, line.points)?;
        if let Some(j) = line
            .points
            .iter()
            .position(|(x, y)| !(x.is_finite() && y.is_finite()))
        {
            return Err(Error::invalid(
                format!("{name} point {j}"),
                format!("{:?}", line.points[j]),
                "finite coordinates",
            ));
        }
    }
    let points = || lines.iter().flat_map(|l| l.points.iter());
    let xs: Vec<f64> = points().map(|p| p.0).collect();
    let ys: Vec<f64> = points().map(|p| p.1).collect();
    let (x_range, y_range) = (
        padded_range(path, xs.iter(), 0.03)?,
        padded_range(path, ys.iter(), 0.08)?,
    );
    let labels: Vec<&str> = lines.iter().map(|l| l.label).collect();
    let ink: Vec<Ink> = lines.iter().flat_map(|l| segment_ink(l.points)).collect();

    render(path, LINES_SIZE, |root| {
        let mut chart = chart(root, title, x_range, y_range, (x_label, y_label))?;
        for (k, line) in lines.iter().enumerate() {
            let colour = PALETTE[k % PALETTE.len()];
            let style = colour.stroke_width(2);
            let marked = line.points.len() <= MAX_MARKED_POINTS;
            if marked {
                chart.draw_series(
                    line.points
                        .iter()
                        .map(|&(x, y)| Circle::new((x, y), 4, colour.filled())),
                )?;
            }
            chart
                .draw_series(LineSeries::new(line.points.iter().copied(), style))?
                .label(line.label)
                .legend(move |(x, y)| {
                    let marker = Circle::new((10, 0), if marked { 4 } else { 0 }, colour.filled());
                    EmptyElement::at((x, y))
                        + PathElement::new(vec![(0, 0), (20, 0)], style)
                        + marker
                });
        }
        legend(&mut chart, &labels, &ink)
    })
}

/// The shipped font, registered with plotters as "sans-serif" on first use.
static FONT: &[u8] = include_bytes!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/assets/DejaVuSans.ttf"
));

/// Light fill for intervals (matplotlib's default blue) and a dark line for means.
const BAND_BLUE: RGBColor = RGBColor(31, 119, 180);
const MEAN_BLUE: RGBColor = RGBColor(8, 48, 107);
const IDEAL_GREY: RGBColor = RGBColor(120, 120, 120);
/// Colours for successive curves: red, blue, green, orange, purple, brown,
/// pink, grey (matplotlib's tab10 order after the first two).
const PALETTE: [RGBColor; 8] = [
    RGBColor(214, 39, 40),
    RGBColor(31, 119, 180),
    RGBColor(44, 160, 44),
    RGBColor(255, 127, 14),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

type Chart<'a, 'b> =
    ChartContext<'a, BitMapBackend<'b>, Cartesian2d<RangedCoordf64, RangedCoordf64>>;
type Root<'b> = DrawingArea<BitMapBackend<'b>, Shift>;
/// Whatever plotters reports while drawing; turned into [`Error::Plot`] by [`render`].
type DrawResult<T> = std::result::Result<T, Box<dyn std::error::Error>>;

/// Registers the shipped font once, creates the parent directory, draws on a
/// white `size` canvas with `draw`, and writes the PNG.
fn render(path: &Path, size: (u32, u32), draw: impl FnOnce(&Root) -> DrawResult<()>) -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let plot_error = |message: String| Error::Plot {
        path: path.to_path_buf(),
        message,
    };
    if !*REGISTERED.get_or_init(|| register_font("sans-serif", FontStyle::Normal, FONT).is_ok()) {
        return Err(plot_error(
            "the shipped font assets/DejaVuSans.ttf could not be parsed".into(),
        ));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.to_path_buf(),
            source,
        })?;
    }
    let root = BitMapBackend::new(path, size).into_drawing_area();
    root.fill(&WHITE)
        .map_err(Into::into)
        .and_then(|()| draw(&root))
        .and_then(|()| root.present().map_err(Into::into))
        .map_err(|e| plot_error(e.to_string()))
}

/// The shared chart setup: title, margins, axis ranges, a light grid, and
/// axis labels `(x, y)`, both axes linear.
fn chart<'a, 'b>(
    root: &'a Root<'b>,
    title: &str,
    x: Range<f64>,
    y: Range<f64>,
    labels: (&str, &str),
) -> DrawResult<Chart<'a, 'b>> {
    scaled_chart(root, title, (x, y), labels, (Scale::Linear, Scale::Linear))
}

/// [`chart`] with a scale per axis: a logarithmic axis takes its range and
/// values as logarithms and labels each tick with the number it stands for.
fn scaled_chart<'a, 'b>(
    root: &'a Root<'b>,
    title: &str,
    (x, y): (Range<f64>, Range<f64>),
    (x_label, y_label): (&str, &str),
    (x_scale, y_scale): (Scale, Scale),
) -> DrawResult<Chart<'a, 'b>> {
    let (x_decimals, y_decimals) = (tick_decimals(&x), tick_decimals(&y));
    let x_tick = move |v: &f64| x_scale.tick_label(*v, x_decimals);
    let y_tick = move |v: &f64| y_scale.tick_label(*v, y_decimals);
    let tick_font: TextStyle = ("sans-serif", 14).into_font().into();
    // Room for the widest y tick label (none is wider than an end of the
    // range at full precision) beside the rotated axis label.
    let mut y_label_width = 0;
    for end in [y.start, y.end] {
        let text = match y_scale {
            Scale::Linear => format!("{end:.y_decimals$}"),
            Scale::Log10 | Scale::Log2 => y_scale.tick_label(end, y_decimals),
        };
        y_label_width = y_label_width.max(root.estimate_text_size(&text, &tick_font)?.0);
    }
    let mut builder = ChartBuilder::on(root);
    if !title.is_empty() {
        builder.caption(title, ("sans-serif", 22));
    }
    let mut chart = builder
        .margin(15)
        .margin_right(25)
        .x_label_area_size(45)
        .y_label_area_size(y_label_width + 40)
        .build_cartesian_2d(x, y)?;
    chart
        .configure_mesh()
        .x_label_formatter(&x_tick)
        .y_label_formatter(&y_tick)
        .light_line_style(TRANSPARENT)
        .bold_line_style(RGBColor(225, 225, 225))
        .x_desc(x_label)
        .y_desc(y_label)
        .axis_desc_style(("sans-serif", 18))
        .label_style(tick_font)
        .draw()?;
    Ok(chart)
}

/// An axis scale of [`plot_panels`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Values as they are.
    Linear,
    /// `log10(value)`; ticks read `1e-20`, `1`, `1e20`, or `0.25`, `40`.
    Log10,
    /// `log2(value)`; ticks at powers of two read `64`, `128`, ... .
    Log2,
}

impl Scale {
    /// Where `value` lies on this axis; `None` when a logarithmic axis
    /// cannot show it (zero, negative, non-finite).
    fn position(self, value: f64) -> Option<f64> {
        let p = match self {
            Scale::Linear => value,
            Scale::Log10 if value > 0.0 => value.log10(),
            Scale::Log2 if value > 0.0 => value.log2(),
            Scale::Log10 | Scale::Log2 => return None,
        };
        p.is_finite().then_some(p)
    }

    /// The label of the tick at axis position `p`.
    fn tick_label(self, p: f64, decimals: usize) -> String {
        let base = match self {
            Scale::Linear => return format_tick(p, decimals),
            Scale::Log10 => 10f64,
            Scale::Log2 => 2f64,
        };
        let value = base.powf(p);
        let whole = (p - p.round()).abs() < 1e-9;
        if self == Scale::Log10 && whole && p.abs() >= 3.0 {
            format!("1e{}", p.round())
        } else if !value.is_finite() || value.abs() >= 1e6 || (value != 0.0 && value.abs() < 1e-4) {
            format!("{value:.1e}")
        } else {
            // Three significant digits.
            let digits = (2.0 - value.abs().log10().floor()).clamp(0.0, 8.0) as usize;
            format_tick(value, digits)
        }
    }
}

/// How a [`Series`] is drawn.
#[derive(Debug, Clone, Copy)]
pub enum SeriesStyle<'a> {
    /// A solid line, 2 px.
    Line,
    /// A dashed line, 2 px.
    Dashed,
    /// A thin solid line, 1 px (e.g. one function draw among many).
    Thin,
    /// A filled circle per point, with a thin line through them.
    Points,
    /// A light band between `y` (lower) and `upper`.
    Band {
        /// Upper edge, one value per `x`.
        upper: &'a [f64],
    },
}

/// One curve of a [`Panel`]: `(x[i], y[i])` pairs in the given style.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// Legend entry; `None` keeps the series out of the legend.
    pub label: Option<&'a str>,
    /// Index into the palette (red, blue, green, orange, purple, brown,
    /// pink, grey; wraps around).
    pub colour: usize,
    /// Line, dashes, points or band.
    pub style: SeriesStyle<'a>,
    /// x values.
    pub x: &'a [f64],
    /// y values (the lower edge of a band).
    pub y: &'a [f64],
}

/// One chart of [`plot_panels`].
#[derive(Debug, Clone)]
pub struct Panel<'a> {
    /// Title above the chart.
    pub title: &'a str,
    /// x-axis label.
    pub x_label: &'a str,
    /// y-axis label.
    pub y_label: &'a str,
    /// x-axis scale.
    pub x_scale: Scale,
    /// y-axis scale.
    pub y_scale: Scale,
    /// The curves, drawn in order (bands first looks best).
    pub series: Vec<Series<'a>>,
}

/// Size in pixels (width, height) of one panel of [`plot_panels`].
pub const PANEL_SIZE: (u32, u32) = (560, 440);

/// Draws `panels` in a grid of up to three columns under one `title`, each
/// with its own axes, scales and legend (in its emptiest corner). On a
/// logarithmic axis, points it cannot show (zero, negative) are left out.
/// The PNG is `PANEL_SIZE` per panel plus a title strip; the parent
/// directory of `path` is created when missing.
///
/// # Errors
///
/// - [`Error::InvalidParameter`] when `panels` is empty, a panel has no
///   series, or a panel has no point it can show;
/// - [`Error::Shape`] when a series' `x`, `y` (or band `upper`) differ in length;
/// - [`Error::Io`] / [`Error::Plot`] when the directory or PNG cannot be written.
pub fn plot_panels(path: &Path, title: &str, panels: &[Panel]) -> Result<()> {
    const CONTEXT: &str = "plot_panels";
    const TITLE_HEIGHT: u32 = 40;
    check_non_empty("panels", panels)?;
    // Every series as visible points in axis positions: (x, y_low, y_high).
    let mut positioned: Vec<Vec<Vec<Ink>>> = Vec::with_capacity(panels.len());
    let mut ranges = Vec::with_capacity(panels.len());
    for (p, panel) in panels.iter().enumerate() {
        check_non_empty(&format!("panels[{p}].series"), &panel.series)?;
        let mut series_ink = Vec::with_capacity(panel.series.len());
        for (s, series) in panel.series.iter().enumerate() {
            let name = format!("panels[{p}].series[{s}]");
            check_same_len(
                CONTEXT,
                (&format!("{name}.y"), series.y),
                (&format!("{name}.x"), series.x),
            )?;
            let upper = match series.style {
                SeriesStyle::Band { upper } => {
                    check_same_len(
                        CONTEXT,
                        (&format!("{name}.upper"), upper),
                        (&format!("{name}.x"), series.x),
                    )?;
                    upper
                }
                _ => series.y,
            };
            let ink: Vec<Ink> = (0..series.x.len())
                .filter_map(|i| {
                    let x = panel.x_scale.position(series.x[i])?;
                    let lo = panel.y_scale.position(series.y[i])?;
                    let hi = panel.y_scale.position(upper[i])?;
                    Some([x, lo.min(hi), lo.max(hi)])
                })
                .collect();
            series_ink.push(ink);
        }
        let all: Vec<&Ink> = series_ink.iter().flatten().collect();
        if all.is_empty() {
            return Err(Error::invalid(
                format!("panels[{p}]"),
                "no point",
                "at least one finite point (positive on a logarithmic axis)",
            ));
        }
        let x_range = padded_range(path, all.iter().map(|i| &i[0]), 0.02)?;
        let y_range = padded_range(path, all.iter().flat_map(|i| [&i[1], &i[2]]), 0.06)?;
        ranges.push((x_range, y_range));
        positioned.push(series_ink);
    }

    let columns = panels.len().min(3);
    let rows = panels.len().div_ceil(columns);
    let size = (
        PANEL_SIZE.0 * columns as u32,
        PANEL_SIZE.1 * rows as u32 + TITLE_HEIGHT,
    );
    render(path, size, |root| {
        let (top, body) = root.split_vertically(TITLE_HEIGHT);
        top.titled(title, ("sans-serif", 22))?;
        let areas = body.split_evenly((rows, columns));
        for (((panel, inks), (x_range, y_range)), area) in
            panels.iter().zip(&positioned).zip(&ranges).zip(&areas)
        {
            let mut chart = scaled_chart(
                area,
                panel.title,
                (x_range.clone(), y_range.clone()),
                (panel.x_label, panel.y_label),
                (panel.x_scale, panel.y_scale),
            )?;
            let mut labels = Vec::new();
            for (series, ink) in panel.series.iter().zip(inks) {
                let colour = PALETTE[series.colour % PALETTE.len()];
                let line = |ink: &[Ink]| ink.iter().map(|i| (i[0], i[1])).collect::<Vec<_>>();
                let label = series.label;
                match series.style {
                    SeriesStyle::Band { .. } => {
                        let fill = tint(colour, 0.25);
                        let outline: Vec<(f64, f64)> = ink
                            .iter()
                            .map(|i| (i[0], i[2]))
                            .chain(ink.iter().rev().map(|i| (i[0], i[1])))
                            .collect();
                        let anno = chart
                            .draw_series(std::iter::once(Polygon::new(outline, fill.filled())))?;
                        if let Some(label) = label {
                            anno.label(label).legend(move |(x, y)| {
                                Rectangle::new([(x, y - 6), (x + 20, y + 6)], fill.filled())
                            });
                        }
                    }
                    SeriesStyle::Line | SeriesStyle::Thin => {
                        let width = if matches!(series.style, SeriesStyle::Line) {
                            2
                        } else {
                            1
                        };
                        let style = colour.stroke_width(width);
                        let anno = chart.draw_series(LineSeries::new(line(ink), style))?;
                        if let Some(label) = label {
                            anno.label(label).legend(move |(x, y)| {
                                PathElement::new(vec![(x, y), (x + 20, y)], style)
                            });
                        }
                    }
                    SeriesStyle::Dashed => {
                        let style = colour.stroke_width(2);
                        let anno =
                            chart.draw_series(DashedLineSeries::new(line(ink), 6, 4, style))?;
                        if let Some(label) = label {
                            anno.label(label).legend(move |(x, y)| {
                                EmptyElement::at((x, y))
                                    + PathElement::new(vec![(0, 0), (8, 0)], style)
                                    + PathElement::new(vec![(12, 0), (20, 0)], style)
                            });
                        }
                    }
                    SeriesStyle::Points => {
                        chart.draw_series(LineSeries::new(line(ink), colour.stroke_width(1)))?;
                        let anno = chart.draw_series(
                            ink.iter()
                                .map(|i| Circle::new((i[0], i[1]), 4, colour.filled())),
                        )?;
                        if let Some(label) = label {
                            anno.label(label)
                                .legend(move |(x, y)| Circle::new((x + 10, y), 4, colour.filled()));
                        }
                    }
                }
                labels.extend(label);
            }
            if !labels.is_empty() {
                let ink: Vec<Ink> = inks.iter().flatten().copied().collect();
                legend(&mut chart, &labels, &ink)?;
            }
        }
        Ok(())
    })
}

/// What a series puts on the plot at one x, as `[x, y_low, y_high]`: a
/// point has `y_low == y_high`, a band or error bar spans its interval.
type Ink = [f64; 3];

/// The legend of the series labelled `labels`, on a white box with a grey
/// border, in whichever corner of the plot its box covers the least `ink`.
fn legend<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, labels: &[&str], ink: &[Ink]) -> DrawResult<()> {
    // plotters' legend layout: a 30 px symbol column, 10 px margins, 5 px from the edge.
    const SYMBOL: i32 = 30;
    const MARGIN: i32 = 10;
    const EDGE: i32 = 5;
    let font = ("sans-serif", 15).into_font();
    let mut text = MultiLineText::<_, &str>::new((0, 0), font.clone());
    for &label in labels {
        text.push_line(label);
    }
    let (text_w, text_h) = text.estimate_dimension()?;
    let (area_w, area_h) = chart.plotting_area().dim_in_pixel();
    // The legend box as fractions of the plot, measured from the corner.
    let box_w = f64::from(EDGE + SYMBOL + 2 * MARGIN + text_w) / f64::from(area_w.max(1));
    let box_h = f64::from(EDGE + 2 * MARGIN + text_h) / f64::from(area_h.max(1));

    let (x, y) = (chart.x_range(), chart.y_range());
    let (x_span, y_span) = (x.end - x.start, y.end - y.start);
    let covered = |left: bool, top: bool| {
        let (x_lo, x_hi) = if left {
            (x.start, x.start + box_w * x_span)
        } else {
            (x.end - box_w * x_span, x.end)
        };
        let (y_lo, y_hi) = if top {
            (y.end - box_h * y_span, y.end)
        } else {
            (y.start, y.start + box_h * y_span)
        };
        ink.iter()
            .filter(|&&[ix, lo, hi]| ix >= x_lo && ix <= x_hi && hi >= y_lo && lo <= y_hi)
            .count()
    };
    let corners = [
        (SeriesLabelPosition::UpperLeft, covered(true, true)),
        (SeriesLabelPosition::UpperRight, covered(false, true)),
        (SeriesLabelPosition::LowerLeft, covered(true, false)),
        (SeriesLabelPosition::LowerRight, covered(false, false)),
    ];
    // The first corner with the least ink wins ties, so an empty plot gets UpperLeft.
    let position = corners
        .into_iter()
        .reduce(|best, next| if next.1 < best.1 { next } else { best })
        .map_or(SeriesLabelPosition::UpperLeft, |(position, _)| position);

    chart
        .configure_series_labels()
        .position(position)
        .margin(MARGIN)
        .legend_area_size(SYMBOL)
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(160, 160, 160))
        .label_font(font)
        .draw()?;
    Ok(())
}

/// Ink along the polyline through `points`, sampled densely enough that a
/// legend box crossed by a segment sees it.
fn segment_ink(points: &[(f64, f64)]) -> Vec<Ink> {
    const STEPS: usize = 50;
    points
        .windows(2)
        .flat_map(|w| {
            let ((x0, y0), (x1, y1)) = (w[0], w[1]);
            (0..=STEPS).map(move |k| {
                let t = k as f64 / STEPS as f64;
                let (x, y) = (x0 + t * (x1 - x0), y0 + t * (y1 - y0));
                [x, y, y]
            })
        })
        .chain(points.iter().map(|&(x, y)| [x, y, y]))
        .collect()
}

/// The dashed grey y = x line over `range`, labelled "ideal".
fn draw_ideal_diagonal<'a, 'b: 'a>(chart: &mut Chart<'a, 'b>, range: Range<f64>) -> DrawResult<()> {
    let style = IDEAL_GREY.stroke_width(2);
    let ends = [(range.start, range.start), (range.end, range.end)];
    chart
        .draw_series(DashedLineSeries::new(ends, 8, 5, style))?
        .label("ideal")
        .legend(move |(x, y)| {
            EmptyElement::at((x, y))
                + PathElement::new(vec![(0, 0), (8, 0)], style)
                + PathElement::new(vec![(12, 0), (20, 0)], style)
        });
    Ok(())
}

/// Decimals enough for any tick plotters puts on `range`: its ticks are
/// `{1, 2, 5} × 10^k` apart and at most 10, so the step exceeds span / 10.
fn tick_decimals(range: &Range<f64>) -> usize {
    let step = (range.end - range.start) / 10.0;
    (1.0 - step.log10().floor()).clamp(0.0, 12.0) as usize
}

/// A tick label without trailing zeros: 350.0 -> "350", 0.50 -> "0.5".
fn format_tick(value: f64, decimals: usize) -> String {
    let text = format!("{value:.decimals$}");
    let text = if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        &text
    };
    if text == "-0" {
        "0".into()
    } else {
        text.into()
    }
}

/// `colour` blended with white: `weight = 1` is the colour, `0` is white.
fn tint(colour: RGBColor, weight: f64) -> RGBColor {
    let blend = |c: u8| (255.0 - weight * (255.0 - f64::from(c))).round() as u8;
    RGBColor(blend(colour.0), blend(colour.1), blend(colour.2))
}

/// A coverage level as a percentage for legends: 0.9 -> "90%", 0.683 -> "68.3%".
fn percent(level: f64) -> String {
    format!("{}%", (level * 1000.0).round() / 10.0)
}

/// `[min, max]` of `values` widened by `pad` of its span on each side (or by
/// a small amount when all values are equal). `values` must be finite.
fn padded_range<'v>(
    path: &Path,
    values: impl Iterator<Item = &'v f64>,
    pad: f64,
) -> Result<Range<f64>> {
    let (lo, hi) = values.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
        (lo.min(v), hi.max(v))
    });
    let span = hi - lo;
    let half = if span > 0.0 {
        pad * span
    } else {
        0.1 * lo.abs().max(1.0)
    };
    let range = (lo - half)..(hi + half);
    if range.start.is_finite() && range.end.is_finite() {
        Ok(range)
    } else {
        Err(Error::Plot {
            path: path.to_path_buf(),
            message: format!("the values span [{lo}, {hi}], too wide an axis range to draw"),
        })
    }
}

fn check_non_empty<T>(name: &str, values: &[T]) -> Result<()> {
    if values.is_empty() {
        Err(Error::invalid(name, "an empty slice", "at least one value"))
    } else {
        Ok(())
    }
}

fn check_same_len(
    context: &str,
    (name, values): (&str, &[f64]),
    (ref_name, reference): (&str, &[f64]),
) -> Result<()> {
    if values.len() == reference.len() {
        Ok(())
    } else {
        Err(Error::Shape {
            context: context.into(),
            message: format!(
                "`{name}` has {} values but `{ref_name}` has {}; they must have the same length",
                values.len(),
                reference.len()
            ),
        })
    }
}

fn check_finite(name: &str, values: &[f64]) -> Result<()> {
    match values.iter().position(|v| !v.is_finite()) {
        Some(i) => Err(Error::invalid(
            format!("{name}[{i}]"),
            values[i],
            "a finite number",
        )),
        None => Ok(()),
    }
}

fn check_level(name: &str, level: f64) -> Result<()> {
    if level > 0.0 && level < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(
            name,
            level,
            "a coverage level in (0, 1), e.g. 0.9 for a 90% interval",
        ))
    }
}
