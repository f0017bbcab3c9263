//! Priors over weights, which are also the initializers of the posterior means.
//!
//! A prior `p(w)` plays two roles here, in one object:
//!
//! 1. **Initializer.** The posterior mean of every weight starts as a draw from
//!    its prior: `mu_0 ~ p(w)` ([`LayerPrior::sample`]). There is no separate
//!    init setting. He, Glorot and LeCun initialization *are* zero-mean Gaussian
//!    priors whose scale depends on the layer's fan:
//!
//!    ```text
//!    He      (He et al. 2015)            sigma_p² = 2 / fan_in
//!    Glorot  (Glorot & Bengio 2010)      sigma_p² = 2 / (fan_in + fan_out)
//!    LeCun   (LeCun et al. 1998)         sigma_p² = 1 / fan_in
//!    FanIn{gain}                         sigma_p² = gain² / fan_in  (LeCun: gain 1, He: gain √2)
//!    Gaussian{mean, sigma}               fixed sigma_p (N(0, 1): Prior::standard())
//!    ```
//!
//! 2. **Regularizer.** The ELBO's `KL(q || p)` pulls the posterior toward it
//!    (see [`crate::posterior`]); for a Gaussian prior its mean part is exactly
//!    L2 weight decay with coefficient `1 / (2 sigma_p²)`, toward `mean`
//!    (a non-zero mean is decay toward that value, e.g. pretrained weights).
//!
//! Non-Gaussian priors have no closed-form KL to a Gaussian posterior and are
//! handled by Monte Carlo:
//!
//! ```text
//! Laplace{b}                 p(w) = exp(-|w|/b) / (2b)            (MAP: L1 decay)
//! ScaleMixture{pi, s1, s2}   p(w) = pi N(w; 0, s1²) + (1-pi) N(w; 0, s2²)
//!                            (Blundell et al. 2015, "Weight Uncertainty in NNs")
//! ```

use std::fmt;
use std::str::FromStr;

use candle_core::{Device, Shape, Tensor};
use rand::RngExt;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::noise::NoiseSource;
use crate::{Error, Result};

/// A prior over the weights of a layer, possibly depending on the layer's fan.
///
/// Spelled on the command line as `he`, `glorot`, `lecun`, `fanin:GAIN`, `gaussian:SIGMA`
/// (`gaussian:SIGMA@MEAN` for a non-zero mean), `laplace:B`,
/// `mixture:PI,SIGMA1,SIGMA2`; [`Display`](fmt::Display) prints the same.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Prior {
    /// `N(mean, sigma²)` with a fixed standard deviation `sigma` (never a variance).
    Gaussian {
        /// Prior mean (0 unless decaying toward known weights).
        mean: f64,
        /// Prior standard deviation, > 0.
        sigma: f64,
    },
    /// `N(0, 2 / fan_in)`: keeps ReLU pre-activation variance constant with depth.
    He,
    /// `N(0, 2 / (fan_in + fan_out))`: balances forward and backward variance.
    Glorot,
    /// `N(0, 1 / fan_in)`: keeps linear/SELU pre-activation variance constant.
    LeCun,
    /// `N(0, gain² / fan_in)`: the fan-in family that LeCun (`gain = 1`) and
    /// He (`gain = √2`) belong to; the gain sweeps a network between the
    /// vanishing and the exploding regime (Poole et al. 2016).
    FanIn {
        /// Multiplier of the fan-in standard deviation `1/√fan_in`, > 0.
        gain: f64,
    },
    /// Laplace with zero mean and scale `b > 0` (standard deviation `sqrt(2) b`).
    Laplace {
        /// Scale parameter, > 0.
        b: f64,
    },
    /// Two-component zero-mean Gaussian scale mixture (Blundell et al. 2015).
    ScaleMixture {
        /// Weight of the first component, in (0, 1).
        pi: f64,
        /// Standard deviation of the first (wide) component, > 0.
        sigma1: f64,
        /// Standard deviation of the second (narrow) component, > 0.
        sigma2: f64,
    },
}

