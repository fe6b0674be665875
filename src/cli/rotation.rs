//! Keyring rotation and key status (`sudo` on `sys/rotate`, `read` on
//! `sys/key-status`).

use serde::Serialize;

use super::client::{self, ClientArgs};
use super::output::{outln, print_json, print_table};
use super::{CliError, EXIT_OK, Format};
use crate::proto::{self, sys_client::SysClient};

use crate::time::format_unix;

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
        outln!(
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
