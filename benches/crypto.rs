//! Micro-benchmarks of the hot pieces: barrier encryption, Shamir, the local
//! part of the awskms envelope (everything but the KMS round trip), config
//! parsing, and a durable storage commit (redb against write + fsync + rename).
//!
//! Run with `cargo bench --bench crypto`.

// A benchmark that cannot set itself up stops at once with the reason:
// unwrap and expect are how it says so (the crate's lints forbid them
// elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used)]

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
            .expect("decrypt")
            .len()
    });
}

/// Split a 32-byte key, then combine a threshold of the shares.
#[divan::bench(args = [(5, 3), (255, 128)])]
fn shamir_split_combine(bencher: Bencher<'_, '_>, (shares, threshold): (u32, u32)) {
    let key = SecretKey::generate();
    bencher.bench(|| {
        let parts = shamir::split(&key, shares, threshold).expect("split");
        let quorum: Vec<SecretBytes> = parts.into_iter().take(threshold as usize).collect();
        shamir::combine(&quorum).expect("combine").expose()[0]
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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let key = SecretKey::generate();
    bencher.bench(|| {
        runtime
            .block_on(Envelope::seal(&InstantKms, Purpose::RootKey, "bench", &key))
            .expect("wrap")
            .encode()
            .len()
    });
}

/// Open an envelope (the KMS Decrypt itself excluded).
#[divan::bench]
fn envelope_unwrap_local(bencher: Bencher<'_, '_>) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let key = SecretKey::generate();
    let envelope = runtime
        .block_on(Envelope::seal(&InstantKms, Purpose::RootKey, "bench", &key))
        .expect("envelope");
    bencher.bench(|| {
        runtime
            .block_on(envelope.open(&InstantKms, Purpose::RootKey, "bench"))
            .expect("unwrap")
            .expose()[0]
    });
}

#[divan::bench]
fn config_parse(bencher: Bencher<'_, '_>) {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/deploy/strongroom.hcl"
    ))
    .expect("deploy/strongroom.hcl");
    bencher.bench(|| {
        strongroom::config::parse(black_box(&text), Path::new("strongroom.hcl"))
            .expect("the shipped config parses")
    });
}

/// One durable single-entry commit through the file backend (redb, fsync).
#[divan::bench(sample_count = 20, sample_size = 10)]
fn storage_commit_redb(bencher: Bencher<'_, '_>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let backend = FileBackend::open(dir.path()).expect("file backend");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let value = vec![0x5a; 100 + strongroom::barrier::entry::OVERHEAD];
    bencher.bench(|| {
        let mut batch = Batch::new();
        batch.put("kv/app/db", value.clone());
        runtime.block_on(backend.write(batch)).expect("commit")
    });
}

/// The alternative that was not chosen: a file per entry, written durably
/// (write, fsync, rename, fsync the directory). One entry only: it has no
/// way to change several entries atomically.
#[divan::bench(sample_count = 20, sample_size = 10)]
fn storage_commit_file_rename(bencher: Bencher<'_, '_>) {
    use std::io::Write;
    let dir = tempfile::tempdir().expect("temp dir");
    let value = vec![0x5a; 100 + strongroom::barrier::entry::OVERHEAD];
    let (tmp, target) = (dir.path().join("entry.tmp"), dir.path().join("entry"));
    let commit = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&value)?;
        file.sync_all()?;
        std::fs::rename(&tmp, &target)?;
        std::fs::File::open(dir.path())?.sync_all()
    };
    bencher.bench(|| commit().expect("commit"));
}
