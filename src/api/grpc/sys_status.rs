//! The messages of `strongroom.v1.Sys` that report state: the seal
//! status, each seal's health (`SealBackendStatus`) and keyring terms, from
//! the lifecycle's types.

use crate::api::seal_backends::{SealBackends, rfc3339};
use crate::lifecycle::{self, KeyTerm, SealStatus};
use crate::proto;

impl From<KeyTerm> for proto::KeyTerm {
    fn from(t: KeyTerm) -> Self {
        Self {
            term: t.term,
            installed_unix: t.installed_unix,
            encryptions: t.encryptions,
            active: t.active,
        }
    }
}

impl From<lifecycle::Status> for proto::StatusResponse {
    fn from(s: lifecycle::Status) -> Self {
        let leader =
            s.ha.as_ref()
                .and_then(|ha| ha.leader.clone())
                .unwrap_or_default();
        Self {
            r#type: s.seal_type.into(),
            initialized: s.initialized,
            sealed: s.sealed,
            threshold: s.threshold,
            shares: s.shares,
            progress: s.progress,
            nonce: s.nonce,
            version: s.version.into(),
            storage_type: s.storage_type.into(),
            cluster_name: s.cluster_name,
            cluster_id: s.cluster_id,
            recovery_seal: s.recovery_seal,
            recovery_seal_type: if s.recovery_seal {
                "shamir".into()
            } else {
                String::new()
            },
            migration: s.migration,
            auto_unseal: s.auto_unseal.map(|a| proto::AutoUnseal {
                state: a.state.as_str().into(),
                attempts: a.attempts,
                last_error: a.last_error,
                next_attempt_unix_ms: a.next_attempt_unix_ms,
                seal: a.seal,
            }),
            kms_key_arn: s.kms_key_arn,
            warnings: s.warnings,
            storage_error: s.storage_error,
            ha_enabled: s.ha.is_some(),
            is_self: s.ha.as_ref().is_some_and(|ha| ha.is_self),
            leader_address: leader.api_addr,
            leader_cluster_address: leader.cluster_addr,
            active_time_unix_ms: leader.active_since_unix_ms,
            ha_mode: match (&s.ha, s.sealed) {
                (Some(ha), false) if ha.is_self => "active".into(),
                (Some(_), false) => "standby".into(),
                _ => String::new(),
            },
            seals: s.seals.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<SealStatus> for proto::SealBackend {
    fn from(s: SealStatus) -> Self {
        Self {
            name: s.name,
            r#type: s.seal_type.into(),
            priority: s.priority,
            disabled: s.disabled,
            key_id: s.key_id,
            healthy: s.healthy,
            unhealthy_since_unix_ms: s.unhealthy_since_unix_ms,
            last_error: s.last_error,
            fully_wrapped: s.fully_wrapped,
            holds_keys: s.holds_keys,
            shares: s.shares,
            threshold: s.threshold,
        }
    }
}

impl From<SealBackends> for proto::SealBackendStatusResponse {
    fn from(s: SealBackends) -> Self {
        Self {
            healthy: s.healthy,
            unhealthy_since: rfc3339(s.unhealthy_since_unix_ms),
            fully_wrapped: s.fully_wrapped,
            backends: s
                .backends
                .into_iter()
                .map(|b| proto::SealBackendHealth {
                    name: b.name,
                    healthy: b.healthy,
                    unhealthy_since: rfc3339(b.unhealthy_since_unix_ms),
                    configured: true,
                    disabled: b.disabled,
                    r#type: b.seal_type,
                    priority: b.priority,
                    fully_wrapped: b.fully_wrapped,
                    last_error: b.last_error,
                })
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::seal_backends::tests::{SINCE_MS, status, two_seals};

    #[test]
    fn status_lists_every_seal_and_the_seal_that_unsealed() {
        let response = proto::StatusResponse::from(two_seals());
        assert_eq!(response.r#type, "multiseal");
        assert_eq!(response.auto_unseal.unwrap().seal, "tokyo");
        let seals: Vec<(&str, &str, u32, bool)> = response
            .seals
            .iter()
            .map(|s| (s.name.as_str(), s.r#type.as_str(), s.priority, s.healthy))
            .collect();
        assert_eq!(
            seals,
            [
                ("tokyo", "awskms", 1, true),
                ("osaka", "awskms", 2, false),
                ("emergency", "shamir", 0, true)
            ]
        );
        let osaka = &response.seals[1];
        assert_eq!(osaka.key_id, "alias/osaka");
        assert_eq!(osaka.unhealthy_since_unix_ms, SINCE_MS);
        assert_eq!(osaka.last_error, "KMS did not answer within 5 s");
        assert!(!osaka.fully_wrapped && response.seals[0].fully_wrapped);

        let one = proto::StatusResponse::from(status("awskms", Vec::new()));
        assert!(one.seals.is_empty());
    }

    #[test]
    fn seal_backend_status_is_vaults_with_rfc3339_times_where_unhealthy() {
        let response = proto::SealBackendStatusResponse::from(SealBackends::of(&two_seals()));
        assert!(!response.healthy);
        assert_eq!(response.unhealthy_since, "2023-09-22T08:34:11Z");
        assert!(!response.fully_wrapped);
        let [tokyo, osaka, emergency] = response.backends.as_slice() else {
            panic!("three backends expected: {:?}", response.backends);
        };
        assert!(tokyo.healthy && tokyo.configured && !tokyo.disabled);
        assert_eq!(tokyo.unhealthy_since, "");
        assert_eq!(tokyo.last_error, "");
        assert!(!osaka.healthy && osaka.configured);
        assert_eq!(osaka.unhealthy_since, "2023-09-22T08:34:11Z");
        assert_eq!((osaka.r#type.as_str(), osaka.priority), ("awskms", 2));
        assert_eq!(osaka.last_error, "KMS did not answer within 5 s");
        assert_eq!(
            (emergency.name.as_str(), emergency.r#type.as_str()),
            ("emergency", "shamir")
        );
        assert!(emergency.healthy);

        let shamir =
            proto::SealBackendStatusResponse::from(SealBackends::of(&status("shamir", Vec::new())));
        assert!(shamir.healthy && shamir.fully_wrapped);
        assert_eq!(shamir.unhealthy_since, "");
        assert_eq!(shamir.backends.len(), 1);
        assert_eq!(shamir.backends[0].name, "shamir");
    }
}
