//! `relu(x + b)` as one graph node: the hidden layer's bias add and ReLU in
//! one pass.
//!
//! ```text
//! y = max(x + b, 0)          b broadcast over x's leading dimensions
//! dL/dx = g ⊙ 1[x + b ≥ 0]   dL/db = Σ over the broadcast dimensions of dL/dx
//! ```
//!
//! candle evaluates this as a broadcast add and a ReLU: two passes over the
//! activation, each allocating its output, on one thread
//! ([`crate::tuning`]). In a T-sample prediction the activations hold
//! millions of values, so those passes cost about a fifth of the time at
//! H = 64 (docs/performance.md). This kernel makes one pass, split across
//! rayon's pool for large inputs. Forward and backward perform the same
//! floating-point operations as candle's two ops (the backward even keeps
//! candle's `x + b ≥ 0` for the ReLU's slope at 0), so results are the same
//! bits; a test checks values and gradients against the composed ops.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp2, DType, Layout, Shape, Tensor};
use num_traits::Float;
use rayon::prelude::*;

use crate::Result;

/// Outputs of at least this many values are split across rayon's pool (the
/// threshold of [`crate::fused`]'s kernels).
const PARALLEL_ABOVE: usize = 1 << 14;

/// `relu(xs + bias)`, `bias` broadcast over the leading dimensions of `xs`;
/// one fused node when both are contiguous f32/f64 CPU tensors and `bias`
/// is `[n]` (or any shape of `n` values) or `[S, 1, n]` for `xs: [S, B, n]`,
/// otherwise candle's `broadcast_add` and `relu`.
pub(crate) fn bias_relu(xs: &Tensor, bias: &Tensor) -> Result<Tensor> {
    Ok(if BiasRelu::supports(xs, bias) {
        xs.apply_op2(bias, BiasRelu)?
    } else {
        xs.broadcast_add(bias)?.relu()?
    })
}

/// The fused op (see the module docs).
#[derive(Debug, Clone, Copy)]
struct BiasRelu;

impl BiasRelu {
    /// Whether the kernel handles this pair (see [`bias_relu`]).
    fn supports(xs: &Tensor, bias: &Tensor) -> bool {
        let dims = xs.dims();
        let Some(&n) = dims.last() else {
            return false;
        };
        let per_sample = dims.len() == 3 && bias.dims() == [dims[0], 1, n];
        xs.device().is_cpu()
            && bias.device().is_cpu()
            && matches!(xs.dtype(), DType::F32 | DType::F64)
            && xs.dtype() == bias.dtype()
            && xs.is_contiguous()
            && bias.is_contiguous()
            && n > 0
            && bias.rank() <= dims.len()
            && (per_sample || (bias.elem_count() == n && bias.dims().last() == Some(&n)))
    }

    /// `max(x + b, 0)` row by row, row `r` of `n` values taking bias row
    /// `r / rows_per_bias_row` (0 when the bias is one row).
    fn forward<F: Float + Send + Sync>(xs: &[F], bias: &[F], n: usize) -> Vec<F> {
        let bias_rows = bias.len() / n;
        let rows_per_bias_row = (xs.len() / n).div_ceil(bias_rows);
        let row = |(r, (out, x)): (usize, (&mut [F], &[F]))| {
            let b = &bias[(r / rows_per_bias_row) * n..][..n];
            for ((o, &x), &b) in out.iter_mut().zip(x).zip(b) {
                *o = (x + b).max(F::zero());
            }
        };
        let mut out = vec![F::zero(); xs.len()];
        if xs.len() >= PARALLEL_ABOVE {
            let rows_per_task = (PARALLEL_ABOVE / 4).div_ceil(n);
            out.par_chunks_mut(n)
                .zip(xs.par_chunks(n))
                .enumerate()
                .with_min_len(rows_per_task)
                .for_each(row);
        } else {
            out.chunks_mut(n)
                .zip(xs.chunks(n))
                .enumerate()
                .for_each(row);
        }
        out
    }
}

