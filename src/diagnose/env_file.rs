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

/// systemd's reading of an environment file (its `parse_env_file`
/// state machine): `#` and `;` lines are comments; `NAME=VALUE`; an
/// unquoted value is trimmed, a backslash escapes the next character (a
/// newline: the value goes on); a quote opens a quoted part only where a
/// value starts or right after a closing quote (elsewhere it is a
/// character), single quotes literal, double quotes with `\"`, `\\`,
/// `` \` `` and `\$` escapes; quoted parts may span lines. A line
/// without `=`, or whose name is not a variable name, is ignored.
pub fn parse(text: &str) -> EnvFile {
    #[derive(Clone, Copy, PartialEq)]
    enum State {
        PreKey,
        Key,
        PreValue,
        Value,
        ValueEscape,
        Single,
        Double,
        DoubleEscape,
        Comment,
    }
    let (mut key, mut value) = (String::new(), String::new());
    // The value's length up to its last character that is not trailing
    // whitespace of an unquoted part.
    let mut kept = 0;
    let (mut line, mut key_line) = (1, 1);
    let mut state = State::PreKey;
    // The assignment that ended at `at`'s line: kept, or ignored.
    let finish = |file: &mut EnvFile, key: &mut String, value: &mut String, kept: usize, at| {
        let name = key.trim_end();
        value.truncate(kept);
        if valid_name(name) {
            file.vars
                .push((name.to_string(), std::mem::take(value), at));
        } else {
            file.ignored.push(at);
        }
        key.clear();
        value.clear();
    };
    let mut file = EnvFile {
        vars: Vec::new(),
        ignored: Vec::new(),
    };
    for c in text.chars() {
        let newline = c == '\n' || c == '\r';
        state = match state {
            State::PreKey if c == '#' || c == ';' => State::Comment,
            State::PreKey if c.is_whitespace() => State::PreKey,
            State::PreKey => {
                key_line = line;
                key.push(c);
                State::Key
            }
            State::Key if newline => {
                file.ignored.push(key_line);
                key.clear();
                State::PreKey
            }
            State::Key if c == '=' => State::PreValue,
            State::Key => {
                key.push(c);
                State::Key
            }
            State::PreValue | State::Value if newline => {
                finish(&mut file, &mut key, &mut value, kept, key_line);
                kept = 0;
                State::PreKey
            }
            State::PreValue if c == '\'' => State::Single,
            State::PreValue if c == '"' => State::Double,
            State::PreValue | State::Value if c == '\\' => State::ValueEscape,
            State::PreValue if c.is_whitespace() => State::PreValue,
            State::PreValue | State::Value => {
                value.push(c);
                if !c.is_whitespace() {
                    kept = value.len();
                }
                State::Value
            }
            State::ValueEscape => {
                if !newline {
                    value.push(c);
                    kept = value.len();
                }
                State::Value
            }
            State::Single if c == '\'' => State::PreValue,
            State::Single => {
                value.push(c);
                kept = value.len();
                State::Single
            }
            State::Double if c == '"' => State::PreValue,
            State::Double if c == '\\' => State::DoubleEscape,
            State::Double => {
                value.push(c);
                kept = value.len();
                State::Double
            }
            State::DoubleEscape => {
                if matches!(c, '"' | '\\' | '`' | '$') {
                    value.push(c);
                } else if c != '\n' {
                    value.push('\\');
                    value.push(c);
                }
                kept = value.len();
                State::Double
            }
            State::Comment if newline => State::PreKey,
            State::Comment => State::Comment,
        };
        if c == '\n' {
            line += 1;
        }
    }
    match state {
        State::PreKey | State::Comment => {}
        State::Key => file.ignored.push(key_line),
        _ => finish(&mut file, &mut key, &mut value, kept, key_line),
    }
    file
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// What the daemon reads from its environment besides the configuration's
/// variables: the AWS SDK's settings and credentials.
const AWS_VARIABLES: &[&str] = &[
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_KMS",
    "AWS_SHARED_CREDENTIALS_FILE",
    "AWS_CONFIG_FILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
];

/// Of the variables set in this process (`present`), those the daemon
/// would read (the AWS SDK's, the configuration's) that the file (`in_file`)
/// does not set: the shell's own, which a unit does not pass on.
fn shell_only(in_file: &[&str], present: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut found: Vec<String> = present
        .into_iter()
        .filter(|name| {
            let read =
                AWS_VARIABLES.contains(&name.as_str()) || crate::config::reads_variable(name);
            read && !in_file.contains(&name.as_str())
        })
        .collect();
    found.sort();
    found.dedup();
    found
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
            if nix::unistd::geteuid().is_root() {
                "make it the short text file of NAME=VALUE lines systemd reads".to_string()
            } else {
                format!("run diagnose as root, which can read {}", path.display())
            },
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
    // Every problem, each with its advice, in one warning.
    let mut problems = Vec::new();
    let mut advice = Vec::new();
    if let Some(line) = file.ignored.first() {
        problems.push(format!(
            "line {line} is not NAME=VALUE, which systemd ignores ({} such line(s))",
            file.ignored.len()
        ));
        advice.push(
            "write each setting as NAME=VALUE on its own line, or comment the line out with #"
                .to_string(),
        );
    }
    let present = std::env::vars_os().filter_map(|(name, _)| name.into_string().ok());
    let from_shell = shell_only(&names, present);
    if !from_shell.is_empty() {
        problems.push(format!(
            "this shell also sets {}, which the daemon will not have, and the checks used",
            from_shell.join(", ")
        ));
        advice.push(
            "put what the daemon needs in the file (or the unit's Environment=), or unset it here and run diagnose again"
                .to_string(),
        );
    }
    if let Ok(meta) = std::fs::metadata(path)
        && meta.mode() & 0o077 != 0
        && !names.is_empty()
    {
        problems.push(format!(
            "it is mode {:04o}, readable by others, and may hold credentials",
            meta.mode() & 0o7777
        ));
        advice.push(format!(
            "chmod 0600 {} (root reads it for systemd)",
            path.display()
        ));
    }
    if problems.is_empty() {
        Finding::success(NAME, said)
    } else {
        Finding::warning(
            NAME,
            format!("{said}; {}", problems.join("; ")),
            advice.join("; "),
        )
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
            "INNER=ab'cd\"ef  \n",
            "SPANS='first\n",
            "second'\n",
            "EMPTY=\n",
            "LAST=x",
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
                ("INNER", "ab'cd\"ef", 13),
                ("SPANS", "first\nsecond", 14),
                ("EMPTY", "", 16),
                ("LAST", "x", 17),
            ]
        );
        assert_eq!(file.ignored, [10, 11, 12]);
    }

    #[test]
    fn the_shells_own_variables_are_the_ones_the_daemon_reads_and_the_file_lacks() {
        let present = [
            "AWS_PROFILE",
            "AWS_REGION",
            "HOME",
            "STRONGROOM_LOG_LEVEL",
            "STRONGROOM_DIAGNOSE_ENV_FILE_APPLIED",
            "STRONGROOM_AWSKMS_KEY_ID_OSAKA",
            "STRONGROOM_AWSKMS_KEY_IDX",
        ]
        .map(String::from);
        assert_eq!(
            shell_only(&["AWS_REGION"], present),
            [
                "AWS_PROFILE",
                "STRONGROOM_AWSKMS_KEY_ID_OSAKA",
                "STRONGROOM_LOG_LEVEL"
            ]
        );
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
