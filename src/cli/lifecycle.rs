//! The seal lifecycle from the command line: init, status, unseal, seal
//! (`status.rs` prints the status).

use serde::Serialize;
use zeroize::Zeroizing;

use super::client::{self, ClientArgs};
use super::input::read_key;
use super::output::{self, errln, outln, print_json};
use super::{CliError, EXIT_OK, EXIT_SEALED, Format};
use crate::proto::{self, sys_client::SysClient};

/// `bao operator init -format=json`.
#[derive(Serialize)]
struct InitJson<'a> {
    unseal_keys_b64: &'a [String],
    unseal_keys_hex: &'a [String],
    unseal_shares: u32,
    unseal_threshold: u32,
    recovery_keys_b64: &'a [String],
    recovery_keys_hex: &'a [String],
    recovery_keys_shares: u32,
    recovery_keys_threshold: u32,
    root_token: &'a str,
    /// Vault Enterprise's fields, only with an emergency seal.
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency_keys_b64: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency_keys_hex: Option<&'a [String]>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency_keys_shares: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    emergency_keys_threshold: Option<u32>,
}

pub async fn init(
    args: &ClientArgs,
    request: proto::InitRequest,
    format: Format,
) -> Result<u8, CliError> {
    let recipients = request.recipients.clone();
    let emergency_recipients = request.emergency_recipients.clone();
    let token_recipient = request.root_token_recipient.clone();
    let mut sys = SysClient::new(client::connect(args).await?);
    let response = sys
        .init(client::request(request, None)?)
        .await
        .map_err(|s| client::failed(s, false))?
        .into_inner();
    print_init(&response, format, &recipients, &token_recipient)?;
    print_emergency_keys(&response, format, &emergency_recipients);
    // Confirmed only once printed: until then nothing is written, so a lost
    // answer (or a reader that went away) can never leave a store whose
    // keys nobody has.
    if !output::delivered() {
        return Err(CliError::Failed(
            "the keys could not all be printed (stdout was closed), so the init was not confirmed and nothing was stored; run init again with its output going somewhere safe".into(),
        ));
    }
    sys.init_confirm(proto::InitConfirmRequest {
        nonce: response.confirmation_nonce.clone(),
    })
    .await
    .map_err(|s| {
        CliError::Failed(format!(
            "the keys above were printed, but confirming the init failed ({}); if `strongroom status` says initialized they are the store's keys, otherwise run init again",
            s.message()
        ))
    })?;
    Ok(EXIT_OK)
}

/// Prints init's keys and token, as `bao operator init` does.
fn print_init(
    response: &proto::InitResponse,
    format: Format,
    recipients: &[String],
    token_recipient: &str,
) -> Result<(), CliError> {
    let recovery =
        !response.recovery_keys.is_empty() || !response.recovery_keys_encrypted.is_empty();
    // With recipients the shares are armored age files, shown where the
    // base64 shares would be (as Vault shows PGP-encrypted shares).
    let none = Vec::new();
    let (unseal_b64, unseal_hex) = if response.keys_encrypted.is_empty() {
        (&response.keys_base64, &response.keys)
    } else {
        (&response.keys_encrypted, &none)
    };
    let (recovery_b64, recovery_hex) = if response.recovery_keys_encrypted.is_empty() {
        (&response.recovery_keys_base64, &response.recovery_keys)
    } else {
        (&response.recovery_keys_encrypted, &none)
    };
    let root_token = if response.root_token_encrypted.is_empty() {
        &response.root_token
    } else {
        &response.root_token_encrypted
    };
    let emergency = response.emergency_keys_shares > 0;
    let (emergency_b64, emergency_hex) = if response.emergency_keys_encrypted.is_empty() {
        (&response.emergency_keys_b64, &response.emergency_keys_hex)
    } else {
        (&response.emergency_keys_encrypted, &none)
    };
    if format == Format::Json {
        // `bao operator init -format=json` prints both sets, the unused one
        // empty with zero shares and threshold.
        let (unseal, recovery_counts) = if recovery {
            ((0, 0), (response.shares, response.threshold))
        } else {
            ((response.shares, response.threshold), (0, 0))
        };
        print_json(&InitJson {
            unseal_keys_b64: unseal_b64,
            unseal_keys_hex: unseal_hex,
            unseal_shares: unseal.0,
            unseal_threshold: unseal.1,
            recovery_keys_b64: recovery_b64,
            recovery_keys_hex: recovery_hex,
            recovery_keys_shares: recovery_counts.0,
            recovery_keys_threshold: recovery_counts.1,
            root_token,
            emergency_keys_b64: emergency.then_some(emergency_b64.as_slice()),
            emergency_keys_hex: emergency.then_some(emergency_hex.as_slice()),
            emergency_keys_shares: emergency.then_some(response.emergency_keys_shares),
            emergency_keys_threshold: emergency.then_some(response.emergency_keys_threshold),
        })?;
        return Ok(());
    }
    let (noun, keys) = if recovery {
        ("Recovery Key", recovery_b64)
    } else {
        ("Unseal Key", unseal_b64)
    };
    for (i, key) in keys.iter().enumerate() {
        match recipients.get(i) {
            Some(recipient) => outln!("{noun} {} (for {recipient}):\n{key}", i + 1),
            None => outln!("{noun} {}: {key}", i + 1),
        }
    }
    if response.root_token_encrypted.is_empty() {
        outln!("\nInitial Root Token: {root_token}\n");
    } else {
        outln!("\nInitial Root Token (for {token_recipient}):\n{root_token}\n");
    }
    if !recipients.is_empty() {
        outln!(
            "Each key above is encrypted to its holder. A holder saves their block as\n\
             key.age and enters it with: age -d -i IDENTITY key.age | strongroom unseal\n"
        );
    }
    if recovery {
        outln!(
            "strongroom initialized with {} recovery key shares and a recovery key threshold\n\
             of {}. The root key is wrapped by AWS KMS and the daemon is unsealed: it unseals\n\
             itself after every restart. Recovery keys never unseal it at start; any {} of\n\
             them authorize the operations that need a quorum, and unseal it after a manual\n\
             `strongroom seal`. Give each to a different trusted operator.",
            response.shares,
            response.threshold,
            response.threshold,
        );
        return Ok(());
    }
    outln!(
        "strongroom initialized with {} key shares and a key threshold of {}. Give each\n\
         key to a different trusted operator; any {} of them unseal the store after every\n\
         restart. strongroom does not keep these keys: lose more than {} and the data is\n\
         gone for good. The daemon is sealed now: unseal it with `strongroom unseal`.",
        response.shares,
        response.threshold,
        response.threshold,
        response.shares.saturating_sub(response.threshold),
    );
    Ok(())
}

