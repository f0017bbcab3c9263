//! Signal propagation at initialization: how the prior's scale sets whether
//! a deep MLP's pre-activations explode, vanish or stay put.
//!
//! For each prior × activation × init shape × normalization, one MLP of
//! `depth` square layers of `width` units is drawn ([`RandomMlp`]) and fed a
//! batch of standard normal inputs. Measured per layer:
//!
//! ```text
//! v_l    = mean_{batch, units} (h^l)²                (empirical pre-activation variance)
//! q_l    = the mean-field recursion                  ([`mean_field::predicted_variances`])
//! g_l    = mean_{batch, units} (∂L/∂h^l)²,  L = Σ_{batch, units} r ⊙ h^depth,  r ~ N(0, 1) fixed
//! ratio  = v_depth / v_1   (empirical)   vs   q_depth / q_1   (predicted)
//! grad   = g_1 / g_depth   (empirical)   vs   the backward recursion
//!                                             ([`mean_field::predicted_gradient_variances`])
//! ```
//!
//! `r` is a random readout direction, so the backward signal starts with unit
//! variance at the top and `g_1 / g_depth` shows how gradients grow or shrink
//! on the way down (Schoenholz et al. 2017). Every prior scales the same
//! standard draws (common random numbers: one seed per init shape), so the
//! curves of two priors differ only by the priors.
//!
//! For ReLU, `E[v_l]` follows the recursion exactly at any width (the
//! recursion is linear in `q` and `E[relu(z)²] = E[z²]/2` for symmetric
//! `z`); a single network fluctuates around it with a log-variance that
//! grows like `depth / width` (Hanin & Rolnick 2018).

use std::path::{Path, PathBuf};

use candle_core::{DType, Device, Tensor, Var};
use serde::{Deserialize, Serialize};

use crate::figures::{plot_panels, Panel, Scale, Series, SeriesStyle};
use crate::layers::Activation;
use crate::noise::NoiseSource;
use crate::prior::Prior;
use crate::studies::gauss_hermite::{GaussHermite, DEFAULT_NODES};
use crate::studies::mean_field::{
    predicted_gradient_variances, predicted_variances, LayerVariance,
};
use crate::studies::parallel::parallel_map;
use crate::studies::random_mlp::{InitShape, Norm, RandomMlp};
use crate::{Error, Result};

/// Settings of the study.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `depth` | 50 | layers | 2..=50 |
/// | `width` | 256 | units per layer (and input features) | ≥ 2 |
/// | `batch` | 128 | inputs per network | ≥ 1 |
/// | `priors` | gaussian:1, fanin:0.5, lecun, fanin:1.5, he, fanin:2, glorot | | zero-mean |
/// | `activations` | relu, tanh, selu | | any |
/// | `shapes` | gaussian, uniform | init distribution at equal variance | |
/// | `norms` | none, layernorm, weightnorm | | |
/// | `seed` | 0 | inputs, weights, readout | any |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalConfig {
    /// Number of layers.
    pub depth: usize,
    /// Units per layer; the input has as many features.
    pub width: usize,
    /// Inputs per network.
    pub batch: usize,
    /// Priors (= initializers) to compare.
    pub priors: Vec<Prior>,
    /// Nonlinearities to compare.
    pub activations: Vec<Activation>,
    /// Init shapes to compare.
    pub shapes: Vec<InitShape>,
    /// Normalizations to compare.
    pub norms: Vec<Norm>,
    /// Seed of inputs, weights and readout direction.
    pub seed: u64,
}

/// The deepest network the study runs: the mean-field recursion and f64
/// hold any prior's explosion up to here (`(n/2)^50` for ReLU under N(0, 1)).
pub const MAX_DEPTH: usize = 50;

impl Default for SignalConfig {
    fn default() -> Self {
        Self {
            depth: MAX_DEPTH,
            width: 256,
            batch: 128,
            priors: default_priors(),
            activations: vec![Activation::Relu, Activation::Tanh, Activation::Selu],
            shapes: vec![InitShape::Gaussian, InitShape::Uniform],
            norms: vec![Norm::None, Norm::LayerNorm, Norm::WeightNorm],
            seed: 0,
        }
    }
}

