//! The infinite-width limit, measured: finite networks' prior covariance
//! approaching the NNGP kernel, and exact GP regression with that kernel as
//! a baseline next to BBB (Neal 1996; Lee et al. 2018; Matthews et al. 2018).
//!
//! 1. **Convergence.** `P` inputs on a circle of radius `√d` (`d = 2`, so the
//!    angle between two inputs sweeps 0…π) go through networks of sizes
//!    `[d, n × depth, n]` drawn from the prior. The `n` output units of one
//!    network are `n` prior function draws (exchangeable, independent given
//!    the layer below), so with `R` networks
//!
//!    ```text
//!    K̂(x_i, x_j) = (1 / (R n)) Σ_r Σ_k f_rk(x_i) f_rk(x_j)
//!    err(n)      = max_ij |K̂_ij − K_ij| / √(K_ii K_jj)      (K: the NNGP kernel, same prior)
//!    ```
//!
//!    Both the Monte Carlo error of `R n` draws and the finite-width
//!    fluctuation of the hidden layers' kernel are `O(n^{-1/2})`, so the
//!    least-squares slope of `ln err` on `ln n` should be near −1/2.
//!
//! 2. **Baseline.** On one train/test split, exact GP regression
//!    ([`ExactGp`]) with the NNGP kernel of the BBB network's own architecture
//!    and prior (`[d, hidden, 1]`, ReLU), the noise variance chosen by the
//!    marginal likelihood of the training rows, against a BBB trained with
//!    [`BayesRegressor`]. Both standardize on the training rows and are
//!    scored on the original scale as [`crate::uci`] scores: test RMSE of the
//!    predictive mean, average test log predictive density.

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor};
use nalgebra::DMatrix;
use serde::{Deserialize, Serialize};

use crate::data::{Dataset, SplitDir, Standardizer};
use crate::figures::{plot_panels, Panel, Scale, Series, SeriesStyle};
use crate::layers::Activation;
use crate::metrics::rmse;
use crate::model::BayesMlpConfig;
use crate::noise::NoiseSource;
use crate::predictive::GaussianMixture;
use crate::prior::Prior;
use crate::regressor::BayesRegressor;
use crate::studies::gp::ExactGp;
use crate::studies::nngp_kernel::NngpKernel;
use crate::studies::random_mlp::{InitShape, Norm, RandomMlp};
use crate::train::TrainConfig;
use crate::uci::mean_log_likelihood;
use crate::{Error, Result};

/// Settings of the study.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `prior` | he | prior of every network and of the kernel | zero-mean |
/// | `activations` | relu, erf | kernels compared | relu, erf |
/// | `depth` | 2 | hidden layers of the convergence networks | ≥ 1 |
/// | `widths` | 64, 128, …, 4096 | hidden (and output) units | ≥ 1 each, ≥ 2 widths |
/// | `networks` | 16 | networks per width `R` | ≥ 1 |
/// | `points` | 12 | inputs on the circle `P` | ≥ 2 |
/// | `hidden` | 50 | BBB hidden units (the published UCI 50) | ≥ 1 |
/// | `epochs` | 400 | BBB epochs (as `bnn uci`) | ≥ 1 |
/// | `samples` | 100 | BBB predictive samples | ≥ 1 |
/// | `seed` | 0 | networks, BBB | any |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NngpConfig {
    /// Prior (= initializer) of every network, and of the kernel.
    pub prior: Prior,
    /// Activations whose convergence is measured.
    pub activations: Vec<Activation>,
    /// Hidden layers of the convergence networks.
    pub depth: usize,
    /// Widths of the convergence networks.
    pub widths: Vec<usize>,
    /// Networks drawn per width.
    pub networks: usize,
    /// Inputs on the circle.
    pub points: usize,
    /// Hidden units of the BBB (and of the GP's kernel).
    pub hidden: usize,
    /// BBB training epochs.
    pub epochs: usize,
    /// BBB predictive samples.
    pub samples: usize,
    /// Seed of the networks and of BBB.
    pub seed: u64,
}

impl Default for NngpConfig {
    fn default() -> Self {
        Self {
            prior: Prior::He,
            activations: vec![Activation::Relu, Activation::Erf],
            depth: 2,
            widths: vec![64, 128, 256, 512, 1024, 2048, 4096],
            networks: 16,
            points: 12,
            hidden: 50,
            epochs: 400,
            samples: 100,
            seed: 0,
        }
    }
}

