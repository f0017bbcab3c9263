//! The seeded source of all randomness in forward passes.
//!
//! candle cannot seed its CPU random generator (`Device::Cpu.set_seed` fails and
//! `Tensor::randn` draws from the OS), so every noise tensor in this crate is
//! drawn here from one seeded [`StdRng`] and uploaded with `Tensor::from_vec`.
//! Same seed, same order of calls -> bitwise identical numbers, on any thread
//! count. Clones share one generator, so a model and all its layers advance a
//! single stream.

use std::sync::{Arc, Mutex, MutexGuard};

use candle_core::{Device, Shape, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

use crate::Result;

/// A shared, seeded random stream that produces noise tensors.
#[derive(Debug, Clone)]
pub struct NoiseSource {
    rng: Arc<Mutex<StdRng>>,
}

impl NoiseSource {
    /// A new stream from `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: Arc::new(Mutex::new(StdRng::seed_from_u64(seed))),
        }
    }

    /// Restart the stream (shared by every clone) from `seed`.
    pub fn reseed(&self, seed: u64) {
        *self.lock() = StdRng::seed_from_u64(seed);
    }

    fn lock(&self) -> MutexGuard<'_, StdRng> {
        // A poisoned lock only means another thread panicked mid-draw; the
        // generator state is still a valid state.
        self.rng.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// f32 tensor of i.i.d. standard normal draws, `eps ~ N(0, 1)`.
    pub fn standard_normal(&self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let mut rng = self.lock();
        let data: Vec<f32> = (0..shape.elem_count())
            .map(|_| rng.sample(StandardNormal))
            .collect();
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// f32 tensor of i.i.d. random signs, `P(+1) = P(-1) = 1/2` (Flipout).
    pub fn rademacher(&self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let mut rng = self.lock();
        let data: Vec<f32> = (0..shape.elem_count())
            .map(|_| if rng.random::<bool>() { 1.0 } else { -1.0 })
            .collect();
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// f32 tensor of i.i.d. Bernoulli(`keep`) draws, each 1 or 0 (dropout
    /// masks). `keep` must lie in [0, 1].
    pub fn bernoulli(&self, shape: impl Into<Shape>, keep: f64, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let mut rng = self.lock();
        let data: Vec<f32> = (0..shape.elem_count())
            .map(|_| if rng.random::<f64>() < keep { 1.0 } else { 0.0 })
            .collect();
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// Run `f` with exclusive access to the generator (for draws that are not
    /// tensors, such as minibatch shuffles or prior samples).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.lock())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_numbers_and_clones_share_the_stream() -> Result<()> {
        let a = NoiseSource::new(7);
        let b = NoiseSource::new(7);
        let x = a.standard_normal((3, 4), &Device::Cpu)?.to_vec2::<f32>()?;
        let y = b.standard_normal((3, 4), &Device::Cpu)?.to_vec2::<f32>()?;
        assert_eq!(x, y);
        // A clone advances the same generator: its next draw differs from the first.
        let c = a.clone();
        let z = c.standard_normal((3, 4), &Device::Cpu)?.to_vec2::<f32>()?;
        assert_ne!(x, z);
        Ok(())
    }

    #[test]
    fn rademacher_is_plus_minus_one_and_balanced() -> Result<()> {
        let s = NoiseSource::new(1)
            .rademacher(10_000, &Device::Cpu)?
            .to_vec1::<f32>()?;
        assert!(s.iter().all(|v| *v == 1.0 || *v == -1.0));
        // Mean of 10^4 signs has sd 0.01; 5 sd = 0.05.
        let mean = s.iter().sum::<f32>() / s.len() as f32;
        assert!(mean.abs() < 0.05, "mean {mean}");
        Ok(())
    }
}
