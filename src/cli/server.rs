//! `strongroom server`: load the config, harden the process, run the daemon.
//!
//! It is parsed on its own ([`main_if_server`]), so its help and its flags
//! are the daemon's only: the client flags (`--address`, `--token-file`, …)
//! mean nothing to a daemon and are refused rather than ignored.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

use super::{EXIT_ERROR, EXIT_OK, EXIT_USAGE};
use crate::config::{self, Config};
use crate::server::{self, hardening, logging};

/// Where `server` looks for its config when `--config` is not given, in order
/// (the second under the working directory).
const DEFAULT_CONFIG_PATHS: [&str; 2] = ["/etc/strongroom/strongroom.hcl", "config/strongroom.hcl"];

/// Arguments of `strongroom server`.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// The HCL config file [default: /etc/strongroom/strongroom.hcl, else config/strongroom.hcl]
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Validate the config file (and every file it names) and exit: 0 when valid, 64 with the errors.
    #[arg(long)]
    check: bool,
    /// In-memory store, initialized with one key and unsealed at start. Never for real secrets.
    #[arg(long, conflicts_with_all = ["config", "check"])]
    dev: bool,
    /// Address of the dev listener (port 0: any free port, printed at start).
    #[arg(
        long,
        value_name = "IP:PORT",
        default_value = "127.0.0.1:8400",
        requires = "dev"
    )]
    dev_listen_address: SocketAddr,
}

/// `strongroom server` with the daemon's flags alone.
#[derive(Parser)]
#[command(name = "strongroom server", version, about = "Run the daemon.")]
struct ServerCommand {
    #[command(flatten)]
    args: ServerArgs,
}

/// When the command line is `strongroom server …`, parses and runs it.
pub fn main_if_server() -> Option<ExitCode> {
    let mut argv = std::env::args_os();
    let _program = argv.next();
    if argv.next()? != "server" {
        return None;
    }
    let words = std::iter::once(OsString::from("strongroom server")).chain(argv);
    Some(match ServerCommand::try_parse_from(words) {
        Ok(command) => run(command.args),
        Err(e) => {
            use clap::error::ErrorKind;
            let code = match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => EXIT_OK,
                _ => EXIT_USAGE,
            };
            let _ = e.print();
            ExitCode::from(code)
        }
    })
}

/// `strongroom --address … server`: client flags before `server`.
pub fn refuse_client_flags() -> ExitCode {
    eprintln!(
        "error: --address, --token-file, --ca-cert, --client-cert, --client-key and --tls-server-name are client flags; `strongroom server` takes none of them (use --dev-listen-address for the dev listener)"
    );
    ExitCode::from(EXIT_USAGE)
}

/// Runs the daemon; returns its exit code.
pub fn run(args: ServerArgs) -> ExitCode {
    // Whatever the daemon creates is its own (a socket without socket_mode,
    // a new audit file, the data directory), even started by hand.
    hardening::restrict_umask();
    let config = match load(&args) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    // Every file the config names, before anything is created or bound.
    let problems = server::check(&config);
    if !problems.is_empty() {
        for problem in problems.iter().take(config::SHOWN_ERRORS) {
            eprintln!("{problem}");
        }
        if problems.len() > config::SHOWN_ERRORS {
            eprintln!("and {} more errors", problems.len() - config::SHOWN_ERRORS);
        }
        return ExitCode::from(EXIT_USAGE);
    }
    if args.check {
        for warning in &config.warnings {
            eprintln!("warning: {warning}");
        }
        if let Some(file) = &config.file {
            super::output::outln!("{}: the configuration is valid", file.display());
        }
        for seal in config.seal_summary() {
            super::output::outln!("{seal}");
        }
        return ExitCode::from(EXIT_OK);
    }

    let log_level = logging::init(config.log_level.value, config.log_format.value);
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    hardening::forbid_core_dumps();
    if config.disable_mlock.value {
        tracing::warn!(
            source = %config.disable_mlock.source,
            "mlock is disabled: key material in memory may be written to swap"
        );
    } else if let Err(e) = hardening::lock_memory() {
        // Restarting would hit the same wall: exit with the config code, which
        // the systemd unit lists in RestartPreventExitStatus.
        tracing::error!("{e}");
        return ExitCode::from(EXIT_USAGE);
    }

    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("strongroom")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            tracing::error!(error = %e, "cannot start the async runtime");
            return ExitCode::from(EXIT_ERROR);
        }
    };
    let result = runtime.block_on(server::run(config, log_level, args.dev));
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => {
            tracing::info!("stopped");
            ExitCode::from(EXIT_OK)
        }
        Err(e) => {
            tracing::error!("{e}");
            // A socket the daemon may not give away fails the same way on
            // every restart: the configuration's code stops systemd's loop.
            match e {
                server::ServerError::Bind(server::ListenerError::Chown { .. }) => {
                    ExitCode::from(EXIT_USAGE)
                }
                _ => ExitCode::from(EXIT_ERROR),
            }
        }
    }
}

/// The configuration, or every error in it, as printed.
fn load(args: &ServerArgs) -> Result<Config, String> {
    let env = |var: &str| std::env::var(var).ok();
    if args.dev {
        let mut config = Config::dev(args.dev_listen_address);
        config::apply_env(&mut config, env).map_err(|e| e.to_string())?;
        return Ok(config);
    }
    let path = match &args.config {
        Some(path) => path.clone(),
        None => default_config()?,
    };
    config::load(&path, env).map_err(|e| e.to_string())
}

/// The first of [`DEFAULT_CONFIG_PATHS`] that exists, or an error naming
/// every path tried.
fn default_config() -> Result<PathBuf, String> {
    let tried: Vec<PathBuf> = DEFAULT_CONFIG_PATHS
        .iter()
        .map(|p| std::path::absolute(p).unwrap_or_else(|_| PathBuf::from(p)))
        .collect();
    if let Some(found) = tried.iter().find(|p| p.exists()) {
        return Ok(found.clone());
    }
    let shown: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(format!(
        "error: no config file: give --config FILE (tried {})",
        shown.join(" and ")
    ))
}