impl NngpConfig {
    /// Checks every field; errors name the CLI flag.
    pub fn validate(&self) -> Result<()> {
        let at_least = |name: &str, v: usize, min: usize| {
            if v < min {
                Err(Error::invalid(name, v, format!("at least {min}")))
            } else {
                Ok(())
            }
        };
        at_least("depth", self.depth, 1)?;
        at_least("networks", self.networks, 1)?;
        at_least("points", self.points, 2)?;
        at_least("hidden", self.hidden, 1)?;
        at_least("epochs", self.epochs, 1)?;
        at_least("samples", self.samples, 1)?;
        if self.widths.len() < 2 || self.widths.contains(&0) {
            return Err(Error::invalid(
                "widths",
                format!("{:?}", self.widths),
                "at least two widths, each >= 1 (the slope needs two)",
            ));
        }
        if self.activations.is_empty() {
            return Err(Error::invalid(
                "activations",
                "an empty list",
                "relu and/or erf",
            ));
        }
        Ok(())
    }
}

/// One activation's finite-width kernels against its NNGP kernel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelGap {
    /// The activation.
    pub activation: Activation,
    /// `err(n)` per width (see the module formula).
    pub max_rel_err: Vec<f64>,
    /// Least-squares slope of `ln err` on `ln width`.
    pub slope: f64,
    /// Angles `θ_j` (radians) between input 0 and input `j`.
    pub angles: Vec<f64>,
    /// `K(x_0, x_j)` of the NNGP kernel, per width (the kernel depends on
    /// the width only through the prior's fan-dependent bias variance).
    pub kernel_row: Vec<Vec<f64>>,
    /// `K̂(x_0, x_j)` of the finite networks, per width.
    pub empirical_row: Vec<Vec<f64>>,
}

/// GP-with-NNGP-kernel and BBB scores on one split (original target units).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// GP test RMSE.
    pub gp_test_rmse: f64,
    /// GP average test log-likelihood.
    pub gp_test_ll: f64,
    /// The GP's noise standard deviation chosen by the marginal likelihood.
    pub gp_noise_std: f64,
    /// Its log marginal likelihood (standardized targets).
    pub gp_log_marginal_likelihood: f64,
    /// BBB test RMSE.
    pub bnn_test_rmse: f64,
    /// BBB average test log-likelihood.
    pub bnn_test_ll: f64,
    /// Training rows.
    pub n_train: usize,
    /// Test rows.
    pub n_test: usize,
}

/// What the study measured (the fields of `bnn study nngp --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NngpResult {
    /// The widths.
    pub widths: Vec<usize>,
    /// Per width, the largest `err(n)` over all activations' kernels.
    pub max_rel_err: Vec<f64>,
    /// Least-squares slope of `ln max_rel_err` on `ln width`.
    pub slope: f64,
    /// GP test RMSE.
    pub gp_test_rmse: f64,
    /// GP average test log-likelihood.
    pub gp_test_ll: f64,
    /// BBB test RMSE.
    pub bnn_test_rmse: f64,
    /// BBB average test log-likelihood.
    pub bnn_test_ll: f64,
    /// The prior as the CLI spells it.
    pub prior: String,
    /// Hidden layers of the convergence networks.
    pub depth: usize,
    /// Networks drawn per width.
    pub networks: usize,
    /// Dataset name and split of the baseline.
    pub dataset: String,
    /// Split index of the baseline.
    pub split: usize,
    /// The GP and BBB details.
    pub baseline: Baseline,
    /// Per-activation convergence.
    pub kernels: Vec<KernelGap>,
}

/// Least-squares slope of `ln y` on `ln x`.
pub fn log_log_slope(x: &[f64], y: &[f64]) -> f64 {
    let lx: Vec<f64> = x.iter().map(|v| v.ln()).collect();
    let ly: Vec<f64> = y.iter().map(|v| v.ln()).collect();
    let n = lx.len() as f64;
    let (mx, my) = (lx.iter().sum::<f64>() / n, ly.iter().sum::<f64>() / n);
    let cov: f64 = lx.iter().zip(&ly).map(|(a, b)| (a - mx) * (b - my)).sum();
    let var: f64 = lx.iter().map(|a| (a - mx).powi(2)).sum();
    cov / var
}