impl CustomOp2 for BiasRelu {
    fn name(&self) -> &'static str {
        "bias-relu"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (Some((x0, x1)), Some((b0, b1))) = (
            xs_layout.contiguous_offsets(),
            bias_layout.contiguous_offsets(),
        ) else {
            bail!("bias-relu needs contiguous inputs")
        };
        let n = xs_layout.dims().last().copied().unwrap_or(1);
        let out = match (xs, bias) {
            (CpuStorage::F32(x), CpuStorage::F32(b)) => {
                CpuStorage::F32(Self::forward(&x[x0..x1], &b[b0..b1], n))
            }
            (CpuStorage::F64(x), CpuStorage::F64(b)) => {
                CpuStorage::F64(Self::forward(&x[x0..x1], &b[b0..b1], n))
            }
            _ => bail!("bias-relu needs f32 or f64, got {:?}", xs.dtype()),
        };
        Ok((out, xs_layout.shape().clone()))
    }

    /// candle's own backward of `broadcast_add` then `relu`, op for op.
    fn bwd(
        &self,
        xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let pre = xs.detach().broadcast_add(&bias.detach())?;
        let slope = pre.ge(&pre.zeros_like()?)?.to_dtype(pre.dtype())?;
        let grad_xs = (grad_res * slope)?;
        // The dimensions the bias was broadcast over, as candle's Broadcast
        // backward finds them: the ones added on the left, then those of size 1.
        let left = xs.rank() - bias.rank();
        let mut sum_dims: Vec<usize> = (0..left).collect();
        for (d, (&x_dim, &b_dim)) in xs.dims()[left..].iter().zip(bias.dims()).enumerate() {
            if x_dim != b_dim {
                sum_dims.push(d + left);
            }
        }
        if sum_dims.is_empty() {
            // Same shapes: candle adds without broadcasting.
            return Ok((Some(grad_xs.clone()), Some(grad_xs)));
        }
        let mut grad_bias = grad_xs.sum_keepdim(sum_dims.as_slice())?;
        for _ in 0..left {
            grad_bias = grad_bias.squeeze(0)?;
        }
        Ok((Some(grad_xs), Some(grad_bias)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The fused op and candle's `broadcast_add` + `relu` give the same bits,
    /// forward and backward, for a shared `[n]` bias and a per-sample
    /// `[S, 1, n]` bias, on the serial and the parallel path, with exact
    /// zeros in the pre-activation (where the ReLU's slope convention shows).
    #[test]
    fn fused_equals_composed_ops_bit_for_bit() -> Result<()> {
        let dev = Device::Cpu;
        for (s, b, n) in [(2usize, 3usize, 4usize), (4, 2048, 8)] {
            let count = s * b * n;
            // Multiples of 1/4 around 0: many pre-activations are exactly 0.
            let xs: Vec<f32> = (0..count)
                .map(|i| ((i * 7919) % 17) as f32 / 4.0 - 2.0)
                .collect();
            let x = Var::from_vec(xs, (s, b, n), &dev)?;
            let shared: Vec<f32> = (0..n).map(|j| j as f32 / 4.0 - 0.5).collect();
            let per_sample: Vec<f32> = (0..s * n).map(|j| (j % 5) as f32 / 4.0 - 0.5).collect();
            for bias in [
                Var::from_vec(shared.clone(), n, &dev)?,
                Var::from_vec(per_sample.clone(), (s, 1, n), &dev)?,
            ] {
                assert!(BiasRelu::supports(x.as_tensor(), bias.as_tensor()));
                let fused = bias_relu(x.as_tensor(), bias.as_tensor())?;
                let composed = x.as_tensor().broadcast_add(bias.as_tensor())?.relu()?;
                let bits = |t: &Tensor| -> Result<Vec<u32>> {
                    Ok(t.flatten_all()?
                        .to_vec1::<f32>()?
                        .iter()
                        .map(|v| v.to_bits())
                        .collect())
                };
                assert_eq!(bits(&fused)?, bits(&composed)?, "forward, count {count}");
                // A loss that weighs every output differently.
                let weights = Tensor::arange(0f32, count as f32, &dev)?.reshape((s, b, n))?;
                let g_fused = (fused * &weights)?.sum_all()?.backward()?;
                let g_composed = (composed * &weights)?.sum_all()?.backward()?;
                for var in [&x, &bias] {
                    let grad_bits = |g: &candle_core::backprop::GradStore| {
                        g.get(var.as_tensor()).map(bits).transpose()
                    };
                    let fused_grad = grad_bits(&g_fused)?;
                    assert!(fused_grad.is_some(), "no gradient for {:?}", var.dims());
                    assert_eq!(
                        fused_grad,
                        grad_bits(&g_composed)?,
                        "gradient of {:?}, count {count}",
                        var.dims()
                    );
                }
            }
        }
        Ok(())
    }

    /// Shapes the kernel does not cover take the composed ops.
    #[test]
    fn other_shapes_fall_back_to_candle() -> Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::ones((2, 3), candle_core::DType::F32, &dev)?;
        let column_bias = Tensor::new(&[[1f32], [-5.0]], &dev)?; // [2, 1]: not a row bias
        assert!(!BiasRelu::supports(&x, &column_bias));
        let y = bias_relu(&x, &column_bias)?;
        assert_eq!(y.to_vec2::<f32>()?, [[2.0, 2.0, 2.0], [0.0, 0.0, 0.0]]);
        Ok(())
    }
}
