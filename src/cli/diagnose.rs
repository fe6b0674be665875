//! `strongroom diagnose --config FILE` (and `operator diagnose`): checks a
//! setup before the daemon is started, as `vault operator diagnose`.
//! Exit 0 when nothing failed (warnings are printed), 1 when a check
//! failed, 64 for a usage error or a configuration that does not parse
//! (its errors printed as `server --check` prints them, after the checks
//! that could still run).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use super::output::{self, errln, out};
use super::{CliError, EXIT_ERROR, EXIT_OK, EXIT_USAGE, Format};
use crate::diagnose::env_file::{self, Applied};
use crate::diagnose::{self, AREAS, Options};

/// Set in the environment of the diagnose that runs with the environment
/// file applied: the file it applied.
const APPLIED: &str = "STRONGROOM_DIAGNOSE_ENV_FILE_APPLIED";

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
    /// The daemon's environment file (the unit's EnvironmentFile=): its
    /// variables are applied over this shell's, as systemd gives them to
    /// the daemon. Default: /etc/strongroom/strongroom.env when it exists.
    #[arg(long, value_name = "FILE")]
    env_file: Option<PathBuf>,
    /// Apply no environment file: check with this shell's environment.
    #[arg(long, conflicts_with = "env_file")]
    no_env_file: bool,
}

/// Which environment file applies; when one does and is not applied yet,
/// diagnose runs itself again with its variables (the AWS SDK and the
/// configuration read them from the process's environment) and this
/// returns only if that fails.
fn env_file(args: &DiagnoseArgs) -> Result<Applied, CliError> {
    if args.no_env_file {
        return Ok(Applied::Off);
    }
    let (path, named) = match &args.env_file {
        Some(path) => (path.clone(), true),
        None if Path::new(env_file::DEFAULT).exists() => (PathBuf::from(env_file::DEFAULT), false),
        None => return Ok(Applied::None),
    };
    // Set by this program's own exec for exactly this file; an inherited
    // value naming another file does not stop this one being applied.
    if std::env::var_os(APPLIED).is_some_and(|applied| applied == path.as_os_str()) {
        return Ok(Applied::File(path));
    }
    let file = match env_file::read(&path) {
        Ok(file) => file,
        Err(why) if named => return Err(CliError::Usage(format!("--env-file: {why}"))),
        Err(why) => return Ok(Applied::Unreadable(path, why)),
    };
    let program = std::env::current_exe()
        .map_err(|e| CliError::Failed(format!("cannot find diagnose's own program: {e}")))?;
    let error = Command::new(program)
        .args(std::env::args_os().skip(1))
        .envs(file.vars.iter().map(|(name, value, _)| (name, value)))
        .env(APPLIED, &path)
        .exec();
    Err(CliError::Failed(format!(
        "cannot run diagnose with the variables of {}: {error}",
        path.display()
    )))
}

/// Runs the checks and prints what they found.
pub(super) fn run(args: DiagnoseArgs) -> ExitCode {
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
    let env_file = match env_file(&args) {
        Ok(applied) => applied,
        Err(e) => return e.exit(),
    };
    let options = Options {
        config: args.config,
        skip: args.skip.iter().map(|s| s.trim().to_string()).collect(),
        service_user: args.user,
        env_file,
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return CliError::Failed(format!("cannot start the async runtime: {e}")).exit(),
    };
    let report = runtime.block_on(diagnose::run(&options));
    match args.format {
        Format::Table => out!("{}", report.table()),
        Format::Json => out!("{}\n", report.json()),
    }
    for name in report.unmatched(&options.skip) {
        errln!(
            "warning: --skip {}: no area or check of this run has that name, so it skipped nothing",
            crate::text::quote(name)
        );
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
