//! What protects the root key at rest.
//!
//! Today this is the Shamir seal: the root key is encrypted by an unseal key
//! that exists only while a quorum of shares is being combined.

pub mod shamir;