/// Fan of a weight tensor `[out_dim, in_dim]`: its input and output sizes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fan {
    /// Number of inputs of the layer.
    pub fan_in: usize,
    /// Number of outputs of the layer.
    pub fan_out: usize,
}

/// A prior resolved for one layer: the fan-dependent scales are now numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LayerPrior {
    /// `N(mean, sigma²)`.
    Gaussian {
        /// Mean.
        mean: f64,
        /// Standard deviation.
        sigma: f64,
    },
    /// Zero-mean Laplace with scale `b`.
    Laplace {
        /// Scale.
        b: f64,
    },
    /// `pi N(0, sigma1²) + (1 - pi) N(0, sigma2²)`.
    ScaleMixture {
        /// Weight of the first component.
        pi: f64,
        /// First standard deviation.
        sigma1: f64,
        /// Second standard deviation.
        sigma2: f64,
    },
}

const LN_2PI: f64 = 1.837_877_066_409_345_3;

impl Prior {
    /// The standard normal prior `N(0, 1)`: the fixed-sigma case.
    pub fn standard() -> Self {
        Prior::Gaussian {
            mean: 0.0,
            sigma: 1.0,
        }
    }

    /// `N(0, sigma²)`, validated.
    pub fn gaussian(sigma: f64) -> Result<Self> {
        let p = Prior::Gaussian { mean: 0.0, sigma };
        p.validate()?;
        Ok(p)
    }

    /// Checks every parameter; errors name the parameter and its valid range.
    pub fn validate(&self) -> Result<()> {
        let positive = |name: &str, v: f64| {
            if v.is_finite() && v > 0.0 {
                Ok(())
            } else {
                Err(Error::invalid(
                    format!("prior {name}"),
                    v,
                    "a finite number > 0",
                ))
            }
        };
        match *self {
            Prior::Gaussian { mean, sigma } => {
                if !mean.is_finite() {
                    return Err(Error::invalid("prior mean", mean, "a finite number"));
                }
                positive("sigma", sigma)
            }
            Prior::He | Prior::Glorot | Prior::LeCun => Ok(()),
            Prior::FanIn { gain } => positive("gain", gain),
            Prior::Laplace { b } => positive("b", b),
            Prior::ScaleMixture { pi, sigma1, sigma2 } => {
                if !(pi > 0.0 && pi < 1.0) {
                    return Err(Error::invalid("prior pi", pi, "a mixture weight in (0, 1)"));
                }
                positive("sigma1", sigma1)?;
                positive("sigma2", sigma2)
            }
        }
    }

    /// Resolves the fan-dependent scale for a layer of the given fan.
    pub fn resolve(&self, fan: Fan) -> Result<LayerPrior> {
        self.validate()?;
        if fan.fan_in == 0 || fan.fan_out == 0 {
            return Err(Error::invalid(
                "layer fan",
                format!("{}x{}", fan.fan_in, fan.fan_out),
                "fan_in and fan_out >= 1",
            ));
        }
        let gaussian = |var: f64| LayerPrior::Gaussian {
            mean: 0.0,
            sigma: var.sqrt(),
        };
        let (fi, fo) = (fan.fan_in as f64, fan.fan_out as f64);
        Ok(match *self {
            Prior::Gaussian { mean, sigma } => LayerPrior::Gaussian { mean, sigma },
            Prior::He => gaussian(2.0 / fi),
            Prior::Glorot => gaussian(2.0 / (fi + fo)),
            Prior::LeCun => gaussian(1.0 / fi),
            Prior::FanIn { gain } => gaussian(gain * gain / fi),
            Prior::Laplace { b } => LayerPrior::Laplace { b },
            Prior::ScaleMixture { pi, sigma1, sigma2 } => {
                LayerPrior::ScaleMixture { pi, sigma1, sigma2 }
            }
        })
    }
}