/// N(0, 1), the fan-in gain sweep 0.5, 1 (LeCun), 1.5, √2 (He), 2, and Glorot.
pub fn default_priors() -> Vec<Prior> {
    vec![
        Prior::standard(),
        Prior::FanIn { c: 0.5 },
        Prior::LeCun,
        Prior::FanIn { c: 1.5 },
        Prior::He,
        Prior::FanIn { c: 2.0 },
        Prior::Glorot,
    ]
}

/// One network's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalRun {
    /// The prior as the CLI spells it (`he`, `gaussian:1`, `fanin:0.5`).
    pub prior: String,
    /// Nonlinearity.
    pub activation: Activation,
    /// Normalization.
    pub norm: Norm,
    /// Init distribution shape.
    pub init_shape: InitShape,
    /// `v_depth / v_1`, measured.
    pub ratio_empirical: f64,
    /// `q_depth / q_1`, the mean-field recursion.
    pub ratio_predicted: f64,
    /// `g_1 / g_depth`: first-layer over last-layer gradient variance, measured.
    pub grad_ratio_empirical: f64,
    /// The same by the backward mean-field recursion.
    pub grad_ratio_predicted: f64,
    /// `v_1, ..., v_depth`.
    pub variance_empirical: Vec<f64>,
    /// `q_1, ..., q_depth`.
    pub variance_predicted: Vec<f64>,
    /// `g_1, ..., g_depth`.
    pub grad_empirical: Vec<f64>,
    /// Predicted `E[δ_1²], ..., E[δ_depth²]`.
    pub grad_predicted: Vec<f64>,
}

/// What the study measured (the fields of `bnn study signal --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SignalResult {
    /// Number of layers.
    pub depth: usize,
    /// Units per layer.
    pub width: usize,
    /// Inputs per network.
    pub batch: usize,
    /// One entry per prior × activation × shape × norm.
    pub results: Vec<SignalRun>,
}

impl SignalConfig {
    /// Checks every field; errors name the CLI flag.
    pub fn validate(&self) -> Result<()> {
        if !(2..=MAX_DEPTH).contains(&self.depth) {
            return Err(Error::invalid(
                "depth",
                self.depth,
                format!("2..={MAX_DEPTH} layers"),
            ));
        }
        if self.width < 2 {
            return Err(Error::invalid("width", self.width, "at least 2 units"));
        }
        if self.batch == 0 {
            return Err(Error::invalid("batch", 0, "at least 1 input"));
        }
        for (name, empty) in [
            ("priors", self.priors.is_empty()),
            ("activations", self.activations.is_empty()),
            ("shapes", self.shapes.is_empty()),
            ("norms", self.norms.is_empty()),
        ] {
            if empty {
                return Err(Error::invalid(name, "an empty list", "at least one entry"));
            }
        }
        Ok(())
    }
}

