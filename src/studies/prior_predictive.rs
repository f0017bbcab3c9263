//! What a prior over weights says about functions, and how much it assumes.
//!
//! 1. **Prior predictive draws.** Networks `1 → n × depth → 1` drawn from
//!    each prior are evaluated on a 1-D grid; each network is one function
//!    draw. Over them lies the NNGP band `±2 √K(x, x)`, the prior's output
//!    variance at infinite width from the mean-field recursion
//!    ([`crate::studies::mean_field`], with `x²` as the input's second
//!    moment). At width 512 the draws' root-mean-square should match
//!    `√K(x, x)` up to Monte Carlo error: `std_ratio ≈ 1`.
//!
//! 2. **Entropy at equal variance.** Among all densities with variance `σ²`,
//!    the Gaussian has the largest differential entropy, so it is the prior
//!    that assumes least beyond the scale:
//!
//!    ```text
//!    Gaussian  h = ½ ln(2πe σ²)                      = 1.419 + ln σ
//!    Laplace   h = 1 + ln(2b),  b = σ/√2             = 1.347 + ln σ
//!    uniform   h = ln(2√3 σ)                         = 1.242 + ln σ
//!    mixture   no closed form (Monte Carlo only)
//!    ```
//!
//!    Each prior's entropy is also estimated by Monte Carlo,
//!    `h ≈ −mean_i ln p(w_i)` over draws `w_i ~ p`, from the library's
//!    own `sample` and `log_prob` ([`LayerPrior`]), which checks both.

use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::figures::{plot_panels, Panel, Scale, Series, SeriesStyle};
use crate::layers::Activation;
use crate::noise::NoiseSource;
use crate::prior::{Fan, LayerPrior, Prior};
use crate::studies::gauss_hermite::{GaussHermite, DEFAULT_NODES};
use crate::studies::mean_field::{predicted_variances, LayerVariance};
use crate::studies::random_mlp::{InitShape, Norm, RandomMlp};
use crate::{Error, Result};

/// Settings of the study.
///
/// | Field | Default | Purpose | Range |
/// |---|---|---|---|
/// | `priors` | gaussian:1, lecun, he, glorot, fanin:2 | priors drawn from | zero-mean |
/// | `activation` | relu | hidden nonlinearity | any |
/// | `width` | 512 | hidden units | ≥ 1 |
/// | `depth` | 2 | hidden layers | ≥ 1 |
/// | `draws` | 40 | networks (function draws) per prior | ≥ 1 |
/// | `plotted` | 8 | draws shown in the figure | ≥ 1 |
/// | `grid` | 101 points on [-3, 3] | inputs | ≥ 2 points |
/// | `sigma` | 1 | standard deviation of the entropy comparison | > 0 |
/// | `entropy_samples` | 100 000 | Monte Carlo draws per entropy | ≥ 100 |
/// | `seed` | 0 | every draw | any |
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorStudyConfig {
    /// Priors to draw functions from.
    pub priors: Vec<Prior>,
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Hidden units per layer.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Function draws per prior.
    pub draws: usize,
    /// Draws shown in the figure.
    pub plotted: usize,
    /// Grid points on `[-x_max, x_max]`.
    pub grid_points: usize,
    /// Half-width of the input grid.
    pub x_max: f64,
    /// Standard deviation at which the entropies are compared.
    pub sigma: f64,
    /// Monte Carlo draws per entropy estimate.
    pub entropy_samples: usize,
    /// Seed of every draw.
    pub seed: u64,
}

impl Default for PriorStudyConfig {
    fn default() -> Self {
        Self {
            priors: vec![
                Prior::standard(),
                Prior::LeCun,
                Prior::He,
                Prior::Glorot,
                Prior::FanIn { c: 2.0 },
            ],
            activation: Activation::Relu,
            width: 512,
            depth: 2,
            draws: 40,
            plotted: 8,
            grid_points: 101,
            x_max: 3.0,
            sigma: 1.0,
            entropy_samples: 100_000,
            seed: 0,
        }
    }
}

impl PriorStudyConfig {
    /// Checks every field; errors name the CLI flag.
    pub fn validate(&self) -> Result<()> {
        for (name, v, min) in [
            ("width", self.width, 1),
            ("depth", self.depth, 1),
            ("draws", self.draws, 1),
            ("plotted", self.plotted, 1),
            ("grid-points", self.grid_points, 2),
            ("entropy-samples", self.entropy_samples, ENTROPY_CHUNKS),
        ] {
            if v < min {
                return Err(Error::invalid(name, v, format!("at least {min}")));
            }
        }
        for (name, v) in [("x-max", self.x_max), ("sigma", self.sigma)] {
            if !(v.is_finite() && v > 0.0) {
                return Err(Error::invalid(name, v, "a finite number > 0"));
            }
        }
        if self.priors.is_empty() {
            return Err(Error::invalid(
                "priors",
                "an empty list",
                "at least one prior",
            ));
        }
        Ok(())
    }
}