impl Default for Prior {
    /// He: the prior that keeps a ReLU network's signal variance stable.
    fn default() -> Self {
        Prior::He
    }
}

impl fmt::Display for Prior {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Prior::Gaussian { mean: 0.0, sigma } => write!(f, "gaussian:{sigma}"),
            Prior::Gaussian { mean, sigma } => write!(f, "gaussian:{sigma}@{mean}"),
            Prior::He => write!(f, "he"),
            Prior::Glorot => write!(f, "glorot"),
            Prior::LeCun => write!(f, "lecun"),
            Prior::FanIn { gain } => write!(f, "fanin:{gain}"),
            Prior::Laplace { b } => write!(f, "laplace:{b}"),
            Prior::ScaleMixture { pi, sigma1, sigma2 } => {
                write!(f, "mixture:{pi},{sigma1},{sigma2}")
            }
        }
    }
}

impl FromStr for Prior {
    type Err = Error;

    /// Parses the CLI spelling; the result is validated.
    fn from_str(s: &str) -> Result<Self> {
        let expected =
            "he | glorot | lecun | fanin:GAIN | gaussian:SIGMA[@MEAN] | laplace:B | mixture:PI,SIGMA1,SIGMA2";
        let bad = || Error::invalid("prior", format!("'{s}'"), expected);
        let num = |t: &str| t.trim().parse::<f64>().map_err(|_| bad());
        let (name, args) = match s.split_once(':') {
            Some((n, a)) => (n.trim(), Some(a)),
            None => (s.trim(), None),
        };
        let prior = match (name.to_ascii_lowercase().as_str(), args) {
            ("he", None) => Prior::He,
            ("glorot", None) => Prior::Glorot,
            ("lecun", None) => Prior::LeCun,
            ("fanin", Some(a)) => Prior::FanIn { gain: num(a)? },
            ("gaussian", Some(a)) => match a.split_once('@') {
                Some((sigma, mean)) => Prior::Gaussian {
                    mean: num(mean)?,
                    sigma: num(sigma)?,
                },
                None => Prior::Gaussian {
                    mean: 0.0,
                    sigma: num(a)?,
                },
            },
            ("laplace", Some(a)) => Prior::Laplace { b: num(a)? },
            ("mixture", Some(a)) => {
                let v = a.split(',').map(num).collect::<Result<Vec<_>>>()?;
                match v[..] {
                    [pi, sigma1, sigma2] => Prior::ScaleMixture { pi, sigma1, sigma2 },
                    _ => return Err(bad()),
                }
            }
            _ => return Err(bad()),
        };
        prior.validate()?;
        Ok(prior)
    }
}

impl LayerPrior {
    /// The prior's standard deviation (the scale the posterior's initial
    /// standard deviation is a fraction of).
    ///
    /// ```text
    /// Gaussian: sigma     Laplace: sqrt(2) b     mixture: sqrt(pi s1² + (1-pi) s2²)
    /// ```
    pub fn std(&self) -> f64 {
        match *self {
            LayerPrior::Gaussian { sigma, .. } => sigma,
            LayerPrior::Laplace { b } => std::f64::consts::SQRT_2 * b,
            LayerPrior::ScaleMixture { pi, sigma1, sigma2 } => {
                (pi * sigma1 * sigma1 + (1.0 - pi) * sigma2 * sigma2).sqrt()
            }
        }
    }

