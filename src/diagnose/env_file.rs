//! The daemon's environment file: what the unit's `EnvironmentFile=` (by
//! default `/etc/strongroom/strongroom.env`) gives the daemon, read with
//! systemd's rules, so that diagnose checks with the daemon's settings and
//! AWS credentials rather than its own shell's. The command line applies
//! it (src/cli/diagnose.rs); the config area reports it, by name only: its
//! values may be credentials.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::Finding;

/// The file the packaged unit names.
pub const DEFAULT: &str = "/etc/strongroom/strongroom.env";
/// The most of a file read: an environment file is a few lines.
const MAX_SIZE: u64 = 64 * 1024;
const NAME: &str = "environment file";

/// An environment file's variables, in order.
pub struct EnvFile {
    /// `(name, value, line)`.
    pub vars: Vec<(String, String, usize)>,
    /// The lines systemd ignores (not `NAME=VALUE`).
    pub ignored: Vec<usize>,
}

/// Which file diagnose ran with, as the command line decided.
pub enum Applied {
    /// Its variables are in this process's environment.
    File(PathBuf),
    /// It could not be read, so nothing was applied: why.
    Unreadable(PathBuf, String),
    /// `--no-env-file`.
    Off,
    /// No file was named and the default does not exist.
    None,
}

/// Reads and parses `path`; the error is one sentence.
pub fn read(path: &Path) -> Result<EnvFile, String> {
    use std::io::Read;
    let file =
        std::fs::File::open(path).map_err(|e| format!("{} cannot be read: {e}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_SIZE + 1)
        .read_to_string(&mut text)
        .map_err(|e| format!("{} cannot be read as text: {e}", path.display()))?;
    if text.len() as u64 > MAX_SIZE {
        return Err(format!(
            "{} is over {} KiB, which no environment file needs",
            path.display(),
            MAX_SIZE / 1024
        ));
    }
    Ok(parse(&text))
}

/// systemd's reading of an environment file: `NAME=VALUE` lines, `#` and
/// `;` comments, a backslash at the end of a line joins the next, values
/// in single quotes literal, in double quotes with `\"`, `\\`, `\$` and
/// `` \` `` escapes, unquoted values trimmed.
pub fn parse(text: &str) -> EnvFile {
    let mut vars = Vec::new();
    let mut ignored = Vec::new();
    let mut lines = text.lines().enumerate();
    while let Some((index, first)) = lines.next() {
        let number = index + 1;
        let mut line = first.to_string();
        while line.ends_with('\\') && !line.ends_with("\\\\") {
            line.pop();
            match lines.next() {
                Some((_, next)) => line.push_str(next),
                None => break,
            }
        }
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        match trimmed.split_once('=') {
            Some((name, value)) if valid_name(name.trim_end()) => {
                vars.push((name.trim_end().to_string(), unquote(value), number));
            }
            _ => ignored.push(number),
        }
    }
    EnvFile { vars, ignored }
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A value as systemd reads it: quotes removed, escapes applied.
fn unquote(raw: &str) -> String {
    let raw = raw.trim();
    let mut value = String::new();
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => value.extend(chars.by_ref().take_while(|&c| c != '\'')),
            '"' => {
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => value.push(e),
                            Some(other) => {
                                value.push('\\');
                                value.push(other);
                            }
                            None => value.push('\\'),
                        },
                        c => value.push(c),
                    }
                }
            }
            '\\' => value.extend(chars.next()),
            c => value.push(c),
        }
    }
    value
}

/// The config area's finding on the file diagnose ran with.
pub fn check(applied: &Applied) -> Finding {
    match applied {
        Applied::Off => Finding::skipped(NAME, "not applied (--no-env-file)"),
        Applied::None => Finding::skipped(
            NAME,
            format!(
                "no {DEFAULT} (the unit's EnvironmentFile= is optional); the checks use this shell's environment"
            ),
        ),
        Applied::Unreadable(path, why) => Finding::warning(
            NAME,
            format!(
                "{why}: its variables were not applied, so the checks use this shell's environment, not the daemon's"
            ),
            format!("run diagnose as root, which can read {}", path.display()),
        ),
        Applied::File(path) => match read(path) {
            Err(why) => {
                Finding::failure(NAME, why, "make it readable by root, as systemd reads it")
            }
            Ok(file) => report(path, &file),
        },
    }
}

fn report(path: &Path, file: &EnvFile) -> Finding {
    let names: Vec<&str> = file.vars.iter().map(|(name, ..)| name.as_str()).collect();
    let set = if names.is_empty() {
        "sets nothing".to_string()
    } else {
        format!("sets {}", names.join(", "))
    };
    let said = format!(
        "{} {set}, applied over this shell's environment as systemd's EnvironmentFile= gives it to the daemon",
        path.display()
    );
    if let Some(line) = file.ignored.first() {
        return Finding::warning(
            NAME,
            format!(
                "{said}; line {line} is not NAME=VALUE, which systemd ignores ({} such line(s))",
                file.ignored.len()
            ),
            "write each setting as NAME=VALUE on its own line, or comment the line out with #",
        );
    }
    match std::fs::metadata(path) {
        Ok(meta) if meta.mode() & 0o077 != 0 && !names.is_empty() => Finding::warning(
            NAME,
            format!(
                "{said}; it is mode {:04o}, readable by others, and may hold credentials",
                meta.mode() & 0o7777
            ),
            format!("chmod 0600 {} (root reads it for systemd)", path.display()),
        ),
        _ => Finding::success(NAME, said),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_read_as_systemd_reads_them() {
        let file = parse(concat!(
            "# a comment\n",
            "; another\n",
            "\n",
            "AWS_REGION=eu-west-1\n",
            "  STRONGROOM_PG_CONNECTION_URL = \"postgres://a@b/c?x=1\"\n",
            "QUOTED='it''s'\n",
            "ESCAPED=\"a \\\"b\\\" \\$c\"\n",
            "JOINED=one\\\n",
            "two\n",
            "export NOT_A_NAME=1\n",
            "no equals sign\n",
            "1BAD=x\n",
        ));
        let vars: Vec<(&str, &str, usize)> = file
            .vars
            .iter()
            .map(|(n, v, l)| (n.as_str(), v.as_str(), *l))
            .collect();
        assert_eq!(
            vars,
            [
                ("AWS_REGION", "eu-west-1", 4),
                ("STRONGROOM_PG_CONNECTION_URL", "postgres://a@b/c?x=1", 5),
                ("QUOTED", "its", 6),
                ("ESCAPED", "a \"b\" $c", 7),
                ("JOINED", "onetwo", 8),
            ]
        );
        assert_eq!(file.ignored, [10, 11, 12]);
    }

    #[test]
    fn the_finding_names_variables_never_values_and_warns_on_bad_lines() {
        let file = parse("AWS_SECRET_ACCESS_KEY=hunter2-secret\nbroken line\n");
        let found = report(Path::new("/etc/strongroom/strongroom.env"), &file);
        assert_eq!(found.status, crate::diagnose::Status::Warning);
        assert!(
            found.message.contains("sets AWS_SECRET_ACCESS_KEY"),
            "{}",
            found.message
        );
        assert!(found.message.contains("line 2 is not NAME=VALUE"));
        assert!(!found.message.contains("hunter2"));
        assert_eq!(
            check(&Applied::Off).status,
            crate::diagnose::Status::Skipped
        );
    }
}