/// Runs every combination of the config, on `device`.
pub fn run(config: &SignalConfig, device: &Device) -> Result<SignalResult> {
    config.validate()?;
    let rule = GaussHermite::new(DEFAULT_NODES)?;
    let (n, b) = (config.width, config.batch);
    let sizes = vec![n; config.depth + 1];
    let inputs = NoiseSource::new(config.seed);
    let xs = inputs
        .standard_normal((b, n), device)?
        .to_dtype(DType::F64)?;
    let readout = inputs
        .standard_normal((b, n), device)?
        .to_dtype(DType::F64)?;
    let input_second_moment = xs.sqr()?.mean_all()?.to_scalar::<f64>()?;

    // One job per prior × shape (one network each), spread over the cores:
    // candle runs these 256-wide matmuls on one thread.
    let jobs: Vec<(&Prior, InitShape)> = config
        .priors
        .iter()
        .flat_map(|p| config.shapes.iter().map(move |&s| (p, s)))
        .collect();
    let job = |(prior, shape): (&Prior, InitShape)| -> Result<Vec<SignalRun>> {
        let layers = LayerVariance::of_mlp(prior, &sizes)?;
        // The same seed for every prior: common random numbers.
        let weights_noise = NoiseSource::new(config.seed.wrapping_add(1 + shape as u64));
        let net = RandomMlp::draw(&sizes, prior, shape, &weights_noise, device)?;
        let mut runs = Vec::new();
        for &activation in &config.activations {
            for &norm in &config.norms {
                let predicted =
                    predicted_variances(input_second_moment, &layers, activation, norm, &rule);
                let grad_predicted =
                    predicted_gradient_variances(&predicted, &layers, activation, norm, &rule);
                let (empirical, grad_empirical) = measure(&net, &xs, &readout, activation, norm)?;
                let ratio = |v: &[f64]| v[v.len() - 1] / v[0];
                runs.push(SignalRun {
                    prior: prior.to_string(),
                    activation,
                    norm,
                    init_shape: shape,
                    ratio_empirical: ratio(&empirical),
                    ratio_predicted: ratio(&predicted),
                    grad_ratio_empirical: 1.0 / ratio(&grad_empirical),
                    grad_ratio_predicted: 1.0 / ratio(&grad_predicted),
                    variance_empirical: empirical,
                    variance_predicted: predicted,
                    grad_empirical,
                    grad_predicted,
                });
            }
        }
        Ok(runs)
    };
    let results = parallel_map(&jobs, |&j| job(j))?;
    Ok(SignalResult {
        depth: config.depth,
        width: config.width,
        batch: config.batch,
        results: results.into_iter().flatten().collect(),
    })
}

/// Per-layer `v_l` and `g_l` of one network (see the module formula).
fn measure(
    net: &RandomMlp,
    xs: &Tensor,
    readout: &Tensor,
    activation: Activation,
    norm: Norm,
) -> Result<(Vec<f64>, Vec<f64>)> {
    let probes = net
        .weights()
        .iter()
        .map(|w| Var::zeros((xs.dim(0)?, w.dim(0)?), DType::F64, xs.device()))
        .collect::<candle_core::Result<Vec<Var>>>()?;
    let pre = net.forward_probed(xs, activation, norm, &probes)?;
    let variances = pre
        .iter()
        .map(|h| Ok(h.sqr()?.mean_all()?.to_scalar::<f64>()?))
        .collect::<Result<Vec<f64>>>()?;
    let top = pre.last().ok_or_else(|| Error::Shape {
        context: "signal study".into(),
        message: "the network has no layers".into(),
    })?;
    let grads = (top * readout)?.sum_all()?.backward()?;
    let grad_variances = probes
        .iter()
        .map(|p| match grads.get(p) {
            Some(g) => Ok(g.sqr()?.mean_all()?.to_scalar::<f64>()?),
            None => Err(Error::Shape {
                context: "signal study".into(),
                message: "a pre-activation has no gradient".into(),
            }),
        })
        .collect::<Result<Vec<f64>>>()?;
    Ok((variances, grad_variances))
}

impl SignalResult {
    /// The run of `prior` (CLI spelling) × `activation` × `norm` × `shape`.
    pub fn find(
        &self,
        prior: &str,
        activation: Activation,
        norm: Norm,
        shape: InitShape,
    ) -> Option<&SignalRun> {
        self.results.iter().find(|r| {
            r.prior == prior
                && r.activation == activation
                && r.norm == norm
                && r.init_shape == shape
        })
    }

