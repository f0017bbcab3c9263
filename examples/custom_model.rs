//! A user's own candle model built from `BayesLinear` layers, each with its own
//! prior, trained with a hand-written loop.
//!
//! It shows that a layer's prior is its initializer (the initial weight means
//! have the prior's std), that a `BayesLinear` is a candle `Module` (one
//! posterior sample per `forward`), and that the ELBO's KL splits per layer
//! into an L2 weight-decay part and the rest, with the equivalent L2
//! coefficient of each Gaussian prior. Data: y = sin(x1) + x2²/2 + N(0, 0.1²).
//!
//! ```text
//! cargo run --release --example custom_model
//! ```

use candle_bnn::elbo::{gaussian_prior_weight_decay, Elbo};
use candle_bnn::layers::{BayesLinear, Estimator};
use candle_bnn::likelihood::{Likelihood, LikelihoodKind};
use candle_bnn::noise::NoiseSource;
use candle_bnn::posterior::{KlTerms, DEFAULT_INIT_SCALE};
use candle_bnn::prior::{LayerPrior, Prior};
use candle_bnn::Result;
use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use rand::seq::SliceRandom;

const N: usize = 512;
const NOISE_STD: f64 = 0.1;
const EPOCHS: usize = 1000;
const BATCH: usize = 64;

/// The user's model: 2 -> 50 -> 50 -> 1 with ReLU, a different prior per layer.
struct Net {
    hidden1: BayesLinear,
    hidden2: BayesLinear,
    out: BayesLinear,
}

impl Module for Net {
    /// One posterior sample of the whole network per call.
    fn forward(&self, xs: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.hidden1.forward(xs)?.relu()?;
        let h = self.hidden2.forward(&h)?.relu()?;
        self.out.forward(&h)
    }
}

