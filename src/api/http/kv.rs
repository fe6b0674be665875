//! Placeholder: this area's endpoints land in a later commit of issue 15.

use super::{HttpError, Outcome, Request};
use crate::api::Gate;

/// Routes this area's paths (none yet).
pub async fn route(_gate: &Gate, request: &Request, _rest: &str) -> Outcome {
    Err(HttpError::no_route(&request.path))
}
