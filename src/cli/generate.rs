//! `strongroom generate man [--dir DIR]|completions SHELL` (hidden):
//! strongroom(1), a page per command (strongroom-unseal(1), …) and the
//! shell completions, made from the command line itself, so they cannot
//! drift from it. `scripts/package-deb` runs the binary it packages.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use clap_complete::Shell;

use super::output::{self, write_bytes};
use super::{CliError, EXIT_OK};

/// What `generate` prints on stdout.
#[derive(Subcommand)]
pub(super) enum GenerateCommand {
    /// strongroom(1) as roff on stdout, or with --dir every page.
    Man {
        /// Write strongroom.1 and a page per command (strongroom-unseal.1,
        /// …) into this existing directory instead.
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
    /// The completion script for SHELL.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: Shell,
    },
}

/// The sections clap does not know: exit codes, files and where to read on.
/// Roff, appended after the generated options and commands.
const MAN_SECTIONS: &str = r#".SH "EXIT STATUS"
.TP
\fB0\fR
Success (for \fBunseal\fR, the key was accepted even if the daemon is still sealed; for \fBdiagnose\fR, no check failed).
.TP
\fB1\fR
The command failed (for \fBdiagnose\fR, a check failed).
.TP
\fB2\fR
\fBstatus\fR found the daemon sealed or uninitialized.
.TP
\fB64\fR
Bad usage or a configuration error; \fBserver\fR exits with it too, and the systemd unit does not restart after it.
.SH FILES
.TP
\fI/etc/strongroom/strongroom.hcl\fR
The daemon's configuration (\fBserver \-\-config\fR, \fBdiagnose \-\-config\fR).
.TP
\fI/etc/strongroom/strongroom.env\fR
Environment of the systemd unit (EnvironmentFile=), such as AWS_REGION or AWS credentials for the awskms seal; mode 0600.
.TP
\fI/var/lib/strongroom\fR
The store (storage "file"); kept when the package is removed or purged.
.TP
\fI/run/strongroom/strongroom.sock\fR
The packaged configuration's unix socket, for the CLI and sidecars on the host.
.SH "SEE ALSO"
\fBsystemctl\fR(1), \fBsystemd.exec\fR(5), \fBsystemd\-sysusers\fR(8);
/usr/share/doc/strongroom/README.md.gz, the configuration reference.
"#;

/// Prints what was asked for.
pub(super) fn run(command: GenerateCommand, cli: clap::Command) -> ExitCode {
    // Pages are made for commands, not for `help`.
    let mut cli = cli.disable_help_subcommand(true);
    let mut text = Vec::new();
    match command {
        GenerateCommand::Man { dir } => {
            let date = match page_date() {
                Ok(date) => date,
                Err(e) => return e.exit(),
            };
            let written = match &dir {
                Some(dir) => man_pages(cli, dir, &date),
                None => man_page(cli, &mut text, &date),
            };
            if let Err(e) = written {
                let place = dir.map(|d| format!(" into {}", d.display()));
                return CliError::Failed(format!(
                    "cannot write the man pages{}: {e}",
                    place.unwrap_or_default()
                ))
                .exit();
            }
        }
        GenerateCommand::Completions { shell } => {
            clap_complete::generate(shell, &mut cli, "strongroom", &mut text);
        }
    }
    write_bytes(&text);
    ExitCode::from(output::exit_code(EXIT_OK))
}

/// Every visible command's page (strongroom-kv-get.1, …), then
/// strongroom.1 with the sections clap does not know.
fn man_pages(cli: clap::Command, dir: &Path, date: &str) -> std::io::Result<()> {
    fn write_pages(command: &clap::Command, dir: &Path, date: &str) -> std::io::Result<()> {
        for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
            write_pages(sub, dir, date)?;
            let man = page(sub.clone(), date);
            let mut text = Vec::new();
            man.render(&mut text)?;
            std::fs::write(dir.join(man.get_filename()), text)?;
        }
        Ok(())
    }
    let mut cli = cli;
    // Display names (strongroom-kv-get) are set by the build.
    cli.build();
    write_pages(&cli, dir, date)?;
    let mut text = Vec::new();
    man_page(cli, &mut text, date)?;
    std::fs::write(dir.join("strongroom.1"), text)
}

/// The page of `command`, with the date and source every page shows.
fn page(command: clap::Command, date: &str) -> clap_mangen::Man {
    let source = format!("strongroom {}", env!("CARGO_PKG_VERSION"));
    clap_mangen::Man::new(command)
        .date(date)
        .source(source)
        .manual("strongroom manual")
}

fn man_page(cli: clap::Command, out: &mut Vec<u8>, date: &str) -> std::io::Result<()> {
    let man = page(cli, date);
    man.render_title(out)?;
    man.render_name_section(out)?;
    man.render_synopsis_section(out)?;
    man.render_description_section(out)?;
    man.render_options_section(out)?;
    man.render_subcommands_section(out)?;
    out.extend_from_slice(MAN_SECTIONS.as_bytes());
    man.render_version_section(out)?;
    Ok(())
}

/// The pages' date, `YYYY-MM-DD`: SOURCE_DATE_EPOCH's (reproducible
/// builds' convention; the package script sets it) or today's.
fn page_date() -> Result<String, CliError> {
    let seconds = match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(value) => value.trim().parse::<u64>().map_err(|_| {
            CliError::Usage(format!(
                "SOURCE_DATE_EPOCH must be seconds since 1970, not {}",
                crate::text::quote(&value)
            ))
        })?,
        Err(_) => crate::time::now_unix(),
    };
    let mut date = crate::time::format_unix(seconds);
    date.truncate(10);
    Ok(date)
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_man_page_names_every_visible_command_and_not_this_one() {
        let mut page = Vec::new();
        let cli = super::super::Cli::command().disable_help_subcommand(true);
        man_page(cli, &mut page, "2026-12-06").unwrap();
        let page = String::from_utf8(page).unwrap();
        // Every .TH argument in its place: date, source, manual.
        let title = page.lines().find(|l| l.starts_with(".TH ")).unwrap();
        assert_eq!(
            title,
            r#".TH strongroom 1 2026-12-06 "strongroom 0.1.0" "strongroom manual""#
        );
        for section in ["SYNOPSIS", "OPTIONS", "SUBCOMMANDS", "EXIT STATUS", "FILES"] {
            assert!(page.contains(section), "no {section} in the man page");
        }
        for command in ["server", "diagnose", "unseal", "keymgmt"] {
            assert!(
                page.contains(&format!("strongroom\\-{command}(1)")),
                "{command}"
            );
        }
        for hidden in ["generate", "help"] {
            let name = format!("strongroom\\-{hidden}(1)");
            assert!(!page.contains(&name), "{hidden} is listed");
        }
    }

    #[test]
    fn completions_know_the_commands() {
        for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
            let mut text = Vec::new();
            clap_complete::generate(
                shell,
                &mut super::super::Cli::command(),
                "strongroom",
                &mut text,
            );
            let text = String::from_utf8(text).unwrap();
            assert!(
                text.contains("unseal") && text.contains("diagnose"),
                "{shell}"
            );
        }
    }
}
