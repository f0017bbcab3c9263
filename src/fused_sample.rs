//! The reparameterized sample `w = mu + softplus(rho) ⊙ eps` as one graph
//! node (Blundell et al. 2015, "Weight Uncertainty in Neural Networks").
//!
//! ```text
//! w[s, i]   = eps[s, i] · sigma_i + mu_i,   sigma = softplus(rho)     eps: [S, shape of rho]
//! dL/dmu_i  = Σ_s g[s, i]
//! dL/drho_i = (Σ_s g[s, i] · eps[s, i]) · sigmoid(rho_i)             g = dL/dw
//! ```
//!
//! Flipout's perturbation `softplus(rho) ⊙ eps` is the same node without
//! `mu`. Composed of candle ops, the sample is a softplus, a broadcast
//! multiply and a broadcast add, each allocating its output and, backwards,
//! a zeroed gradient buffer, with both broadcasts reduced by candle's
//! per-element-index sum ([`crate::row_sum`]). This node performs the same
//! floating-point operations in the same order (products first, sums over
//! `s` from zero), so the results are the same bits; a test checks values
//! and gradients against the composed ops.

use candle_core::backend::BackendStorage;
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Storage, StorageRef, Tensor,
    WithDType,
};
use num_traits::Float;
use rayon::prelude::*;

use crate::fused::{self, append_rows, contiguous_values, Fused, PARALLEL_ABOVE};
use crate::ops::softplus;
use crate::row_sum::sum_rows;
use crate::Result;

/// `eps ⊙ softplus(rho) + mu` (or without `mu`), `rho` and `mu` broadcast
/// over the leading dimensions of `eps`. One node when all are contiguous
/// f32/f64 CPU tensors of one dtype and `eps`'s shape ends with `rho`'s
/// (`mu`'s is `rho`'s); candle's composed ops otherwise.
pub(crate) fn reparam_sample(eps: &Tensor, rho: &Tensor, mu: Option<&Tensor>) -> Result<Tensor> {
    if supports(eps, rho, mu) {
        return Ok(match mu {
            Some(mu) => eps.apply_op3(rho, mu, ReparamSample { kl: None })?,
            None => eps.apply_op2(rho, ReparamSample { kl: None })?,
        });
    }
    let scaled = eps.broadcast_mul(&softplus(rho)?)?;
    Ok(match mu {
        Some(mu) => scaled.broadcast_add(mu)?,
        None => scaled,
    })
}

/// [`reparam_sample`] together with `Σ_i kl_rest(rho_i; c)`, the variance
/// part of the Gaussian KL ([`crate::fused`], `c = 1 / (2 sigma_p²)`), from
/// one pass over `rho`: softplus is evaluated once per parameter for both,
/// and the backward pass reuses it. `None` where the kernel does not apply
/// (the caller then takes the two separately; the bits are the same).
///
/// The node's output packs `[samples | kl_rest per parameter | softplus(rho)]`
/// (the last part kept for the backward pass); the sample and the KL are
/// views of it.
pub(crate) fn reparam_sample_with_kl(
    eps: &Tensor,
    rho: &Tensor,
    mu: Option<&Tensor>,
    inv_2var: f64,
) -> Result<Option<(Tensor, Tensor)>> {
    if !supports(eps, rho, mu) {
        return Ok(None);
    }
    let op = ReparamSample { kl: Some(inv_2var) };
    let packed = match mu {
        Some(mu) => eps.apply_op3(rho, mu, op)?,
        None => eps.apply_op2(rho, op)?,
    };
    let (samples, n) = (eps.elem_count(), rho.elem_count());
    let sample = packed.narrow(0, 0, samples)?.reshape(eps.shape())?;
    let kl_rest = packed.narrow(0, samples, n)?.sum_all()?;
    Ok(Some((sample, kl_rest)))
}

