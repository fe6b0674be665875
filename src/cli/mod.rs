//! The `strongroom` command: the daemon (`server`) and the admin commands,
//! which are gRPC clients of a running daemon.
//!
//! Exit codes, for every command: 0 success (for `unseal`, the key was
//! accepted even if the daemon is still sealed); 1 error; 2 sealed or
//! uninitialized (`status` only); 64 usage or configuration error.

mod access;
mod client;
mod diagnose;
mod generate;
mod habits;
mod input;
mod keymgmt;
mod keys;
mod kv;
mod lifecycle;
mod migrate;
mod output;
mod quorum;
mod rotation;
mod server;
mod snapshot;
mod status;

use std::process::ExitCode;

use clap::{CommandFactory, Parser, Subcommand, ValueEnum};

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
    /// Says what went wrong on stderr and returns the exit code.
    fn report(self) -> u8 {
        let (message, code) = match self {
            CliError::Usage(m) => (m, EXIT_USAGE),
            CliError::Failed(m) => (m, EXIT_ERROR),
        };
        output::errln!("error: {message}");
        code
    }

    fn exit(self) -> ExitCode {
        ExitCode::from(self.report())
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
    /// Print the version (as `--version`).
    Version,
    /// Check a setup before starting the daemon: the config and its files,
    /// storage, seals, listeners, process limits, audit devices (exit 0
    /// nothing failed, 1 a check failed, 64 usage or a config that does
    /// not parse).
    Diagnose(diagnose::DiagnoseArgs),
    /// Vault's names: `operator init|unseal|seal|rekey|generate-root|rotate|key-status`,
    /// and `operator migrate` (a store between backends, every daemon stopped).
    #[command(subcommand)]
    Operator(habits::OperatorCommand),
    /// For packagers: print strongroom(1) or a shell's completions.
    #[command(subcommand, hide = true)]
    Generate(generate::GenerateCommand),
    #[command(flatten)]
    Client(ClientCommand),
}

/// The admin commands: gRPC clients of a running daemon.
#[derive(Subcommand)]
enum ClientCommand {
    /// Initialize a new store: make the root key and the unseal keys.
    Init(InitArgs),
    /// Show the seal status (exit 2 when sealed or uninitialized).
    Status(FormatArgs),
    /// Enter one unseal key. Without KEY it is read from a hidden prompt or stdin.
    Unseal(UnsealArgs),
    /// Seal the daemon: drop the keys from memory (sudo on sys/seal).
    Seal,
    /// With HA: the active node gives its role up so another node takes
    /// over (update and sudo on sys/step-down).
    StepDown,
    /// Read and write versioned secrets.
    #[command(subcommand)]
    Kv(kv::KvCommand),
    /// Print the HMAC that audit lines write for the value on stdin (one
    /// trailing newline is dropped), to find a known secret in the audit log.
    AuditHash,
    /// Named encryption keys: encrypt, decrypt, rewrap, data keys, rotation.
    #[command(subcommand)]
    Keys(keys::KeysCommand),
    /// Bring your own key: keys strongroom keeps, distributed to AWS KMS.
    #[command(subcommand)]
    Keymgmt(keymgmt::KeyMgmtCommand),
    /// Make, inspect, renew and revoke tokens.
    #[command(subcommand)]
    Token(access::TokenCommand),
    /// Write, read, list and delete policies.
    #[command(subcommand)]
    Policy(access::PolicyCommand),
    /// Start a new keyring term; new writes use it, old terms still read (sudo on sys/rotate).
    Rotate(FormatArgs),
    /// Show the keyring's terms: install time and encryptions (read on sys/key-status).
    KeyStatus(FormatArgs),
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

/// `init`'s flags.
#[derive(clap::Args)]
struct InitArgs {
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
    /// Number of emergency keys to make (1-255; several seals with an
    /// emergency seal, which makes 5 by default).
    #[arg(long)]
    emergency_shares: Option<u32>,
    /// Emergency keys needed to unseal (3 by default).
    #[arg(long)]
    emergency_threshold: Option<u32>,
    /// A recipient for the next emergency key (age1… or "ssh-ed25519
    /// AAAA…"); give it once per emergency key, in order.
    #[arg(long, value_name = "RECIPIENT")]
    emergency_recipient: Vec<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// `unseal`'s key and flags.
#[derive(clap::Args)]
struct UnsealArgs {
    /// The unseal key, hex or base64. Leave it out to keep it out of shell history.
    key: Option<String>,
    /// Throw away the unseal keys entered so far.
    #[arg(long)]
    reset: bool,
    /// Enter the key for the pending seal migration (the old seal's
    /// unseal or recovery key); at the threshold the migration runs.
    #[arg(long, conflicts_with = "reset")]
    migrate: bool,
    /// Enter an emergency key of the emergency seal NAME (several seals):
    /// taken only while no KMS seal could open the store at the last
    /// attempt. With --reset: forget the emergency keys entered.
    #[arg(long, value_name = "NAME", conflicts_with = "migrate")]
    seal: Option<String>,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
}

/// The flags of a command whose only option is its output format.
#[derive(clap::Args)]
struct FormatArgs {
    #[arg(long, value_enum, default_value_t)]
    format: Format,
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
        /// Accept a snapshot without a MAC (format 1 or 2, taken by a
        /// strongroom before 0.2): nothing then proves it was not altered.
        #[arg(long)]
        accept_unauthenticated: bool,
    },
}

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // `server` is parsed on its own: the client flags are not its flags.
    if let Some(code) = server::main_if_server() {
        return code;
    }
    let args = habits::double_dash_long_flags(std::env::args_os(), &Cli::command());
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_USAGE,
            };
            // Help and version go to stdout: a closed pipe ends them quietly.
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        // Only client flags can come before `server` and land here.
        Command::Server(_) => server::refuse_client_flags(),
        Command::Version => {
            output::out!("{}", Cli::command().render_version());
            ExitCode::from(output::exit_code(EXIT_OK))
        }
        Command::Client(command) => run_client(&cli.client, command),
        Command::Diagnose(args) => diagnose::run(args),
        Command::Generate(what) => generate::run(what, Cli::command()),
        Command::Operator(command) => match command.into_client() {
            Ok(command) => run_client(&cli.client, command),
            Err(habits::NotClient::Migrate(args)) => migrate::run(&args),
            Err(habits::NotClient::Diagnose(args)) => diagnose::run(args),
        },
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
    let code = match runtime.block_on(run_command(client, command)) {
        Ok(code) => code,
        Err(e) => e.report(),
    };
    ExitCode::from(output::exit_code(code))
}

