//! `strongroom operator migrate -config FILE`: move a store between
//! storage backends while every daemon on it is stopped, as `vault operator
//! migrate`. The entries move as stored (ciphertext); no key is needed.

use std::path::PathBuf;
use std::process::ExitCode;

use super::output::{self, errln, outln};
use super::{CliError, EXIT_OK, EXIT_USAGE};
use crate::config::{self, StorageConfig};
use crate::server::migrate::migrate;

/// A progress line at every this many entries copied (big stores only).
const PROGRESS_EVERY: usize = 10_000;

/// `operator migrate`'s flags.
#[derive(clap::Args)]
pub(super) struct MigrateArgs {
    /// The migrate file: a storage_source and a storage_destination block,
    /// each with the keys of the daemon's storage block.
    #[arg(long, value_name = "FILE")]
    config: PathBuf,
}

/// Runs the migration; exit 0 once the destination is verified, 1 when
/// it failed, 64 for a bad file.
pub(super) fn run(args: &MigrateArgs) -> ExitCode {
    let config = match config::load_migrate(&args.config) {
        Ok(config) => config,
        Err(errors) => {
            errln!("{errors}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    for store in [&config.source, &config.destination] {
        if let StorageConfig::Postgresql(pg) = store {
            let url = pg
                .connection_url
                .as_ref()
                .map_or_else(String::new, |u| u.redacted());
            errln!(
                "warning: a PostgreSQL store has no lock against a running daemon yet: stop every strongroom daemon on table {} at {url} before migrating",
                pg.table
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return CliError::Failed(format!("cannot start the async runtime: {e}")).exit(),
    };
    let mut reported = 0;
    let mut progress = |written: usize, total: usize| {
        if written / PROGRESS_EVERY > reported / PROGRESS_EVERY && written < total {
            outln!("copied {written} of {total} entries");
            reported = written;
        }
    };
    match runtime.block_on(migrate(&config, &mut progress)) {
        Ok(moved) => {
            outln!(
                "Success! Data moved from {} to {}: {} entries, sha256 {}",
                config.source.kind(),
                config.destination.kind(),
                moved.entries,
                moved.digest
            );
            ExitCode::from(output::exit_code(EXIT_OK))
        }
        Err(sentence) => CliError::Failed(sentence).exit(),
    }
}
