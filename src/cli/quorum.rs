//! `rekey`, `rotate-root` and `generate-root`: operations that gather a
//! quorum of shares over several runs of the command, tied together by a
//! nonce. The flags mirror `vault operator rekey` / `generate-root`.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use zeroize::Zeroizing;

use super::client::{self, ClientArgs};
use super::input::{read_key, read_recipients};
use super::output::{outln, print_json, print_table};
use super::{CliError, EXIT_OK, Format};
use crate::proto::{self, sys_client::SysClient};
use crate::time::format_unix;

/// What every quorum command can be asked to do.
#[derive(clap::Args)]
pub struct QuorumArgs {
    /// Start the operation (prints its nonce).
    #[arg(long, conflicts_with_all = ["cancel", "status", "nonce"])]
    init: bool,
    /// The operation's nonce: with KEY (or a key from a hidden prompt or
    /// stdin), enters one share; with --cancel, ends the operation.
    #[arg(long, value_name = "NONCE")]
    nonce: Option<String>,
    /// End the operation (needs --nonce). `rekey --verify --cancel`
    /// restarts the verification instead, as Vault's CLI does.
    #[arg(long, conflicts_with = "status")]
    cancel: bool,
    /// Show where the operation stands (the nonce only to a caller with sudo on its sys/ path).
    #[arg(long)]
    status: bool,
    /// The share to enter, hex or base64. Leave it out to keep it out of
    /// shell history. With `generate-root --init`: a key that claims the
    /// attempt (`-` reads it from a hidden prompt or stdin), so nobody
    /// without a key can replace it; it is not counted.
    key: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// `strongroom rekey`.
#[derive(clap::Args)]
pub struct RekeyArgs {
    #[command(flatten)]
    quorum: QuorumArgs,
    /// With --init: the number of new shares (default: the current count).
    #[arg(long, requires = "init")]
    key_shares: Option<u32>,
    /// With --init: the new threshold (default: the current one).
    #[arg(long, requires = "init")]
    key_threshold: Option<u32>,
    /// With --init: which shares to replace: barrier (unseal keys, Shamir),
    /// recovery (recovery keys, awskms) or emergency (the emergency seal's
    /// keys, several seals; a quorum of recovery keys authorizes it); the
    /// seal's own by default.
    #[arg(long, requires = "init", value_parser = ["barrier", "recovery", "emergency"])]
    target: Option<String>,
    /// With --init: the new keys take effect only once a quorum of them is
    /// typed back, so a mistake in handing them out (or a lost answer)
    /// cannot lock anyone out; recommended. With --nonce: the key is one of
    /// the new keys, typed back. With --cancel: the verification starts
    /// again under a new nonce (the keys typed back are dropped, the new
    /// keys stay pending).
    #[arg(long)]
    verify: bool,
    /// With --init: one recipient per new key (age1… or "ssh-ed25519 AAAA…"),
    /// comma-separated, or a file of them: key i is printed encrypted to it.
    #[arg(long, requires = "init", value_name = "LIST|FILE")]
    recipients: Option<String>,
}

/// `strongroom generate-root`.
#[derive(clap::Args)]
pub struct GenerateRootArgs {
    #[command(flatten)]
    quorum: QuorumArgs,
    /// With --init: the one-time pad to use (base64 of 35 bytes); made and
    /// printed when left out. With --decode: the pad the attempt used; `-`
    /// reads it from a hidden prompt or stdin, so pad and encoded token are
    /// never both in the shell history.
    #[arg(long, value_name = "OTP")]
    otp: Option<String>,
    /// Recover the token from the encoded token printed at the end (needs --otp).
    #[arg(long, value_name = "ENCODED", requires = "otp", conflicts_with_all = ["init", "nonce", "cancel", "status"])]
    decode: Option<String>,
    /// Print a fresh one-time pad and exit.
    #[arg(long, conflicts_with_all = ["init", "nonce", "cancel", "status", "decode"])]
    generate_otp: bool,
}

/// What the command was asked to do.
enum Step {
    Init {
        claim: Option<Zeroizing<String>>,
    },
    Update {
        nonce: String,
        key: Zeroizing<String>,
    },
    Cancel {
        nonce: String,
    },
    Status,
}

fn step(args: QuorumArgs, command: &str) -> Result<(Step, Format), CliError> {
    let format = args.format;
    let step = if args.status {
        Step::Status
    } else if args.init {
        let claim = match args.key {
            Some(key) if key == "-" => Some(read_key("Key")?),
            Some(key) => Some(Zeroizing::new(key)),
            None => None,
        };
        if claim.is_some() && command != "generate-root" {
            return Err(CliError::Usage(format!(
                "`strongroom {command} --init` takes no key: only a generate-root start is claimed with one"
            )));
        }
        Step::Init { claim }
    } else if args.cancel && args.nonce.is_none() {
        return Err(CliError::Usage(format!(
            "--cancel needs the operation's nonce: `strongroom {command} --cancel --nonce NONCE` (`--status` shows it to a caller with sudo)"
        )));
    } else if let Some(nonce) = args.nonce {
        if args.cancel {
            Step::Cancel { nonce }
        } else {
            let key = match args.key {
                Some(key) => Zeroizing::new(key),
                None => read_key("Key")?,
            };
            Step::Update { nonce, key }
        }
    } else {
        return Err(CliError::Usage(format!(
            "say what to do: `strongroom {command} --init`, `--nonce NONCE [KEY]`, `--cancel --nonce NONCE` or `--status`"
        )));
    };
    Ok((step, format))
}

#[derive(Serialize)]
struct StatusJson<'a> {
    nonce: &'a str,
    started: bool,
    progress: u32,
    required: u32,
    started_time: String,
    #[serde(flatten)]
    rekey: Option<RekeyJson<'a>>,
}

