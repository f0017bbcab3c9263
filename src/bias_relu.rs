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
use candle_core::{
    bail, CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor, WithDType,
};
use num_traits::Float;

use crate::fused::{collect_rows, contiguous_values};
use crate::row_sum::sum_rows;
use crate::Result;

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

    /// `f(x + b, i)` for every value `x = xs[i]`, row by row: row `r` of `n`
    /// values takes bias row `r / rows_per_bias_row` (0 when the bias is one
    /// row).
    fn map_rows<F: Float + Send + Sync>(
        xs: &[F],
        bias: &[F],
        n: usize,
        f: impl Fn(F, usize) -> F + Send + Sync,
    ) -> Vec<F> {
        let bias_rows = bias.len() / n;
        let rows = xs.len() / n;
        let rows_per_bias_row = rows.div_ceil(bias_rows);
        let f = &f;
        collect_rows(rows, n, |r| {
            let b = &bias[(r / rows_per_bias_row) * n..][..n];
            let x = &xs[r * n..][..n];
            x.iter()
                .zip(b)
                .enumerate()
                .map(move |(j, (&x, &b))| f(x + b, r * n + j))
        })
    }

    /// `max(x + b, 0)`.
    fn forward<F: Float + Send + Sync>(xs: &[F], bias: &[F], n: usize) -> Vec<F> {
        Self::map_rows(xs, bias, n, |pre, _| pre.max(F::zero()))
    }

    /// `g ⊙ 1[x + b ≥ 0]`, the slope multiplied in as candle's `relu`
    /// backward does (a product with 1 or 0).
    fn grad_xs<F: Float + Send + Sync>(xs: &[F], bias: &[F], grad: &[F], n: usize) -> Vec<F> {
        Self::map_rows(xs, bias, n, |pre, i| {
            grad[i]
                * if pre >= F::zero() {
                    F::one()
                } else {
                    F::zero()
                }
        })
    }
}

/// `max(x + b, 0)` on storages, or `g ⊙ 1[x + b ≥ 0]` when `grad` is given:
/// the dtype dispatch of both kernels.
fn run_kernel(
    xs: (&CpuStorage, &Layout),
    bias: (&CpuStorage, &Layout),
    grad: Option<(&CpuStorage, &Layout)>,
    name: &str,
) -> candle_core::Result<(CpuStorage, Shape)> {
    fn typed<F: Float + WithDType + Send + Sync>(
        xs: (&CpuStorage, &Layout),
        bias: (&CpuStorage, &Layout),
        grad: Option<(&CpuStorage, &Layout)>,
        name: &str,
    ) -> candle_core::Result<Vec<F>> {
        let n = xs.1.dims().last().copied().unwrap_or(1);
        let x = contiguous_values::<F>(xs.0, xs.1, name)?;
        let b = contiguous_values(bias.0, bias.1, name)?;
        Ok(match grad {
            None => BiasRelu::forward(x, b, n),
            Some((g, g_layout)) => {
                BiasRelu::grad_xs(x, b, contiguous_values(g, g_layout, name)?, n)
            }
        })
    }
    let out = match xs.0.dtype() {
        DType::F32 => CpuStorage::F32(typed(xs, bias, grad, name)?),
        DType::F64 => CpuStorage::F64(typed(xs, bias, grad, name)?),
        other => bail!("{name} needs f32 or f64, got {other:?}"),
    };
    Ok((out, xs.1.shape().clone()))
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
        run_kernel((xs, xs_layout), (bias, bias_layout), None, self.name())
    }

    /// candle's backward of `broadcast_add` then `relu`, with the same
    /// operations in the same order: `g ⊙ 1[x + b ≥ 0]` for `xs` (one pass)
    /// and its sum over the broadcast rows for `bias` ([`sum_rows`]).
    fn bwd(
        &self,
        xs: &Tensor,
        bias: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad_xs = xs.apply_op3_no_bwd(bias, &grad_res.contiguous()?, &BiasReluGrad)?;
        if xs.dims() == bias.dims() {
            // Same shapes: candle adds without broadcasting.
            return Ok((Some(grad_xs.clone()), Some(grad_xs)));
        }
        // One group of rows per bias row: 1 for a shared bias, S for [S, 1, n].
        let groups = bias.elem_count() / xs.dims().last().copied().unwrap_or(1);
        let grad_bias = sum_rows(&grad_xs, groups, bias.shape())
            .map_err(|e| candle_core::Error::Msg(e.to_string()))?;
        Ok((Some(grad_xs), Some(grad_bias)))
    }
}

/// The kernel of `g ⊙ 1[x + b ≥ 0]` on `(xs, bias, g)`.
#[derive(Debug, Clone, Copy)]
struct BiasReluGrad;

impl CustomOp3 for BiasReluGrad {
    fn name(&self) -> &'static str {
        "bias-relu-grad"
    }

    fn cpu_fwd(
        &self,
        xs: &CpuStorage,
        xs_layout: &Layout,
        bias: &CpuStorage,
        bias_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        run_kernel(
            (xs, xs_layout),
            (bias, bias_layout),
            Some((grad, grad_layout)),
            self.name(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::bits;
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
                assert_eq!(bits(&fused)?, bits(&composed)?, "forward, count {count}");
                // A loss that weighs every output differently, with both
                // signs (so zero slopes give both signed zeros).
                let weights = Tensor::arange(0f32, count as f32, &dev)?
                    .affine(1.0, -(count as f64) / 2.0)?
                    .reshape((s, b, n))?;
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
