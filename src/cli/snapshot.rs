//! Snapshots: save a consistent copy of the store (`sudo` on
//! `sys/snapshot`) and restore one (`sudo` on `sys/snapshot-restore`; none
//! into a daemon that is not initialized).

use std::io::{ErrorKind, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::client::{self, ClientArgs};
use super::output::outln;
use super::{CliError, EXIT_OK};
use crate::proto::{self, sys_client::SysClient};
use crate::time::format_unix;

/// Bytes per streamed message of a restore (well under the 4 MiB default
/// request limit).
const RESTORE_CHUNK: usize = 1 << 20;

pub async fn save(args: &ClientArgs, file: &Path) -> Result<u8, CliError> {
    let (mut sys, token) = client::authenticated(args, SysClient::new).await?;
    let mut chunks = sys
        .snapshot_save(client::request(
            proto::SnapshotSaveRequest {},
            token.as_ref(),
        )?)
        .await
        .map_err(|s| client::failed(s, token.is_some()))?
        .into_inner();
    let cannot = |e: std::io::Error| {
        CliError::Failed(format!(
            "cannot write the snapshot to {}: {e}",
            file.display()
        ))
    };
    let (mut out, partial) = create_partial(file).map_err(cannot)?;
    let mut bytes = 0usize;
    let received = async {
        while let Some(chunk) = chunks
            .message()
            .await
            .map_err(|s| client::failed(s, true))?
        {
            out.write_all(&chunk.data).map_err(cannot)?;
            bytes += chunk.data.len();
        }
        out.sync_all().map_err(cannot)?;
        std::fs::rename(&partial, file).map_err(cannot)?;
        sync_dir(file).map_err(cannot)
    }
    .await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    outln!(
        "Success! Snapshot of {bytes} bytes written to {}.",
        file.display()
    );
    Ok(EXIT_OK)
}

pub async fn restore(
    args: &ClientArgs,
    file: &Path,
    accept_unauthenticated: bool,
) -> Result<u8, CliError> {
    let bytes = std::fs::read(file).map_err(|e| {
        CliError::Usage(format!("cannot read the snapshot {}: {e}", file.display()))
    })?;
    let (mut sys, token) = client::authenticated(args, SysClient::new).await?;
    let chunks: Vec<proto::SnapshotChunk> = bytes
        .chunks(RESTORE_CHUNK)
        .map(|c| proto::SnapshotChunk {
            data: c.to_vec(),
            accept_unauthenticated,
        })
        .collect();
    let response = sys
        .snapshot_restore(client::request(tokio_stream::iter(chunks), token.as_ref())?)
        .await
        .map_err(|s| client::failed(s, token.is_some()))?
        .into_inner();
    outln!(
        "Success! Restored {} entries from a snapshot taken {} (cluster {}, {} seal).\n\
         strongroom is sealed: unseal it with the keys the snapshot was taken under{}.",
        response.entries,
        format_unix(response.created_unix),
        response.cluster_id,
        response.seal_type,
        // The seal type as Status and the snapshot header name it.
        if response.seal_type == "awskms" || response.seal_type == "multiseal" {
            " (KMS unseals it by itself)"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}

/// Tries at a fresh name before giving up: another file at the name (planted
/// or left over) is never reused.
const PARTIAL_ATTEMPTS: usize = 16;

/// Creates the temporary file a snapshot is written to, beside `file` (so
/// the rename stays in one file system): a new file, mode 0600, at a name
/// unique to this process and unguessable, created with O_EXCL and
/// O_NOFOLLOW, so a planted symlink is never followed and a planted file
/// never reused.
fn create_partial(file: &Path) -> std::io::Result<(std::fs::File, PathBuf)> {
    create_exclusive(file, || {
        format!(
            "{}.{}.partial",
            std::process::id(),
            hex::encode(crate::secret::random_bytes(8))
        )
    })
}

fn create_exclusive(
    file: &Path,
    mut suffix: impl FnMut() -> String,
) -> std::io::Result<(std::fs::File, PathBuf)> {
    let name = file
        .file_name()
        .ok_or_else(|| std::io::Error::new(ErrorKind::InvalidInput, "the path names no file"))?;
    let mut last = None;
    for _ in 0..PARTIAL_ATTEMPTS {
        let mut partial_name = std::ffi::OsString::from(".");
        partial_name.push(name);
        partial_name.push(".");
        partial_name.push(suffix());
        let partial = file.with_file_name(partial_name);
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .mode(0o600)
            .open(&partial)
        {
            Ok(out) => return Ok((out, partial)),
            Err(e) if e.kind() == ErrorKind::AlreadyExists => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ErrorKind::AlreadyExists.into()))
}

/// Makes the rename durable: fsync of the directory that holds `file`.
fn sync_dir(file: &Path) -> std::io::Result<()> {
    let dir = match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    fn dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "strongroom-snapshot-{}-{}",
            std::process::id(),
            hex::encode(crate::secret::random_bytes(4))
        ));
        std::fs::create_dir(&dir).unwrap();
        dir
    }

    #[test]
    fn a_planted_symlink_or_file_at_the_temp_name_is_neither_followed_nor_reused() {
        let dir = dir();
        let target = dir.join("snap");
        let victim = dir.join("victim");
        std::fs::write(&victim, "root's file").unwrap();
        std::os::unix::fs::symlink(&victim, dir.join(".snap.a")).unwrap();
        std::fs::write(dir.join(".snap.b"), "planted").unwrap();
        std::fs::set_permissions(dir.join(".snap.b"), std::fs::Permissions::from_mode(0o666))
            .unwrap();
        let mut names = ["a", "b", "c"].into_iter().map(str::to_string);
        let (mut out, partial) =
            create_exclusive(&target, || names.next().unwrap_or_default()).unwrap();
        assert_eq!(partial, dir.join(".snap.c"));
        out.write_all(b"snapshot").unwrap();
        assert_eq!(std::fs::read_to_string(&victim).unwrap(), "root's file");
        assert_eq!(
            std::fs::read_to_string(dir.join(".snap.b")).unwrap(),
            "planted"
        );
        let mode = std::fs::metadata(&partial).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn gives_up_with_a_sentence_when_every_name_is_taken() {
        let dir = dir();
        std::fs::write(dir.join(".snap.x"), "planted").unwrap();
        let err = create_exclusive(&dir.join("snap"), || "x".into())
            .err()
            .unwrap();
        assert_eq!(err.kind(), ErrorKind::AlreadyExists);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