#[derive(Serialize)]
struct RekeyJson<'a> {
    n: u32,
    t: u32,
    target: &'a str,
    verification_required: bool,
    verification_nonce: &'a str,
    verification_progress: u32,
}

fn print_status(
    quorum: &proto::QuorumStatus,
    rekey: Option<&proto::RekeyStatusResponse>,
    format: Format,
) -> Result<(), CliError> {
    if format == Format::Json {
        return print_json(&StatusJson {
            nonce: &quorum.nonce,
            started: quorum.started,
            progress: quorum.progress,
            required: quorum.required,
            started_time: if quorum.started {
                format_unix(quorum.started_unix)
            } else {
                String::new()
            },
            rekey: rekey.map(|r| RekeyJson {
                n: r.new_shares,
                t: r.new_threshold,
                target: &r.target,
                verification_required: r.verification_required,
                verification_nonce: &r.verification_nonce,
                verification_progress: r.verification_progress,
            }),
        });
    }
    let mut rows = vec![("Started", quorum.started.to_string())];
    if quorum.started {
        if !quorum.nonce.is_empty() {
            rows.push(("Nonce", quorum.nonce.clone()));
        }
        rows.push(("Started At", format_unix(quorum.started_unix)));
        rows.push((
            "Progress",
            format!("{}/{}", quorum.progress, quorum.required),
        ));
    }
    if let Some(r) = rekey.filter(|_| quorum.started) {
        // The shares being replaced, in words; JSON keeps barrier/recovery.
        let target = match r.target.as_str() {
            "barrier" => "unseal keys".to_string(),
            "recovery" => "recovery keys".to_string(),
            "emergency" => "emergency keys".to_string(),
            other => other.to_string(),
        };
        rows.push(("Target", target));
        rows.push(("New Shares", r.new_shares.to_string()));
        rows.push(("New Threshold", r.new_threshold.to_string()));
        rows.push(("Verification Required", r.verify.to_string()));
        if r.verification_required {
            if !r.verification_nonce.is_empty() {
                rows.push(("Verification Nonce", r.verification_nonce.clone()));
            }
            rows.push((
                "Verification Progress",
                format!("{}/{}", r.verification_progress, r.new_threshold),
            ));
        }
    }
    print_table(&rows);
    Ok(())
}

fn print_started(command: &str, quorum: &proto::QuorumStatus, format: Format) {
    if format == Format::Table {
        outln!(
            "\nShare holders enter their keys with:\n  strongroom {command} --nonce {}",
            quorum.nonce
        );
    }
}

