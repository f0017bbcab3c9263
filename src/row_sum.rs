//! The gradient of a broadcast: a sum over rows, in candle's order.
//!
//! A bias `[n]` added to activations `[B, n]` (or a posterior `[n]` scaling
//! noise `[S, n]`) receives the sum of the output gradient over the rows it
//! was broadcast over:
//!
//! ```text
//! out[g, j] = ((0 + x[g, 0, j]) + x[g, 1, j]) + … + x[g, R-1, j]      x: [G, R, n]
//! ```
//!
//! candle's `sum_keepdim` over a dimension that is not the last one walks
//! the input element by element and finds each one's output index with an
//! integer division; at H = 256 that index arithmetic took 10% of a BBB
//! training step (`perf`, docs/performance.md). Here each output row is a
//! running sum of input rows, one vectorizable pass, with the same additions
//! in the same order as candle's, so the same bits.

use candle_core::backend::BackendStorage;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use num_traits::Float;

use crate::{Error, Result};

/// `x: [G, R, n]` (any shape of `G·R·n` values, contiguous, f32 or f64 on
/// the CPU) summed over `R` into a tensor of shape `out` (`G·n` values), for
/// `G = groups`. Other tensors take candle's reduction.
pub(crate) fn sum_rows(xs: &Tensor, groups: usize, out: &Shape) -> Result<Tensor> {
    let n = out.elem_count() / groups.max(1);
    let rows = xs.elem_count() / (groups * n).max(1);
    if groups == 0 || n == 0 || xs.elem_count() != groups * rows * n {
        return Err(Error::Shape {
            context: "sum_rows".into(),
            message: format!(
                "{:?} does not split into {groups} groups of rows of {n} values (out {out:?})",
                xs.dims()
            ),
        });
    }
    let supported =
        xs.device().is_cpu() && matches!(xs.dtype(), DType::F32 | DType::F64) && xs.is_contiguous();
    if !supported {
        return Ok(xs.reshape((groups, rows, n))?.sum(1)?.reshape(out)?);
    }
    Ok(xs.apply_op1_no_bwd(&RowSum {
        rows,
        n,
        out: out.clone(),
    })?)
}

/// `out[g, j] = Σ_r x[g, r, j]`, rows added in order from zero.
fn sum_rows_of<F: Float>(values: &[F], rows: usize, n: usize) -> Vec<F> {
    let mut out = vec![F::zero(); values.len() / rows];
    for (group, sum) in values.chunks(rows * n).zip(out.chunks_mut(n)) {
        for row in group.chunks(n) {
            for (s, &v) in sum.iter_mut().zip(row) {
                *s = *s + v;
            }
        }
    }
    out
}

/// The kernel of [`sum_rows`].
struct RowSum {
    rows: usize,
    n: usize,
    out: Shape,
}

impl CustomOp1 for RowSum {
    fn name(&self) -> &'static str {
        "row-sum"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Some((start, end)) = layout.contiguous_offsets() else {
            bail!("row-sum needs a contiguous input")
        };
        let (rows, n) = (self.rows, self.n);
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(sum_rows_of(&v[start..end], rows, n)),
            CpuStorage::F64(v) => CpuStorage::F64(sum_rows_of(&v[start..end], rows, n)),
            other => bail!("row-sum needs f32 or f64, got {:?}", other.dtype()),
        };
        Ok((out, self.out.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fused::tests::bits;
    use candle_core::Device;

    /// The same bits as candle's `sum_keepdim` over the middle dimension (a
    /// per-sample bias) and over the two leading ones (a shared bias), on
    /// values whose sums round differently in another order.
    #[test]
    fn row_sums_equal_candles_reduction_bit_for_bit() -> Result<()> {
        let (g, r, n) = (3usize, 129usize, 7usize);
        let values: Vec<f32> = (0..g * r * n)
            .map(|i| ((i * 7919) % 1009) as f32 * 1.37e-3 * if i % 3 == 0 { -1e4 } else { 1.0 })
            .collect();
        let x = Tensor::from_vec(values, (g, r, n), &Device::Cpu)?;
        let per_group = sum_rows(&x, g, &Shape::from((g, 1, n)))?;
        assert_eq!(per_group.dims(), [g, 1, n]);
        assert_eq!(bits(&per_group)?, bits(&x.sum_keepdim(1)?)?);
        let shared = sum_rows(&x, 1, &Shape::from(n))?;
        assert_eq!(shared.dims(), [n]);
        assert_eq!(bits(&shared)?, bits(&x.sum_keepdim((0, 1))?)?);
        // The order matters for these values: a pairwise sum differs.
        let pairwise = x.sum_keepdim(1)?.sum_keepdim(0)?;
        assert_ne!(bits(&shared)?, bits(&pairwise)?);
        Ok(())
    }

    /// A strided input takes candle's reduction, with the same values.
    #[test]
    fn strided_input_falls_back_to_candle() -> Result<()> {
        let x = Tensor::arange(0f32, 12.0, &Device::Cpu)?
            .reshape((3, 4))?
            .t()?;
        let got = sum_rows(&x, 1, &Shape::from(3))?;
        assert_eq!(got.to_vec1::<f32>()?, [6.0, 22.0, 38.0]);
        Ok(())
    }
}
