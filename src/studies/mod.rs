//! Studies of how the prior over weights and the initializer are one object.
//! Each is a library function returning a serializable result, run from the
//! CLI as `bnn study NAME`.

pub mod l2;
