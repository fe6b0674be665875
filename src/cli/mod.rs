//! The `strongroom` command: the daemon (`server`) and the admin commands,
//! which are gRPC clients of a running daemon.
//!
//! Exit codes, for every command: 0 success (for `unseal`, the key was
//! accepted even if the daemon is still sealed); 1 error; 2 sealed or
//! uninitialized (`status` only); 64 usage or configuration error.

mod access;
mod client;
mod input;
mod keys;
mod kv;
mod lifecycle;
mod output;
mod quorum;
mod rotation;
mod server;
mod snapshot;

use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};

pub use client::ClientArgs;

/// Exit code: success.
pub const EXIT_OK: u8 = 0;
/// Exit code: the command failed.
pub const EXIT_ERROR: u8 = 1;
/// Exit code: `status` found the daemon sealed or uninitialized.
pub const EXIT_SEALED: u8 = 2;
/// Exit code: bad usage or a configuration error (sysexits' EX_USAGE).
pub const EXIT_USAGE: u8 = 64;

/// A command's failure, as one sentence.
#[derive(Debug)]
pub enum CliError {
    /// The command line or config is wrong: exit 64.
    Usage(String),
    /// The operation failed: exit 1.
    Failed(String),
}

impl CliError {
    fn exit(self) -> ExitCode {
        let (message, code) = match self {
            CliError::Usage(m) => (m, EXIT_USAGE),
            CliError::Failed(m) => (m, EXIT_ERROR),
        };
        eprintln!("error: {message}");
        ExitCode::from(code)
    }
}

/// strongroom keeps a secret store's root key sealed, behind Shamir unseal
/// keys or an AWS KMS key, and serves its key lifecycle over gRPC.
// The command-line types derive no Debug: they carry shares, pads and tokens.
#[derive(Parser)]
#[command(name = "strongroom", version, about, propagate_version = true)]
struct Cli {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: Command,
}

