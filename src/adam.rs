//! Adam (Kingma & Ba 2015, "Adam: A Method for Stochastic Optimization"),
//! one in-place kernel per parameter tensor.
//!
//! ```text
//! m ← β1 m + (1 - β1) g          v ← β2 v + (1 - β2) g²
//! θ ← θ - lr · (m / (1 - β1^t)) / (sqrt(v / (1 - β2^t)) + ε)
//! ```
//!
//! with `β1 = 0.9`, `β2 = 0.999`, `ε = 1e-8`, and no weight decay: the KL
//! already is the decay ([`crate::train`]). candle-nn's `AdamW` evaluates
//! this as 15 graph ops per parameter, each allocating its output, plus three
//! copies; on the small tensors of a Bayesian layer that overhead outweighs
//! the arithmetic. Here each parameter takes one pass over `θ`, `g`, `m` and
//! `v`, writing `θ` in place, with the moments kept in plain vectors. The
//! kernel rounds as `AdamW` does (f32 or f64 throughout, the same operations
//! in the same order), so both give the same bits; a test checks it. Other
//! devices and dtypes use `AdamW` itself.

use std::cell::RefCell;

use candle_core::backprop::GradStore;
use candle_core::{bail, CpuStorage, DType, InplaceOp2, Layout, Var};
use candle_nn::{AdamW, Optimizer, ParamsAdamW};
use num_traits::Float;

use crate::Result;

/// Adam without weight decay over a fixed set of variables.
pub enum Adam {
    /// The one-pass kernel: every variable is f32 or f64 on the CPU.
    Fused(FusedAdam),
    /// candle-nn's `AdamW` with zero decay, for any other device or dtype.
    Candle(AdamW),
}

impl Adam {
    /// Adam at learning rate `lr` over `vars`: fused when every variable
    /// lives on the CPU as f32 or f64.
    pub fn new(vars: Vec<Var>, lr: f64) -> Result<Self> {
        let fusable = vars
            .iter()
            .all(|v| v.device().is_cpu() && matches!(v.dtype(), DType::F32 | DType::F64));
        Ok(if fusable {
            Adam::Fused(FusedAdam::new(vars, lr))
        } else {
            Adam::Candle(AdamW::new(
                vars,
                ParamsAdamW {
                    lr,
                    weight_decay: 0.0,
                    ..ParamsAdamW::default()
                },
            )?)
        })
    }

    /// One update from `grads`; variables without a gradient stay as they are.
    pub fn step(&mut self, grads: &GradStore) -> Result<()> {
        match self {
            Adam::Fused(adam) => adam.step(grads),
            Adam::Candle(adam) => Ok(adam.step(grads)?),
        }
    }
}

/// Moments of one variable, in its dtype.
enum Moments {
    F32 { m: Vec<f32>, v: Vec<f32> },
    F64 { m: Vec<f64>, v: Vec<f64> },
}

/// Adam with the one-pass kernel (CPU, f32 or f64 variables).
pub struct FusedAdam {
    vars: Vec<(Var, Moments)>,
    lr: f64,
    steps: i32,
}

impl FusedAdam {
    fn new(vars: Vec<Var>, lr: f64) -> Self {
        let vars = vars
            .into_iter()
            .map(|var| {
                let n = var.elem_count();
                let moments = match var.dtype() {
                    DType::F64 => Moments::F64 {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    },
                    _ => Moments::F32 {
                        m: vec![0.0; n],
                        v: vec![0.0; n],
                    },
                };
                (var, moments)
            })
            .collect();
        Self { vars, lr, steps: 0 }
    }

    fn step(&mut self, grads: &GradStore) -> Result<()> {
        self.steps += 1;
        let defaults = ParamsAdamW::default();
        let (beta1, beta2) = (defaults.beta1, defaults.beta2);
        let constants = Constants {
            beta1,
            beta2,
            one_minus_beta1: 1.0 - beta1,
            one_minus_beta2: 1.0 - beta2,
            scale_m: 1.0 / (1.0 - beta1.powi(self.steps)),
            scale_v: 1.0 / (1.0 - beta2.powi(self.steps)),
            eps: defaults.eps,
            lr: self.lr,
        };
        for (var, moments) in &mut self.vars {
            let Some(g) = grads.get(var.as_tensor()) else {
                continue;
            };
            let g = g.contiguous()?;
            let kernel = AdamKernel {
                moments: RefCell::new(moments),
                c: constants,
            };
            var.as_tensor().inplace_op2(&g, &kernel)?;
        }
        Ok(())
    }
}

/// The step's scalars, in f64 (rounded to the variable's dtype in the kernel).
#[derive(Clone, Copy)]
struct Constants {
    beta1: f64,
    beta2: f64,
    one_minus_beta1: f64,
    one_minus_beta2: f64,
    scale_m: f64,
    scale_v: f64,
    eps: f64,
    lr: f64,
}

/// The in-place update of one variable, `θ` the destination and `g` the source.
struct AdamKernel<'a> {
    moments: RefCell<&'a mut Moments>,
    c: Constants,
}

