//! One-pass CPU kernels for the elementwise functions of [`crate::ops`].
//!
//! Composed of candle ops, `softplus` is about 18 graph nodes (candle has no
//! `log1p`, so both branches of a series are evaluated and selected), each
//! allocating its output and, in the backward pass, a zeroed gradient
//! buffer. On the small parameter tensors of a Bayesian layer that overhead,
//! not arithmetic, dominates a training step. Each kernel here is one node,
//! evaluated per element with the standard library's `ln_1p`, and
//! differentiated by a second one-pass kernel:
//!
//! ```text
//! softplus(x)     = max(x, 0) + ln_1p(e^{-|x|})       d/dx = sigmoid(x) = 1 / (1 + e^{-x})
//! ln softplus(x)  = x  (x < -20),  ln(softplus(x))    d/dx = 1  (x < -20),  sigmoid(x) / softplus(x)
//! kl_rest(x; c)   = c softplus(x)² - ln softplus(x)   d/dx = 2c softplus(x) sigmoid(x) - (ln softplus)'(x)
//! ```
//!
//! `kl_rest` is the per-weight variance part of the KL of `N(mu, sigma²)`,
//! `sigma = softplus(rho)`, to `N(m, sigma_p²)` with `c = 1/(2 sigma_p²)`,
//! up to the constant `ln sigma_p - 1/2` ([`crate::posterior`]): one node
//! instead of eight.
//!
//! They run on CPU storage of f32 or f64; [`crate::ops`] uses the composed
//! form on other devices and dtypes.

use std::mem::MaybeUninit;

use candle_core::backend::BackendStorage;
use candle_core::cpu_backend::unary_map;
use candle_core::{bail, CpuStorage, CustomOp1, DType, Layout, Shape, Tensor, WithDType};
use num_traits::Float;
use rayon::prelude::*;

/// Below this, `ln softplus(x) = x - e^x/2 + …` equals `x` to within
/// `e^-20 / 2 ≈ 1e-9` (see [`crate::ops::log_softplus`]).
pub(crate) const LOG_SOFTPLUS_LINEAR_BELOW: f64 = -20.0;

/// `softplus(x) = max(x, 0) + ln_1p(e^{-|x|})`.
#[inline(always)]
pub(crate) fn softplus<F: Float>(x: F) -> F {
    x.max(F::zero()) + (-x.abs()).exp().ln_1p()
}

/// `sigmoid(x) = 1 / (1 + e^{-x})`.
#[inline(always)]
pub(crate) fn sigmoid<F: Float>(x: F) -> F {
    F::one() / (F::one() + (-x).exp())
}

/// Whether `ln softplus(x)` is taken as `x` (below -20).
#[inline(always)]
fn linear<F: Float>(x: F) -> bool {
    x < F::from(LOG_SOFTPLUS_LINEAR_BELOW).unwrap_or_else(F::min_value)
}

/// `ln softplus(x)` given `sp = softplus(x)`.
#[inline(always)]
fn log_softplus<F: Float>(x: F, sp: F) -> F {
    if linear(x) {
        x
    } else {
        sp.ln()
    }
}

/// `d ln softplus(x) / dx` given `sp = softplus(x)` and `sig = sigmoid(x)`.
#[inline(always)]
fn log_softplus_grad<F: Float>(x: F, sp: F, sig: F) -> F {
    if linear(x) {
        F::one()
    } else {
        sig / sp
    }
}

/// `kl_rest(x; c) = c sp² - ln sp` given `sp = softplus(x)`.
#[inline(always)]
pub(crate) fn kl_rest<F: Float>(x: F, sp: F, c: F) -> F {
    c * sp * sp - log_softplus(x, sp)
}

/// `d kl_rest / dx = 2c sp sig - (ln softplus)'(x)` given `sp` and `sig`.
#[inline(always)]
pub(crate) fn kl_rest_grad<F: Float>(x: F, sp: F, sig: F, c: F) -> F {
    let two = F::one() + F::one();
    two * c * sp * sig - log_softplus_grad(x, sp, sig)
}

