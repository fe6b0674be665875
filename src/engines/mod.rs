//! The secrets engines: what callers keep behind the barrier.
//!
//! - [`kv`]: versioned key/value secrets, as Vault's kv-v2;
//! - [`keys`]: named encryption keys, envelope encryption as a service, as
//!   Vault's transit;
//! - [`keymgmt`]: keys distributed to a cloud KMS as imported material, as
//!   Vault Enterprise's Key Management engine (issue 17, in slices).
//!
//! Each engine owns its locks and caches and is handed the open barrier
//! and the caller with every call (an `access::Session`); it knows nothing
//! of the seal state or of transports.

pub mod keymgmt;
pub mod keys;
pub mod kv;
mod material;

pub use keymgmt::KeyMgmt;
pub use keys::Keys;
pub use kv::Kv;