/// One prior's function draws against its NNGP band.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorDraws {
    /// The prior as the CLI spells it.
    pub prior: String,
    /// The input grid.
    pub grid: Vec<f64>,
    /// `√K(x, x)` on the grid (infinite-width prior predictive std).
    pub nngp_std: Vec<f64>,
    /// Root-mean-square of the draws on the grid.
    pub empirical_std: Vec<f64>,
    /// `mean_x empirical_std / nngp_std`.
    pub std_ratio: f64,
    /// The function draws, one per network (not serialized).
    #[serde(skip)]
    pub draws: Vec<Vec<f64>>,
}

/// One distribution's differential entropy at standard deviation `sigma`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntropyRow {
    /// `gaussian`, `laplace`, `uniform` or `mixture`.
    pub distribution: String,
    /// The prior as the CLI spells it (none for the uniform).
    pub prior: Option<String>,
    /// The standard deviation all rows share.
    pub sigma: f64,
    /// The closed form (none for the mixture).
    pub entropy: Option<f64>,
    /// `−mean ln p(w)` over draws (none for the uniform, which has no prior).
    pub entropy_mc: Option<f64>,
    /// Standard error of `entropy_mc` (from 100 chunk means).
    pub entropy_mc_se: Option<f64>,
}

/// What the study measured (the fields of `bnn study prior --json`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriorStudyResult {
    /// Hidden nonlinearity.
    pub activation: Activation,
    /// Hidden units.
    pub width: usize,
    /// Hidden layers.
    pub depth: usize,
    /// Function draws per prior.
    pub draws: usize,
    /// Draws shown in the figure.
    pub plotted: usize,
    /// Per prior.
    pub priors: Vec<PriorDraws>,
    /// Entropies at equal variance, largest first.
    pub entropy: Vec<EntropyRow>,
}

/// Runs both parts on `device`.
pub fn run(config: &PriorStudyConfig, device: &Device) -> Result<PriorStudyResult> {
    config.validate()?;
    let g = config.grid_points;
    let grid: Vec<f64> = (0..g)
        .map(|i| -config.x_max + 2.0 * config.x_max * i as f64 / (g - 1) as f64)
        .collect();
    let xs = Tensor::from_vec(grid.clone(), (g, 1), device)?;
    let mut sizes = vec![1];
    sizes.extend(std::iter::repeat_n(config.width, config.depth));
    sizes.push(1);
    let rule = GaussHermite::new(DEFAULT_NODES)?;

    let mut priors = Vec::with_capacity(config.priors.len());
    for prior in &config.priors {
        let layers = LayerVariance::of_mlp(prior, &sizes)?;
        let nngp_std: Vec<f64> = grid
            .iter()
            .map(|x| {
                let q = predicted_variances(x * x, &layers, config.activation, Norm::None, &rule);
                q.last().copied().unwrap_or(0.0).sqrt()
            })
            .collect();
        // The same seed for every prior: the same standard draws, rescaled.
        let noise = NoiseSource::new(config.seed);
        let mut draws = Vec::with_capacity(config.draws);
        for _ in 0..config.draws {
            let net = RandomMlp::draw(&sizes, prior, InitShape::Gaussian, &noise, device)?;
            let pre = net.forward(&xs, config.activation, Norm::None)?;
            let f = pre.last().ok_or_else(|| Error::Shape {
                context: "prior study".into(),
                message: "the network has no layers".into(),
            })?;
            draws.push(f.flatten_all()?.to_vec1::<f64>()?);
        }
        let empirical_std: Vec<f64> = (0..g)
            .map(|i| (draws.iter().map(|d| d[i] * d[i]).sum::<f64>() / draws.len() as f64).sqrt())
            .collect();
        let std_ratio = empirical_std
            .iter()
            .zip(&nngp_std)
            .map(|(e, k)| e / k)
            .sum::<f64>()
            / g as f64;
        priors.push(PriorDraws {
            prior: prior.to_string(),
            grid: grid.clone(),
            nngp_std,
            empirical_std,
            std_ratio,
            draws,
        });
    }
    Ok(PriorStudyResult {
        activation: config.activation,
        width: config.width,
        depth: config.depth,
        draws: config.draws,
        plotted: config.plotted,
        priors,
        entropy: entropies(config.sigma, config.entropy_samples, config.seed, device)?,
    })
}

/// Chunks whose means give the Monte Carlo standard error.
const ENTROPY_CHUNKS: usize = 100;

