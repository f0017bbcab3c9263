//! Synthetic predictors with a known calibration, shared by the metric and
//! recalibration tests.

use candle_bnn::predictive::CategoricalMixture;
use candle_bnn::Result;
use rand::rngs::StdRng;
use rand::RngExt;
use rand_distr::StandardNormal;

/// `n` rows over `k` classes: true probabilities softmax(z), z ~ N(0, 1.5²),
/// labels drawn from them; the classifier reports softmax(sharpen · z).
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
