//! Crash cases of several seals: init, a seal added or leaving, a seal
//! removed while another is not wrapped, and quorum operations while a seal
//! cannot wrap. The emergency seal's cases are in
//! `multiseal_emergency.rs`.

use super::multiseal_emergency::emergency_keys_open_the_stored_copy;
use super::*;
use crate::support::kms::seal_named;

/// Several seals: init under two, and a store of one seal restarted with a
/// second seal added, which the active node rewraps by itself ("seal-set":
/// the recovery key opened, both keys wrapped by each seal, one commit).
#[test]
fn multiseal_init_and_a_seal_added() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    // With the emergency seal: its keys' config and the root key encrypted
    // to them are part of init's one commit.
    init_with_recovery_keys(format!("{both}{EMERGENCY_SEAL}"));

    seal_added_matrix(&awskms_store(&tokyo, &both));
}

/// Several seals: a store of "tokyo" and "osaka" restarted with a third
/// seal, "nagoya" (a third KMS), which the active node rewraps by itself.
#[test]
fn multiseal_a_third_seal_added() {
    let (tokyo, osaka, nagoya) = (kms(), kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let three = format!(
        "{both}{}",
        named_seal_block("nagoya", 3, &nagoya.proxy.endpoint(), "")
    );
    seal_added_matrix(&kms_store(both, &three));
}

/// Every seal of the daemon's status fully wrapped, with several seals.
fn every_seal_wrapped(daemon: &Daemon) -> bool {
    let status = status(daemon);
    status["type"] == "multiseal"
        && status["seals"]
            .as_array()
            .is_some_and(|seals| seals.iter().all(|s| s["fully_wrapped"] == true))
}

/// The crash matrix of the rewrap that follows a seal added to `store`
/// (its config, `store.extra`, names one seal more than it was made with):
/// either way "tokyo" unseals it, and the restarted daemon wraps the keys
/// for every seal.
fn seal_added_matrix(store: &Store) {
    crash_matrix_of(
        "seal-set",
        true,
        store,
        // The daemon rewraps by itself after unsealing.
        |_, _| Seen::default(),
        every_seal_wrapped,
        |daemon, store, seen, side| {
            let kept = seen.root_key.as_ref().unwrap();
            assert_eq!(kept == store.root_key.as_ref().unwrap(), side == Side::Old);
            // Before the commit the envelopes it was made with still open
            // (and the restarted daemon rewraps again); after it, the set does.
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            strongroom_test_support::eventually("the rewrap", Duration::from_secs(10), || {
                every_seal_wrapped(daemon)
            });
        },
    );
}

/// Several seals: "osaka" marked disabled leaves the set. The active node
/// opens the recovery key, opens both keys of "tokyo" again, then deletes
/// "osaka"'s envelopes in one commit ("seal-set").
#[test]
fn multiseal_a_seal_leaves() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let leaving = both.replacen(
        "name     = \"osaka\"",
        "name     = \"osaka\"\n  disabled = true",
        1,
    );
    assert_ne!(leaving, both);
    let store = kms_store(both, &leaving);
    let osaka_gone = |daemon: &Daemon| {
        status(daemon)["seals"]
            .as_array()
            .and_then(|seals| seals.iter().find(|s| s["name"] == "osaka"))
            .is_some_and(|s| s["holds_keys"] == false)
    };
    crash_matrix_of(
        "seal-set",
        true,
        &store,
        |_, _| Seen::default(),
        osaka_gone,
        |daemon, store, _, _| {
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            strongroom_test_support::eventually("the deletion", Duration::from_secs(10), || {
                osaka_gone(daemon)
            });
        },
    );
}