/// Part 1: the finite-width kernels of every activation against the NNGP
/// kernel. The networks of one width and index serve every activation.
pub fn kernel_convergence(config: &NngpConfig, device: &Device) -> Result<Vec<KernelGap>> {
    config.validate()?;
    const INPUT_DIM: usize = 2;
    let p = config.points;
    let angles: Vec<f64> = (0..p)
        .map(|j| std::f64::consts::PI * j as f64 / (p - 1) as f64)
        .collect();
    let radius = (INPUT_DIM as f64).sqrt();
    let x: Vec<f64> = angles
        .iter()
        .flat_map(|t| [radius * t.cos(), radius * t.sin()])
        .collect();
    let xs = Tensor::from_vec(x.clone(), (p, INPUT_DIM), device)?;

    let mut gaps: Vec<KernelGap> = config
        .activations
        .iter()
        .map(|&activation| KernelGap {
            activation,
            max_rel_err: Vec::new(),
            slope: f64::NAN,
            angles: angles.clone(),
            kernel_row: Vec::new(),
            empirical_row: Vec::new(),
        })
        .collect();
    for (w, &n) in config.widths.iter().enumerate() {
        let mut sizes = vec![INPUT_DIM];
        sizes.extend(std::iter::repeat_n(n, config.depth + 1));
        let mut sums: Vec<Tensor> = Vec::with_capacity(gaps.len());
        let noise = NoiseSource::new(config.seed.wrapping_add(w as u64));
        for r in 0..config.networks {
            let net = RandomMlp::draw(&sizes, &config.prior, InitShape::Gaussian, &noise, device)?;
            for (a, gap) in gaps.iter().enumerate() {
                let pre = net.forward(&xs, gap.activation, Norm::None)?;
                let f = pre.last().ok_or_else(|| Error::Shape {
                    context: "nngp study".into(),
                    message: "the network has no layers".into(),
                })?;
                let outer = f.matmul(&f.t()?)?;
                if r == 0 {
                    sums.push(outer);
                } else {
                    sums[a] = (&sums[a] + outer)?;
                }
            }
        }
        for (gap, sum) in gaps.iter_mut().zip(&sums) {
            let k_hat = (sum / (config.networks * n) as f64)?
                .to_dtype(DType::F64)?
                .to_vec2::<f64>()?;
            let k = NngpKernel::new(&config.prior, gap.activation, &sizes)?.matrix(&x, &x)?;
            let mut err: f64 = 0.0;
            for i in 0..p {
                for j in 0..p {
                    let scale = (k[(i, i)] * k[(j, j)]).sqrt();
                    err = err.max((k_hat[i][j] - k[(i, j)]).abs() / scale);
                }
            }
            gap.max_rel_err.push(err);
            gap.kernel_row.push(k.row(0).iter().copied().collect());
            gap.empirical_row.push(k_hat[0].clone());
        }
    }
    let widths: Vec<f64> = config.widths.iter().map(|&n| n as f64).collect();
    for gap in &mut gaps {
        gap.slope = log_log_slope(&widths, &gap.max_rel_err);
    }
    Ok(gaps)
}

/// The GP's noise-variance grid (standardized targets): 1e-4 … 1, 41 points
/// evenly spaced in log.
fn noise_grid() -> Vec<f64> {
    (0..=40)
        .map(|k| 10f64.powf(-4.0 + 0.1 * k as f64))
        .collect()
}

/// Part 2: GP regression with the NNGP kernel of BBB's own architecture and
/// prior, and BBB itself, trained on `train` and scored on `test`.
pub fn baseline(
    train: &Dataset,
    test: &Dataset,
    config: &NngpConfig,
    device: &Device,
) -> Result<Baseline> {
    config.validate()?;
    let d = train.n_features();
    let (x_scaler, y_scaler) = Standardizer::fit_dataset(train)?;
    let (x_train, x_test) = (x_scaler.transform(&train.x), x_scaler.transform(&test.x));
    let y_train = y_scaler.transform(&train.y);
    let kernel = NngpKernel::new(&config.prior, Activation::Relu, &[d, config.hidden, 1])?;
    let gp = ExactGp::fit_noise(&kernel.matrix(&x_train, &x_train)?, &y_train, &noise_grid())?;
    let k_cross: DMatrix<f64> = kernel.matrix(&x_test, &x_train)?;
    let (means, vars) = gp.predict(&k_cross, &kernel.diagonal(&x_test))?;
    let stds = vars.iter().map(|v| v.sqrt()).collect();
    let gp_dist = GaussianMixture::new(test.len(), 1, means, stds)?
        .affine(y_scaler.mean[0], y_scaler.scale[0])?;

    let bbb = BayesRegressor::fit(
        train,
        BayesMlpConfig {
            prior: config.prior,
            ..BayesMlpConfig::new(d, &[config.hidden])
        },
        &TrainConfig {
            epochs: config.epochs,
            seed: config.seed,
            progress: false,
            ..TrainConfig::default()
        },
        device,
    )?;
    let bbb_dist = bbb.predict(&test.x, config.samples)?;
    Ok(Baseline {
        gp_test_rmse: rmse(&gp_dist.mean(), &test.y)?,
        gp_test_ll: mean_log_likelihood(&gp_dist, &test.y)?,
        gp_noise_std: gp.noise_var().sqrt() * y_scaler.scale[0],
        gp_log_marginal_likelihood: gp.log_marginal_likelihood(),
        bnn_test_rmse: rmse(&bbb_dist.mean(), &test.y)?,
        bnn_test_ll: mean_log_likelihood(&bbb_dist, &test.y)?,
        n_train: train.len(),
        n_test: test.len(),
    })
}