/// An elementwise function with a one-pass CPU kernel.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Fused {
    /// `softplus(x) = max(x, 0) + ln_1p(e^{-|x|})`.
    Softplus,
    /// `sigmoid(x) = 1 / (1 + e^{-x})`, the derivative of softplus.
    Sigmoid,
    /// `ln softplus(x)`, linear below -20.
    LogSoftplus,
    /// The derivative of `ln softplus(x)`.
    LogSoftplusGrad,
    /// `c softplus(x)² - ln softplus(x)`.
    KlRest {
        /// `c = 1 / (2 sigma_p²)`.
        inv_2var: f64,
    },
    /// The derivative of [`Fused::KlRest`].
    KlRestGrad {
        /// `c = 1 / (2 sigma_p²)`.
        inv_2var: f64,
    },
}

impl Fused {
    /// Whether `xs` can run through the kernel (CPU storage, f32 or f64).
    pub(crate) fn supports(xs: &Tensor) -> bool {
        xs.device().is_cpu() && matches!(xs.dtype(), DType::F32 | DType::F64)
    }

    /// The function at one point.
    #[inline(always)]
    pub(crate) fn eval<F: Float>(self, x: F) -> F {
        let c = |inv_2var: f64| F::from(inv_2var).unwrap_or_else(F::nan);
        match self {
            Fused::Softplus => softplus(x),
            Fused::Sigmoid => sigmoid(x),
            Fused::LogSoftplus => log_softplus(x, softplus(x)),
            Fused::LogSoftplusGrad => log_softplus_grad(x, softplus(x), sigmoid(x)),
            Fused::KlRest { inv_2var } => kl_rest(x, softplus(x), c(inv_2var)),
            Fused::KlRestGrad { inv_2var } => kl_rest_grad(x, softplus(x), sigmoid(x), c(inv_2var)),
        }
    }

    /// The function over a storage, with the choice of function made once,
    /// outside the loop (each arm is its own monomorphized loop).
    pub(crate) fn map<F: Float + Send + Sync>(self, values: &[F], layout: &Layout) -> Vec<F> {
        match self {
            Fused::Softplus => apply(values, layout, |x| Fused::Softplus.eval(x)),
            Fused::Sigmoid => apply(values, layout, |x| Fused::Sigmoid.eval(x)),
            Fused::LogSoftplus => apply(values, layout, |x| Fused::LogSoftplus.eval(x)),
            Fused::LogSoftplusGrad => apply(values, layout, |x| Fused::LogSoftplusGrad.eval(x)),
            Fused::KlRest { inv_2var } => {
                apply(values, layout, |x| Fused::KlRest { inv_2var }.eval(x))
            }
            Fused::KlRestGrad { inv_2var } => {
                apply(values, layout, |x| Fused::KlRestGrad { inv_2var }.eval(x))
            }
        }
    }

    /// The kernel that gives this function's derivative, if it has one.
    fn derivative(self) -> Option<Fused> {
        match self {
            Fused::Softplus => Some(Fused::Sigmoid),
            Fused::LogSoftplus => Some(Fused::LogSoftplusGrad),
            Fused::KlRest { inv_2var } => Some(Fused::KlRestGrad { inv_2var }),
            Fused::Sigmoid | Fused::LogSoftplusGrad | Fused::KlRestGrad { .. } => None,
        }
    }
}

/// The values of a contiguous CPU storage, or an error naming `op`.
pub(crate) fn contiguous_values<'a, F: WithDType>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [F]> {
    let Some((start, end)) = layout.contiguous_offsets() else {
        bail!("{op} needs contiguous inputs")
    };
    Ok(&storage.as_slice::<F>()?[start..end])
}

/// Contiguous inputs of at least this many values are split across rayon's
/// pool (the one candle's matmuls use; candle's own elementwise pool stays
/// off, see [`crate::tuning`]). Below it, one thread is faster than the
/// fork-join (a few microseconds).
pub(crate) const PARALLEL_ABOVE: usize = 1 << 14;