/// Whether [`ReparamSample`] handles these inputs (see [`reparam_sample`]).
fn supports(eps: &Tensor, rho: &Tensor, mu: Option<&Tensor>) -> bool {
    let cpu_contiguous = |t: &Tensor| {
        t.device().is_cpu()
            && t.is_contiguous()
            && t.dtype() == eps.dtype()
            && matches!(t.dtype(), DType::F32 | DType::F64)
    };
    cpu_contiguous(eps)
        && cpu_contiguous(rho)
        && rho.elem_count() > 0
        && eps.dims().ends_with(rho.dims())
        && mu.is_none_or(|mu| cpu_contiguous(mu) && mu.dims() == rho.dims())
}

/// The node (see the module docs), with the KL's variance part when `kl`
/// holds `c = 1 / (2 sigma_p²)` ([`reparam_sample_with_kl`]).
#[derive(Debug, Clone, Copy)]
struct ReparamSample {
    kl: Option<f64>,
}

/// `eps · sigma + mu` (or `eps · sigma`) per sample, `sigma = softplus(rho)`
/// computed once; with `kl = Some(c)`, followed by `kl_rest(rho_i; c)` and
/// `sigma_i` for every parameter (the packed output of
/// [`reparam_sample_with_kl`]).
fn sample<F: Float + Send + Sync>(
    eps: &[F],
    rho: &[F],
    mu: Option<&[F]>,
    kl: Option<f64>,
) -> Vec<F> {
    let n = rho.len();
    let sigma = Fused::Softplus.map(rho, &Layout::contiguous(n));
    let sigma_ref = &sigma;
    // Room for the packed KL part too, so appending it copies no samples.
    let mut out = Vec::with_capacity(eps.len() + if kl.is_some() { 2 * n } else { 0 });
    append_rows(&mut out, eps.len() / n, n, |s| {
        let noise = &eps[s * n..][..n];
        noise
            .iter()
            .zip(sigma_ref)
            .enumerate()
            .map(move |(j, (&e, &sd))| match mu {
                Some(mu) => e * sd + mu[j],
                None => e * sd,
            })
    });
    if let Some(c) = kl {
        let c = F::from(c).unwrap_or_else(F::nan);
        let kl_rest = per_parameter(n, |j| fused::kl_rest(rho[j], sigma[j], c));
        out.extend_from_slice(&kl_rest);
        out.extend_from_slice(&sigma);
    }
    out
}

/// `f(j)` for `j` in `0..n`, split across rayon's pool for large `n`.
fn per_parameter<F: Send>(n: usize, f: impl Fn(usize) -> F + Send + Sync) -> Vec<F> {
    if n >= PARALLEL_ABOVE {
        (0..n)
            .into_par_iter()
            .with_min_len(PARALLEL_ABOVE / 4)
            .map(f)
            .collect()
    } else {
        (0..n).map(f).collect()
    }
}

/// `dL/drho_i = (Σ_s g[s, i] · eps[s, i]) · sigmoid(rho_i)`, plus
/// `g_kl_i · kl_rest'(rho_i)` when the output also held the KL (`kl =
/// Some((c, softplus(rho)))`, with `grad` then covering the packed output).
fn rho_grad<F: Float + Send + Sync>(
    grad: &[F],
    eps: &[F],
    rho: &[F],
    kl: Option<(f64, &[F])>,
) -> Vec<F> {
    let n = rho.len();
    let mut sum = vec![F::zero(); n];
    for (g, e) in grad[..eps.len()].chunks(n).zip(eps.chunks(n)) {
        for ((s, &g), &e) in sum.iter_mut().zip(g).zip(e) {
            *s = *s + g * e;
        }
    }
    match kl {
        None => per_parameter(n, |j| sum[j] * fused::sigmoid(rho[j])),
        Some((c, sigma)) => {
            let c = F::from(c).unwrap_or_else(F::nan);
            let grad_kl = &grad[eps.len()..eps.len() + n];
            per_parameter(n, |j| {
                let (x, sig) = (rho[j], fused::sigmoid(rho[j]));
                sum[j] * sig + grad_kl[j] * fused::kl_rest_grad(x, sigma[j], sig, c)
            })
        }
    }
}