    /// Draws an f32 tensor of i.i.d. samples from the prior: **the initializer**.
    pub fn sample(
        &self,
        shape: impl Into<Shape>,
        noise: &NoiseSource,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let values: Vec<f32> = noise.with_rng(|rng| {
            (0..n)
                .map(|_| {
                    let w = match *self {
                        LayerPrior::Gaussian { mean, sigma } => {
                            mean + sigma * rng.sample::<f64, _>(StandardNormal)
                        }
                        // Inverse CDF: u ~ U(-1/2, 1/2), w = -b sgn(u) ln(1 - 2|u|).
                        LayerPrior::Laplace { b } => {
                            let u: f64 = rng.random::<f64>() - 0.5;
                            -b * u.signum() * (1.0 - 2.0 * u.abs()).ln()
                        }
                        LayerPrior::ScaleMixture { pi, sigma1, sigma2 } => {
                            let s = if rng.random::<f64>() < pi {
                                sigma1
                            } else {
                                sigma2
                            };
                            s * rng.sample::<f64, _>(StandardNormal)
                        }
                    };
                    w as f32
                })
                .collect()
        });
        Ok(Tensor::from_vec(values, shape, device)?)
    }

    /// `Σ_i ln p(w_i)` over all elements of `w`, as a scalar tensor
    /// (differentiable in `w`).
    ///
    /// ```text
    /// Gaussian: -½ ln 2π - ln sigma - (w - mean)² / (2 sigma²)
    /// Laplace:  -ln 2b - |w| / b
    /// mixture:  logsumexp( ln pi + ln N(w; 0, s1²), ln(1-pi) + ln N(w; 0, s2²) )
    /// ```
    pub fn log_prob(&self, w: &Tensor) -> Result<Tensor> {
        let n = w.elem_count() as f64;
        let gaussian_log_density = |mean: f64, sigma: f64| -> Result<Tensor> {
            let z2 = ((w - mean)? / sigma)?.sqr()?;
            Ok(((z2 * -0.5)? - (0.5 * LN_2PI + sigma.ln()))?)
        };
        match *self {
            LayerPrior::Gaussian { mean, sigma } => {
                Ok(gaussian_log_density(mean, sigma)?.sum_all()?)
            }
            LayerPrior::Laplace { b } => {
                let s = (w.abs()?.sum_all()? / -b)?;
                Ok((s - n * (2.0 * b).ln())?)
            }
            LayerPrior::ScaleMixture { pi, sigma1, sigma2 } => {
                let a = (gaussian_log_density(0.0, sigma1)? + pi.ln())?;
                let b = (gaussian_log_density(0.0, sigma2)? + (1.0 - pi).ln())?;
                let m = a.maximum(&b)?;
                let lse = (((a - &m)?.exp()? + (b - &m)?.exp()?)?.log()? + &m)?;
                Ok(lse.sum_all()?)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fan(fan_in: usize, fan_out: usize) -> Fan {
        Fan { fan_in, fan_out }
    }

    #[test]
    fn fan_aware_priors_have_the_published_variances() -> Result<()> {
        let f = fan(50, 10);
        let var = |p: Prior| -> Result<f64> { Ok(p.resolve(f)?.std().powi(2)) };
        assert!((var(Prior::He)? - 2.0 / 50.0).abs() < 1e-15);
        assert!((var(Prior::Glorot)? - 2.0 / 60.0).abs() < 1e-15);
        assert!((var(Prior::LeCun)? - 1.0 / 50.0).abs() < 1e-15);
        assert!((var(Prior::FanIn { gain: 1.5 })? - 2.25 / 50.0).abs() < 1e-15);
        assert!((var(Prior::FanIn { gain: 2f64.sqrt() })? - var(Prior::He)?).abs() < 1e-15);
        assert!((var(Prior::standard())? - 1.0).abs() < 1e-15);
        Ok(())
    }

    #[test]
    fn cli_spelling_round_trips_through_display() -> Result<()> {
        for s in [
            "he",
            "glorot",
            "lecun",
            "fanin:1.5",
            "gaussian:0.5",
            "gaussian:2@0.25",
            "laplace:0.1",
            "mixture:0.5,1,0.002",
        ] {
            let p: Prior = s.parse()?;
            assert_eq!(p.to_string(), s);
            assert_eq!(p.to_string().parse::<Prior>()?, p);
        }
        Ok(())
    }

    #[test]
    fn invalid_priors_name_the_parameter() {
        let msg = |s: &str| s.parse::<Prior>().map(|_| ()).unwrap_err().to_string();
        assert!(
            msg("gaussian:0").contains("prior sigma"),
            "{}",
            msg("gaussian:0")
        );
        assert!(msg("gaussian:-1").contains("prior sigma"));
        assert!(msg("laplace:0").contains("prior b"));
        assert!(msg("fanin:0").contains("prior gain"));
        assert!(msg("mixture:1.5,1,0.1").contains("prior pi"));
        assert!(msg("mixture:0,1,0.1").contains("prior pi"));
        assert!(msg("mixture:0.5,1,0").contains("prior sigma2"));
        assert!(msg("cauchy:1").contains("expected he | glorot"));
    }

    /// Sample mean and variance of 10^5 init draws against the prior's moments.
    /// The sd of a sample variance is about var·sqrt(κ-1)/sqrt(n) (κ: kurtosis,
    /// 3 Gaussian, 6 Laplace, ≈ 3 + 3·(pi(1-pi)(s1²-s2²)²)/var² for the mixture,
    /// 7.4 here), so 5 sd with κ ≤ 7.4 is 5·2.1/316 ≈ 3.3% relative.
    #[test]
    fn sample_is_the_initializer_with_the_prior_moments() -> Result<()> {
        let noise = NoiseSource::new(3);
        let n = 100_000;
        for p in [
            LayerPrior::Gaussian {
                mean: 0.5,
                sigma: 2.0,
            },
            LayerPrior::Laplace { b: 0.3 },
            LayerPrior::ScaleMixture {
                pi: 0.25,
                sigma1: 1.0,
                sigma2: 0.1,
            },
        ] {
            let w = p.sample(n, &noise, &Device::Cpu)?.to_vec1::<f32>()?;
            let mean = w.iter().map(|v| *v as f64).sum::<f64>() / n as f64;
            let var = w.iter().map(|v| (*v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
            let want_mean = if let LayerPrior::Gaussian { mean, .. } = p {
                mean
            } else {
                0.0
            };
            assert!(
                (mean - want_mean).abs() < 5.0 * p.std() / (n as f64).sqrt(),
                "{p:?}: mean {mean}"
            );
            assert!(
                (var / p.std().powi(2) - 1.0).abs() < 0.033,
                "{p:?}: var {var}"
            );
        }
        Ok(())
    }

    #[test]
    fn log_prob_matches_closed_form_densities() -> Result<()> {
        let w = Tensor::new(&[0.3f32, -1.2], &Device::Cpu)?;
        let ln_n = |x: f64, s: f64| -0.5 * LN_2PI - s.ln() - x * x / (2.0 * s * s);
        let got = |p: LayerPrior| -> Result<f64> { Ok(p.log_prob(&w)?.to_scalar::<f32>()? as f64) };
        let xs = [0.3f32 as f64, -1.2f32 as f64];
        let want_g: f64 = xs.iter().map(|x| ln_n(x - 0.1, 0.7)).sum();
        let want_l: f64 = xs
            .iter()
            .map(|x| -(2.0f64 * 0.4).ln() - x.abs() / 0.4)
            .sum();
        let want_m: f64 = xs
            .iter()
            .map(|x| (0.3 * ln_n(*x, 1.0).exp() + 0.7 * ln_n(*x, 0.05).exp()).ln())
            .sum();
        // f32 arithmetic on O(1..100) magnitudes: 1e-4 absolute is ~1e-5 relative.
        assert!(
            (got(LayerPrior::Gaussian {
                mean: 0.1,
                sigma: 0.7
            })? - want_g)
                .abs()
                < 1e-4
        );
        assert!((got(LayerPrior::Laplace { b: 0.4 })? - want_l).abs() < 1e-4);
        assert!(
            (got(LayerPrior::ScaleMixture {
                pi: 0.3,
                sigma1: 1.0,
                sigma2: 0.05
            })? - want_m)
                .abs()
                < 1e-3
        );
        Ok(())
    }
}
