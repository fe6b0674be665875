//! `strongroom diagnose --config FILE` (and `operator diagnose`): checks a
//! setup before the daemon is started, as `vault operator diagnose`.
//! Exit 0 when nothing failed (warnings are printed), 1 when a check
//! failed, 64 for a usage error or a configuration that does not parse
//! (its errors printed as `server --check` prints them, after the checks
//! that could still run).

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::{self, errln, out};
use super::{CliError, EXIT_ERROR, EXIT_OK, EXIT_USAGE, Format};
use crate::diagnose::{self, AREAS, Options};

/// `diagnose`'s flags.
#[derive(clap::Args)]
pub(super) struct DiagnoseArgs {
    /// The daemon's configuration file.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
    #[arg(long, value_enum, default_value_t)]
    format: Format,
    /// Do not run this area (config, storage, seal, listener, process,
    /// audit) or check (its printed name); repeat or separate with commas.
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    skip: Vec<String>,
    /// The user the service runs as: when diagnose runs as root, access to
    /// files and directories is checked for this user too.
    #[arg(long, value_name = "USER", default_value = "strongroom")]
    user: String,
}

/// Runs the checks and prints what they found.
pub(super) fn run(args: DiagnoseArgs) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return CliError::Failed(format!("cannot start the async runtime: {e}")).exit(),
    };
    if let Some(unknown) = args
        .skip
        .iter()
        .find(|s| s.trim().is_empty() || s.len() > 64)
    {
        return CliError::Usage(format!(
            "--skip takes an area ({}) or a check's name, not {}",
            AREAS.join(", "),
            crate::text::quote(unknown)
        ))
        .exit();
    }
    let options = Options {
        config: args.config,
        skip: args.skip.iter().map(|s| s.trim().to_string()).collect(),
        service_user: args.user,
    };
    let report = runtime.block_on(diagnose::run(&options));
    match args.format {
        Format::Table => out!("{}", report.table()),
        Format::Json => out!("{}\n", report.json()),
    }
    let code = if let Some(errors) = &report.config_errors {
        errln!("{errors}");
        EXIT_USAGE
    } else if report.failed() {
        EXIT_ERROR
    } else {
        EXIT_OK
    };
    ExitCode::from(output::exit_code(code))
}