/// The emergency seal's keys, after the others in the table (the JSON
/// carries them in the same object).
fn print_emergency_keys(response: &proto::InitResponse, format: Format, recipients: &[String]) {
    if format == Format::Json || response.emergency_keys_shares == 0 {
        return;
    }
    let keys = if response.emergency_keys_encrypted.is_empty() {
        &response.emergency_keys_b64
    } else {
        &response.emergency_keys_encrypted
    };
    for (i, key) in keys.iter().enumerate() {
        match recipients.get(i) {
            Some(recipient) => outln!("Emergency Key {} (for {recipient}):\n{key}", i + 1),
            None => outln!("Emergency Key {}: {key}", i + 1),
        }
    }
    outln!(
        "\nThe emergency seal has {} key shares and a threshold of {}. Keep them offline,\n\
         apart from the recovery keys: they unseal the store (`strongroom unseal --seal\n\
         NAME`) only when no KMS seal could open it at the last attempt.",
        response.emergency_keys_shares,
        response.emergency_keys_threshold,
    );
}

pub async fn status(args: &ClientArgs, format: Format) -> Result<u8, CliError> {
    let mut sys = SysClient::new(client::connect(args).await?);
    let status = sys
        .status(proto::StatusRequest {})
        .await
        .map_err(|s| client::failed(s, false))?
        .into_inner();
    super::status::print_status(&status, format)?;
    Ok(if status.initialized && !status.sealed {
        EXIT_OK
    } else {
        EXIT_SEALED
    })
}

/// `unseal`'s flags beside the key.
pub struct UnsealFlags {
    pub reset: bool,
    pub migrate: bool,
    /// The emergency seal's name, or empty.
    pub seal: String,
}

pub async fn unseal(
    args: &ClientArgs,
    key: Option<String>,
    flags: UnsealFlags,
    format: Format,
) -> Result<u8, CliError> {
    let UnsealFlags {
        reset,
        migrate,
        seal,
    } = flags;
    let prompt = if seal.is_empty() {
        "Unseal Key"
    } else {
        "Emergency Key"
    };
    let key = match (key, reset) {
        (_, true) => Zeroizing::new(String::new()),
        (Some(key), false) => Zeroizing::new(key),
        (None, false) => read_key(prompt)?,
    };
    let mut sys = SysClient::new(client::connect(args).await?);
    let request = proto::UnsealRequest {
        key: key.trim().to_string(),
        reset,
        migrate,
        seal,
    };
    let response = sys.unseal(request).await;
    let response = response.map_err(|s| client::failed(s, false))?.into_inner();
    if response.duplicate {
        errln!("note: this unseal key had already been entered; progress is unchanged");
    }
    if let Some(status) = &response.status {
        super::status::print_status(status, format)?;
    }
    Ok(EXIT_OK)
}

/// `step-down`: the active node gives its role to another.
pub async fn step_down(args: &ClientArgs) -> Result<u8, CliError> {
    let token = client::token(args)?;
    let mut sys = SysClient::new(client::connect(args).await?);
    sys.step_down(client::request(proto::StepDownRequest {}, token.as_ref())?)
        .await
        .map_err(|refusal| client::failed(refusal, token.is_some()))?;
    outln!("Success! Stepped down: another node takes the active role.");
    Ok(EXIT_OK)
}

pub async fn seal(args: &ClientArgs) -> Result<u8, CliError> {
    let token = client::token(args)?;
    let mut sys = SysClient::new(client::connect(args).await?);
    let answer = sys
        .seal(client::request(proto::SealRequest {}, token.as_ref())?)
        .await;
    if let Err(refusal) = answer {
        // A sealed daemon answers UNAVAILABLE; sealing it again is what the
        // operator wanted, as with `vault operator seal`, so automation stays
        // idempotent. Status, not the refusal's wording, decides.
        let sealed = refusal.code() == tonic::Code::Unavailable
            && sys
                .status(proto::StatusRequest {})
                .await
                .is_ok_and(|s| s.into_inner().sealed);
        if !sealed {
            return Err(client::failed(refusal, token.is_some()));
        }
    }
    outln!("Success! strongroom is sealed.");
    Ok(EXIT_OK)
}