/// The `rows · n` values of `row(0), row(1), …` (each yielding `n`
/// values), written straight into the output's memory rather than over a
/// zero-filled buffer, in parallel chunks of rows when there are at least
/// [`PARALLEL_ABOVE`] values. A T-sample prediction at H = 64 spent 14% of
/// its instructions zero-filling buffers that a kernel overwrote next.
///
/// # Panics
/// If some `row(r)` yields fewer than `n` values (a bug in the caller).
pub(crate) fn collect_rows<F, I>(rows: usize, n: usize, row: impl Fn(usize) -> I + Sync) -> Vec<F>
where
    F: Copy + Send + Sync,
    I: Iterator<Item = F>,
{
    let mut out = Vec::new();
    append_rows(&mut out, rows, n, row);
    out
}

/// [`collect_rows`], appended to `out` (which keeps its capacity when it
/// already has room, so a caller that reserves for more pays no copy).
pub(crate) fn append_rows<F, I>(
    out: &mut Vec<F>,
    rows: usize,
    n: usize,
    row: impl Fn(usize) -> I + Sync,
) where
    F: Copy + Send + Sync,
    I: Iterator<Item = F>,
{
    let (start, len) = (out.len(), rows * n);
    out.reserve(len);
    let fill = |(r, slots): (usize, &mut [MaybeUninit<F>])| {
        let mut written = 0;
        for (slot, value) in slots.iter_mut().zip(row(r)) {
            slot.write(value);
            written += 1;
        }
        assert_eq!(written, n, "collect_rows: a row of n values");
    };
    let slots = &mut out.spare_capacity_mut()[..len];
    if len >= PARALLEL_ABOVE {
        slots
            .par_chunks_mut(n)
            .enumerate()
            .with_min_len((PARALLEL_ABOVE / 4).div_ceil(n))
            .for_each(fill);
    } else if n > 0 {
        slots.chunks_mut(n).enumerate().for_each(fill);
    }
    // SAFETY: `start + len` is within the capacity reserved above, and
    // `fill` wrote every slot of every row (a short row panics before this
    // line).
    unsafe { out.set_len(start + len) };
}

/// `f` on every value in layout order: in parallel chunks of at least
/// [`PARALLEL_ABOVE`] / 4 values for a large contiguous input, else on the
/// calling thread. Each output depends on its input alone, so the result is
/// the same bits either way.
fn apply<F: Float + Send + Sync>(
    values: &[F],
    layout: &Layout,
    f: impl Fn(F) -> F + Send + Sync,
) -> Vec<F> {
    match layout.contiguous_offsets() {
        Some((start, end)) if end - start >= PARALLEL_ABOVE => values[start..end]
            .par_iter()
            .with_min_len(PARALLEL_ABOVE / 4)
            .map(|&x| f(x))
            .collect(),
        _ => unary_map(values, layout, f),
    }
}

impl CustomOp1 for Fused {
    fn name(&self) -> &'static str {
        match self {
            Fused::Softplus => "softplus",
            Fused::Sigmoid => "sigmoid",
            Fused::LogSoftplus => "log-softplus",
            Fused::LogSoftplusGrad => "log-softplus-grad",
            Fused::KlRest { .. } => "kl-rest",
            Fused::KlRestGrad { .. } => "kl-rest-grad",
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match storage {
            CpuStorage::F32(v) => CpuStorage::F32(self.map(v, layout)),
            CpuStorage::F64(v) => CpuStorage::F64(self.map(v, layout)),
            other => bail!("{} needs f32 or f64, got {:?}", self.name(), other.dtype()),
        };
        Ok((out, layout.shape().clone()))
    }

    /// `grad · f'(x)`, with `f'` evaluated by its own kernel.
    fn bwd(
        &self,
        arg: &Tensor,
        _res: &Tensor,
        grad_res: &Tensor,
    ) -> candle_core::Result<Option<Tensor>> {
        let Some(derivative) = self.derivative() else {
            bail!("{} has no derivative kernel", self.name())
        };
        let slope = arg.detach().apply_op1_no_bwd(&derivative)?;
        Ok(Some(grad_res.mul(&slope)?))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// The bit patterns of an f32 tensor's values, for bit-for-bit
    /// comparisons of kernels against the ops they replace.
    pub(crate) fn bits(t: &Tensor) -> crate::Result<Vec<u32>> {
        Ok(t.flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| v.to_bits())
            .collect())
    }
    use candle_core::Device;

