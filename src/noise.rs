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
use rand::{Rng, RngExt, SeedableRng};
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

    /// f32 tensor of i.i.d. uniform draws on `(-half_width, half_width)`:
    /// `half_width (2u - 1)` for `u ~ U[0, 1)`, variance `half_width² / 3`.
    pub fn uniform(
        &self,
        shape: impl Into<Shape>,
        half_width: f64,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let mut rng = self.lock();
        let data: Vec<f32> = (0..shape.elem_count())
            .map(|_| (half_width * (2.0 * rng.random::<f64>() - 1.0)) as f32)
            .collect();
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// f32 tensor of i.i.d. random signs, `P(+1) = P(-1) = 1/2` (Flipout).
    ///
    /// Sixty-four signs per 64-bit draw: element `64 k + j` is `+1` iff bit
    /// `j` of the `k`-th draw is set (every bit of the generator is uniform).
    pub fn rademacher(&self, shape: impl Into<Shape>, device: &Device) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        let mut rng = self.lock();
        let mut data = Vec::with_capacity(n);
        while data.len() < n {
            let bits = rng.next_u64();
            let take = (n - data.len()).min(64);
            data.extend((0..take).map(|j| if bits >> j & 1 == 1 { 1f32 } else { -1f32 }));
        }
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// f32 tensor whose entries are i.i.d. `value` with probability `keep`
    /// and 0 otherwise (dropout masks). `keep` must lie in [0, 1].
    ///
    /// Each entry is kept iff `U < keep` for a uniform `U = m / 2^53`, `m`
    /// 53 random bits (the law of `rng.random::<f64>() < keep`), decided 64
    /// entries at a time and bit by bit, most significant first:
    ///
    /// ```text
    /// U < keep  <=>  m < K,  K = ceil(keep · 2^53)
    /// ```
    ///
    /// An entry is decided at the first bit where `m` and `K` differ, so
    /// each further 64-bit draw is needed only while some entry of the
    /// word is undecided: about 7 draws per 64 entries, not 64.
    pub fn bernoulli(
        &self,
        shape: impl Into<Shape>,
        keep: f64,
        value: f32,
        device: &Device,
    ) -> Result<Tensor> {
        let shape = shape.into();
        let n = shape.elem_count();
        // Exact: scaling by a power of two, then an integer <= 2^53.
        let threshold = (keep.clamp(0.0, 1.0) * (1u64 << 53) as f64).ceil() as u64;
        let mut rng = self.lock();
        let mut data = Vec::with_capacity(n);
        while data.len() < n {
            let kept = if threshold >= 1 << 53 {
                u64::MAX
            } else {
                bernoulli_word(&mut rng, threshold)
            };
            let take = (n - data.len()).min(64);
            data.extend((0..take).map(|j| if kept >> j & 1 == 1 { value } else { 0.0 }));
        }
        Ok(Tensor::from_vec(data, shape, device)?)
    }

    /// Run `f` with exclusive access to the generator (for draws that are not
    /// tensors, such as minibatch shuffles or prior samples).
    pub fn with_rng<T>(&self, f: impl FnOnce(&mut StdRng) -> T) -> T {
        f(&mut self.lock())
    }
}

/// Sixty-four Bernoulli draws in the bits of one word: bit `j` is set iff
/// `m_j < threshold`, for independent uniform 53-bit integers `m_j`
/// (`threshold < 2^53`), compared with `threshold` from the most
/// significant bit down. Bit `b` of all 64 `m_j` comes from one draw `r`:
///
/// ```text
/// threshold bit 1:  m_j < threshold decided where r_j = 0;  r_j = 1 continues
/// threshold bit 0:  m_j > threshold decided where r_j = 1;  r_j = 0 continues
/// ```
///
/// Entries still undecided after all 53 bits equal the threshold: not less.
fn bernoulli_word(rng: &mut StdRng, threshold: u64) -> u64 {
    let (mut undecided, mut less) = (u64::MAX, 0u64);
    for b in (0..53).rev() {
        let r = rng.next_u64();
        if threshold >> b & 1 == 1 {
            less |= undecided & !r;
            undecided &= r;
        } else {
            undecided &= !r;
        }
        if undecided == 0 {
            break;
        }
    }
    less
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

    #[test]
    fn bernoulli_keeps_at_rate_keep_including_the_extremes() -> Result<()> {
        let noise = NoiseSource::new(3);
        let n = 100_000;
        for keep in [0.0, 0.1, 0.5, 0.9, 0.95, 1.0] {
            let v = noise
                .bernoulli(n, keep, 2.5, &Device::Cpu)?
                .to_vec1::<f32>()?;
            assert!(v.iter().all(|x| *x == 0.0 || *x == 2.5));
            let rate = v.iter().filter(|x| **x == 2.5).count() as f64 / n as f64;
            // Binomial sd <= sqrt(0.25 / 1e5) = 0.0016; 5 sd.
            assert!((rate - keep).abs() < 0.008, "keep {keep}: rate {rate}");
        }
        Ok(())
    }

    #[test]
    fn bernoulli_word_is_the_comparison_of_53_bit_uniforms() {
        // The bit-sliced comparison against independent draws of the same
        // law: per bit position j, P(bit set) = threshold / 2^53.
        let mut rng = StdRng::seed_from_u64(11);
        let threshold = (0.3 * (1u64 << 53) as f64).ceil() as u64;
        let words = 20_000;
        let mut per_bit = [0u32; 64];
        for _ in 0..words {
            let w = bernoulli_word(&mut rng, threshold);
            for (j, c) in per_bit.iter_mut().enumerate() {
                *c += (w >> j & 1) as u32;
            }
        }
        // sd of each rate sqrt(0.21 / 2e4) = 0.0032; 5 sd.
        for c in per_bit {
            let rate = c as f64 / words as f64;
            assert!((rate - 0.3).abs() < 0.017, "rate {rate}");
        }
    }
}
