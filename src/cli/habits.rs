//! Vault's habits, so an operator's fingers and scripts keep working:
//! `strongroom operator init|unseal|…` as the same commands (and
//! `operator migrate`, which has no other name), and Vault's
//! single-dash long flags (`-key-shares=3`, `-format=json`).

use std::ffi::OsString;

use clap::Subcommand;

use super::diagnose::DiagnoseArgs;
use super::migrate::MigrateArgs;
use super::{ClientCommand, FormatArgs, InitArgs, UnsealArgs, quorum};

/// `strongroom operator …`: Vault's names for the seal and key commands,
/// the same commands as at the top level.
#[derive(Subcommand)]
pub(super) enum OperatorCommand {
    /// Initialize a new store (as `strongroom init`).
    Init(InitArgs),
    /// Enter one unseal key (as `strongroom unseal`).
    Unseal(UnsealArgs),
    /// Seal the daemon (as `strongroom seal`).
    Seal,
    /// With HA: the active node gives its role to another (as `strongroom step-down`).
    StepDown,
    /// Replace the unseal or recovery keys (as `strongroom rekey`).
    Rekey(quorum::RekeyArgs),
    /// Make a new root token from a quorum of keys (as `strongroom generate-root`).
    GenerateRoot(quorum::GenerateRootArgs),
    /// Start a new keyring term (as `strongroom rotate`).
    Rotate(FormatArgs),
    /// Show the keyring's terms (as `strongroom key-status`).
    KeyStatus(FormatArgs),
    /// Move a stopped store between storage backends (file, postgresql).
    Migrate(MigrateArgs),
    /// Check a setup before starting the daemon (as `strongroom diagnose`).
    Diagnose(DiagnoseArgs),
}

/// The operator commands that are not clients of a daemon.
pub(super) enum NotClient {
    /// `operator migrate`.
    Migrate(MigrateArgs),
    /// `operator diagnose`.
    Diagnose(DiagnoseArgs),
}

impl OperatorCommand {
    /// The client command of the same name, or the arguments of a command
    /// that is not a client of a daemon (`migrate`, `diagnose`).
    pub(super) fn into_client(self) -> Result<ClientCommand, NotClient> {
        Ok(match self {
            Self::Init(args) => ClientCommand::Init(args),
            Self::Unseal(args) => ClientCommand::Unseal(args),
            Self::Seal => ClientCommand::Seal,
            Self::StepDown => ClientCommand::StepDown,
            Self::Rekey(args) => ClientCommand::Rekey(args),
            Self::GenerateRoot(args) => ClientCommand::GenerateRoot(args),
            Self::Rotate(args) => ClientCommand::Rotate(args),
            Self::KeyStatus(args) => ClientCommand::KeyStatus(args),
            Self::Migrate(args) => return Err(NotClient::Migrate(args)),
            Self::Diagnose(args) => return Err(NotClient::Diagnose(args)),
        })
    }
}

/// Rewrites Vault's single-dash long flags to clap's double dash: a token
/// `-NAME` or `-NAME=VALUE` whose NAME (two characters or more) is a long
/// flag of some command becomes `--NAME…`. Anything else is left as is, and
/// so is everything after `--`.
pub(super) fn double_dash_long_flags(
    args: impl IntoIterator<Item = OsString>,
    command: &clap::Command,
) -> Vec<OsString> {
    let mut longs = vec!["help".to_string(), "version".to_string()];
    collect_longs(command, &mut longs);
    let mut after_separator = false;
    args.into_iter()
        .map(|arg| {
            if after_separator {
                return arg;
            }
            let Some(text) = arg.to_str() else {
                return arg;
            };
            if text == "--" {
                after_separator = true;
                return arg;
            }
            let Some(flag) = text.strip_prefix('-').filter(|f| !f.starts_with('-')) else {
                return arg;
            };
            let name = flag.split_once('=').map_or(flag, |(name, _)| name);
            if name.len() >= 2 && longs.iter().any(|long| long == name) {
                OsString::from(format!("-{text}"))
            } else {
                arg
            }
        })
        .collect()
}

/// Every long flag of `command` and its subcommands (clap adds `help` and
/// `version` only when it builds the command, so the caller lists them).
fn collect_longs(command: &clap::Command, longs: &mut Vec<String>) {
    for arg in command.get_arguments() {
        longs.extend(
            arg.get_long_and_visible_aliases()
                .into_iter()
                .flatten()
                .map(str::to_string),
        );
    }
    for sub in command.get_subcommands() {
        collect_longs(sub, longs);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(args: &[&str]) -> Vec<String> {
        let command = clap::Command::new("t")
            .arg(clap::Arg::new("format").long("format"))
            .subcommand(clap::Command::new("kv").arg(clap::Arg::new("field").long("field")));
        double_dash_long_flags(args.iter().map(OsString::from), &command)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    #[test]
    fn single_dash_long_flags_get_a_second_dash() {
        assert_eq!(
            rewrite(&["t", "kv", "-field=password", "-format", "json", "-help"]),
            ["t", "kv", "--field=password", "--format", "json", "--help"]
        );
    }

    #[test]
    fn short_flags_unknown_names_values_and_the_rest_after_double_dash_stay() {
        assert_eq!(
            rewrite(&["t", "-h", "-x", "-fieldz", "-", "--format", "--", "-format"]),
            ["t", "-h", "-x", "-fieldz", "-", "--format", "--", "-format"]
        );
    }
}