/// Closed-form and Monte Carlo entropies at standard deviation `sigma`.
pub fn entropies(
    sigma: f64,
    samples: usize,
    seed: u64,
    device: &Device,
) -> Result<Vec<EntropyRow>> {
    use std::f64::consts::{E, PI, SQRT_2};
    // Mixture at variance sigma²: pi = 1/2, sigma1 = 4 sigma2, ½(16 + 1) sigma2² = sigma².
    let sigma2 = sigma * (2.0f64 / 17.0).sqrt();
    let rows: [(&str, Option<Prior>, Option<f64>); 4] = [
        (
            "gaussian",
            Some(Prior::gaussian(sigma)?),
            Some(0.5 * (2.0 * PI * E * sigma * sigma).ln()),
        ),
        (
            "laplace",
            Some(Prior::Laplace { b: sigma / SQRT_2 }),
            Some(1.0 + (2.0 * sigma / SQRT_2).ln()),
        ),
        (
            "mixture",
            Some(Prior::ScaleMixture {
                pi: 0.5,
                sigma1: 4.0 * sigma2,
                sigma2,
            }),
            None,
        ),
        ("uniform", None, Some((2.0 * 3f64.sqrt() * sigma).ln())),
    ];
    let noise = NoiseSource::new(seed);
    let mut out = Vec::with_capacity(rows.len());
    for (distribution, prior, entropy) in rows {
        let mc = match prior {
            Some(p) => Some(monte_carlo_entropy(
                &p.resolve(Fan {
                    fan_in: 1,
                    fan_out: 1,
                })?,
                samples,
                &noise,
                device,
            )?),
            None => None,
        };
        out.push(EntropyRow {
            distribution: distribution.into(),
            prior: prior.map(|p| p.to_string()),
            sigma,
            entropy,
            entropy_mc: mc.map(|m| m.0),
            entropy_mc_se: mc.map(|m| m.1),
        });
    }
    out.sort_by(|a, b| {
        let key = |r: &EntropyRow| r.entropy.or(r.entropy_mc).unwrap_or(f64::NEG_INFINITY);
        key(b).total_cmp(&key(a))
    });
    Ok(out)
}

/// `(−mean ln p(w), its standard error)` over `samples` draws, in
/// [`ENTROPY_CHUNKS`] chunks.
fn monte_carlo_entropy(
    prior: &LayerPrior,
    samples: usize,
    noise: &NoiseSource,
    device: &Device,
) -> Result<(f64, f64)> {
    let chunk = samples / ENTROPY_CHUNKS;
    let means = (0..ENTROPY_CHUNKS)
        .map(|_| {
            let w = prior.sample(chunk, noise, device)?;
            Ok(-(prior.log_prob(&w)?.to_scalar::<f32>()? as f64) / chunk as f64)
        })
        .collect::<Result<Vec<f64>>>()?;
    let k = ENTROPY_CHUNKS as f64;
    let mean = means.iter().sum::<f64>() / k;
    let var = means.iter().map(|m| (m - mean).powi(2)).sum::<f64>() / (k - 1.0);
    Ok((mean, (var / k).sqrt()))
}

impl PriorStudyResult {
    /// Writes `prior_draws_ACTIVATION.png` (one panel per prior: the NNGP `±2σ` band and
    /// the first `plotted` function draws) to `dir` and returns its path.
    pub fn write_figures(&self, dir: &Path) -> Result<Vec<PathBuf>> {
        let bands: Vec<(Vec<f64>, Vec<f64>)> = self
            .priors
            .iter()
            .map(|p| {
                let lower = p.nngp_std.iter().map(|s| -2.0 * s).collect();
                let upper = p.nngp_std.iter().map(|s| 2.0 * s).collect();
                (lower, upper)
            })
            .collect();
        let titles: Vec<String> = self
            .priors
            .iter()
            .map(|p| format!("prior {} (rms/NNGP {:.2})", p.prior, p.std_ratio))
            .collect();
        let panels: Vec<Panel> = self
            .priors
            .iter()
            .zip(&bands)
            .zip(&titles)
            .map(|((p, (lower, upper)), title)| {
                let mut series = vec![Series {
                    label: Some("NNGP ±2σ"),
                    colour: 7,
                    style: SeriesStyle::Band { upper },
                    x: &p.grid,
                    y: lower,
                }];
                for (k, draw) in p.draws.iter().take(self.plotted).enumerate() {
                    series.push(Series {
                        label: (k == 0).then_some("prior draws"),
                        colour: k,
                        style: SeriesStyle::Thin,
                        x: &p.grid,
                        y: draw,
                    });
                }
                Panel {
                    title,
                    x_label: "x",
                    y_label: "f(x)",
                    x_scale: Scale::Linear,
                    y_scale: Scale::Linear,
                    series,
                }
            })
            .collect();
        let path = dir.join(format!("prior_draws_{}.png", self.activation));
        plot_panels(
            &path,
            &format!(
                "Prior function draws, {} {} hidden layer(s) of {} units, with the NNGP band",
                self.activation, self.depth, self.width
            ),
            &panels,
        )?;
        Ok(vec![path])
    }
}
