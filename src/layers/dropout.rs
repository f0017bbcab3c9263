//! `McDropout`: dropout that stays on at prediction time (Gal & Ghahramani
//! 2016, "Dropout as a Bayesian Approximation").
//!
//! ```text
//! y = x ⊙ m / (1 - p),   m_i ~ Bernoulli(1 - p)
//! ```
//!
//! Inverted scaling keeps `E[y] = x`, so the deterministic pass (no mask) is
//! the usual weight-scaling approximation. Unlike candle's `Dropout`, which is
//! the identity outside training, every call here samples a mask, and masks
//! come from the seeded [`NoiseSource`] (candle's `ops::dropout` draws from an
//! unseeded RNG), so T stochastic passes are reproducible and can be batched:
//! an input `[S, B, d]` gets `S` independent masks in one call.

use candle_core::{Device, Shape, Tensor};

use crate::noise::NoiseSource;
use crate::{Error, Result};

/// Dropout with rate `p`, applied at training and prediction alike.
#[derive(Debug, Clone)]
pub struct McDropout {
    p: f64,
    noise: NoiseSource,
}

impl McDropout {
    /// Dropout with rate `p` in [0, 1), masks drawn from `noise`.
    pub fn new(p: f64, noise: NoiseSource) -> Result<Self> {
        if !(0.0..1.0).contains(&p) {
            return Err(Error::invalid("dropout probability", p, "a rate in [0, 1)"));
        }
        Ok(Self { p, noise })
    }

    /// The dropout rate.
    pub fn p(&self) -> f64 {
        self.p
    }

    /// Draws a mask (1/(1-p) where kept, 0 where dropped).
    pub fn draw_mask(&self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let keep = 1.0 - self.p;
        self.noise
            .bernoulli(shape, keep, (1.0 / keep) as f32, device)
    }

    /// `xs ⊙ mask` with a fresh mask; the identity when `p = 0`.
    pub fn forward(&self, xs: &Tensor) -> Result<Tensor> {
        if self.p == 0.0 {
            return Ok(xs.clone());
        }
        Ok((xs * self.draw_mask(xs.shape(), xs.device())?)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_drop_at_rate_p_and_keep_the_mean() -> Result<()> {
        let d = McDropout::new(0.2, NoiseSource::new(5))?;
        let ones = Tensor::ones(100_000, candle_core::DType::F32, &Device::Cpu)?;
        let y = d.forward(&ones)?.to_vec1::<f32>()?;
        let dropped = y.iter().filter(|v| **v == 0.0).count() as f64 / y.len() as f64;
        let mean = y.iter().map(|v| *v as f64).sum::<f64>() / y.len() as f64;
        // Binomial sd of the dropped fraction: sqrt(0.2·0.8/1e5) = 0.0013; 5 sd.
        assert!((dropped - 0.2).abs() < 0.0065, "dropped {dropped}");
        // Kept entries are 1/0.8 = 1.25, so the mean is 1 within 1.25·0.0065.
        assert!((mean - 1.0).abs() < 0.0082, "mean {mean}");
        assert!(y.iter().all(|v| *v == 0.0 || (*v - 1.25).abs() < 1e-6));
        Ok(())
    }

    #[test]
    fn two_passes_differ_and_rates_outside_zero_one_are_rejected() -> Result<()> {
        let d = McDropout::new(0.5, NoiseSource::new(1))?;
        let x = Tensor::ones(64, candle_core::DType::F32, &Device::Cpu)?;
        assert_ne!(
            d.forward(&x)?.to_vec1::<f32>()?,
            d.forward(&x)?.to_vec1::<f32>()?
        );
        for p in [-0.1, 1.0, f64::NAN] {
            let e = McDropout::new(p, NoiseSource::new(0))
                .unwrap_err()
                .to_string();
            assert!(e.contains("dropout probability"), "{e}");
        }
        Ok(())
    }
}
