//! strongroom: a secret-store seal daemon.
//!
//! It keeps a root key that encrypts everything it stores, keeps that root key
//! sealed at rest behind Shamir unseal keys, and serves init, status, unseal
//! and seal (and a minimal secret store) over gRPC.
//!
//! Data flows one way: [`api`] → [`core`] → [`barrier`] → [`storage`], and
//! [`core`] → [`seal`]. Nothing below `core` knows about gRPC.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms, unused_must_use)]
#![warn(
    clippy::dbg_macro,
    clippy::todo,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::undocumented_unsafe_blocks,
    missing_docs
)]

pub mod api;
pub mod barrier;
pub mod cli;
pub mod config;
pub mod core;
pub mod seal;
pub mod secret;
pub mod server;
pub mod storage;

/// The generated gRPC types and stubs of `proto/strongroom/v1`.
#[allow(missing_docs, clippy::all)]
pub mod proto {
    tonic::include_proto!("strongroom.v1");
}
