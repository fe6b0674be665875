//! `strongroom server`: load the config, harden the process, run the daemon.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::{EXIT_ERROR, EXIT_OK, EXIT_USAGE};
use crate::config::{self, Config};
use crate::server::{self, hardening, logging};

/// Arguments of `strongroom server`.
#[derive(clap::Args)]
pub struct ServerArgs {
    /// The HCL config file.
    #[arg(long, value_name = "FILE", required_unless_present = "dev")]
    config: Option<PathBuf>,
    /// Validate the config file (and load its TLS files) and exit: 0 when valid, 64 with the errors.
    #[arg(long, requires = "config")]
    check: bool,
    /// In-memory store, initialized with one key and unsealed at start. Never for real secrets.
    #[arg(long, conflicts_with_all = ["config", "check"])]
    dev: bool,
    /// Address of the dev listener.
    #[arg(
        long,
        value_name = "IP:PORT",
        default_value = "127.0.0.1:8400",
        requires = "dev"
    )]
    dev_listen_address: SocketAddr,
}

/// Runs the daemon; returns its exit code.
pub fn run(args: ServerArgs) -> ExitCode {
    let config = match load(&args) {
        Ok(config) => config,
        Err(errors) => {
            eprintln!("{errors}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    if args.check {
        let problems = server::check(&config);
        for problem in &problems {
            eprintln!("{problem}");
        }
        if !problems.is_empty() {
            return ExitCode::from(EXIT_USAGE);
        }
        if let Some(file) = &config.file {
            println!("{}: the configuration is valid", file.display());
        }
        return ExitCode::from(EXIT_OK);
    }

    let log_level = logging::init(config.log_level.value, config.log_format.value);
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
            ExitCode::from(EXIT_ERROR)
        }
    }
}

fn load(args: &ServerArgs) -> Result<Config, config::ConfigErrors> {
    match &args.config {
        Some(path) => config::load(path, |var| std::env::var(var).ok()),
        None => {
            let mut config = Config::dev(args.dev_listen_address);
            config::apply_env(&mut config, |var| std::env::var(var).ok())?;
            Ok(config)
        }
    }
}
