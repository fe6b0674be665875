//! `strongroom keys …`: named encryption keys (the Keys service).

use std::io::Read;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use clap::Subcommand;
use serde::Serialize;
use zeroize::Zeroizing;

use super::client::{ClientArgs, call};
use super::output::{outln, print_json, print_table};
use super::{CliError, EXIT_OK, Format};
use crate::proto::{self, keys_client::KeysClient};
use crate::time::format_unix;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Make key NAME (AES-256-GCM, version 1).
    Create { name: String },
    /// Show a key's versions and settings (never its material).
    Read {
        name: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the keys.
    List {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Add a version; encryption uses it from now on.
    Rotate { name: String },
    /// Change a key's settings.
    Config {
        name: String,
        /// Versions below this refuse to decrypt.
        #[arg(long, value_name = "N")]
        min_decryption_version: Option<u32>,
        /// Allow `keys delete`.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        deletion_allowed: Option<bool>,
    },
    /// Delete a key and all its versions (needs deletion_allowed).
    Delete { name: String },
    /// Encrypt stdin (or --plaintext-file) and print the ciphertext.
    Encrypt {
        name: String,
        /// Read the plaintext from this file instead of stdin.
        #[arg(long, value_name = "FILE")]
        plaintext_file: Option<std::path::PathBuf>,
        /// Authenticated data that decryption must repeat.
        #[arg(long, default_value = "")]
        context: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Decrypt CIPHERTEXT and write the plaintext to stdout.
    Decrypt {
        name: String,
        ciphertext: String,
        #[arg(long, default_value = "")]
        context: String,
        /// json prints {"plaintext": base64}.
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Re-encrypt CIPHERTEXT under the newest version, without the plaintext.
    Rewrap {
        name: String,
        ciphertext: String,
        #[arg(long, default_value = "")]
        context: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Make a data key: printed in plaintext (base64) and encrypted.
    Datakey {
        name: String,
        /// 128, 256 or 512.
        #[arg(long, default_value_t = 256)]
        bits: u32,
        #[arg(long, default_value = "")]
        context: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn print_key(info: &proto::KeyInfo, format: Format) -> Result<(), CliError> {
    if format == Format::Json {
        #[derive(Serialize)]
        struct KeyJson<'a> {
            name: &'a str,
            r#type: &'static str,
            creation_time: String,
            latest_version: u32,
            min_decryption_version: u32,
            deletion_allowed: bool,
            keys: std::collections::BTreeMap<u32, String>,
        }
        return print_json(&KeyJson {
            name: &info.name,
            r#type: "aes256-gcm96",
            creation_time: format_unix(info.created_unix),
            latest_version: info.latest_version,
            min_decryption_version: info.min_decryption_version,
            deletion_allowed: info.deletion_allowed,
            keys: (1..)
                .zip(&info.version_created_unix)
                .map(|(v, t)| (v, format_unix(*t)))
                .collect(),
        });
    }
    print_table(&[
        ("name", info.name.clone()),
        ("type", "aes256-gcm96".into()),
        ("creation_time", format_unix(info.created_unix)),
        ("latest_version", info.latest_version.to_string()),
        (
            "min_decryption_version",
            info.min_decryption_version.to_string(),
        ),
        ("deletion_allowed", info.deletion_allowed.to_string()),
    ]);
    Ok(())
}

fn print_ciphertext(encrypted: &proto::EncryptResponse, format: Format) -> Result<(), CliError> {
    if format == Format::Json {
        #[derive(Serialize)]
        struct Json<'a> {
            ciphertext: &'a str,
            key_version: u32,
        }
        return print_json(&Json {
            ciphertext: &encrypted.ciphertext,
            key_version: encrypted.key_version,
        });
    }
    outln!("{}", encrypted.ciphertext);
    Ok(())
}

/// Runs one `keys` command.
pub async fn run(args: &ClientArgs, command: KeysCommand) -> Result<u8, CliError> {
    match command {
        KeysCommand::Create { name } => {
            call!(
                args,
                KeysClient,
                create_key,
                proto::CreateKeyRequest { name: name.clone() }
            )?;
            outln!("Success! Created key: {name}");
        }
        KeysCommand::Read { name, format } => {
            let info = call!(args, KeysClient, read_key, proto::ReadKeyRequest { name })?;
            print_key(&info, format)?;
        }
        KeysCommand::List { format } => {
            let names = call!(args, KeysClient, list_keys, proto::ListKeysRequest {})?.names;
            if format == Format::Json {
                print_json(&names)?;
            } else {
                outln!("Keys\n----");
                for name in names {
                    outln!("{name}");
                }
            }
        }
        KeysCommand::Rotate { name } => {
            let info = call!(
                args,
                KeysClient,
                rotate,
                proto::RotateKeyRequest { name: name.clone() }
            )?;
            outln!(
                "Success! Rotated key {name}: version {} encrypts from now on.",
                info.latest_version
            );
        }
        KeysCommand::Config {
            name,
            min_decryption_version,
            deletion_allowed,
        } => {
            let request = proto::UpdateKeyConfigRequest {
                name: name.clone(),
                min_decryption_version,
                deletion_allowed,
            };
            call!(args, KeysClient, update_key_config, request)?;
            outln!("Success! Updated the configuration of key {name}.");
        }
        KeysCommand::Delete { name } => {
            call!(
                args,
                KeysClient,
                delete_key,
                proto::DeleteKeyRequest { name: name.clone() }
            )?;
            outln!("Success! Deleted key: {name}");
        }
        KeysCommand::Encrypt {
            name,
            plaintext_file,
            context,
            format,
        } => {
            let mut plaintext = Zeroizing::new(Vec::new());
            match &plaintext_file {
                Some(file) => {
                    *plaintext = std::fs::read(file).map_err(|e| {
                        CliError::Usage(format!(
                            "cannot read the plaintext from {}: {e}",
                            file.display()
                        ))
                    })?;
                }
                None => {
                    std::io::stdin().read_to_end(&mut plaintext).map_err(|e| {
                        CliError::Usage(format!("cannot read the plaintext from stdin: {e}"))
                    })?;
                }
            }
            let request = proto::EncryptRequest {
                name,
                plaintext: plaintext.to_vec(),
                context: context.into_bytes(),
            };
            let encrypted = call!(args, KeysClient, encrypt, request)?;
            print_ciphertext(&encrypted, format)?;
        }
        KeysCommand::Decrypt {
            name,
            ciphertext,
            context,
            format,
        } => {
            let request = proto::DecryptRequest {
                name,
                ciphertext,
                context: context.into_bytes(),
            };
            let plaintext =
                Zeroizing::new(call!(args, KeysClient, decrypt, request)?.plaintext.clone());
            if format == Format::Json {
                let encoded = Zeroizing::new(STANDARD.encode(plaintext.as_slice()));
                #[derive(Serialize)]
                struct Json<'a> {
                    plaintext: &'a str,
                }
                print_json(&Json {
                    plaintext: &encoded,
                })?;
            } else {
                super::output::write_bytes(&plaintext);
            }
        }
        KeysCommand::Rewrap {
            name,
            ciphertext,
            context,
            format,
        } => {
            let request = proto::RewrapRequest {
                name,
                ciphertext,
                context: context.into_bytes(),
            };
            let encrypted = call!(args, KeysClient, rewrap, request)?;
            print_ciphertext(&encrypted, format)?;
        }
        KeysCommand::Datakey {
            name,
            bits,
            context,
            format,
        } => {
            let request = proto::GenerateDataKeyRequest {
                name,
                bits,
                context: context.into_bytes(),
            };
            let response = call!(args, KeysClient, generate_data_key, request)?;
            let plaintext = Zeroizing::new(STANDARD.encode(&response.plaintext));
            if format == Format::Json {
                #[derive(Serialize)]
                struct Json<'a> {
                    plaintext: &'a str,
                    ciphertext: &'a str,
                    key_version: u32,
                }
                print_json(&Json {
                    plaintext: &plaintext,
                    ciphertext: &response.ciphertext,
                    key_version: response.key_version,
                })?;
            } else {
                print_table(&[
                    ("plaintext", plaintext.to_string()),
                    ("ciphertext", response.ciphertext.clone()),
                    ("key_version", response.key_version.to_string()),
                ]);
            }
        }
    }
    Ok(EXIT_OK)
}
