//! The seal's state in Vault's JSON shapes: `sys/seal-status` and
//! `sys/seal-backend-status`.

use serde_json::{Value, json};

use crate::api::seal_backends::{SealBackends, rfc3339};
use crate::lifecycle::Status;

/// Vault's seal-status object.
pub fn seal_status_json(status: &Status) -> Value {
    let mut body = json!({
        "type": status.seal_type,
        "initialized": status.initialized,
        "sealed": status.sealed,
        "t": status.threshold,
        "n": status.shares,
        "progress": status.progress,
        "nonce": status.nonce,
        "recovery_seal": status.recovery_seal,
        "version": status.version,
        "migration": status.migration,
        "storage_type": status.storage_type,
    });
    if status.recovery_seal {
        body["recovery_seal_type"] = json!("shamir");
    }
    if !status.sealed {
        body["cluster_name"] = json!(status.cluster_name);
        body["cluster_id"] = json!(status.cluster_id);
    }
    body
}

/// Vault's seal-backend-status object, with strongroom's extras on each
/// backend (`type`, `priority`, `fully_wrapped`, `last_error` when set);
/// `unhealthy_since` only where unhealthy and known.
pub fn seal_backend_status_json(status: &Status) -> Value {
    let backends = SealBackends::of(status);
    let since = |body: &mut Value, ms: u64| {
        if ms > 0 {
            body["unhealthy_since"] = json!(rfc3339(ms));
        }
    };
    let list: Vec<Value> = backends
        .backends
        .iter()
        .map(|b| {
            let mut body = json!({
                "name": b.name,
                "healthy": b.healthy,
                "configured": true,
                "disabled": b.disabled,
                "type": b.seal_type,
                "priority": b.priority,
                "fully_wrapped": b.fully_wrapped,
            });
            if !b.healthy {
                since(&mut body, b.unhealthy_since_unix_ms);
            }
            if !b.last_error.is_empty() {
                body["last_error"] = json!(b.last_error);
            }
            body
        })
        .collect();
    let mut body = json!({
        "healthy": backends.healthy,
        "fully_wrapped": backends.fully_wrapped,
        "backends": list,
    });
    if !backends.healthy {
        since(&mut body, backends.unhealthy_since_unix_ms);
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::seal_backends::tests::{status, two_seals};

    #[test]
    fn seal_backend_status_is_vaults_json() {
        let body = seal_backend_status_json(&two_seals());
        assert_eq!(
            body,
            json!({
                "healthy": false,
                "unhealthy_since": "2023-09-22T08:34:11Z",
                "fully_wrapped": false,
                "backends": [
                    {"name": "tokyo", "healthy": true, "configured": true, "disabled": false,
                     "type": "awskms", "priority": 1, "fully_wrapped": true},
                    {"name": "osaka", "healthy": false, "configured": true, "disabled": false,
                     "unhealthy_since": "2023-09-22T08:34:11Z",
                     "type": "awskms", "priority": 2, "fully_wrapped": false,
                     "last_error": "KMS did not answer within 5 s"},
                    {"name": "emergency", "healthy": true, "configured": true, "disabled": false,
                     "type": "shamir", "priority": 0, "fully_wrapped": false},
                ]
            })
        );
    }

    #[test]
    fn one_seal_answers_with_one_healthy_backend_and_no_unhealthy_since() {
        let body = seal_backend_status_json(&status("shamir", Vec::new()));
        assert_eq!(
            body,
            json!({
                "healthy": true,
                "fully_wrapped": true,
                "backends": [
                    {"name": "shamir", "healthy": true, "configured": true, "disabled": false,
                     "type": "shamir", "priority": 1, "fully_wrapped": true},
                ]
            })
        );
    }

    #[test]
    fn seal_status_says_multiseal_with_several_seals() {
        assert_eq!(seal_status_json(&two_seals())["type"], "multiseal");
        assert_eq!(
            seal_status_json(&status("awskms", Vec::new()))["type"],
            "awskms"
        );
    }
}