/// Both parts: convergence, then the baseline on split `split` of `dir`.
pub fn run(
    config: &NngpConfig,
    dir: &SplitDir,
    split: usize,
    device: &Device,
) -> Result<NngpResult> {
    config.validate()?;
    let (train, test) = dir.split(split)?;
    let kernels = kernel_convergence(config, device)?;
    let max_rel_err: Vec<f64> = (0..config.widths.len())
        .map(|w| kernels.iter().map(|k| k.max_rel_err[w]).fold(0.0, f64::max))
        .collect();
    let widths: Vec<f64> = config.widths.iter().map(|&n| n as f64).collect();
    let b = baseline(&train, &test, config, device)?;
    Ok(NngpResult {
        widths: config.widths.clone(),
        slope: log_log_slope(&widths, &max_rel_err),
        max_rel_err,
        gp_test_rmse: b.gp_test_rmse,
        gp_test_ll: b.gp_test_ll,
        bnn_test_rmse: b.bnn_test_rmse,
        bnn_test_ll: b.bnn_test_ll,
        prior: config.prior.to_string(),
        depth: config.depth,
        networks: config.networks,
        dataset: dir.name.clone(),
        split,
        baseline: b,
        kernels,
    })
}

impl NngpResult {
    /// Writes `nngp_convergence.png` (log-log error against width per
    /// activation, with an `n^{-1/2}` guide) and `nngp_kernel.png` (the
    /// kernel row `K(x_0, x_j)` against the angle: NNGP line, narrowest and
    /// widest networks as points) to `dir`, and returns their paths.
    pub fn write_figures(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let widths: Vec<f64> = self.widths.iter().map(|&n| n as f64).collect();
        let (first, last) = (self.max_rel_err[0], widths[0]);
        let guide: Vec<f64> = widths.iter().map(|n| first * (last / n).sqrt()).collect();
        let labels: Vec<String> = self
            .kernels
            .iter()
            .map(|k| format!("{} (slope {:.2})", k.activation, k.slope))
            .collect();
        let mut series: Vec<Series> = self
            .kernels
            .iter()
            .zip(&labels)
            .enumerate()
            .map(|(c, (k, label))| Series {
                label: Some(label.as_str()),
                colour: c,
                style: SeriesStyle::Points,
                x: &widths,
                y: &k.max_rel_err,
            })
            .collect();
        series.push(Series {
            label: Some("width^-1/2"),
            colour: 7,
            style: SeriesStyle::Dashed,
            x: &widths,
            y: &guide,
        });
        let convergence = dir.join("nngp_convergence.png");
        plot_panels(
            &convergence,
            &format!("Distance to the NNGP kernel (prior {})", self.prior),
            &[Panel {
                title: &format!(
                    "{} hidden layers, {} networks per width",
                    self.depth, self.networks
                ),
                x_label: "width",
                y_label: "max_ij |K_emp − K| / √(K_ii K_jj)",
                x_scale: Scale::Log2,
                y_scale: Scale::Log10,
                series,
            }],
        )?;

        let (narrow, wide) = (0, self.widths.len() - 1);
        let point_labels = [
            format!("width {}", self.widths[narrow]),
            format!("width {}", self.widths[wide]),
        ];
        let titles: Vec<String> = self
            .kernels
            .iter()
            .map(|k| format!("{}: K(x_0, x_θ)", k.activation))
            .collect();
        let panels: Vec<Panel> = self
            .kernels
            .iter()
            .zip(&titles)
            .map(|(k, title)| Panel {
                title,
                x_label: "angle θ (radians)",
                y_label: "kernel",
                x_scale: Scale::Linear,
                y_scale: Scale::Linear,
                series: vec![
                    Series {
                        label: Some("NNGP"),
                        colour: 7,
                        style: SeriesStyle::Line,
                        x: &k.angles,
                        y: &k.kernel_row[wide],
                    },
                    Series {
                        label: Some(&point_labels[0]),
                        colour: 0,
                        style: SeriesStyle::Points,
                        x: &k.angles,
                        y: &k.empirical_row[narrow],
                    },
                    Series {
                        label: Some(&point_labels[1]),
                        colour: 1,
                        style: SeriesStyle::Points,
                        x: &k.angles,
                        y: &k.empirical_row[wide],
                    },
                ],
            })
            .collect();
        let kernel = dir.join("nngp_kernel.png");
        plot_panels(
            &kernel,
            &format!("NNGP kernel vs finite networks (prior {})", self.prior),
            &panels,
        )?;
        Ok(vec![convergence, kernel])
    }
}