impl Net {
    fn layers(&self) -> [(&'static str, &BayesLinear); 3] {
        [
            ("hidden1", &self.hidden1),
            ("hidden2", &self.hidden2),
            ("out", &self.out),
        ]
    }

    /// KL(q || p) of the whole model: the layers' splits added up.
    fn kl(&self) -> Result<KlTerms> {
        let [a, b, c] = self.layers().map(|(_, l)| l.kl());
        a?.add(&b?)?.add(&c?)
    }
}

/// `n` rows of x ~ N(0, I₂), y = sin(x1) + x2²/2 + N(0, NOISE_STD²).
fn make_data(n: usize, noise: &NoiseSource, device: &Device) -> Result<(Tensor, Tensor)> {
    let x = noise.standard_normal((n, 2), device)?;
    let f = (x.narrow(1, 0, 1)?.sin()? + (x.narrow(1, 1, 1)?.sqr()? * 0.5)?)?;
    let y = (f + (noise.standard_normal((n, 1), device)? * NOISE_STD)?)?;
    Ok((x, y))
}

fn scalar(t: &Tensor) -> Result<f64> {
    Ok(t.to_dtype(DType::F64)?.to_scalar::<f64>()?)
}

fn rmse(pred: &Tensor, y: &Tensor) -> Result<f64> {
    Ok(scalar(&(pred - y)?.sqr()?.mean_all()?)?.sqrt())
}

fn main() -> Result<()> {
    let device = Device::Cpu;
    let noise = NoiseSource::new(42); // data, init, shuffles and forward noise: one seed
    let (x, y) = make_data(N, &noise, &device)?;
    let (x_test, y_test) = make_data(N, &noise, &device)?;
    let (est, s0) = (Estimator::LocalReparam, DEFAULT_INIT_SCALE);
    let layer = |i, o, p: Prior| BayesLinear::new(i, o, &p, est, s0, noise.clone(), &device);
    let net = Net {
        hidden1: layer(2, 50, Prior::He)?,      // sigma_p = sqrt(2 / 2)
        hidden2: layer(50, 50, Prior::Glorot)?, // sigma_p = sqrt(2 / 100)
        out: layer(50, 1, Prior::standard())?,  // sigma_p = 1 at any fan
    };
    // Average of T = 100 sampled passes, stacked as [T, rows, 2] in one forward.
    let sample_mean = |xs: &Tensor| -> Result<Tensor> {
        let stacked = xs.unsqueeze(0)?.repeat((100, 1, 1))?;
        Ok(net.forward(&stacked)?.mean(0)?)
    };

    println!("the prior is the initializer:");
    for (name, l) in net.layers() {
        let mu = l.weight().mu().flatten_all()?.to_dtype(DType::F64)?;
        let var = scalar(&mu.sqr()?.mean_all()?)? - scalar(&mu.mean_all()?)?.powi(2);
        let (n, emp, prior) = (mu.elem_count(), var.sqrt(), l.prior().std());
        println!("  {name:<8} {n:>4} weights: std(mu_0) {emp:.4}, prior std {prior:.4}");
    }
    println!("initial train rmse {:.3}", rmse(&sample_mean(&x)?, &y)?);

    // No decoupled weight decay: the KL's l2 part already is the weight decay
    // (candle's ParamsAdamW::default() would add another 0.01).
    let params = ParamsAdamW {
        lr: 1e-2,
        weight_decay: 0.0,
        ..Default::default()
    };
    let vars = net.layers().iter().flat_map(|(_, l)| l.vars()).collect();
    let mut opt = AdamW::new(vars, params)?;
    let elbo = Elbo::new(N)?;
    // Gaussian likelihood with the known noise: mean of -ln N(y; pred, NOISE_STD²).
    let likelihood = Likelihood::new(LikelihoodKind::FixedNoise { sigma: NOISE_STD }, &device)?;
    let gaussian_nll = |pred: &Tensor, y: &Tensor| likelihood.nll(pred, y);
    let mut order: Vec<u32> = (0..N as u32).collect();
    println!("epoch     loss      nll      kl   kl_l2  kl_rest   (all N rows, one sample)");
    for epoch in 0..EPOCHS {
        noise.with_rng(|rng| order.shuffle(rng));
        for chunk in order.chunks(BATCH) {
            let idx = Tensor::from_slice(chunk, chunk.len(), &device)?;
            let pred = net.forward(&x.index_select(&idx, 0)?)?;
            let nll = gaussian_nll(&pred, &y.index_select(&idx, 0)?)?;
            opt.backward_step(&elbo.terms(&nll, &net.kl()?, epoch as f64)?.loss)?;
        }
        if (epoch + 1) % 100 == 0 {
            let (e, nll) = (epoch + 1, gaussian_nll(&net.forward(&x)?, &y)?);
            let v = elbo.terms(&nll, &net.kl()?, e as f64)?.values()?;
            let (l, n, k, k2, kr) = (v.loss, v.nll, v.kl, v.kl_l2, v.kl_rest);
            println!("{e:>5} {l:>8.4} {n:>8.4} {k:>7.0} {k2:>7.0} {kr:>8.0}");
        }
    }

    // lambda = 1 / (2 sigma_p² N): the L2 coefficient that kl_l2 / N puts on the means.
    println!("KL per layer, and kl_l2 / N as weight decay lambda · Σ (mu - m)²:");
    for (name, l) in net.layers() {
        let kl = l.kl()?;
        let (l2, rest) = (scalar(&kl.l2)?, scalar(&kl.rest)?);
        print!("  {name:<8} kl_l2 {l2:>5.1}  kl_rest {rest:>5.1}");
        if let LayerPrior::Gaussian { mean, sigma } = *l.prior() {
            let lambda = gaussian_prior_weight_decay(sigma, N)?;
            let ss = |mu: &Tensor| scalar(&(mu - mean)?.sqr()?.sum_all()?);
            let decay = lambda * (ss(l.weight().mu())? + ss(l.bias().mu())?);
            let per_n = l2 / N as f64;
            print!("  lambda {lambda:.2e}: lambda·Σ(mu-m)² {decay:.4} = kl_l2/N {per_n:.4}");
        }
        println!();
    }

    let train = rmse(&sample_mean(&x)?, &y)?;
    let test = rmse(&sample_mean(&x_test)?, &y_test)?;
    println!("rmse of the 100-sample mean: train {train:.4}, test {test:.4} (noise {NOISE_STD})");
    Ok(())
}
