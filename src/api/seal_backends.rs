//! Each seal's health as Vault's `sys/seal-backend-status` reports it,
//! read from [`Status`] for both transports (the gRPC `SealBackendStatus`
//! and the HTTP path).
//!
//! With several seals the list is Status's own. With one seal (or Shamir)
//! there is one backend named after the seal type, as Vault answers with
//! one seal: a Shamir seal is always healthy and fully wrapped; one awskms
//! seal is unhealthy while its key check says the key is unusable
//! (`Status::key_health`: disabled, pending deletion, check failed) or,
//! sealed, while its last auto-unseal attempt failed. Lifecycle keeps no time for those, so `unhealthy_since` is then
//! unknown (docs/DECISIONS.md).

use crate::lifecycle::{AutoUnsealState, Status};

/// The seal type Status and Vault name the Shamir seal with.
const SHAMIR: &str = "shamir";

/// One seal's health.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backend {
    /// Its name (the seal type for a daemon of one seal).
    pub name: String,
    /// `awskms` or `shamir`.
    pub seal_type: String,
    /// Lower is tried first; 0 for the emergency seal.
    pub priority: u32,
    /// Decrypt-only: leaving the set.
    pub disabled: bool,
    /// Its last KMS call worked (or none was made yet).
    pub healthy: bool,
    /// When it became unhealthy, ms since the Unix epoch; 0 while healthy
    /// or when not known.
    pub unhealthy_since_unix_ms: u64,
    /// It holds both the root key and the recovery key.
    pub fully_wrapped: bool,
    /// Why its last KMS call failed; empty while healthy.
    pub last_error: String,
}

impl Backend {
    /// An enabled KMS seal: the ones the summary speaks for.
    fn counts(&self) -> bool {
        !self.disabled && self.seal_type != SHAMIR
    }
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SealBackends {
    /// Every enabled KMS seal is healthy.
    pub healthy: bool,
    /// The earliest `unhealthy_since` of the enabled KMS seals; 0 when
    /// healthy or not known.
    pub unhealthy_since_unix_ms: u64,
    /// Every enabled KMS seal is fully wrapped.
    pub fully_wrapped: bool,
    /// Every configured seal, in priority order, the emergency seal last.
    pub backends: Vec<Backend>,
}

impl SealBackends {
    /// The seals' health as `status` reports it.
    pub fn of(status: &Status) -> Self {
        let backends = if status.seals.is_empty() {
            vec![one_seal(status)]
        } else {
            status
                .seals
                .iter()
                .map(|s| Backend {
                    name: s.name.clone(),
                    seal_type: s.seal_type.to_string(),
                    priority: s.priority,
                    disabled: s.disabled,
                    healthy: s.healthy,
                    unhealthy_since_unix_ms: if s.healthy {
                        0
                    } else {
                        s.unhealthy_since_unix_ms
                    },
                    fully_wrapped: s.fully_wrapped,
                    last_error: s.last_error.clone(),
                })
                .collect()
        };
        let counted = || backends.iter().filter(|b| b.counts());
        Self {
            healthy: counted().all(|b| b.healthy),
            unhealthy_since_unix_ms: counted()
                .filter(|b| !b.healthy && b.unhealthy_since_unix_ms > 0)
                .map(|b| b.unhealthy_since_unix_ms)
                .min()
                .unwrap_or(0),
            fully_wrapped: counted().all(|b| b.fully_wrapped),
            backends,
        }
    }
}

/// The one seal of a daemon without `enable_multiseal`.
fn one_seal(status: &Status) -> Backend {
    let mut backend = Backend {
        name: status.seal_type.to_string(),
        seal_type: status.seal_type.to_string(),
        priority: 1,
        disabled: false,
        healthy: true,
        unhealthy_since_unix_ms: 0,
        fully_wrapped: true,
        last_error: String::new(),
    };
    if status.seal_type == SHAMIR {
        return backend;
    }
    let key_warning = Some(&status.key_health).filter(|w| !w.is_empty());
    let failed_unseal = status.auto_unseal.as_ref().filter(|a| {
        status.sealed
            && !a.last_error.is_empty()
            && matches!(
                a.state,
                AutoUnsealState::InProgress | AutoUnsealState::Failed
            )
    });
    if let Some(warning) = key_warning {
        backend.healthy = false;
        backend.last_error.clone_from(warning);
    } else if let Some(auto) = failed_unseal {
        backend.healthy = false;
        backend.last_error.clone_from(&auto.last_error);
    }
    backend
}

/// Milliseconds since the epoch as RFC 3339 in UTC to the second, as Vault
/// prints `unhealthy_since`; empty for 0 (not unhealthy, or not known).
pub fn rfc3339(ms: u64) -> String {
    if ms == 0 {
        return String::new();
    }
    crate::time::format_unix(ms / 1000)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::lifecycle::{AutoUnsealStatus, SealStatus};

    /// 2023-09-22T08:34:11Z, Vault's example, in ms.
    pub(crate) const SINCE_MS: u64 = 1_695_371_651_250;

    fn seal(name: &str, priority: u32, healthy: bool) -> SealStatus {
        SealStatus {
            name: name.into(),
            seal_type: "awskms",
            priority,
            disabled: false,
            key_id: format!("alias/{name}"),
            healthy,
            unhealthy_since_unix_ms: if healthy { 0 } else { SINCE_MS },
            last_error: if healthy {
                String::new()
            } else {
                "KMS did not answer within 5 s".into()
            },
            fully_wrapped: healthy,
            holds_keys: true,
            shares: 0,
            threshold: 0,
        }
    }

    /// A Status of `seal_type` and `seals`, unsealed.
    pub(crate) fn status(seal_type: &'static str, seals: Vec<SealStatus>) -> Status {
        Status {
            seal_type,
            initialized: true,
            sealed: false,
            threshold: 3,
            shares: 5,
            progress: 0,
            nonce: String::new(),
            version: "0.0.0",
            storage_type: "file",
            cluster_name: "c".into(),
            cluster_id: "id".into(),
            recovery_seal: seal_type != SHAMIR,
            kms_key_arn: String::new(),
            auto_unseal: (seal_type != SHAMIR).then(|| AutoUnsealStatus {
                state: AutoUnsealState::Unsealed,
                attempts: 1,
                last_error: String::new(),
                next_attempt_unix_ms: 0,
                seal: "tokyo".into(),
            }),
            warnings: Vec::new(),
            migration: false,
            ha: None,
            storage_error: String::new(),
            key_health: String::new(),
            seals,
        }
    }

    /// Two seals, "osaka" unhealthy, and the emergency seal.
    pub(crate) fn two_seals() -> Status {
        let emergency = SealStatus {
            name: "emergency".into(),
            seal_type: "shamir",
            priority: 0,
            disabled: false,
            key_id: String::new(),
            healthy: true,
            unhealthy_since_unix_ms: 0,
            last_error: String::new(),
            fully_wrapped: false,
            holds_keys: false,
            shares: 0,
            threshold: 0,
        };
        status(
            "multiseal",
            vec![seal("tokyo", 1, true), seal("osaka", 2, false), emergency],
        )
    }

    #[test]
    fn several_seals_are_summed_up_over_the_enabled_kms_seals() {
        let backends = SealBackends::of(&two_seals());
        assert!(!backends.healthy);
        assert_eq!(backends.unhealthy_since_unix_ms, SINCE_MS);
        assert!(!backends.fully_wrapped);
        let names: Vec<&str> = backends.backends.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["tokyo", "osaka", "emergency"]);
        assert_eq!(
            backends.backends[1].last_error,
            "KMS did not answer within 5 s"
        );

        // A disabled seal (leaving the set) and the emergency seal do not
        // count: the one enabled seal is healthy and holds both keys.
        let mut status = two_seals();
        status.seals[1].disabled = true;
        let backends = SealBackends::of(&status);
        assert!(backends.healthy);
        assert_eq!(backends.unhealthy_since_unix_ms, 0);
        assert!(backends.fully_wrapped);
        assert!(!backends.backends[1].healthy);
    }

