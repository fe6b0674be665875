//! A stopped daemon's store, read through the library as the daemon reads
//! it: the entries as stored, and with a quorum of Shamir shares every key
//! the daemon holds in memory once unsealed (the unseal key, the root key,
//! the keyring's keys, the audit salt, the snapshot key, the named keys'
//! material). Tests use them to look for those keys where they must never
//! be (logs, answers), and to tell which side of a commit a crash left.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use strongroom::barrier::{self, Barrier, entry};
use strongroom::seal::shamir;
use strongroom::secret::{SecretBytes, SecretKey};
use strongroom::storage::{Backend, FileBackend};

/// Runs a storage future to its end (the backend's API is async).
fn block_on<T>(future: impl std::future::Future<Output = T>) -> T {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
        .block_on(future)
}

/// Every entry of the store in `data` (its daemon stopped), by path.
pub fn entries(data: &Path) -> BTreeMap<String, Vec<u8>> {
    let backend = FileBackend::open(data).unwrap();
    block_on(backend.export()).unwrap().into_iter().collect()
}

/// The keys a Shamir store's daemon holds once unsealed, each named.
pub struct HeldKeys(pub Vec<(String, Vec<u8>)>);

impl HeldKeys {
    /// Opens the store in `data` (its daemon stopped) with `shares` (hex,
    /// a quorum of the unseal keys in force).
    pub fn of_shamir_store(data: &Path, shares: &[&str]) -> Self {
        let shares: Vec<SecretBytes> = shares
            .iter()
            .map(|s| SecretBytes::new(hex::decode(s).unwrap()))
            .collect();
        let unseal_key = shamir::combine(&shares).unwrap();
        let stored = entries(data);
        let root_key = entry::open(&unseal_key, "core/root-key", &stored["core/root-key"])
            .expect("the shares open the root key");
        let root_key = SecretKey::from_slice(root_key.expose()).unwrap();
        let keyring = barrier::open_keyring(&root_key, &stored["core/keyring"]).unwrap();
        let mut held = vec![
            ("unseal key".to_string(), unseal_key.expose().to_vec()),
            ("root key".to_string(), root_key.expose().to_vec()),
        ];
        for (term, _) in keyring.installed() {
            let key = keyring.key(term).unwrap();
            held.push((format!("keyring key {term}"), key.expose().to_vec()));
        }
        let backend: Arc<dyn Backend> = Arc::new(FileBackend::open(data).unwrap());
        let barrier = Barrier::new(backend, root_key, keyring);
        let salt = block_on(barrier.get("core/audit-salt")).unwrap();
        if let Some(salt) = salt {
            held.push(("audit salt".to_string(), salt.expose().to_vec()));
        }
        let snapshot_key = block_on(barrier.get("core/snapshot-mac-key")).unwrap();
        if let Some(key) = snapshot_key {
            held.push(("snapshot key".to_string(), key.expose().to_vec()));
        }
        for path in stored.keys().filter(|p| p.starts_with("keys/")) {
            let key = block_on(barrier.get(path)).unwrap().unwrap();
            let key: serde_json::Value = serde_json::from_slice(key.expose()).unwrap();
            for (i, version) in key["versions"].as_array().unwrap().iter().enumerate() {
                let material = hex::decode(version["key"].as_str().unwrap()).unwrap();
                held.push((format!("{path} version {}", i + 1), material));
            }
        }
        Self(held)
    }

    /// The material of the named key `name`, every version.
    pub fn named_key(&self, name: &str) -> Vec<&[u8]> {
        let prefix = format!("keys/{name} version ");
        self.0
            .iter()
            .filter(|(what, _)| what.starts_with(&prefix))
            .map(|(_, bytes)| bytes.as_slice())
            .collect()
    }
}

/// Every text form a secret's bytes could take in a log or an answer: hex
/// (both cases) and base64 (standard, unpadded, URL-safe).
pub fn text_forms(bytes: &[u8]) -> Vec<String> {
    use base64::Engine;
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let hex = hex::encode(bytes);
    vec![
        hex.to_uppercase(),
        hex,
        STANDARD.encode(bytes),
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
    ]
}
