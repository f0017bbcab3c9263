//! Numerically stable elementwise functions that candle does not provide.
//!
//! The posterior scale is `sigma = softplus(rho)`. A naive `log(1 + exp(rho))`
//! overflows for large `rho` and rounds to zero for very negative `rho` (which
//! would send `log sigma` in the KL to `-inf`), so every softplus here uses
//!
//! ```text
//! softplus(x) = max(x, 0) + log1p(exp(-|x|))
//! ```
//!
//! with `log1p(u)` evaluated by its Taylor series where `1 + u` would round.
//! On CPU (f32, f64) the functions run as one-pass kernels (`src/fused.rs`),
//! elsewhere as compositions of candle ops.

use candle_core::Tensor;
use statrs::function::erf::{erfc, erfc_inv};

use crate::fused::{Fused, LOG_SOFTPLUS_LINEAR_BELOW};
use crate::Result;

/// Below this, `log1p(u)` uses the series `u - u²/2 + u³/3 - u⁴/4`, whose
/// truncation error `u⁵/5` is then under 2e-9 relative; above it, f32 `ln(1+u)`
/// has relative error at most `6e-8 / u` < 6e-6.
const LOG1P_SERIES_BELOW: f64 = 1e-2;

/// `log(1 + u)` for `u >= 0`, accurate for tiny `u` (candle has no `log1p`).
///
/// ```text
/// log1p(u) = ln(1 + u)                    if u >= 1e-2
///          = u - u²/2 + u³/3 - u⁴/4        otherwise
/// ```
pub fn log1p_nonneg(u: &Tensor) -> Result<Tensor> {
    let direct = (u + 1.0)?.log()?;
    let u2 = u.sqr()?;
    let series = ((u - (&u2 * 0.5)?)? + ((&u2 * u)? * (1.0 / 3.0))? - (u2.sqr()? * 0.25)?)?;
    let small = u.lt(LOG1P_SERIES_BELOW)?;
    Ok(small.where_cond(&series, &direct)?)
}

/// Stable softplus, elementwise, differentiable through candle's autodiff.
///
/// ```text
/// softplus(x) = ln(1 + e^x) = max(x, 0) + log1p(e^{-|x|})
/// ```
pub fn softplus(xs: &Tensor) -> Result<Tensor> {
    if Fused::supports(xs) {
        return Ok(xs.apply_op1(Fused::Softplus)?);
    }
    softplus_composed(xs)
}

/// [`softplus`] as a composition of candle ops (any device, any float dtype).
fn softplus_composed(xs: &Tensor) -> Result<Tensor> {
    let tail = log1p_nonneg(&xs.abs()?.neg()?.exp()?)?;
    Ok((xs.relu()? + tail)?)
}

/// `ln softplus(x)`, elementwise, with finite gradients everywhere.
///
/// ```text
/// ln softplus(x) = x                          if x < -20
///                = ln(softplus(max(x, -20)))  otherwise
/// ```
///
/// `ln(softplus(x))` computed directly fails below `x ≈ -88`: softplus is
/// then an f32 subnormal (or 0), and the backward pass of `ln` divides by it,
/// producing `inf · 0 = NaN` gradients. The clamp keeps the unused branch finite.
pub fn log_softplus(xs: &Tensor) -> Result<Tensor> {
    if Fused::supports(xs) {
        return Ok(xs.apply_op1(Fused::LogSoftplus)?);
    }
    let direct = softplus_composed(&xs.maximum(LOG_SOFTPLUS_LINEAR_BELOW)?)?.log()?;
    let linear = xs.lt(LOG_SOFTPLUS_LINEAR_BELOW)?;
    Ok(linear.where_cond(xs, &direct)?)
}

