//! Bring your own key to AWS KMS: the KMS side of distributing key material
//! that strongroom generated and keeps (issue 17). `wrap.rs` wraps the
//! material for an import; `aws.rs` makes the KMS calls of a distribution
//! on the seal's client.

pub mod aws;
pub mod wrap;
