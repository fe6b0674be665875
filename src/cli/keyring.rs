//! Commands for the keys behind the barrier: keyring rotation and status,
//! and snapshots. Each needs `sudo` (key status: `read`) on its `sys/` path;
//! a restore into a daemon that is not initialized needs no token.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use serde::Serialize;

use super::client::{self, ClientArgs};
use super::commands::{print_json, print_table};
use super::{CliError, EXIT_OK, Format};
use crate::proto::{self, sys_client::SysClient};

/// Bytes per streamed message of a restore (well under the 4 MiB default
/// request limit).
const RESTORE_CHUNK: usize = 1 << 20;

pub(super) use crate::time::format_unix;

#[derive(Serialize)]
struct TermJson {
    term: u32,
    install_time: String,
    encryptions: u64,
    active: bool,
}

impl From<&proto::KeyTerm> for TermJson {
    fn from(t: &proto::KeyTerm) -> Self {
        Self {
            term: t.term,
            install_time: format_unix(t.installed_unix),
            encryptions: t.encryptions,
            active: t.active,
        }
    }
}

pub async fn rotate(args: &ClientArgs, format: Format) -> Result<u8, CliError> {
    let (mut sys, token) = client::authenticated(args, SysClient::new).await?;
    let response = sys
        .rotate(client::request(proto::RotateRequest {}, token.as_ref())?)
        .await
        .map_err(|s| client::failed(s, token.is_some()))?
        .into_inner();
    let term = response.term.unwrap_or_default();
    if format == Format::Json {
        print_json(&TermJson::from(&term))?;
    } else {
        println!(
            "Success! Rotated the keyring: term {} (installed {}) encrypts from now on.",
            term.term,
            format_unix(term.installed_unix)
        );
    }
    Ok(EXIT_OK)
}

pub async fn key_status(args: &ClientArgs, format: Format) -> Result<u8, CliError> {
    let (mut sys, token) = client::authenticated(args, SysClient::new).await?;
    let status = sys
        .key_status(client::request(proto::KeyStatusRequest {}, token.as_ref())?)
        .await
        .map_err(|s| client::failed(s, token.is_some()))?
        .into_inner();
    let active = status
        .terms
        .iter()
        .find(|t| t.active)
        .cloned()
        .unwrap_or_default();
    if format == Format::Json {
        #[derive(Serialize)]
        struct KeyStatusJson {
            term: u32,
            install_time: String,
            encryptions: u64,
            rotation_max_encryptions: u64,
            rotation_interval_seconds: u64,
            terms: Vec<TermJson>,
        }
        return print_json(&KeyStatusJson {
            term: active.term,
            install_time: format_unix(active.installed_unix),
            encryptions: active.encryptions,
            rotation_max_encryptions: status.rotation_max_encryptions,
            rotation_interval_seconds: status.rotation_interval_seconds,
            terms: status.terms.iter().map(TermJson::from).collect(),
        })
        .map(|()| EXIT_OK);
    }
    let interval = match status.rotation_interval_seconds {
        0 => "off".to_string(),
        secs => format!("{secs} s"),
    };
    print_table(&[
        ("Key Term", active.term.to_string()),
        ("Install Time", format_unix(active.installed_unix)),
        ("Encryption Count", active.encryptions.to_string()),
        (
            "Rotate After Encryptions",
            status.rotation_max_encryptions.to_string(),
        ),
        ("Rotate After Interval", interval),
        ("Terms", status.terms.len().to_string()),
    ]);
    Ok(EXIT_OK)
}

pub async fn snapshot_save(args: &ClientArgs, file: &Path) -> Result<u8, CliError> {
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

pub async fn snapshot_restore(args: &ClientArgs, file: &Path) -> Result<u8, CliError> {
    let bytes = std::fs::read(file).map_err(|e| {
        CliError::Usage(format!("cannot read the snapshot {}: {e}", file.display()))
    })?;
    let (mut sys, token) = client::authenticated(args, SysClient::new).await?;
    let chunks: Vec<proto::SnapshotChunk> = bytes
        .chunks(RESTORE_CHUNK)
        .map(|c| proto::SnapshotChunk { data: c.to_vec() })
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
