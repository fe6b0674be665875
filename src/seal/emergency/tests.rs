//! The emergency seal's copies: round trips, tampering, low-order points.

use super::*;

const ROOT: Purpose = Purpose::RootKey;

fn made() -> (EmergencySecret, SecretKey, Vec<u8>) {
    let secret = EmergencySecret::generate();
    let root = SecretKey::generate();
    let blob = wrap(&secret.public_key(), ROOT, "cluster-a", &root).unwrap();
    (secret, root, blob)
}

#[test]
fn round_trip_from_the_secret_alone() {
    let (secret, root, blob) = made();
    assert_eq!(blob.len(), BLOB_LEN);
    // E recombined from shares gives the same key pair.
    let again = EmergencySecret::from_key(secret.key().clone());
    assert_eq!(again.public_key_hex(), secret.public_key_hex());
    let parsed = parse_public_key(&secret.public_key_hex()).unwrap();
    assert_eq!(parsed.as_bytes(), secret.public_key().as_bytes());
    assert_eq!(
        again.open(ROOT, "cluster-a", &blob).unwrap().expose(),
        root.expose()
    );
    // Each wrap has its own ephemeral key and nonce.
    let other = wrap(&parsed, ROOT, "cluster-a", &root).unwrap();
    assert_ne!(other, blob);
    assert_eq!(
        secret.open(ROOT, "cluster-a", &other).unwrap().expose(),
        root.expose()
    );
}

#[test]
fn every_altered_byte_is_refused() {
    let (secret, _, blob) = made();
    // epk, nonce, ciphertext and tag.
    for at in [1, 20, 33, 40, 45, 60, BLOB_LEN - 1] {
        let mut tampered = blob.clone();
        tampered[at] ^= 0x01;
        assert_eq!(
            secret.open(ROOT, "cluster-a", &tampered).err(),
            Some(EmergencyError::Authentication),
            "byte {at}"
        );
    }
    let mut version = blob.clone();
    version[0] = 2;
    assert_eq!(
        secret.open(ROOT, "cluster-a", &version).err(),
        Some(EmergencyError::Malformed(BLOB_LEN, 2))
    );
    assert!(matches!(
        secret.open(ROOT, "cluster-a", &blob[..BLOB_LEN - 1]),
        Err(EmergencyError::Malformed(..))
    ));
}

#[test]
fn another_secret_or_store_is_refused() {
    let (_, _, blob) = made();
    let (secret, _, _) = made();
    assert_eq!(
        secret.open(ROOT, "cluster-a", &blob).err(),
        Some(EmergencyError::Authentication)
    );
    let (secret, _, blob) = made();
    assert_eq!(
        secret.open(ROOT, "cluster-b", &blob).err(),
        Some(EmergencyError::Authentication)
    );
}

/// u = 0 (the point of order 2) and u = 1 (a point of order 4): X25519
/// with either is all zeros whatever the private key.
fn low_order_points() -> [[u8; 32]; 2] {
    let mut one = [0u8; 32];
    one[0] = 1;
    [[0u8; 32], one]
}

#[test]
fn low_order_points_are_refused() {
    let root = SecretKey::generate();
    for point in low_order_points() {
        assert_eq!(
            wrap(&PublicKey::from(point), ROOT, "c", &root).err(),
            Some(EmergencyError::LowOrder)
        );
    }
    assert_eq!(
        parse_public_key("zz").err(),
        Some(EmergencyError::BadPublicKey)
    );
}

/// A blob whose ephemeral key is a low-order point, so the shared secret
/// is all zeros whatever the private key, with a right tag under the key
/// that derives: only the contributory check refuses it.
#[test]
fn a_blob_forged_under_the_all_zero_shared_secret_is_refused() {
    let secret = EmergencySecret::generate();
    let forged_key = SecretKey::generate();
    for point in low_order_points() {
        let epk = PublicKey::from(point);
        let derived = derive_key(ROOT, &[0u8; 32], &epk, &secret.public_key(), "cluster-a");
        let nonce = [7u8; NONCE_LEN];
        let mut body = forged_key.expose().to_vec();
        let tag = Aes256Gcm::new((&*derived).into())
            .encrypt_inout_detached(
                &Nonce::from(nonce),
                &aad(ROOT, "cluster-a"),
                body.as_mut_slice().into(),
            )
            .unwrap();
        let blob = [&[VERSION][..], &point, &nonce, &body, &tag].concat();
        assert_eq!(blob.len(), BLOB_LEN);
        assert_eq!(
            secret.open(ROOT, "cluster-a", &blob).err(),
            Some(EmergencyError::Authentication)
        );
    }
}

#[test]
fn the_root_key_copy_and_the_recovery_key_copy_are_not_interchangeable() {
    let secret = EmergencySecret::generate();
    let recovery = SecretKey::generate();
    let blob = wrap(
        &secret.public_key(),
        Purpose::RecoveryKey,
        "cluster-a",
        &recovery,
    )
    .unwrap();
    assert_eq!(
        secret
            .open(Purpose::RecoveryKey, "cluster-a", &blob)
            .unwrap()
            .expose(),
        recovery.expose()
    );
    assert_eq!(
        secret.open(ROOT, "cluster-a", &blob).err(),
        Some(EmergencyError::Authentication)
    );
}

#[test]
fn errors_carry_no_key_material() {
    let (secret, root, blob) = made();
    let mut tampered = blob.clone();
    tampered[40] ^= 1;
    let message = secret
        .open(ROOT, "cluster-a", &tampered)
        .err()
        .unwrap()
        .to_string();
    for secret_hex in [
        hex::encode(secret.key().expose()),
        hex::encode(root.expose()),
    ] {
        assert!(!message.contains(&secret_hex));
    }
}
