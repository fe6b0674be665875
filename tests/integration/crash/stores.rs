//! The stores the crash cases start from, each made once and copied for
//! every crash point: Shamir, one awskms seal, several seals, several seals
//! with the emergency seal; and the small steps shared by the cases.

use super::*;

/// A Shamir store 3/2 with the KV entries, sealed.
pub(super) fn shamir_store(extra: &str) -> Store {
    let template = tempdir();
    let mut daemon = Daemon::start(template.path(), &config(template.path(), ""));
    let keys = init(&daemon, &["--key-shares", "3", "--key-threshold", "2"]);
    unseal(&daemon, &[&keys.keys_hex[0], &keys.keys_hex[1]]);
    put_secrets(&daemon, &keys.root_token, &KV);
    daemon.stop();
    let root_key = root_key_entry(template.path());
    Store {
        template,
        extra: extra.to_string(),
        keys: keys.keys_hex.clone(),
        token: keys.root_token,
        awskms: false,
        root_key,
    }
}

/// An awskms store with 3/2 recovery keys and the KV entries.
pub(super) fn awskms_store(kms: &Kms, extra: &str) -> Store {
    kms_store(seal_block(&kms.proxy.endpoint(), ""), extra)
}

/// A store made under the seal blocks `block` with 3/2 recovery keys and
/// the KV entries; crash runs use `extra` (`block` when empty).
pub(super) fn kms_store(block: String, extra: &str) -> Store {
    kms_store_made(block, extra).0
}

/// [`kms_store`], and what its init printed.
pub(super) fn kms_store_made(block: String, extra: &str) -> (Store, Init) {
    let template = tempdir();
    let mut daemon = Daemon::start(template.path(), &config(template.path(), &block));
    let keys = crate::support::cli::init(
        &daemon,
        &["--recovery-shares", "3", "--recovery-threshold", "2"],
    );
    put_secrets(&daemon, &keys.root_token, &KV);
    daemon.stop();
    let root_key = root_key_entry(template.path());
    let store = Store {
        template,
        extra: if extra.is_empty() {
            block
        } else {
            extra.to_string()
        },
        keys: keys.recovery_hex.clone(),
        token: keys.root_token.clone(),
        awskms: true,
        root_key,
    };
    (store, keys)
}

/// A store made under the seal blocks `seals` and the emergency seal, as
/// [`kms_store`] makes one (crash runs use `extra`), and its 5 emergency
/// keys (hex; 3 open it).
pub(super) fn emergency_store(seals: &str, extra: &str) -> (Store, Vec<String>) {
    let (store, made) = kms_store_made(format!("{seals}{EMERGENCY_SEAL}"), extra);
    let emergency = crate::support::cli::strings(&made.json["emergency_keys_hex"]);
    assert_eq!(emergency.len(), 5);
    (store, emergency)
}

pub(super) fn unseal_with(daemon: &Daemon, keys: &[String]) {
    let refs: Vec<&String> = keys.iter().collect();
    unseal(daemon, &refs);
}

/// The keys a CLI printed as JSON before the daemon died (the answer came,
/// the confirmation did not).
pub(super) fn printed_keys(run: &Run, field: &str) -> Vec<String> {
    let json: Value = serde_json::from_str(&run.stdout).unwrap_or(Value::Null);
    json[field]
        .as_array()
        .map(|a| a.iter().map(|k| k.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

/// Unsealed as the store's seal does it: the first two keys (Shamir), or
/// by itself (awskms).
pub(super) fn unsealed(daemon: &Daemon, store: &Store) {
    if store.awskms {
        wait_unsealed(daemon);
    } else {
        unseal_with(daemon, &store.keys[..2]);
    }
}

/// The seals holding an envelope of the `purpose` key in a stopped store's
/// `stored` entries, sorted.
pub(super) fn stored_seals(
    stored: &std::collections::BTreeMap<String, Vec<u8>>,
    purpose: Purpose,
) -> Vec<String> {
    let path = match purpose {
        Purpose::RootKey => "core/root-key",
        Purpose::RecoveryKey => "core/recovery-key",
    };
    let set = EnvelopeSet::decode(purpose, &stored[path]).unwrap();
    let mut seals: Vec<String> = set.seals().map(str::to_string).collect();
    seals.sort_unstable();
    seals
}

/// The seal list `core/seal-config` records in `stored` (the one the next
/// change of the config is checked against), in its order.
pub(super) fn recorded_seals(stored: &std::collections::BTreeMap<String, Vec<u8>>) -> Vec<String> {
    let config = strongroom::lifecycle::SealConfig::decode(&stored["core/seal-config"]).unwrap();
    config.seals.into_iter().map(|s| s.name).collect()
}
