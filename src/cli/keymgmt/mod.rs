//! `strongroom keymgmt …`: keys strongroom keeps and distributes to AWS KMS
//! as imported key material (the KeyMgmt service; Vault Enterprise's
//! `vault write keymgmt/…` workflow as commands).

mod credentials;
mod print;

use clap::{Args, Subcommand};

use super::client::{ClientArgs, call};
use super::output::outln;
use super::{CliError, EXIT_OK, Format};
use crate::proto::{self, key_mgmt_client::KeyMgmtClient};
use credentials::CredentialArgs;

/// How long KMS waits before deleting keys when no window is given.
const DEFAULT_DELETION_DAYS: u32 = 30;

#[derive(Subcommand)]
pub enum KeyMgmtCommand {
    /// KMS providers: where keys are distributed, with which credentials.
    #[command(subcommand)]
    Kms(KmsCommand),
    /// The keys strongroom generates and keeps the original of.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Distribute key KEY to provider PROVIDER: one KMS key per version,
    /// its material imported, the alias alias/KEY on the newest. Again
    /// with the same purpose and protection: completes an interrupted one.
    Distribute(DistributeArgs),
    /// Read, list and remove distributions.
    #[command(subcommand)]
    Distribution(DistributionCommand),
}

/// The output format of a read or a list.
#[derive(Args)]
pub struct FormatArg {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

#[derive(Subcommand)]
pub enum KmsCommand {
    /// Register provider NAME, or change it (credentials left out are kept).
    Write(KmsWriteArgs),
    /// Show a provider's settings (never its credentials).
    Read {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List the providers.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Delete a provider (refused while a key is distributed to it).
    Delete { name: String },
}

/// `kms write`'s flags.
#[derive(Args)]
pub struct KmsWriteArgs {
    name: String,
    /// The AWS region the keys go to (Vault's key_collection); needed for
    /// a new provider, left out to keep the stored one.
    #[arg(long, value_name = "REGION")]
    key_collection: Option<String>,
    /// The provider type.
    #[arg(long, default_value = "awskms")]
    provider: String,
    /// A KMS-compatible endpoint instead of AWS's regional one (needs sudo
    /// on the provider's path); "" goes back to AWS's own; left out keeps
    /// the stored one.
    #[arg(long, value_name = "URL")]
    endpoint: Option<String>,
    #[command(flatten)]
    credentials: CredentialArgs,
}

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Make key NAME (version 1), or change its settings.
    Write {
        name: String,
        /// The key type, only when the key is made; AWS KMS imports
        /// aes256-gcm96 (the default).
        #[arg(long = "type", value_name = "TYPE")]
        key_type: Option<String>,
        /// Allow `key delete`.
        #[arg(long, value_name = "BOOL", action = clap::ArgAction::Set)]
        deletion_allowed: Option<bool>,
        /// KMS keys of versions below N are disabled; 0 enables them all.
        #[arg(long, value_name = "N")]
        min_enabled_version: Option<u32>,
    },
    /// Show a key's settings and versions (never its material).
    Read {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List the keys.
    List {
        #[command(flatten)]
        format: FormatArg,
    },
    /// Add a version, distributed wherever the key is (the alias moves to it).
    Rotate { name: String },
    /// Delete a key (needs deletion_allowed): each distribution is removed
    /// first, its KMS keys scheduled for deletion.
    Delete {
        name: String,
        #[command(flatten)]
        window: DeletionWindow,
    },
    /// List the providers a key is distributed to.
    Providers {
        name: String,
        #[command(flatten)]
        format: FormatArg,
    },
}

/// How long KMS waits before deleting removed keys.
#[derive(Args)]
pub struct DeletionWindow {
    /// Days KMS waits before deleting the KMS keys: 7 to 30 (default 30).
    #[arg(long, value_name = "N")]
    deletion_window_days: Option<u32>,
}

impl DeletionWindow {
    /// The days to send (0 asks for the default) and to show.
    fn days(&self) -> (u32, u32) {
        let sent = self.deletion_window_days.unwrap_or(0);
        let shown = if sent == 0 {
            DEFAULT_DELETION_DAYS
        } else {
            sent
        };
        (sent, shown)
    }
}

/// `distribute`'s arguments.
#[derive(Args)]
pub struct DistributeArgs {
    provider: String,
    key: String,
    /// What the KMS keys are for, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "encrypt,decrypt")]
    purpose: Vec<String>,
    /// How KMS protects the keys.
    #[arg(long, default_value = "hsm")]
    protection: String,
}

#[derive(Subcommand)]
pub enum DistributionCommand {
    /// Show a distribution: each version's KMS key id, ARN and state.
    Read {
        provider: String,
        key: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// List the keys distributed to a provider.
    List {
        provider: String,
        #[command(flatten)]
        format: FormatArg,
    },
    /// Remove a distribution: its KMS keys scheduled for deletion, the
    /// alias deleted; the record stays until the deletion date.
    Remove {
        provider: String,
        key: String,
        #[command(flatten)]
        window: DeletionWindow,
    },
}

/// Runs one `keymgmt` command.
pub async fn run(args: &ClientArgs, command: KeyMgmtCommand) -> Result<u8, CliError> {
    match command {
        KeyMgmtCommand::Kms(command) => kms(args, command).await?,
        KeyMgmtCommand::Key(command) => key(args, command).await?,
        KeyMgmtCommand::Distribute(asked) => distribute(args, asked).await?,
        KeyMgmtCommand::Distribution(command) => distribution(args, command).await?,
    }
    Ok(EXIT_OK)
}

async fn kms(args: &ClientArgs, command: KmsCommand) -> Result<(), CliError> {
    match command {
        KmsCommand::Write(asked) => {
            // Read before connecting: a missing secret file changes nothing.
            let credentials = asked.credentials.read()?;
            let request = proto::WriteProviderRequest {
                name: asked.name,
                provider: asked.provider,
                key_collection: asked.key_collection.unwrap_or_default(),
                endpoint: asked.endpoint,
                credentials,
            };
            let info = call!(args, KeyMgmtClient, write_provider, request)?;
            outln!(
                "Success! Wrote KMS provider {}: {} in {}.",
                info.name,
                info.provider,
                info.key_collection
            );
        }
        KmsCommand::Read { name, format } => {
            let request = proto::ReadProviderRequest { name };
            let info = call!(args, KeyMgmtClient, read_provider, request)?;
            print::provider(&info, format.format)?;
        }
        KmsCommand::List { format } => {
            let request = proto::ListProvidersRequest {};
            let names = call!(args, KeyMgmtClient, list_providers, request)?.names;
            print::names("Providers", &names, format.format)?;
        }
        KmsCommand::Delete { name } => {
            let request = proto::DeleteProviderRequest { name: name.clone() };
            call!(args, KeyMgmtClient, delete_provider, request)?;
            outln!("Success! Deleted KMS provider: {name}");
        }
    }
    Ok(())
}

async fn key(args: &ClientArgs, command: KeyCommand) -> Result<(), CliError> {
    match command {
        KeyCommand::Write {
            name,
            key_type,
            deletion_allowed,
            min_enabled_version,
        } => {
            let request = proto::WriteKeyRequest {
                name,
                r#type: key_type.unwrap_or_default(),
                deletion_allowed,
                min_enabled_version,
            };
            let info = call!(args, KeyMgmtClient, write_key, request)?;
            outln!(
                "Success! Wrote key {}: {}, newest version {}, min_enabled_version {}.",
                info.name,
                info.r#type,
                info.latest_version,
                info.min_enabled_version
            );
        }
        KeyCommand::Read { name, format } => {
            let request = proto::ReadKeyMgmtKeyRequest { name };
            let info = call!(args, KeyMgmtClient, read_key, request)?;
            print::key(&info, format.format)?;
        }
        KeyCommand::List { format } => {
            let request = proto::ListKeyMgmtKeysRequest {};
            let names = call!(args, KeyMgmtClient, list_keys, request)?.names;
            print::names("Keys", &names, format.format)?;
        }
        KeyCommand::Rotate { name } => {
            let request = proto::RotateKeyMgmtKeyRequest { name };
            let info = call!(args, KeyMgmtClient, rotate_key, request)?;
            outln!(
                "Success! Rotated key {}: version {} is distributed wherever the key is.",
                info.name,
                info.latest_version
            );
        }
        KeyCommand::Delete { name, window } => {
            let (sent, shown) = window.days();
            let request = proto::DeleteKeyMgmtKeyRequest {
                name: name.clone(),
                deletion_window_days: sent,
            };
            call!(args, KeyMgmtClient, delete_key, request)?;
            outln!(
                "Success! Deleted key {name}; the KMS keys of its distributions are deleted after {shown} days."
            );
        }
        KeyCommand::Providers { name, format } => {
            let request = proto::ListKeyProvidersRequest { name };
            let names = call!(args, KeyMgmtClient, list_key_providers, request)?.names;
            print::names("Providers", &names, format.format)?;
        }
    }
    Ok(())
}

async fn distribute(args: &ClientArgs, asked: DistributeArgs) -> Result<(), CliError> {
    let request = proto::DistributeRequest {
        provider: asked.provider,
        key: asked.key,
        purpose: asked.purpose,
        protection: asked.protection,
    };
    let info = call!(args, KeyMgmtClient, distribute, request)?;
    match info
        .versions
        .iter()
        .find(|v| v.version == info.alias_version)
    {
        Some(target) => outln!(
            "Success! Distributed key {} to {}: {} points at version {}'s KMS key {}.",
            info.key,
            info.provider,
            info.alias,
            target.version,
            target.kms_key_id
        ),
        None => outln!(
            "Success! Distributed key {} to {}; {} is not set yet (see `keymgmt distribution read`).",
            info.key,
            info.provider,
            info.alias
        ),
    }
    Ok(())
}

async fn distribution(args: &ClientArgs, command: DistributionCommand) -> Result<(), CliError> {
    match command {
        DistributionCommand::Read {
            provider,
            key,
            format,
        } => {
            let request = proto::ReadDistributionRequest { provider, key };
            let info = call!(args, KeyMgmtClient, read_distribution, request)?;
            print::distribution(&info, format.format)?;
        }
        DistributionCommand::List { provider, format } => {
            let request = proto::ListDistributionsRequest { provider };
            let names = call!(args, KeyMgmtClient, list_distributions, request)?.names;
            print::names("Keys", &names, format.format)?;
        }
        DistributionCommand::Remove {
            provider,
            key,
            window,
        } => {
            let request = proto::RemoveDistributionRequest {
                provider,
                key,
                deletion_window_days: window.days().0,
            };
            let info = call!(args, KeyMgmtClient, remove_distribution, request)?;
            let until = print::deletion_date(&info).unwrap_or_else(|| "its deletion date".into());
            outln!(
                "Success! Removed the distribution of key {} from {}: {} deleted, its KMS keys pending deletion until {until}.",
                info.key,
                info.provider,
                info.alias
            );
        }
    }
    Ok(())
}
