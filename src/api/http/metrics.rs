//! Placeholder: `sys/metrics` lands in a later commit of issue 15.

use super::{HttpError, Outcome, Request};
use crate::api::Gate;

/// Serves `sys/metrics` (not yet).
pub async fn route(_gate: &Gate, request: &Request) -> Outcome {
    Err(HttpError::no_route(&request.path))
}