async fn run_command(client: &ClientArgs, command: ClientCommand) -> Result<u8, CliError> {
    match command {
        ClientCommand::Init(args) => {
            let request = crate::proto::InitRequest {
                key_shares: args.key_shares,
                key_threshold: args.key_threshold,
                recovery_shares: args.recovery_shares,
                recovery_threshold: args.recovery_threshold,
                recipients: input::read_recipients(args.recipients.as_deref())?,
                root_token_recipient: args.root_token_recipient.unwrap_or_default(),
                emergency_shares: args.emergency_shares,
                emergency_threshold: args.emergency_threshold,
                emergency_recipients: args.emergency_recipient,
            };
            lifecycle::init(client, request, args.format).await
        }
        ClientCommand::Status(args) => lifecycle::status(client, args.format).await,
        ClientCommand::Unseal(args) => {
            let flags = lifecycle::UnsealFlags {
                reset: args.reset,
                migrate: args.migrate,
                seal: args.seal.unwrap_or_default(),
            };
            lifecycle::unseal(client, args.key, flags, args.format).await
        }
        ClientCommand::Seal => lifecycle::seal(client).await,
        ClientCommand::StepDown => lifecycle::step_down(client).await,
        ClientCommand::Kv(command) => kv::run(client, command).await,
        ClientCommand::Keys(command) => keys::run(client, command).await,
        ClientCommand::Keymgmt(command) => keymgmt::run(client, command).await,
        ClientCommand::AuditHash => access::audit_hash(client).await,
        ClientCommand::Token(command) => access::token(client, command).await,
        ClientCommand::Policy(command) => access::policy(client, command).await,
        ClientCommand::Rotate(args) => rotation::rotate(client, args.format).await,
        ClientCommand::KeyStatus(args) => rotation::key_status(client, args.format).await,
        ClientCommand::Snapshot(SnapshotCommand::Save { file }) => {
            snapshot::save(client, &file).await
        }
        ClientCommand::Snapshot(SnapshotCommand::Restore {
            file,
            accept_unauthenticated,
        }) => snapshot::restore(client, &file, accept_unauthenticated).await,
        ClientCommand::Rekey(args) => quorum::rekey(client, args).await,
        ClientCommand::RotateRoot(args) => quorum::rotate_root(client, args).await,
        ClientCommand::GenerateRoot(args) => quorum::generate_root(client, args).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }
}
