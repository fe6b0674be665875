//! Asks whatever holds a listener's address whether it is a strongroom:
//! one `GET /v1/sys/health` (what load balancers ask), over TLS when the
//! listener has it (src/diagnose/health.rs).

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::diagnose::health;

/// How long the whole question may take.
const TIMEOUT: Duration = Duration::from_secs(3);

/// What a strongroom said at `addr` ("initialized, unsealed, version …"),
/// or why nothing there answered as one (a [`health::AFTER_HANDSHAKE`]
/// error: a TLS server refused after the handshake).
pub async fn tcp(addr: SocketAddr, tls: bool) -> Result<String, String> {
    let answer = tokio::time::timeout(TIMEOUT, health::tcp(addr, tls))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))??;
    describe(&answer).ok_or_else(|| "its answer is not a strongroom's health answer".to_string())
}

/// As [`tcp`], on a unix socket.
pub async fn unix(path: &Path) -> Result<String, String> {
    let answer = tokio::time::timeout(TIMEOUT, health::unix(path))
        .await
        .map_err(|_| format!("no answer within {}s", TIMEOUT.as_secs()))??;
    describe(&answer).ok_or_else(|| "its answer is not a strongroom's health answer".to_string())
}

/// The health answer's state, if `answer` is one.
fn describe(value: &serde_json::Value) -> Option<String> {
    let initialized = value.get("initialized")?.as_bool()?;
    let sealed = value.get("sealed")?.as_bool()?;
    let version = value
        .get("version")
        .and_then(|v| v.as_str())
        .map(|v| format!(", version {}", crate::text::quote(v)))
        .unwrap_or_default();
    Some(format!(
        "{}, {}{version}",
        if initialized {
            "initialized"
        } else {
            "not initialized"
        },
        if sealed { "sealed" } else { "unsealed" }
    ))
}

#[cfg(test)]
mod tests {
    use super::describe;

    #[test]
    fn a_health_answer_is_described_and_anything_else_is_not() {
        let answer = serde_json::json!({"initialized": true, "sealed": false, "version": "0.1.0"});
        assert_eq!(
            describe(&answer).as_deref(),
            Some("initialized, unsealed, version \"0.1.0\"")
        );
        assert_eq!(describe(&serde_json::json!({"errors": []})), None);
    }
}