    /// Large inputs take the parallel path, strided ones the serial one;
    /// both give each element's own value, in layout order.
    #[test]
    fn parallel_and_strided_inputs_map_element_by_element() -> candle_core::Result<()> {
        let (rows, cols) = (200, 300); // 60 000 values, above PARALLEL_ABOVE
        assert!(rows * cols >= PARALLEL_ABOVE);
        let values: Vec<f32> = (0..rows * cols)
            .map(|i| (i as f32 * 0.37).sin() * 8.0)
            .collect();
        let x = Tensor::from_vec(values.clone(), (rows, cols), &Device::Cpu)?;
        let kernel = Fused::KlRest { inv_2var: 0.7 };
        let want: Vec<f32> = values.iter().map(|&v| kernel.eval(v)).collect();
        let got = x.apply_op1(kernel)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(got, want);
        // The transpose is not contiguous: the serial map in layout order.
        let t = x.t()?;
        let want_t: Vec<f32> = t
            .contiguous()?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|&v| kernel.eval(v))
            .collect();
        let got_t = t.apply_op1(kernel)?.flatten_all()?.to_vec1::<f32>()?;
        assert_eq!(got_t, want_t);
        Ok(())
    }

    #[test]
    fn derivatives_match_central_differences() {
        for x in [-30.0, -20.5, -19.5, -5.0, -0.3, 0.0, 0.7, 4.0, 25.0] {
            let kl = Fused::KlRest { inv_2var: 0.7 };
            for (f, df) in [
                (Fused::Softplus, Fused::Sigmoid),
                (Fused::LogSoftplus, Fused::LogSoftplusGrad),
                (kl, Fused::KlRestGrad { inv_2var: 0.7 }),
            ] {
                let h = 1e-6;
                let numeric = (f.eval(x + h) - f.eval(x - h)) / (2.0 * h);
                let analytic: f64 = df.eval(x);
                // Central differences in f64 with h = 1e-6: error ~1e-9
                // relative to the function's scale (kl_rest reaches ~500).
                let scale = analytic.abs().max(f.eval::<f64>(x).abs()).max(1.0);
                assert!(
                    (numeric - analytic).abs() < 1e-7 * scale,
                    "{f:?}'({x}) = {analytic}, numerically {numeric}"
                );
            }
        }
    }

    /// Every row lands in its place, on the serial and the parallel path.
    #[test]
    fn collect_rows_fills_rows_in_order() {
        for (rows, n) in [(3usize, 5usize), (300, 100)] {
            assert_eq!(rows * n >= PARALLEL_ABOVE, rows == 300);
            let got = collect_rows(rows, n, |r| (0..n).map(move |j| (r * 1000 + j) as f32));
            let want: Vec<f32> = (0..rows)
                .flat_map(|r| (0..n).map(move |j| (r * 1000 + j) as f32))
                .collect();
            assert_eq!(got, want);
        }
    }

    /// Appending keeps the values already there and, with room reserved,
    /// the buffer itself (no copy).
    #[test]
    fn append_rows_writes_after_existing_values_in_place() {
        let mut out = Vec::with_capacity(10);
        out.extend_from_slice(&[7.0f32, 8.0]);
        let buffer = out.as_ptr();
        append_rows(&mut out, 2, 3, |r| (0..3).map(move |j| (r * 10 + j) as f32));
        assert_eq!(out, [7.0, 8.0, 0.0, 1.0, 2.0, 10.0, 11.0, 12.0]);
        assert_eq!(out.as_ptr(), buffer);
    }

    /// A row shorter than `n` is a caller's bug, caught before the vector
    /// could expose unwritten memory.
    #[test]
    #[should_panic(expected = "a row of n values")]
    fn collect_rows_rejects_a_short_row() {
        collect_rows(2, 4, |r| (0..if r == 1 { 3 } else { 4 }).map(|j| j as f32));
    }
}
