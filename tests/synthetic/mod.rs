//! Synthetic data shared by the test crates: predictors with a known
//! calibration (metric and recalibration tests) and a noisy line (training
//! tests).

use candle_bnn::predictive::CategoricalMixture;
use candle_bnn::Result;
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rand_distr::StandardNormal;

/// `n` rows over `k` classes: true probabilities softmax(z), z ~ N(0, 1.5²),
/// labels drawn from them; the classifier reports softmax(sharpen · z).
#[allow(dead_code)] // not every test crate uses every generator
pub fn classifier(
    rng: &mut StdRng,
    n: usize,
    k: usize,
    sharpen: f64,
) -> Result<(CategoricalMixture, Vec<usize>)> {
    let softmax = |z: &[f64], a: f64| {
        let m = z.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let e: Vec<f64> = z.iter().map(|v| (a * (v - m)).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|v| v / s).collect::<Vec<_>>()
    };
    let (mut probs, mut labels) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let z: Vec<f64> = (0..k)
            .map(|_| 1.5 * rng.sample::<f64, _>(StandardNormal))
            .collect();
        let u: f64 = rng.random();
        let mut acc = 0.0;
        let label = softmax(&z, 1.0)
            .iter()
            .position(|p| {
                acc += p;
                u < acc
            })
            .unwrap_or(k - 1);
        labels.push(label);
        probs.extend(softmax(&z, sharpen));
    }
    Ok((CategoricalMixture::new(n, 1, k, probs)?, labels))
}

/// `n` rows of `y = 2x + noise_sd · eps`, `x ~ U(-1, 1)`, from `seed`:
/// (xs `[n, 1]`, ys `[n, 1]`, x and y as f64).
#[allow(dead_code)] // not every test crate uses every generator
pub fn linear_data(
    n: usize,
    noise_sd: f64,
    seed: u64,
) -> Result<(Tensor, Tensor, Vec<f64>, Vec<f64>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    let x: Vec<f64> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
    let y: Vec<f64> = x
        .iter()
        .map(|x| 2.0 * x + noise_sd * rng.sample::<f64, _>(StandardNormal))
        .collect();
    let t = |v: &[f64]| -> Result<Tensor> {
        Ok(Tensor::from_vec(
            v.iter().map(|v| *v as f32).collect::<Vec<_>>(),
            (n, 1),
            &Device::Cpu,
        )?)
    };
    Ok((t(&x)?, t(&y)?, x, y))
}
