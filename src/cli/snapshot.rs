//! Snapshots: save a consistent copy of the store (`sudo` on
//! `sys/snapshot`) and restore one (`sudo` on `sys/snapshot-restore`; none
//! into a daemon that is not initialized).

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::client::{self, ClientArgs};
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
    // Written beside the target and renamed over it once complete and
    // synced, so a failed save never leaves a truncated snapshot in place.
    let mut partial = file.as_os_str().to_owned();
    partial.push(".partial");
    let partial = std::path::PathBuf::from(partial);
    let cannot = |e: std::io::Error| {
        CliError::Failed(format!(
            "cannot write the snapshot to {}: {e}",
            file.display()
        ))
    };
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&partial)
        .map_err(cannot)?;
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
        std::fs::rename(&partial, file).map_err(cannot)
    }
    .await;
    if let Err(e) = received {
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    println!(
        "Success! Snapshot of {bytes} bytes written to {}.",
        file.display()
    );
    Ok(EXIT_OK)
}

pub async fn restore(args: &ClientArgs, file: &Path) -> Result<u8, CliError> {
    let bytes = std::fs::read(file).map_err(|e| {
        CliError::Usage(format!("cannot read the snapshot {}: {e}", file.display()))
    })?;
    let (mut sys, token) = client::authenticated(args, SysClient::new).await?;
    let chunks: Vec<proto::SnapshotChunk> = bytes
        .chunks(RESTORE_CHUNK)
        .map(|c| proto::SnapshotChunk {
            data: c.to_vec(),
            accept_unauthenticated: false,
        })
        .collect();
    let response = sys
        .snapshot_restore(client::request(tokio_stream::iter(chunks), token.as_ref())?)
        .await
        .map_err(|s| client::failed(s, token.is_some()))?
        .into_inner();
    println!(
        "Success! Restored {} entries from a snapshot taken {} (cluster {}, {} seal).\n\
         strongroom is sealed: unseal it with the keys the snapshot was taken under{}.",
        response.entries,
        format_unix(response.created_unix),
        response.cluster_id,
        response.seal_type,
        // The seal type as Status and the snapshot header name it.
        if response.seal_type == "awskms" {
            " (KMS unseals it by itself)"
        } else {
            ""
        }
    );
    Ok(EXIT_OK)
}
