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
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType,
};
use num_traits::Float;

use crate::fused::{collect_rows, contiguous_values, Fused};
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
            Some(mu) => eps.apply_op3(rho, mu, ReparamSample)?,
            None => eps.apply_op2(rho, ReparamSample)?,
        });
    }
    let scaled = eps.broadcast_mul(&softplus(rho)?)?;
    Ok(match mu {
        Some(mu) => scaled.broadcast_add(mu)?,
        None => scaled,
    })
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

/// The node (see the module docs).
#[derive(Debug, Clone, Copy)]
struct ReparamSample;

/// `eps · sigma + mu` (or `eps · sigma`) per sample, `sigma = softplus(rho)`
/// computed once; samples split across rayon's pool for large outputs.
fn sample<F: Float + Send + Sync>(eps: &[F], rho: &[F], mu: Option<&[F]>) -> Vec<F> {
    let n = rho.len();
    let sigma = Fused::Softplus.map(rho, &Layout::contiguous(n));
    let sigma = &sigma;
    collect_rows(eps.len() / n, n, |s| {
        let noise = &eps[s * n..][..n];
        noise
            .iter()
            .zip(sigma)
            .enumerate()
            .map(move |(j, (&e, &sd))| match mu {
                Some(mu) => e * sd + mu[j],
                None => e * sd,
            })
    })
}

/// `(Σ_s g[s, i] · eps[s, i]) · sigmoid(rho_i)`.
fn rho_grad<F: Float + Send + Sync>(grad: &[F], eps: &[F], rho: &[F]) -> Vec<F> {
    let n = rho.len();
    let mut sum = vec![F::zero(); n];
    for (g, e) in grad.chunks(n).zip(eps.chunks(n)) {
        for ((s, &g), &e) in sum.iter_mut().zip(g).zip(e) {
            *s = *s + g * e;
        }
    }
    let slope = Fused::Sigmoid.map(rho, &Layout::contiguous(n));
    sum.iter().zip(&slope).map(|(&s, &d)| s * d).collect()
}

impl ReparamSample {
    /// [`sample`] on storages.
    fn forward(
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
        ) -> candle_core::Result<Vec<F>> {
            let mu = mu.map(values::<F>).transpose()?;
            Ok(sample(values(eps)?, values(rho)?, mu))
        }
        let out = match eps.0.dtype() {
            DType::F32 => CpuStorage::F32(typed(eps, rho, mu)?),
            DType::F64 => CpuStorage::F64(typed(eps, rho, mu)?),
            other => bail!("reparam-sample needs f32 or f64, got {other:?}"),
        };
        Ok((out, eps.1.shape().clone()))
    }

    /// `dL/drho` of the module docs, from the output gradient.
    fn rho_grad(eps: &Tensor, rho: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        grad.contiguous()?.apply_op3_no_bwd(eps, rho, &RhoGrad)
    }

    /// `dL/dmu` of the module docs, from the output gradient.
    fn mu_grad(rho: &Tensor, grad: &Tensor) -> candle_core::Result<Tensor> {
        sum_rows(&grad.contiguous()?, 1, rho.shape())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))
    }
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
        Self::forward((eps, eps_layout), (rho, rho_layout), None)
    }

    fn bwd(
        &self,
        eps: &Tensor,
        rho: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        Ok((None, Some(Self::rho_grad(eps, rho, grad)?)))
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
        Self::forward((eps, eps_layout), (rho, rho_layout), Some((mu, mu_layout)))
    }

    fn bwd(
        &self,
        eps: &Tensor,
        rho: &Tensor,
        _mu: &Tensor,
        _res: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        Ok((
            None,
            Some(Self::rho_grad(eps, rho, grad)?),
            Some(Self::mu_grad(rho, grad)?),
        ))
    }
}

/// The kernel of `dL/drho` on `(g, eps, rho)`.
#[derive(Debug, Clone, Copy)]
struct RhoGrad;

impl CustomOp3 for RhoGrad {
    fn name(&self) -> &'static str {
        "reparam-sample-rho-grad"
    }

    fn cpu_fwd(
        &self,
        grad: &CpuStorage,
        grad_layout: &Layout,
        eps: &CpuStorage,
        eps_layout: &Layout,
        rho: &CpuStorage,
        rho_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match grad.dtype() {
            DType::F32 => CpuStorage::F32(rho_grad::<f32>(
                contiguous_values(grad, grad_layout, self.name())?,
                contiguous_values(eps, eps_layout, self.name())?,
                contiguous_values(rho, rho_layout, self.name())?,
            )),
            DType::F64 => CpuStorage::F64(rho_grad::<f64>(
                contiguous_values(grad, grad_layout, self.name())?,
                contiguous_values(eps, eps_layout, self.name())?,
                contiguous_values(rho, rho_layout, self.name())?,
            )),
            other => bail!("{} needs f32 or f64, got {other:?}", self.name()),
        };
        Ok((out, rho_layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    fn bits(t: &Tensor) -> Result<Vec<u32>> {
        Ok(t.flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect())
    }

    /// The node and candle's softplus, broadcast multiply and broadcast add
    /// give the same bits, forward and backward: with and without `mu`, for
    /// one and for several samples, a weight and a `[S, 1, n]` bias noise,
    /// on the serial and the parallel path, and with output gradients of
    /// both signs.
    #[test]
    fn fused_sample_equals_composed_ops_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for (eps_dims, rho_dims) in [
            (vec![1usize, 5, 3], vec![5usize, 3]),
            (vec![4, 1, 6], vec![6]),
            (vec![3, 96, 64], vec![96, 64]), // 18 432 outputs: the parallel path
        ] {
            let (count, n) = (
                eps_dims.iter().product::<usize>(),
                rho_dims.iter().product::<usize>(),
            );
            let eps: Vec<f32> = (0..count)
                .map(|i| (((i * 7919) % 211) as f32 - 105.0) * 0.0173)
                .collect();
            let eps = Tensor::from_vec(eps, eps_dims.as_slice(), &dev)?;
            let rho: Vec<f32> = (0..n)
                .map(|i| ((i * 31) % 97) as f32 * 0.21 - 12.0)
                .collect();
            let rho = Var::from_vec(rho, rho_dims.as_slice(), &dev)?;
            let mu: Vec<f32> = (0..n)
                .map(|i| ((i * 13) % 23) as f32 * 0.09 - 1.0)
                .collect();
            let mu = Var::from_vec(mu, rho_dims.as_slice(), &dev)?;
            let weights = Tensor::arange(0f32, count as f32, &dev)?
                .affine(1.3, -(count as f64) / 2.0)?
                .reshape(eps_dims.as_slice())?;
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
