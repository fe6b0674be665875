use std::sync::Arc;

use super::*;

const GRPC: EncryptOptions = EncryptOptions {
    surface: Surface::Grpc,
    create: None,
    key_version: 0,
};

fn root() -> Session {
    Session::root_for_tests(Arc::new(Barrier::in_memory()), "keys/test")
}

#[tokio::test]
async fn a_version_that_reaches_its_encryption_limit_is_rotated() {
    // In unit tests a version makes 10 encryptions, reserved 4 at a time.
    let keys = Keys::default();
    let root = root();
    keys.create(&root, "busy", KeyOptions::default(), IfExists::Refuse)
        .await
        .unwrap();
    let mut ciphertexts = Vec::new();
    for i in 0..25u8 {
        ciphertexts.push(keys.encrypt(&root, "busy", &[i], b"", &GRPC).await.unwrap());
    }
    let versions: Vec<u32> = ciphertexts.iter().map(|c| c.version).collect();
    assert_eq!(
        versions.iter().filter(|v| **v == 1).count(),
        10,
        "{versions:?}"
    );
    assert_eq!(
        versions.iter().filter(|v| **v == 2).count(),
        10,
        "{versions:?}"
    );
    assert_eq!(keys.read(&root, "busy").await.unwrap().latest_version, 3);
    for (i, c) in ciphertexts.iter().enumerate() {
        let plain = keys
            .decrypt(&root, "busy", &c.ciphertext, b"", Surface::Grpc)
            .await
            .unwrap();
        assert_eq!(plain.expose(), &[u8::try_from(i).unwrap()]);
    }
    // Read again from storage (as after a restart), a version resumes
    // from its reservation: over-counted, never under-counted.
    let barrier = root.barrier().unwrap();
    let reserved = read_stored(barrier, "busy").await.unwrap().versions[2].reserved;
    keys.closed();
    keys.encrypt(&root, "busy", b"x", b"", &GRPC).await.unwrap();
    let after = read_stored(barrier, "busy").await.unwrap().versions[2].reserved;
    assert!(after > reserved, "{after} > {reserved}");
}

#[tokio::test]
async fn encrypt_rotate_min_version_rewrap() {
    let keys = Keys::default();
    let root = root();
    keys.create(&root, "app", KeyOptions::default(), IfExists::Refuse)
        .await
        .unwrap();
    let old = keys
        .encrypt(&root, "app", b"hello", b"ctx", &GRPC)
        .await
        .unwrap();
    assert!(old.ciphertext.starts_with("sr:v1:"), "{}", old.ciphertext);
    keys.rotate(&root, "app").await.unwrap();
    let plain = keys
        .decrypt(&root, "app", &old.ciphertext, b"ctx", Surface::Grpc)
        .await
        .unwrap();
    assert_eq!(plain.expose(), b"hello");
    let err = keys
        .decrypt(&root, "app", &old.ciphertext, b"other", Surface::Grpc)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("context differs"), "{err}");
    keys.update_config(
        &root,
        "app",
        KeyConfig {
            min_decryption_version: Some(2),
            deletion_allowed: None,
        },
    )
    .await
    .unwrap();
    let err = keys
        .decrypt(&root, "app", &old.ciphertext, b"ctx", Surface::Grpc)
        .await
        .err()
        .unwrap();
    assert!(matches!(err, Error::FailedPrecondition(_)), "{err}");
    assert!(
        keys.rewrap(&root, "app", &old.ciphertext, b"ctx", Surface::Grpc)
            .await
            .is_err()
    );
    keys.update_config(
        &root,
        "app",
        KeyConfig {
            min_decryption_version: Some(1),
            deletion_allowed: None,
        },
    )
    .await
    .unwrap();
    let new = keys
        .rewrap(&root, "app", &old.ciphertext, b"ctx", Surface::Grpc)
        .await
        .unwrap();
    assert_eq!(new.version, 2);
    let plain = keys
        .decrypt(&root, "app", &new.ciphertext, b"ctx", Surface::Grpc)
        .await
        .unwrap();
    assert_eq!(plain.expose(), b"hello");
    // A ciphertext relabelled with another version fails authentication.
    let relabelled = new.ciphertext.replacen("sr:v2:", "sr:v1:", 1);
    assert!(
        keys.decrypt(&root, "app", &relabelled, b"ctx", Surface::Grpc)
            .await
            .is_err()
    );
    assert_eq!(keys.read(&root, "app").await.unwrap().versions.len(), 2);
}

const VAULT: EncryptOptions = EncryptOptions {
    surface: Surface::Vault,
    create: None,
    key_version: 0,
};

