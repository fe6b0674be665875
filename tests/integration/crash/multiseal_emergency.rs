//! Crash cases of the emergency seal beside several KMS seals: its rekey,
//! its copies of the root key and the recovery key through rotate-root,
//! a seal added after a break-glass unseal, and its retirement.

use serde_json::json;

use super::*;
use crate::support::kms::{delete_key, unseal_emergency, wait_failed_attempt};

/// Several seals with an emergency seal: `rekey --target emergency`, whose
/// one commit ("rekey-commit") writes the new emergency config and copy of
/// the root key and the recovery key together, and rotate-root, whose
/// commit writes the new root key's copy with the keyring it encrypts:
/// after the crash the emergency keys in force (old or new) open the stored
/// copies, the root key in one opens the stored keyring, and the other is
/// the recovery key in force. (Init under an emergency seal is the init
/// case of `multiseal_init_and_a_seal_added`.)
#[test]
fn multiseal_emergency_rekey_and_rotate_root() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let (store, emergency) = emergency_store(&both, "");
    let operate = |daemon: &Daemon, store: &Store| {
        wait_unsealed(daemon);
        let args = [
            "--target",
            "emergency",
            "--key-shares",
            "2",
            "--key-threshold",
            "2",
        ];
        let last = rekey_quorum(daemon, store, &args);
        Seen {
            keys: printed_keys(&last, "keys"),
            ..Seen::default()
        }
    };
    let check = |daemon: &Daemon, store: &Store, seen: &Seen, side: Side| {
        let (in_force, void) = match side {
            Side::Old => (&emergency[..3], seen.keys.as_slice()),
            Side::New => (seen.keys.as_slice(), &emergency[..]),
        };
        emergency_keys_open_the_stored_copy(&seen.stored, in_force, void, &store.keys[..2]);
        wait_unsealed(daemon);
        secrets_read_back(daemon, &store.token, &KV);
    };
    crash_matrix("rekey-commit", &store, operate, check);
    crash_matrix(
        "rotate-root",
        &store,
        rotate_root(0, 1),
        |daemon, store, seen, side| {
            emergency_keys_open_the_stored_copy(
                &seen.stored,
                &emergency[2..],
                &[],
                &store.keys[1..],
            );
            rotate_root_check(daemon, store, seen, side);
        },
    );
}

/// The stored emergency config takes `in_force` (and none of `void`), and
/// they open the stored emergency copy of the root key, which opens the
/// stored keyring, and the copy of the recovery key, which is the one a
/// quorum of `recovery` (recovery keys in force, hex) combines into.
pub(super) fn emergency_keys_open_the_stored_copy(
    stored: &std::collections::BTreeMap<String, Vec<u8>>,
    in_force: &[String],
    void: &[String],
    recovery: &[String],
) {
    use strongroom::lifecycle::SealConfig;
    use strongroom::seal::emergency::EmergencySecret;
    use strongroom::seal::shamir;
    use strongroom::secret::SecretBytes;

    let config = SealConfig::decode(&stored["core/seal-config"]).unwrap();
    let emergency = config.emergency.unwrap();
    let bytes = |key: &String| hex::decode(key).unwrap();
    assert!(
        in_force
            .iter()
            .all(|k| emergency.share_check.is_issued(&bytes(k)))
    );
    assert!(
        !void
            .iter()
            .any(|k| emergency.share_check.is_issued(&bytes(k)))
    );
    let shares: Vec<SecretBytes> = in_force
        .iter()
        .map(|k| SecretBytes::new(bytes(k)))
        .collect();
    let secret = EmergencySecret::from_key(shamir::combine(&shares).unwrap());
    assert_eq!(secret.public_key_hex(), emergency.public_key);
    let root_key = secret
        .open(
            Purpose::RootKey,
            &config.cluster_id,
            &stored["core/emergency-root-key"],
        )
        .expect("the emergency keys in force open the stored copy of the root key");
    let keyring = strongroom::barrier::open_keyring(&root_key, &stored["core/keyring"])
        .expect("the emergency copy is of the root key that encrypts the stored keyring");
    // The recovery key's copy is sealed by the barrier too.
    let path = "core/emergency-recovery-key";
    let sealed = &stored[path];
    let term = strongroom::barrier::entry::term_of(sealed).unwrap();
    let blob = strongroom::barrier::entry::open(keyring.key(term).unwrap(), path, sealed)
        .expect("the barrier opens the stored copy of the recovery key");
    let recovery_key = secret
        .open(Purpose::RecoveryKey, &config.cluster_id, blob.expose())
        .expect("the emergency keys in force open the stored copy of the recovery key");
    let shares: Vec<SecretBytes> = recovery
        .iter()
        .map(|k| SecretBytes::new(bytes(k)))
        .collect();
    assert!(
        recovery_key.expose() == shamir::combine(&shares).unwrap().expose(),
        "the emergency copy is not of the recovery key in force"
    );
}