/// Several seals: a store of "tokyo", "osaka" and "kyoto" in which "osaka"
/// missed a rotate-root (it refused Encrypt, so it holds the recovery key
/// but not the new root key), restarted with "kyoto" removed from the
/// config while "osaka" still refuses. The active node's rewrap opens the
/// recovery key through "tokyo", cannot wrap "osaka", and still records the
/// seals {tokyo, osaka} in its one commit ("seal-set"): a removal is
/// recorded at once, whether or not every remaining seal is wrapped.
/// Either way "tokyo" unseals the store, the secrets read back, "kyoto"'s
/// envelopes are kept (no config names it, so no node deletes them: Status
/// warns), the restarted daemon records the removal, and once "osaka"
/// answers again it is rewrapped.
#[test]
fn multiseal_a_seal_removed_while_another_is_not_wrapped() {
    let (tokyo, osaka, kyoto) = (kms(), kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let three = format!(
        "{both}{}",
        named_seal_block("kyoto", 3, &kyoto.proxy.endpoint(), "")
    );
    let mut store = kms_store(three.clone(), &both);
    let refuse_encrypt = || {
        osaka
            .proxy
            .fault(Some("Encrypt"), Fault::access_denied("Encrypt"));
    };
    // The template's rotate-root, under all three seals, "osaka" refusing.
    refuse_encrypt();
    let template = store.template.path();
    let mut daemon = Daemon::start(template, &config(template, &three));
    rotate_root(0, 1)(&daemon, &store);
    daemon.stop();
    let stored = entries(&template.join("data"));
    assert_eq!(stored_seals(&stored, Purpose::RootKey), ["kyoto", "tokyo"]);
    store.root_key = root_key_entry(template);

    let removal_recorded = |daemon: &Daemon| {
        daemon.stderr.text().lines().any(|line| {
            line.contains("the store records its seals")
                && line.contains(r#""seals":"tokyo, osaka""#)
        })
    };
    crash_matrix_of(
        "seal-set",
        true,
        &store,
        // The daemon rewraps by itself after unsealing.
        |_, _| Seen::default(),
        removal_recorded,
        |daemon, store, seen, side| {
            assert_eq!(
                stored_seals(&seen.stored, Purpose::RootKey),
                ["kyoto", "tokyo"]
            );
            assert_eq!(
                stored_seals(&seen.stored, Purpose::RecoveryKey),
                ["kyoto", "osaka", "tokyo"]
            );
            let recorded: &[&str] = match side {
                Side::Old => &["tokyo", "osaka", "kyoto"],
                Side::New => &["tokyo", "osaka"],
            };
            assert_eq!(recorded_seals(&seen.stored), recorded);
            assert_eq!(wait_unsealed(daemon)["auto_unseal"]["seal"], "tokyo");
            secrets_read_back(daemon, &store.token, &KV);
            if side == Side::Old {
                strongroom_test_support::eventually(
                    "the removal recorded",
                    Duration::from_secs(10),
                    || removal_recorded(daemon),
                );
            }
            strongroom_test_support::eventually(
                "a warning naming kyoto's envelopes",
                Duration::from_secs(10),
                || {
                    status(daemon)["warnings"].as_array().is_some_and(|w| {
                        w.iter()
                            .any(|w| w.as_str().is_some_and(|w| w.contains("(\"kyoto\")")))
                    })
                },
            );
            assert_eq!(seal_named(&status(daemon), "osaka")["fully_wrapped"], false);
            osaka.proxy.clear_fault();
            strongroom_test_support::eventually("osaka rewrapped", Duration::from_secs(20), || {
                every_seal_wrapped(daemon)
            });
            // The next crash run starts with "osaka" refusing again.
            refuse_encrypt();
        },
    );
}

/// Several seals with an emergency seal, "osaka" refusing Encrypt:
/// rotate-root and a rekey of the recovery keys commit the new key wrapped
/// by "tokyo" alone ("osaka" loses its envelope of it) and encrypted to the
/// emergency seal. After the crash the stored envelopes are the old set or
/// "tokyo"'s alone, the emergency keys open the copies of the keys in
/// force, those keys work, and once "osaka" answers again the daemon
/// rewraps it.
#[test]
fn multiseal_quorum_operations_while_a_seal_cannot_wrap() {
    let (tokyo, osaka) = (kms(), kms());
    let both = two_seals(&tokyo.proxy.endpoint(), &osaka.proxy.endpoint());
    let (store, emergency) = emergency_store(&both, "");
    let emergency = &emergency[..3];
    crash_matrix(
        "rotate-root",
        &store,
        osaka_refusing_encrypt(&osaka, rotate_root(1, 2)),
        one_seal_wrapped_check(&osaka, emergency, Purpose::RootKey, rotate_root_check),
    );
    // The quorum check (no commit), then the new recovery key's commit, by
    // confirmation or by verification.
    crash_matrix_of(
        "rekey",
        false,
        &store,
        osaka_refusing_encrypt(&osaka, rekey_operation(false)),
        |_| true,
        one_seal_wrapped_check(&osaka, emergency, Purpose::RecoveryKey, rekey_check),
    );
    for verify in [false, true] {
        crash_matrix(
            "rekey-commit",
            &store,
            osaka_refusing_encrypt(&osaka, rekey_operation(verify)),
            one_seal_wrapped_check(&osaka, emergency, Purpose::RecoveryKey, rekey_check),
        );
    }
}

/// `operate` with `osaka`'s proxy refusing Encrypt (only Encrypt: the
/// quorum check's Decrypt and the health checks' DescribeKey still pass).
fn osaka_refusing_encrypt(
    osaka: &Kms,
    operate: impl Fn(&Daemon, &Store) -> Seen,
) -> impl Fn(&Daemon, &Store) -> Seen {
    move |daemon, store| {
        osaka
            .proxy
            .fault(Some("Encrypt"), Fault::access_denied("Encrypt"));
        operate(daemon, store)
    }
}

/// `check` after a crash of an operation that wrote a new `purpose` key
/// while "osaka" refused Encrypt: the stored envelopes of that key are
/// "tokyo"'s and "osaka"'s before the commit and "tokyo"'s alone after
/// it; the `emergency` keys open the stored copies of the root key and of
/// the recovery key in force. Then "osaka" answers again and is rewrapped.
fn one_seal_wrapped_check<'a>(
    osaka: &'a Kms,
    emergency: &'a [String],
    purpose: Purpose,
    check: impl Fn(&Daemon, &Store, &Seen, Side) + 'a,
) -> impl Fn(&Daemon, &Store, &Seen, Side) + 'a {
    move |daemon, store, seen, side| {
        let wrapped_by: &[&str] = match side {
            Side::Old => &["osaka", "tokyo"],
            Side::New => &["tokyo"],
        };
        assert_eq!(
            stored_seals(&seen.stored, purpose),
            wrapped_by,
            "{purpose:?}"
        );
        let recovery = match (purpose, side) {
            (Purpose::RecoveryKey, Side::New) => seen.keys.as_slice(),
            _ => &store.keys[..2],
        };
        emergency_keys_open_the_stored_copy(&seen.stored, emergency, &[], recovery);
        check(daemon, store, seen, side);
        osaka.proxy.clear_fault();
        strongroom_test_support::eventually("osaka rewrapped", Duration::from_secs(20), || {
            every_seal_wrapped(daemon)
        });
    }
}
