//! Studies of how the prior over weights and the initializer are one object.
//! Each is a library function returning a serializable result, run from the
//! CLI as `bnn study NAME`.
//!
//! - [`signal`]: pre-activation variance and gradients through depth, per
//!   prior, against the mean-field recursion ([`mean_field`]);
//! - [`nngp`]: finite networks converging to the NNGP kernel
//!   ([`nngp_kernel`]), and exact GP regression with it ([`gp`]) next to BBB;
//! - [`prior_predictive`]: function draws under each prior with the NNGP
//!   band, and the differential entropy of priors at equal variance;
//! - [`l2`]: the KL term as weight decay.
//!
//! [`random_mlp`] draws the networks at initialization that the first three
//! measure; [`gauss_hermite`] computes their Gaussian expectations.

pub mod gauss_hermite;
pub mod gp;
pub mod l2;
pub mod mean_field;
pub mod nngp;
pub mod nngp_kernel;
pub mod prior_predictive;
pub mod random_mlp;
pub mod signal;
