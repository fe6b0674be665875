//! Micro-benchmarks of the hot pieces: barrier encryption, Shamir, config
//! parsing, and a durable storage commit (redb against write + fsync + rename).
//!
//! Run with `cargo bench --bench crypto`.

use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use divan::Bencher;
use divan::counter::BytesCount;
use strongroom::barrier::{Barrier, Keyring};
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