pub async fn rekey(client_args: &ClientArgs, args: RekeyArgs) -> Result<u8, CliError> {
    let verify = args.verify;
    if verify && args.quorum.cancel {
        return restart_verification(client_args, args).await;
    }
    let recipients = read_recipients(args.recipients.as_deref())?;
    let init = proto::RekeyInitRequest {
        key_shares: args.key_shares,
        key_threshold: args.key_threshold,
        target: args.target.clone().unwrap_or_default(),
        verify,
        recipients,
    };
    let (step, format) = step(args.quorum, "rekey")?;
    let (mut sys, token) = client::authenticated(client_args, SysClient::new).await?;
    let failed = |s| client::failed(s, token.is_some());
    match step {
        Step::Status => {
            let status = sys
                .rekey_status(client::request(
                    proto::RekeyStatusRequest {},
                    token.as_ref(),
                )?)
                .await
                .map_err(failed)?
                .into_inner();
            print_status(
                &status.quorum.clone().unwrap_or_default(),
                Some(&status),
                format,
            )?;
        }
        Step::Init { .. } => {
            let status = sys
                .rekey_init(client::request(init, token.as_ref())?)
                .await
                .map_err(failed)?
                .into_inner();
            let quorum = status.quorum.clone().unwrap_or_default();
            print_status(&quorum, Some(&status), format)?;
            print_started("rekey", &quorum, format);
        }
        Step::Cancel { nonce } => {
            sys.rekey_cancel(client::request(
                proto::RekeyCancelRequest { nonce },
                token.as_ref(),
            )?)
            .await
            .map_err(failed)?;
            outln!("Success! The rekey was cancelled; the current keys stay in force.");
        }
        Step::Update { nonce, key } if verify => {
            let response = sys
                .rekey_verify_update(proto::RekeyVerifyUpdateRequest {
                    nonce,
                    key: key.trim().to_string(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if response.complete {
                if format == Format::Json {
                    print_json(&serde_json::json!({"complete": true}))?;
                } else {
                    outln!(
                        "Success! The new keys are verified and in force; the old keys are refused from now on."
                    );
                }
            } else {
                let status = response.status.unwrap_or_default();
                print_status(
                    &status.quorum.clone().unwrap_or_default(),
                    Some(&status),
                    format,
                )?;
            }
        }
        Step::Update { nonce, key } => {
            let response = sys
                .rekey_update(proto::RekeyUpdateRequest {
                    nonce: nonce.clone(),
                    key: key.trim().to_string(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if response.complete {
                // Printed before confirming: once confirmed they are the only
                // keys, so they must already be on the operator's screen.
                print_new_keys(&nonce, &response, format)?;
                if !response.confirmation_nonce.is_empty() {
                    if !super::output::delivered() {
                        return Err(CliError::Failed(
                            "the new keys could not all be printed (stdout was closed), so they were not confirmed and the old keys stay in force; cancel with `rekey --cancel` and start again".into(),
                        ));
                    }
                    sys.rekey_confirm(proto::RekeyConfirmRequest {
                        nonce: response.confirmation_nonce.clone(),
                    })
                    .await
                    .map_err(|s| {
                        CliError::Failed(format!(
                            "the new keys above were printed, but confirming them failed ({}); keep both the old and the new keys until an unseal shows which are in force",
                            s.message()
                        ))
                    })?;
                    if format == Format::Table {
                        outln!(
                            "Rekey complete: the new keys are in force, and the old keys are refused from now on.\n\
                             Give each key to a different trusted operator."
                        );
                    }
                }
            } else {
                let status = response.status.unwrap_or_default();
                print_status(
                    &status.quorum.clone().unwrap_or_default(),
                    Some(&status),
                    format,
                )?;
            }
        }
    }
    Ok(EXIT_OK)
}

fn print_new_keys(
    nonce: &str,
    response: &proto::RekeyUpdateResponse,
    format: Format,
) -> Result<(), CliError> {
    if format == Format::Json {
        #[derive(Serialize)]
        struct Complete<'a> {
            nonce: &'a str,
            complete: bool,
            keys: &'a [String],
            keys_base64: &'a [String],
            t: u32,
            verification_required: bool,
            verification_nonce: &'a str,
            /// Without verification the CLI confirms next; exit 0 means they
            /// are in force.
            confirmation_required: bool,
        }
        let encrypted = !response.keys_encrypted.is_empty();
        return print_json(&Complete {
            nonce,
            complete: true,
            keys: &response.keys,
            keys_base64: if encrypted {
                &response.keys_encrypted
            } else {
                &response.keys_base64
            },
            t: response.threshold,
            verification_required: response.verification_required,
            verification_nonce: &response.verification_nonce,
            confirmation_required: !response.confirmation_nonce.is_empty(),
        });
    }
    if response.keys_encrypted.is_empty() {
        for (i, key) in response.keys_base64.iter().enumerate() {
            outln!("Key {}: {key}", i + 1);
        }
    } else {
        for (i, key) in response.keys_encrypted.iter().enumerate() {
            outln!("Key {} (encrypted to recipient {}):\n{key}", i + 1, i + 1);
        }
    }
    let count = response
        .keys_base64
        .len()
        .max(response.keys_encrypted.len());
    outln!("\nOperation nonce: {nonce}\n");
    if response.verification_required {
        outln!(
            "The {} new keys (threshold {}) are NOT in force yet: the current keys still\n\
             work until a quorum of the new ones is typed back, so a mistake in handing\n\
             them out cannot lock anyone out. Each holder of a new key runs:\n  \
             strongroom rekey --verify --nonce {}",
            count,
            response.threshold,
            response.verification_nonce
        );
    } else {
        outln!(
            "{} new keys with a threshold of {}. Confirming that they reached this terminal…",
            count,
            response.threshold
        );
    }
    Ok(())
}

/// `rekey --verify --cancel`: Vault's `operator rekey -verify -cancel`,
/// which restarts the verification rather than ending the rekey.
async fn restart_verification(client_args: &ClientArgs, args: RekeyArgs) -> Result<u8, CliError> {
    if args.quorum.nonce.is_some() || args.quorum.key.is_some() {
        return Err(CliError::Usage(
            "`rekey --verify --cancel` restarts the verification and takes no nonce or key; to end the whole rekey: `strongroom rekey --cancel --nonce NONCE`".into(),
        ));
    }
    let (mut sys, token) = client::authenticated(client_args, SysClient::new).await?;
    let status = sys
        .rekey_verify_restart(client::request(
            // Whichever shares the rekey under way replaces.
            proto::RekeyVerifyRestartRequest {
                target: String::new(),
            },
            token.as_ref(),
        )?)
        .await
        .map_err(|s| client::failed(s, token.is_some()))?
        .into_inner();
    let format = args.quorum.format;
    print_status(
        &status.quorum.clone().unwrap_or_default(),
        Some(&status),
        format,
    )?;
    if format == Format::Table {
        outln!(
            "\nThe verification starts again; the new keys are unchanged. Holders type them back with:\n  strongroom rekey --verify --nonce {}",
            status.verification_nonce
        );
    }
    Ok(EXIT_OK)
}

pub async fn rotate_root(client_args: &ClientArgs, args: QuorumArgs) -> Result<u8, CliError> {
    let (step, format) = step(args, "rotate-root")?;
    let (mut sys, token) = client::authenticated(client_args, SysClient::new).await?;
    let failed = |s| client::failed(s, token.is_some());
    match step {
        Step::Status => {
            let status = sys
                .rotate_root_status(client::request(
                    proto::RotateRootStatusRequest {},
                    token.as_ref(),
                )?)
                .await
                .map_err(failed)?
                .into_inner();
            print_status(&status, None, format)?;
        }
        Step::Init { .. } => {
            let status = sys
                .rotate_root_init(client::request(
                    proto::RotateRootInitRequest {},
                    token.as_ref(),
                )?)
                .await
                .map_err(failed)?
                .into_inner();
            print_status(&status, None, format)?;
            print_started("rotate-root", &status, format);
        }
        Step::Cancel { nonce } => {
            sys.rotate_root_cancel(client::request(
                proto::RotateRootCancelRequest { nonce },
                token.as_ref(),
            )?)
            .await
            .map_err(failed)?;
            outln!("Success! The root key rotation was cancelled.");
        }
        Step::Update { nonce, key } => {
            let response = sys
                .rotate_root_update(proto::RotateRootUpdateRequest {
                    nonce,
                    key: key.trim().to_string(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if response.complete {
                if format == Format::Json {
                    print_json(&serde_json::json!({"complete": true}))?;
                } else {
                    outln!(
                        "Success! The root key was rotated: the keyring is encrypted by a new root key."
                    );
                }
            } else {
                print_status(&response.status.unwrap_or_default(), None, format)?;
            }
        }
    }
    Ok(EXIT_OK)
}

fn fresh_otp() -> Zeroizing<String> {
    let pad = Zeroizing::new(crate::secret::random_bytes(crate::pad::PAD_LEN));
    Zeroizing::new(STANDARD.encode(pad.as_slice()))
}

pub async fn generate_root(
    client_args: &ClientArgs,
    args: GenerateRootArgs,
) -> Result<u8, CliError> {
    if args.generate_otp {
        outln!("{}", fresh_otp().as_str());
        return Ok(EXIT_OK);
    }
    if let (Some(encoded), Some(otp)) = (&args.decode, &args.otp) {
        let otp = if otp == "-" {
            read_key("One-time pad")?
        } else {
            Zeroizing::new(otp.clone())
        };
        let token = crate::pad::remove(encoded, &otp).map_err(CliError::Failed)?;
        outln!("{}", token.expose());
        return Ok(EXIT_OK);
    }
    let otp_given = args.otp.clone().map(Zeroizing::new);
    let (step, format) = step(args.quorum, "generate-root")?;
    let (mut sys, token) = client::authenticated(client_args, SysClient::new).await?;
    let failed = |s| client::failed(s, token.is_some());
    match step {
        Step::Status => {
            let status = sys
                .generate_root_status(client::request(
                    proto::GenerateRootStatusRequest {},
                    token.as_ref(),
                )?)
                .await
                .map_err(failed)?
                .into_inner();
            print_status(&status, None, format)?;
        }
        Step::Init { claim } => {
            let made = otp_given.is_none();
            let otp = otp_given.unwrap_or_else(fresh_otp);
            let status = sys
                .generate_root_init(proto::GenerateRootInitRequest {
                    otp: otp.to_string(),
                    key: claim
                        .as_deref()
                        .map(|k| k.trim().to_string())
                        .unwrap_or_default(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if format == Format::Json {
                print_json(&serde_json::json!({
                    "nonce": status.nonce,
                    "started": status.started,
                    "progress": status.progress,
                    "required": status.required,
                    "otp": if made { otp.as_str() } else { "" },
                    "otp_length": crate::pad::PAD_LEN,
                }))?;
            } else {
                print_status(&status, None, format)?;
                if made {
                    outln!(
                        "\nOne-time pad: {}\nKeep it: it is needed to decode the new root token, and nobody else should see it.",
                        otp.as_str()
                    );
                }
                print_started("generate-root", &status, format);
            }
        }
        Step::Cancel { nonce } => {
            sys.generate_root_cancel(proto::GenerateRootCancelRequest { nonce })
                .await
                .map_err(failed)?;
            outln!("Success! The root token generation was cancelled.");
        }
        Step::Update { nonce, key } => {
            let response = sys
                .generate_root_update(proto::GenerateRootUpdateRequest {
                    nonce,
                    key: key.trim().to_string(),
                })
                .await
                .map_err(failed)?
                .into_inner();
            if response.complete {
                if format == Format::Json {
                    print_json(&serde_json::json!({
                        "complete": true,
                        "encoded_token": response.encoded_token,
                        "encoded_root_token": response.encoded_token,
                        "accessor": response.accessor,
                    }))?;
                } else {
                    print_table(&[
                        ("Complete", "true".into()),
                        ("Encoded Token", response.encoded_token.clone()),
                        ("Accessor", response.accessor.clone()),
                    ]);
                    outln!(
                        "\nThe one-time pad decodes it:\n  strongroom generate-root --decode {} --otp <pad>",
                        response.encoded_token
                    );
                }
            } else {
                print_status(&response.status.unwrap_or_default(), None, format)?;
            }
        }
    }
    Ok(EXIT_OK)
}
