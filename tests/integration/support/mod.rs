//! What the integration tests share: the daemon and its CLI ([`daemon`],
//! [`cli`]), gRPC clients ([`grpc`]), a real KMS to seal with ([`kms`]),
//! test certificates ([`tls`]), the quorum operations' steps
//! ([`quorum`]) and a stopped daemon's store read through the library
//! ([`store`]). What the benchmark needs too lives in the
//! `strongroom-test-support` crate.

pub mod cli;
pub mod daemon;
pub mod grpc;
pub mod ha;
pub mod kms;
pub mod quorum;
pub mod store;
pub mod tls;
pub mod vault;