    /// Writes to `dir`, and returns the paths of, three figures of the
    /// Gaussian-shaped runs, each a panel per group with every prior's
    /// measured `v_l` (solid) and predicted `q_l` (dashed) on a log axis:
    ///
    /// - `signal_variance.png`: one panel per activation, no normalization;
    /// - `signal_gain.png`: the same without fixed-σ priors (`gaussian:S`),
    ///   whose explosion squeezes the fan-scaled ones together;
    /// - `signal_norms.png`: the first activation under each normalization.
    pub fn write_figures(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let mut activations: Vec<Activation> = Vec::new();
        let mut norms: Vec<Norm> = Vec::new();
        for r in &self.results {
            if !activations.contains(&r.activation) {
                activations.push(r.activation);
            }
            if !norms.contains(&r.norm) {
                norms.push(r.norm);
            }
        }
        let group = |activation: Activation, norm: Norm, fan_scaled_only: bool| {
            self.results
                .iter()
                .filter(|r| {
                    r.init_shape == InitShape::Gaussian
                        && r.activation == activation
                        && r.norm == norm
                        && !(fan_scaled_only
                            && matches!(r.prior.parse(), Ok(Prior::Gaussian { .. })))
                })
                .collect::<Vec<_>>()
        };
        let by_activation = |fan_scaled_only: bool| -> Vec<(String, Vec<&SignalRun>)> {
            activations
                .iter()
                .map(|&a| {
                    let title = format!("{a}, no normalization");
                    (title, group(a, Norm::None, fan_scaled_only))
                })
                .collect()
        };
        let first = activations.first().copied().unwrap_or_default();
        let by_norm: Vec<(String, Vec<&SignalRun>)> = norms
            .iter()
            .map(|&nm| (format!("{first}, norm: {nm}"), group(first, nm, false)))
            .collect();
        let suffix = format!(
            "(width {}): measured (solid) vs mean-field (dashed)",
            self.width
        );
        let mut paths = Vec::new();
        for (name, title, groups) in [
            (
                "signal_variance.png",
                format!("Pre-activation variance through depth {suffix}"),
                by_activation(false),
            ),
            (
                "signal_gain.png",
                format!("Fan-in priors N(0, gain²/fan_in) {suffix}"),
                by_activation(true),
            ),
            (
                "signal_norms.png",
                format!("Normalization takes over the init scale {suffix}"),
                by_norm,
            ),
        ] {
            let path = dir.join(name);
            variance_panels(&path, &title, &groups)?;
            paths.push(path);
        }
        Ok(paths)
    }
}

/// One panel per group: each run's `v_l` (solid, labelled with its prior)
/// and `q_l` (dashed), log y. Runs whose measured curve equals an earlier
/// one's (Glorot and LeCun on square layers) share its line and label.
fn variance_panels(path: &Path, title: &str, groups: &[(String, Vec<&SignalRun>)]) -> Result<()> {
    let depth = groups
        .iter()
        .flat_map(|(_, runs)| runs.iter().map(|r| r.variance_empirical.len()))
        .max()
        .unwrap_or(0);
    let layers: Vec<f64> = (1..=depth).map(|l| l as f64).collect();
    let merged: Vec<Vec<(String, &SignalRun)>> = groups
        .iter()
        .map(|(_, runs)| {
            let mut distinct: Vec<(String, &SignalRun)> = Vec::new();
            for &run in runs {
                match distinct
                    .iter_mut()
                    .find(|(_, d)| d.variance_empirical == run.variance_empirical)
                {
                    Some((label, _)) => *label = format!("{label} = {}", run.prior),
                    None => distinct.push((run.prior.clone(), run)),
                }
            }
            distinct
        })
        .collect();
    let panels: Vec<Panel> = groups
        .iter()
        .zip(&merged)
        .map(|((panel_title, _), runs)| {
            let mut series = Vec::new();
            for (k, (label, run)) in runs.iter().enumerate() {
                let n = run.variance_empirical.len();
                series.push(Series {
                    label: Some(label.as_str()),
                    colour: k,
                    style: SeriesStyle::Line,
                    x: &layers[..n],
                    y: &run.variance_empirical,
                });
                series.push(Series {
                    label: None,
                    colour: k,
                    style: SeriesStyle::Dashed,
                    x: &layers[..n],
                    y: &run.variance_predicted,
                });
            }
            Panel {
                title: panel_title,
                x_label: "layer",
                y_label: "pre-activation variance",
                x_scale: Scale::Linear,
                y_scale: Scale::Log10,
                series,
            }
        })
        .collect();
    plot_panels(path, title, &panels)
}
