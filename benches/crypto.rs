//! Micro-benchmarks of the hot pieces: barrier encryption, Shamir, the local
//! part of the awskms envelope (everything but the KMS round trip), config
//! parsing, and a durable storage commit (redb against write + fsync + rename).
//!
//! Run with `cargo bench --bench crypto`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use divan::Bencher;
use divan::counter::BytesCount;
use strongroom::barrier::{Barrier, Keyring};
use strongroom::seal::envelope::{Envelope, Purpose};
use strongroom::seal::kms::{
    EncryptionContext, KeyInfo, Kms, KmsError, KmsErrorKind, Unwrapped, Wrapped,
};
use strongroom::seal::shamir;
use strongroom::secret::{SecretBytes, SecretKey};
use strongroom::storage::{Backend, Batch, FileBackend, InmemBackend};

fn main() {
    divan::main();
}

fn barrier() -> Barrier {
    Barrier::new(
        Arc::new(InmemBackend::new()),
        SecretKey::generate(),
        Keyring::generate(),
    )
}

#[divan::bench(args = [100, 4096])]
fn barrier_encrypt(bencher: Bencher<'_, '_>, size: usize) {
    let barrier = barrier();
    let data = vec![0x5a; size];
    bencher
        .counter(BytesCount::new(size))
        .bench(|| barrier.encrypt(black_box("kv/app/db"), black_box(&data)));
}

#[divan::bench(args = [100, 4096])]
fn barrier_decrypt(bencher: Bencher<'_, '_>, size: usize) {
    let barrier = barrier();
    let sealed = barrier.encrypt("kv/app/db", &vec![0x5a; size]);
    bencher.counter(BytesCount::new(size)).bench(|| {
        barrier
            .decrypt(black_box("kv/app/db"), black_box(&sealed))
            .map(|p| p.len())
    });
}

/// Split a 32-byte key, then combine a threshold of the shares.
#[divan::bench(args = [(5, 3), (255, 128)])]
fn shamir_split_combine(bencher: Bencher<'_, '_>, (shares, threshold): (u32, u32)) {
    let key = SecretKey::generate();
    bencher.bench(|| {
        let parts = shamir::split(&key, shares, threshold).map_err(|e| e.to_string())?;
        let quorum: Vec<SecretBytes> = parts.into_iter().take(threshold as usize).collect();
        shamir::combine(&quorum)
            .map(|k| k.expose()[0])
            .map_err(|e| e.to_string())
    });
}

/// A KMS that answers at once, the data key standing for its own wrapped
/// form: what remains is the envelope's local work (data key from the OS,
/// AES-256-GCM, encoding).
struct InstantKms;

const BENCH_ARN: &str = "arn:aws:kms:us-east-1:111122223333:key/bench";

#[async_trait]
impl Kms for InstantKms {
    fn key_id(&self) -> &str {
        BENCH_ARN
    }
    fn endpoint(&self) -> String {
        String::new()
    }
    async fn encrypt(&self, plaintext: &[u8], _: &EncryptionContext) -> Result<Wrapped, KmsError> {
        Ok(Wrapped {
            ciphertext: plaintext.to_vec(),
            key_arn: BENCH_ARN.into(),
        })
    }
    async fn decrypt(
        &self,
        ciphertext: &[u8],
        _: &EncryptionContext,
        _: &str,
    ) -> Result<Unwrapped, KmsError> {
        Ok(Unwrapped {
            plaintext: SecretBytes::new(ciphertext.to_vec()),
            key_arn: BENCH_ARN.into(),
        })
    }
    async fn describe_key(&self, _: &str) -> Result<KeyInfo, KmsError> {
        Err(KmsError::new(KmsErrorKind::Config, "not used"))
    }
}

/// Wrap a 32-byte key in an envelope (the KMS Encrypt itself excluded).
#[divan::bench]
fn envelope_wrap_local(bencher: Bencher<'_, '_>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let key = SecretKey::generate();
    bencher.bench(|| {
        runtime
            .block_on(Envelope::seal(&InstantKms, Purpose::RootKey, "bench", &key))
            .map(|e| e.encode().len())
            .map_err(|e| e.to_string())
    });
}

/// Open an envelope (the KMS Decrypt itself excluded).
#[divan::bench]
fn envelope_unwrap_local(bencher: Bencher<'_, '_>) {
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let key = SecretKey::generate();
    let Ok(envelope) =
        runtime.block_on(Envelope::seal(&InstantKms, Purpose::RootKey, "bench", &key))
    else {
        return;
    };
    bencher.bench(|| {
        runtime
            .block_on(envelope.open(&InstantKms, Purpose::RootKey, "bench"))
            .map(|k| k.expose()[0])
            .map_err(|e| e.to_string())
    });
}

#[divan::bench]
fn config_parse(bencher: Bencher<'_, '_>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/strongroom.hcl"
    ))
    .unwrap_or_default();
    bencher
        .bench(|| strongroom::config::parse(black_box(&text), Path::new("strongroom.hcl")).is_ok());
}

/// One durable single-entry commit through the file backend (redb, fsync).
#[divan::bench(sample_count = 20, sample_size = 10)]
fn storage_commit_redb(bencher: Bencher<'_, '_>) {
    let Ok(dir) = tempfile::tempdir() else { return };
    let Ok(backend) = FileBackend::open(dir.path()) else {
        return;
    };
    let Ok(runtime) = tokio::runtime::Builder::new_current_thread().build() else {
        return;
    };
    let value = vec![0x5a; 100 + strongroom::barrier::entry::OVERHEAD];
    bencher.bench(|| {
        let mut batch = Batch::new();
        batch.put("kv/app/db", value.clone());
        runtime.block_on(backend.write(batch)).is_ok()
    });
}

/// The alternative that was not chosen: a file per entry, written durably
/// (write, fsync, rename, fsync the directory). One entry only: it has no
/// way to change several entries atomically.
#[divan::bench(sample_count = 20, sample_size = 10)]
fn storage_commit_file_rename(bencher: Bencher<'_, '_>) {
    use std::io::Write;
    let Ok(dir) = tempfile::tempdir() else { return };
    let value = vec![0x5a; 100 + strongroom::barrier::entry::OVERHEAD];
    let (tmp, target) = (dir.path().join("entry.tmp"), dir.path().join("entry"));
    bencher.bench(|| -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&value)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir.path())?.sync_all()
    });
}