/// Several seals: a store of "tokyo", "osaka" and the emergency seal
/// restarted without the `seal "shamir"` block. The active node retires the
/// emergency seal: the seal config without it and its three entries
/// deleted, in one commit ("seal-set"). Before the commit its keys still
/// open both stored copies; after it nothing of it is left; either way the
/// store unseals and reads back, and the restarted daemon retires it.
#[test]
fn multiseal_the_emergency_seal_retired() {
    use strongroom::lifecycle::SealConfig;

    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let (store, emergency) = emergency_store(&both, &both);
    let retired = |daemon: &Daemon| {
        daemon
            .stderr
            .text()
            .contains("the emergency seal is retired")
    };
    crash_matrix_of(
        "seal-set",
        true,
        &store,
        |_, _| Seen::default(),
        retired,
        |daemon, store, seen, side| {
            match side {
                Side::Old => emergency_keys_open_the_stored_copy(
                    &seen.stored,
                    &emergency[..3],
                    &[],
                    &store.keys[..2],
                ),
                Side::New => {
                    let config = SealConfig::decode(&seen.stored["core/seal-config"]).unwrap();
                    assert!(config.emergency.is_none());
                    let names: Vec<&str> = config.seals.iter().map(|s| s.name.as_str()).collect();
                    assert_eq!(names, ["tokyo", "osaka"]);
                    for path in [
                        "core/emergency-root-key",
                        "core/emergency-recovery-key",
                        "core/emergency-public-key",
                    ] {
                        assert!(!seen.stored.contains_key(path), "{path} is left");
                    }
                }
            }
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            if side == Side::Old {
                strongroom_test_support::eventually(
                    "the retirement",
                    Duration::from_secs(10),
                    || retired(daemon),
                );
            }
        },
    );
}

/// Several seals after the break-glass: a store of "tokyo", "osaka" and the
/// emergency seal whose two KMS keys are deleted for good, restarted with a
/// third seal, "kyoto". No KMS seal opens it; a quorum of emergency keys (3
/// of 5) does, and the active node then wraps both keys for "kyoto" by
/// itself ("seal-set": the stored recovery key, which no KMS seal opens,
/// gives way to the one the emergency unseal opened; kyoto's Encrypts and
/// the Decrypts that check them; one commit). Before the commit "kyoto"
/// holds nothing and the store needs the emergency keys again, after which
/// "kyoto" is wrapped; after it "kyoto" unseals the store by itself. Either
/// way the emergency keys still open both stored copies and the secrets
/// read back.
#[test]
fn multiseal_a_seal_added_after_the_break_glass() {
    let (tokyo, osaka, kyoto) = (kms(), kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let with_kyoto = format!(
        "{both}{}{EMERGENCY_SEAL}",
        named_seal_block("kyoto", 3, &kyoto.proxy.endpoint(), "")
    );
    let (store, emergency) = emergency_store(&both, &with_kyoto);
    delete_key(&tokyo);
    delete_key(&osaka);
    let quorum = &emergency[..3];
    crash_matrix_of(
        "seal-set",
        true,
        &store,
        // The daemon rewraps by itself once the emergency keys unsealed it,
        // and may crash before it answers the last one.
        |daemon, _| {
            break_glass(daemon, quorum);
            Seen::default()
        },
        kyoto_wrapped,
        |daemon, store, seen, side| {
            let (holders, recorded): (&[&str], &[&str]) = match side {
                Side::Old => (&["osaka", "tokyo"], &["tokyo", "osaka"]),
                Side::New => (&["kyoto", "osaka", "tokyo"], &["tokyo", "osaka", "kyoto"]),
            };
            for purpose in [Purpose::RootKey, Purpose::RecoveryKey] {
                assert_eq!(stored_seals(&seen.stored, purpose), holders, "{purpose:?}");
            }
            assert_eq!(recorded_seals(&seen.stored), recorded);
            emergency_keys_open_the_stored_copy(&seen.stored, quorum, &[], &store.keys[..2]);
            match side {
                Side::Old => {
                    break_glass(daemon, quorum);
                    let unsealed = status(daemon);
                    assert_eq!(unsealed["sealed"], false, "{unsealed}");
                    assert_eq!(unsealed["auto_unseal"]["seal"], "emergency");
                    secrets_read_back(daemon, &store.token, &KV);
                    strongroom_test_support::eventually(
                        "kyoto wrapped",
                        Duration::from_secs(10),
                        || kyoto_wrapped(daemon),
                    );
                }
                Side::New => {
                    assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "kyoto");
                    secrets_read_back(daemon, &store.token, &KV);
                }
            }
        },
    );
}

/// Waits for an auto-unseal attempt that no KMS seal could answer, then
/// enters `keys`, a quorum of emergency keys (threshold 3): the first two
/// are taken and counted; the answer to the last is not checked (the
/// daemon unseals, and in a crash run may abort before it answers).
fn break_glass(daemon: &Daemon, keys: &[String]) {
    assert_eq!(wait_failed_attempt(daemon)["sealed"], true);
    let (last, first) = keys.split_last().unwrap();
    for (entered, key) in first.iter().enumerate() {
        let answer = unseal_emergency(daemon, key).ok().json();
        assert_eq!(
            (&answer["progress"], &answer["t"]),
            (&json!(entered + 1), &json!(3)),
            "{answer}"
        );
    }
    unseal_emergency(daemon, last);
}

/// "kyoto" holds both keys, by the daemon's status.
fn kyoto_wrapped(daemon: &Daemon) -> bool {
    status(daemon)["seals"]
        .as_array()
        .and_then(|seals| seals.iter().find(|s| s["name"] == "kyoto"))
        .is_some_and(|kyoto| kyoto["fully_wrapped"] == true)
}