impl ReparamSample {
    /// [`sample`] on storages.
    fn forward(
        self,
        eps: (&CpuStorage, &Layout),
        rho: (&CpuStorage, &Layout),
        mu: Option<(&CpuStorage, &Layout)>,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        fn values<'a, F: WithDType>(
            (storage, layout): (&'a CpuStorage, &Layout),
        ) -> candle_core::Result<&'a [F]> {
            contiguous_values(storage, layout, "reparam-sample")
        }
        fn typed<F: Float + WithDType + Send + Sync>(
            eps: (&CpuStorage, &Layout),
            rho: (&CpuStorage, &Layout),
            mu: Option<(&CpuStorage, &Layout)>,
            kl: Option<f64>,
        ) -> candle_core::Result<Vec<F>> {
            let mu = mu.map(values::<F>).transpose()?;
            Ok(sample(values(eps)?, values(rho)?, mu, kl))
        }
        let out = match eps.0.dtype() {
            DType::F32 => CpuStorage::F32(typed(eps, rho, mu, self.kl)?),
            DType::F64 => CpuStorage::F64(typed(eps, rho, mu, self.kl)?),
            other => bail!("reparam-sample needs f32 or f64, got {other:?}"),
        };
        let shape = match self.kl {
            None => eps.1.shape().clone(),
            Some(_) => Shape::from(out_len(eps.1, rho.1)),
        };
        Ok((out, shape))
    }

    /// `dL/drho` from the output gradient (see [`rho_grad`]).
    fn rho_grad(
        self,
        eps: &Tensor,
        rho: &Tensor,
        packed: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<Tensor> {
        fn cpu_values<'a, F: WithDType>(
            (storage, layout): &'a (StorageRef<'_>, &Layout),
        ) -> candle_core::Result<&'a [F]> {
            match &**storage {
                Storage::Cpu(cpu) => contiguous_values(cpu, layout, "reparam-sample"),
                _ => bail!("reparam-sample runs on the CPU"),
            }
        }
        fn typed<F: Float + WithDType + Send + Sync>(
            op: ReparamSample,
            eps: &Tensor,
            rho: &Tensor,
            packed: &Tensor,
            grad: &Tensor,
        ) -> candle_core::Result<Tensor> {
            let grad = grad.contiguous()?;
            let (g, e, r, p) = (
                grad.storage_and_layout(),
                eps.storage_and_layout(),
                rho.storage_and_layout(),
                packed.storage_and_layout(),
            );
            let rho_values = cpu_values::<F>(&r)?;
            let kl = match op.kl {
                Some(c) => {
                    let sigma_from = eps.elem_count() + rho_values.len();
                    Some((c, &cpu_values::<F>(&p)?[sigma_from..]))
                }
                None => None,
            };
            let values = rho_grad(cpu_values(&g)?, cpu_values(&e)?, rho_values, kl);
            Tensor::from_vec(values, rho.shape(), rho.device())
        }
        match rho.dtype() {
            DType::F32 => typed::<f32>(self, eps, rho, packed, grad),
            DType::F64 => typed::<f64>(self, eps, rho, packed, grad),
            other => bail!("reparam-sample needs f32 or f64, got {other:?}"),
        }
    }

    /// `dL/dmu = Σ_s g[s, i]`, from the samples' part of the gradient.
    fn mu_grad(rho: &Tensor, eps: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        let samples = grad.flatten_all()?.narrow(0, 0, eps.elem_count())?;
        sum_rows(&samples.contiguous()?, 1, rho.shape())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
}

/// Length of the packed output: the samples, then two values per parameter.
fn out_len(eps: &Layout, rho: &Layout) -> usize {
    eps.shape().elem_count() + 2 * rho.shape().elem_count()
}