impl AdamKernel<'_> {
    /// The update over contiguous slices, rounding as candle-nn's `AdamW`.
    fn update<F: Float>(c: &Constants, theta: &mut [F], g: &[F], m: &mut [F], v: &mut [F]) {
        let f = |x: f64| F::from(x).unwrap_or_else(F::nan);
        let (b1, b2, c1, c2) = (
            f(c.beta1),
            f(c.beta2),
            f(c.one_minus_beta1),
            f(c.one_minus_beta2),
        );
        let (sm, sv, eps, lr) = (f(c.scale_m), f(c.scale_v), f(c.eps), f(c.lr));
        for (((t, &g), m), v) in theta.iter_mut().zip(g).zip(m).zip(v) {
            *m = *m * b1 + g * c1;
            *v = *v * b2 + (g * g) * c2;
            let adjusted = (*m * sm) / ((*v * sv).sqrt() + eps);
            *t = *t - adjusted * lr;
        }
    }
}

impl InplaceOp2 for AdamKernel<'_> {
    fn name(&self) -> &'static str {
        "fused-adam"
    }

    fn cpu_fwd(
        &self,
        theta: &mut CpuStorage,
        theta_layout: &Layout,
        g: &CpuStorage,
        g_layout: &Layout,
    ) -> candle_core::Result<()> {
        let (Some((t0, t1)), Some((g0, g1))) = (
            theta_layout.contiguous_offsets(),
            g_layout.contiguous_offsets(),
        ) else {
            bail!("fused-adam: parameter and gradient must be contiguous")
        };
        let mut moments = self.moments.borrow_mut();
        match (theta, g, &mut **moments) {
            (CpuStorage::F32(theta), CpuStorage::F32(g), Moments::F32 { m, v }) => {
                Self::update(&self.c, &mut theta[t0..t1], &g[g0..g1], m, v)
            }
            (CpuStorage::F64(theta), CpuStorage::F64(g), Moments::F64 { m, v }) => {
                Self::update(&self.c, &mut theta[t0..t1], &g[g0..g1], m, v)
            }
            _ => bail!("fused-adam: parameter, gradient and moments must share f32 or f64"),
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Tensor};

    /// Ten steps of the fused kernel and of candle-nn's `AdamW` (zero decay)
    /// on the same quadratic loss give the same bits, in f32 and f64.
    #[test]
    fn fused_steps_equal_candle_adamw_bit_for_bit() -> Result<()> {
        for dtype in [DType::F32, DType::F64] {
            let dev = Device::Cpu;
            let init =
                Tensor::new(&[[0.5f64, -1.25, 3.0], [1e-3, -7.0, 0.0]], &dev)?.to_dtype(dtype)?;
            let target =
                Tensor::new(&[[1.0f64, 2.0, -3.0], [0.5, 0.25, 4.0]], &dev)?.to_dtype(dtype)?;
            let fused_var = Var::from_tensor(&init)?;
            let candle_var = Var::from_tensor(&init)?;
            let mut fused = Adam::new(vec![fused_var.clone()], 0.05)?;
            assert!(matches!(fused, Adam::Fused(_)));
            let mut reference = AdamW::new(
                vec![candle_var.clone()],
                ParamsAdamW {
                    lr: 0.05,
                    weight_decay: 0.0,
                    ..ParamsAdamW::default()
                },
            )?;
            for _ in 0..10 {
                let loss = |w: &Var| (w.as_tensor() - &target)?.sqr()?.sum_all();
                fused.step(&loss(&fused_var)?.backward()?)?;
                reference.step(&loss(&candle_var)?.backward()?)?;
            }
            let bits = |w: &Var| -> Result<Vec<f64>> {
                Ok(w.as_tensor()
                    .to_dtype(DType::F64)?
                    .flatten_all()?
                    .to_vec1()?)
            };
            assert_eq!(bits(&fused_var)?, bits(&candle_var)?, "{dtype:?}");
            assert_ne!(bits(&fused_var)?, bits(&Var::from_tensor(&init)?)?);
        }
        Ok(())
    }

    /// A variable without a gradient is left alone.
    #[test]
    fn variables_without_gradients_keep_their_values() -> Result<()> {
        let dev = Device::Cpu;
        let a = Var::new(&[1f32, 2.0], &dev)?;
        let b = Var::new(&[3f32, 4.0], &dev)?;
        let mut adam = Adam::new(vec![a.clone(), b.clone()], 0.1)?;
        adam.step(&a.as_tensor().sum_all()?.backward()?)?;
        assert_eq!(b.as_tensor().to_vec1::<f32>()?, [3.0, 4.0]);
        // Adam's first step moves every coordinate by lr · sign(g).
        let moved = a.as_tensor().to_vec1::<f32>()?;
        assert!((moved[0] - 0.9).abs() < 1e-6 && (moved[1] - 1.9).abs() < 1e-6);
        Ok(())
    }
}