    #[test]
    fn one_seal_is_one_backend_named_after_its_type() {
        let shamir = SealBackends::of(&status("shamir", Vec::new()));
        assert!(shamir.healthy && shamir.fully_wrapped);
        assert_eq!(shamir.backends.len(), 1);
        assert_eq!(shamir.backends[0].name, "shamir");
        assert_eq!(shamir.backends[0].seal_type, "shamir");

        let mut awskms = status("awskms", Vec::new());
        let healthy = SealBackends::of(&awskms);
        assert!(healthy.healthy && healthy.fully_wrapped);
        assert_eq!(healthy.backends[0].name, "awskms");

        // A key move is not the seal's health; a disabled key is.
        awskms.warnings = vec![
            "the configured KMS key arn:b is in another account, region or partition than arn:a, which wraps the stored keys; moving between them needs a seal migration".into(),
        ];
        assert!(SealBackends::of(&awskms).healthy);
        awskms.key_health = "KMS key arn:a is disabled: strongroom is still unsealed, but it will not unseal after a restart until the key is enabled again".into();
        awskms.warnings.push(awskms.key_health.clone());
        let disabled = SealBackends::of(&awskms);
        assert!(!disabled.healthy);
        assert!(disabled.backends[0].last_error.contains("is disabled"));
        assert_eq!(disabled.unhealthy_since_unix_ms, 0, "not known");

        // Sealed and failing to auto-unseal: unhealthy, saying why.
        let mut sealed = status("awskms", Vec::new());
        sealed.sealed = true;
        if let Some(auto) = sealed.auto_unseal.as_mut() {
            auto.state = AutoUnsealState::InProgress;
            auto.last_error = "KMS refused the connection".into();
        }
        let failing = SealBackends::of(&sealed);
        assert!(!failing.healthy);
        assert_eq!(failing.backends[0].last_error, "KMS refused the connection");
    }

    #[test]
    fn times_are_rfc3339_to_the_second_and_empty_when_unknown() {
        assert_eq!(rfc3339(SINCE_MS), "2023-09-22T08:34:11Z");
        assert_eq!(rfc3339(0), "");
    }
}