#[tokio::test]
async fn a_ciphertext_of_one_surface_decrypts_on_the_other() {
    let keys = Keys::default();
    let root = root();
    keys.create(&root, "both", KeyOptions::default(), IfExists::Refuse)
        .await
        .unwrap();
    let grpc = keys
        .encrypt(&root, "both", b"one", b"", &GRPC)
        .await
        .unwrap();
    let vault = keys
        .encrypt(&root, "both", b"two", b"", &VAULT)
        .await
        .unwrap();
    assert!(grpc.ciphertext.starts_with("sr:v1:"), "{}", grpc.ciphertext);
    assert!(
        vault.ciphertext.starts_with("vault:v1:"),
        "{}",
        vault.ciphertext
    );
    for surface in [Surface::Grpc, Surface::Vault] {
        let one = keys
            .decrypt(&root, "both", &grpc.ciphertext, b"", surface)
            .await
            .unwrap();
        assert_eq!(one.expose(), b"one");
        let two = keys
            .decrypt(&root, "both", &vault.ciphertext, b"", surface)
            .await
            .unwrap();
        assert_eq!(two.expose(), b"two");
    }
    // The prefix is a label: the same bytes under the other one decrypt.
    let relabelled = vault.ciphertext.replacen("vault:", "sr:", 1);
    let two = keys
        .decrypt(&root, "both", &relabelled, b"", Surface::Grpc)
        .await
        .unwrap();
    assert_eq!(two.expose(), b"two");
    // Rewrap emits the surface's prefix, whatever it was given.
    let rewrapped = keys
        .rewrap(&root, "both", &grpc.ciphertext, b"", Surface::Vault)
        .await
        .unwrap();
    assert!(rewrapped.ciphertext.starts_with("vault:v1:"));
}

#[tokio::test]
async fn a_context_is_ignored_by_vaults_surface_unless_the_key_is_derived() {
    let keys = Keys::default();
    let root = root();
    keys.create(&root, "plain", KeyOptions::default(), IfExists::Refuse)
        .await
        .unwrap();
    let made = keys
        .encrypt(&root, "plain", b"x", b"ctx", &VAULT)
        .await
        .unwrap();
    for context in [&b""[..], b"ctx", b"other"] {
        let plain = keys
            .decrypt(&root, "plain", &made.ciphertext, context, Surface::Vault)
            .await
            .unwrap();
        assert_eq!(plain.expose(), b"x");
    }
    // On gRPC the context of a key that is not derived is authenticated.
    let bound = keys
        .encrypt(&root, "plain", b"y", b"ctx", &GRPC)
        .await
        .unwrap();
    assert!(
        keys.decrypt(&root, "plain", &bound.ciphertext, b"", Surface::Grpc)
            .await
            .is_err()
    );
    // A context-free gRPC ciphertext is one Vault's surface reads.
    let free = keys
        .encrypt(&root, "plain", b"z", b"", &GRPC)
        .await
        .unwrap();
    let plain = keys
        .decrypt(
            &root,
            "plain",
            &free.ciphertext,
            b"anything",
            Surface::Vault,
        )
        .await
        .unwrap();
    assert_eq!(plain.expose(), b"z");
}

#[tokio::test]
async fn a_derived_key_needs_the_same_context_on_both_surfaces() {
    let keys = Keys::default();
    let root = root();
    let derived = KeyOptions { derived: true };
    let info = keys
        .create(&root, "tenant", derived, IfExists::Refuse)
        .await
        .unwrap();
    assert!(info.derived);
    let err = keys
        .encrypt(&root, "tenant", b"x", b"", &VAULT)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("derived = true"), "{err}");
    let made = keys
        .encrypt(&root, "tenant", b"secret", b"tenant-7", &VAULT)
        .await
        .unwrap();
    let plain = keys
        .decrypt(
            &root,
            "tenant",
            &made.ciphertext,
            b"tenant-7",
            Surface::Grpc,
        )
        .await
        .unwrap();
    assert_eq!(plain.expose(), b"secret");
    for surface in [Surface::Grpc, Surface::Vault] {
        let err = keys
            .decrypt(&root, "tenant", &made.ciphertext, b"tenant-8", surface)
            .await
            .err()
            .unwrap();
        assert!(err.to_string().contains("does not decrypt"), "{err}");
        assert!(
            keys.decrypt(&root, "tenant", &made.ciphertext, b"", surface)
                .await
                .is_err()
        );
    }
    // Create on Vault's surface keeps an existing key as it is.
    let again = keys
        .create(&root, "tenant", KeyOptions::default(), IfExists::Keep)
        .await
        .unwrap();
    assert!(again.derived);
    assert!(
        keys.create(&root, "tenant", derived, IfExists::Refuse)
            .await
            .is_err()
    );
}

#[tokio::test]
async fn encrypt_may_create_the_key_and_only_with_the_latest_version() {
    let keys = Keys::default();
    let root = root();
    let missing = keys.encrypt(&root, "new", b"x", b"", &VAULT).await;
    assert!(matches!(missing, Err(Error::NotFound(_))));
    let upsert = EncryptOptions {
        create: Some(KeyOptions::default()),
        ..VAULT
    };
    let made = keys
        .encrypt(&root, "new", b"x", b"", &upsert)
        .await
        .unwrap();
    assert_eq!(made.version, 1);
    assert_eq!(keys.list(&root).await.unwrap(), vec!["new".to_string()]);
    keys.rotate(&root, "new").await.unwrap();
    let old = EncryptOptions {
        key_version: 1,
        ..VAULT
    };
    let err = keys
        .encrypt(&root, "new", b"x", b"", &old)
        .await
        .err()
        .unwrap();
    assert!(err.to_string().contains("latest version"), "{err}");
    let latest = EncryptOptions {
        key_version: 2,
        ..VAULT
    };
    assert_eq!(
        keys.encrypt(&root, "new", b"x", b"", &latest)
            .await
            .unwrap()
            .version,
        2
    );
}
