//! Crash cases of the emergency seal beside several KMS seals: its rekey,
//! its copies of the root key and the recovery key through rotate-root,
//! and its retirement.

use super::*;

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
        let (nonce, _) = start_as(daemon.cli().token(&store.token), "rekey", &args);
        daemon
            .cli()
            .run(&["rekey", "--nonce", &nonce, &store.keys[0]])
            .ok();
        let last = daemon.cli().run(&[
            "rekey",
            "--nonce",
            &nonce,
            &store.keys[1],
            "--format",
            "json",
        ]);
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
    strongroom::barrier::open_keyring(&root_key, &stored["core/keyring"])
        .expect("the emergency copy is of the root key that encrypts the stored keyring");
    let recovery_key = secret
        .open(
            Purpose::RecoveryKey,
            &config.cluster_id,
            &stored["core/emergency-recovery-key"],
        )
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