impl CustomOp2 for ReparamSample {
    fn name(&self) -> &'static str {
        "scaled-noise"
    }

    fn cpu_fwd(
        &self,
        eps: &CpuStorage,
        eps_layout: &Layout,
        rho: &CpuStorage,
        rho_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((eps, eps_layout), (rho, rho_layout), None)
    }

    fn bwd(
        &self,
        eps: &Tensor,
        rho: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(self.rho_grad(eps, rho, res, grad)?)))
    }
}

impl CustomOp3 for ReparamSample {
    fn name(&self) -> &'static str {
        "reparam-sample"
    }

    fn cpu_fwd(
        &self,
        eps: &CpuStorage,
        eps_layout: &Layout,
        rho: &CpuStorage,
        rho_layout: &Layout,
        mu: &CpuStorage,
        mu_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        self.forward((eps, eps_layout), (rho, rho_layout), Some((mu, mu_layout)))
    }

    fn bwd(
        &self,
        eps: &Tensor,
        rho: &Tensor,
        _mu: &Tensor,
        res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((
            None,
            Some(self.rho_grad(eps, rho, res, grad)?),
            Some(Self::mu_grad(rho, eps, grad)?),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::bits;
    use candle_core::{Device, Var};

    /// Noise `[eps_dims]`, `rho` from `rho_low` upwards, `mu` (both of
    /// `rho_dims`) and per-output loss weights of both signs.
    fn inputs(
        eps_dims: &[usize],
        rho_dims: &[usize],
        rho_low: f32,
        rho_step: f32,
    ) -> Result<(Tensor, Var, Var, Tensor)> {
        let dev = Device::Cpu;
        let (count, n) = (
            eps_dims.iter().product::<usize>(),
            rho_dims.iter().product::<usize>(),
        );
        let eps: Vec<f32> = (0..count)
            .map(|i| (((i * 7919) % 211) as f32 - 105.0) * 0.0173)
            .collect();
        let rho: Vec<f32> = (0..n)
            .map(|i| ((i * 31) % 97) as f32 * rho_step + rho_low)
            .collect();
        let mu: Vec<f32> = (0..n)
            .map(|i| ((i * 13) % 23) as f32 * 0.09 - 1.0)
            .collect();
        let weights = Tensor::arange(0f32, count as f32, &dev)?
            .affine(1.3, -(count as f64) / 2.0)?
            .reshape(eps_dims)?;
        Ok((
            Tensor::from_vec(eps, eps_dims, &dev)?,
            Var::from_vec(rho, rho_dims, &dev)?,
            Var::from_vec(mu, rho_dims, &dev)?,
            weights,
        ))
    }

    /// The node and candle's softplus, broadcast multiply and broadcast add
    /// give the same bits, forward and backward: with and without `mu`, for
    /// one and for several samples, a weight and a `[S, 1, n]` bias noise,
    /// on the serial and the parallel path, and with output gradients of
    /// both signs.
    #[test]
    fn fused_sample_equals_composed_ops_bit_for_bit() -> Result<()> {
        for (eps_dims, rho_dims) in [
            (vec![1usize, 5, 3], vec![5usize, 3]),
            (vec![4, 1, 6], vec![6]),
            (vec![3, 96, 64], vec![96, 64]), // 18 432 outputs: the parallel path
        ] {
            let (eps, rho, mu, weights) = inputs(&eps_dims, &rho_dims, -12.0, 0.21)?;
            for with_mu in [true, false] {
                let mu_arg = with_mu.then_some(mu.as_tensor());
                assert!(supports(&eps, rho.as_tensor(), mu_arg));
                let fused = reparam_sample(&eps, rho.as_tensor(), mu_arg)?;
                let scaled = eps.broadcast_mul(&softplus(rho.as_tensor())?)?;
                let composed = match mu_arg {
                    Some(mu) => scaled.broadcast_add(mu)?,
                    None => scaled,
                };
                let shape = format!("{eps_dims:?}, mu {with_mu}");
                assert_eq!(bits(&fused)?, bits(&composed)?, "forward, {shape}");
                let g_fused = (fused * &weights)?.sum_all()?.backward()?;
                let g_composed = (composed * &weights)?.sum_all()?.backward()?;
                let vars: &[&Var] = if with_mu { &[&rho, &mu] } else { &[&rho] };
                for var in vars {
                    let grad = |g: &candle_core::backprop::GradStore| -> Result<Vec<u32>> {
                        bits(g.get(var.as_tensor()).expect("a gradient"))
                    };
                    assert_eq!(grad(&g_fused)?, grad(&g_composed)?, "gradient, {shape}");
                }
                if !with_mu {
                    assert!(g_fused.get(mu.as_tensor()).is_none());
                }
            }
        }
        Ok(())
    }

    /// Taking the KL's variance part along changes no bit: the sample, the
    /// KL and the gradients of `rho` and `mu` equal those of the sample
    /// node and the separate `kl_rest` kernel, on both paths.
    #[test]
    fn sample_with_kl_equals_sample_and_kl_bit_for_bit() -> Result<()> {
        let inv_2var = 0.37;
        for (eps_dims, rho_dims) in [
            (vec![1usize, 5, 3], vec![5usize, 3]),
            (vec![1, 160, 128], vec![160, 128]), // 20 480 parameters: parallel
        ] {
            // Down to -25: the linear branch of ln softplus too.
            let (eps, rho, mu, weights) = inputs(&eps_dims, &rho_dims, -25.0, 0.27)?;
            for with_mu in [true, false] {
                let mu_arg = with_mu.then_some(mu.as_tensor());
                let (sample, kl) = reparam_sample_with_kl(&eps, rho.as_tensor(), mu_arg, inv_2var)?
                    .expect("a supported input");
                let separate = reparam_sample(&eps, rho.as_tensor(), mu_arg)?;
                let separate_kl = rho
                    .as_tensor()
                    .apply_op1(Fused::KlRest { inv_2var })?
                    .sum_all()?;
                let shape = format!("{eps_dims:?}, mu {with_mu}");
                assert_eq!(bits(&sample)?, bits(&separate)?, "sample, {shape}");
                assert_eq!(bits(&kl)?, bits(&separate_kl)?, "kl, {shape}");
                let loss = |s: Tensor, k: Tensor| -> Result<Tensor> {
                    Ok(((s * &weights)?.sum_all()? + (k * 3.7)?)?)
                };
                let g_fused = loss(sample, kl)?.backward()?;
                let g_separate = loss(separate, separate_kl)?.backward()?;
                let vars: &[&Var] = if with_mu { &[&rho, &mu] } else { &[&rho] };
                for var in vars {
                    let grad = |g: &candle_core::backprop::GradStore| -> Result<Vec<u32>> {
                        bits(g.get(var.as_tensor()).expect("a gradient"))
                    };
                    assert_eq!(grad(&g_fused)?, grad(&g_separate)?, "gradient, {shape}");
                }
            }
        }
        Ok(())
    }

    /// Inputs the node does not cover take the composed ops.
    #[test]
    fn other_inputs_fall_back_to_candle() -> Result<()> {
        let dev = Device::Cpu;
        let eps = Tensor::ones((2, 3), DType::F32, &dev)?;
        let column = Tensor::zeros((2, 1), DType::F32, &dev)?; // broadcast, not trailing
        assert!(!supports(&eps, &column, None));
        let got = reparam_sample(&eps, &column, None)?;
        let ln2 = std::f32::consts::LN_2;
        assert_eq!(got.to_vec2::<f32>()?, [[ln2; 3], [ln2; 3]]);
        Ok(())
    }
}