/// Stable softplus in f64 (reference value and scalar parameters).
pub fn softplus_f64(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

/// Inverse of softplus for `y > 0`, in f64: the `rho` with `softplus(rho) = y`.
///
/// ```text
/// softplus⁻¹(y) = y + ln(1 - e^{-y}) = y + ln(-expm1(-y))
/// ```
pub fn inverse_softplus_f64(y: f64) -> f64 {
    y + (-(-y).exp_m1()).ln()
}

/// `ln(mean(exp(a_t)))` over a slice, in f64, with the maximum subtracted so
/// that no term overflows:
///
/// ```text
/// log-mean-exp(a) = m + ln( (1/T) Σ_t exp(a_t - m) ),   m = max_t a_t
/// ```
///
/// Returns `-inf` for an empty slice or when every `a_t` is `-inf`.
pub fn log_mean_exp(values: &[f64]) -> f64 {
    let m = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !m.is_finite() {
        return m;
    }
    let sum: f64 = values.iter().map(|a| (a - m).exp()).sum();
    m + (sum / values.len() as f64).ln()
}

/// `xs · wᵀ` for one weight matrix `w: [out, in]` shared by every leading
/// index of `xs: [..., in]`, as one flat 2-D matmul.
pub fn shared_matmul(xs: &Tensor, w: &Tensor) -> Result<Tensor> {
    let dims = xs.dims();
    let in_dim = dims[dims.len() - 1];
    let rows = xs.elem_count() / in_dim.max(1);
    let flat = xs.reshape((rows, in_dim))?.matmul(&w.t()?)?;
    let mut out_dims = dims.to_vec();
    let last = out_dims.len() - 1;
    out_dims[last] = w.dims()[0];
    Ok(flat.reshape(out_dims)?)
}

const FRAC_1_SQRT_2PI: f64 = 0.398_942_280_401_432_7;

/// Standard normal density `φ(z) = exp(-z²/2) / √(2π)`.
pub fn std_normal_pdf(z: f64) -> f64 {
    FRAC_1_SQRT_2PI * (-0.5 * z * z).exp()
}

/// Standard normal CDF, `Φ(z) = ½ erfc(-z / √2)` (accurate in both tails).
pub fn std_normal_cdf(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// Standard normal quantile, `Φ⁻¹(p) = -√2 erfc⁻¹(2p)`.
pub fn std_normal_quantile(p: f64) -> f64 {
    -std::f64::consts::SQRT_2 * erfc_inv(2.0 * p)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn softplus_matches_f64_reference_without_overflow() -> Result<()> {
        let xs: Vec<f32> = vec![-100.0, -30.0, -17.0, -5.0, -0.5, 0.0, 0.5, 5.0, 30.0, 100.0];
        let t = Tensor::from_vec(xs.clone(), xs.len(), &Device::Cpu)?;
        let got = softplus(&t)?.to_vec1::<f32>()?;
        for (x, g) in xs.iter().zip(got) {
            let want = softplus_f64(*x as f64);
            // f32 carries ~6e-8 relative precision; 1e-6 relative leaves room for
            // the few roundings inside; tiny values must stay positive, not 0.
            assert!(g.is_finite() && g > 0.0, "softplus({x}) = {g}");
            // Below e^-87 the result is an f32 subnormal with fewer significant
            // bits; there only its absolute error (one subnormal ulp) is bounded.
            let err = ((g as f64) - want).abs();
            let tol = if want < f32::MIN_POSITIVE as f64 {
                1.5e-45
            } else {
                1e-6 * want
            };
            assert!(err <= tol, "softplus({x}) = {g}, want {want}");
        }
        Ok(())
    }

    #[test]
    fn softplus_f64_reference_is_exact_at_the_extremes() {
        assert_eq!(softplus_f64(100.0), 100.0);
        assert!((softplus_f64(-100.0) - (-100f64).exp()).abs() < 1e-60);
        assert!((softplus_f64(0.0) - 2f64.ln()).abs() < 1e-15);
    }

    #[test]
    fn inverse_softplus_round_trips() {
        for y in [1e-8, 1e-3, 0.1, 1.0, 10.0, 100.0] {
            let back = softplus_f64(inverse_softplus_f64(y));
            assert!((back - y).abs() / y < 1e-12, "y={y}, back={back}");
        }
    }

    #[test]
    fn log_mean_exp_matches_direct_sum_and_survives_large_values() {
        let a = [0.1, -2.0, 1.5, 0.3];
        let direct = (a.iter().map(|v: &f64| v.exp()).sum::<f64>() / 4.0).ln();
        assert!((log_mean_exp(&a) - direct).abs() < 1e-14);
        // exp(1000) overflows f64; shifting by the max keeps it exact.
        let big = [1000.0, 1000.0];
        assert!((log_mean_exp(&big) - 1000.0).abs() < 1e-12);
        assert_eq!(log_mean_exp(&[]), f64::NEG_INFINITY);
    }

    #[test]
    fn fused_kernels_agree_with_the_composed_ops_in_value_and_gradient() -> Result<()> {
        let xs: Vec<f32> = vec![-120.0, -30.0, -20.5, -19.5, -5.0, -0.5, 0.0, 0.5, 5.0, 30.0];
        let var = candle_core::Var::from_vec(xs.clone(), xs.len(), &Device::Cpu)?;
        let x = var.as_tensor();
        let composed_log = {
            let direct = softplus_composed(&x.maximum(LOG_SOFTPLUS_LINEAR_BELOW)?)?.log()?;
            x.lt(LOG_SOFTPLUS_LINEAR_BELOW)?.where_cond(x, &direct)?
        };
        for (fused, composed) in [
            (softplus(x)?, softplus_composed(x)?),
            (log_softplus(x)?, composed_log),
        ] {
            let (gf, gc) = (
                fused.sum_all()?.backward()?,
                composed.sum_all()?.backward()?,
            );
            let pairs = [
                (fused.to_vec1::<f32>()?, composed.to_vec1::<f32>()?),
                (
                    gf.get(x)
                        .map(|g| g.to_vec1::<f32>())
                        .transpose()?
                        .unwrap_or_default(),
                    gc.get(x)
                        .map(|g| g.to_vec1::<f32>())
                        .transpose()?
                        .unwrap_or_default(),
                ),
            ];
            for (a, b) in pairs {
                assert_eq!(a.len(), xs.len());
                for (i, (u, v)) in a.iter().zip(&b).enumerate() {
                    // Both are f32 evaluations of the same function: a few
                    // roundings apart (1e-5 relative), or both subnormal.
                    let tol = 1e-5 * u.abs().max(v.abs()) + 1e-38;
                    assert!((u - v).abs() <= tol, "x = {}: {u} vs {v}", xs[i]);
                }
            }
        }
        Ok(())
    }
}