/// Output format of commands that print data.
#[derive(ValueEnum, Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    /// Aligned text for people.
    #[default]
    Table,
    /// JSON with the field names of the OpenBao/Vault CLI.
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Server(server::ServerArgs),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The admin commands: gRPC clients of a running daemon.
#[derive(Subcommand)]
enum ClientCommand {
    /// Initialize a new store: make the root key and the unseal keys.
    Init {
        /// Number of unseal keys to make (1-255; Shamir seal).
        #[arg(long)]
        key_shares: Option<u32>,
        /// Unseal keys needed to unseal (at least 2 when there are several).
        #[arg(long)]
        key_threshold: Option<u32>,
        /// Number of recovery keys to make (1-255; awskms seal).
        #[arg(long)]
        recovery_shares: Option<u32>,
        /// Recovery keys needed for a quorum (at least 2 when there are several).
        #[arg(long)]
        recovery_threshold: Option<u32>,
        /// One recipient per key (age1… or "ssh-ed25519 AAAA…"), comma-separated,
        /// or a file of them one per line: key i is printed encrypted to recipient i.
        #[arg(long, value_name = "LIST|FILE")]
        recipients: Option<String>,
        /// Print the root token encrypted to this recipient.
        #[arg(long, value_name = "RECIPIENT")]
        root_token_recipient: Option<String>,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show the seal status (exit 2 when sealed or uninitialized).
    Status {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Enter one unseal key. Without KEY it is read from a hidden prompt or stdin.
    Unseal {
        /// The unseal key, hex or base64. Leave it out to keep it out of shell history.
        key: Option<String>,
        /// Throw away the unseal keys entered so far.
        #[arg(long)]
        reset: bool,
        /// Enter the key for the pending seal migration (the old seal's
        /// unseal or recovery key); at the threshold the migration runs.
        #[arg(long, conflicts_with = "reset")]
        migrate: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Seal the daemon: drop the keys from memory (sudo on sys/seal).
    Seal,
    /// Read and write versioned secrets.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Print the HMAC that audit lines write for the value on stdin (one
    /// trailing newline is dropped), to find a known secret in the audit log.
    AuditHash,
    /// Named encryption keys: encrypt, decrypt, rewrap, data keys, rotation.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Make, inspect, renew and revoke tokens.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Write, read, list and delete policies.
    #[command(subcommand)]
    Policy(access::PolicyCommand),
    /// Start a new keyring term; new writes use it, old terms still read (sudo on sys/rotate).
    Rotate {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Show the keyring's terms: install time and encryptions (read on sys/key-status).
    KeyStatus {
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Save or restore a copy of the whole store (sudo on sys/snapshot, sys/snapshot-restore).
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Replace the unseal keys (or recovery keys) from a quorum of the current ones.
    Rekey(quorum::RekeyArgs),
    /// Replace the root key from a quorum of the keys; the keyring is re-encrypted.
    RotateRoot(quorum::QuorumArgs),
    /// Make a new root token from a quorum of the keys, without a token.
    GenerateRoot(quorum::GenerateRootArgs),
}

#[derive(Subcommand)]
enum SnapshotCommand {
    /// Write a consistent copy of the store (still encrypted) to FILE, while serving.
    Save {
        /// Where to write it (created with mode 0600; an existing file is replaced).
        file: std::path::PathBuf,
    },
    /// Replace the whole store with the snapshot in FILE; the daemon is sealed afterwards.
    Restore {
        /// A file written by `snapshot save`.
        file: std::path::PathBuf,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // `server` is parsed on its own: the client flags are not its flags.
    if let Some(code) = server::main_if_server() {
        return code;
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_USAGE,
            };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        // Only client flags can come before `server` and land here.
        Command::Server(_) => server::refuse_client_flags(),
        Command::Client(command) => run_client(&cli.client, command),
    }
}

fn run_client(client: &ClientArgs, command: ClientCommand) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return CliError::Failed(format!("cannot start the async runtime: {e}")).exit(),
    };
    let result = runtime.block_on(async {
        match command {
            ClientCommand::Init {
                key_shares,
                key_threshold,
                recovery_shares,
                recovery_threshold,
                recipients,
                root_token_recipient,
                format,
            } => {
                let request = crate::proto::InitRequest {
                    key_shares,
                    key_threshold,
                    recovery_shares,
                    recovery_threshold,
                    recipients: input::read_recipients(recipients.as_deref())?,
                    root_token_recipient: root_token_recipient.unwrap_or_default(),
                };
                lifecycle::init(client, request, format).await
            }
            ClientCommand::Status { format } => lifecycle::status(client, format).await,
            ClientCommand::Unseal {
                key,
                reset,
                migrate,
                format,
            } => lifecycle::unseal(client, key, reset, migrate, format).await,
            ClientCommand::Seal => lifecycle::seal(client).await,
            ClientCommand::Kv(command) => kv::run(client, command).await,
            ClientCommand::Keys(command) => keys::run(client, command).await,
            ClientCommand::AuditHash => access::audit_hash(client).await,
            ClientCommand::Token(command) => access::token(client, command).await,
            ClientCommand::Policy(command) => access::policy(client, command).await,
            ClientCommand::Rotate { format } => rotation::rotate(client, format).await,
            ClientCommand::KeyStatus { format } => rotation::key_status(client, format).await,
            ClientCommand::Snapshot(SnapshotCommand::Save { file }) => {
                snapshot::save(client, &file).await
            }
            ClientCommand::Snapshot(SnapshotCommand::Restore { file }) => {
                snapshot::restore(client, &file).await
            }
            ClientCommand::Rekey(args) => quorum::rekey(client, args).await,
            ClientCommand::RotateRoot(args) => quorum::rotate_root(client, args).await,
            ClientCommand::GenerateRoot(args) => quorum::generate_root(client, args).await,
        }
    });
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => e.exit(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
