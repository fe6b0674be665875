//! What the commands read besides their arguments: keys typed at a hidden
//! prompt or piped in, and recipients lists.

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use super::CliError;

/// Reads a key without echo from a terminal (asking with `prompt`), or one
/// line from piped stdin.
pub(super) fn read_key(prompt: &str) -> Result<Zeroizing<String>, CliError> {
    let stdin = std::io::stdin();
    let key = if stdin.is_terminal() {
        rpassword::prompt_password(format!("{prompt} (will be hidden): "))
            .map_err(|e| CliError::Failed(format!("cannot read the key from the terminal: {e}")))?
    } else {
        let mut line = String::new();
        stdin
            .lock()
            .read_line(&mut line)
            .map_err(|e| CliError::Failed(format!("cannot read the key from stdin: {e}")))?;
        line
    };
    Ok(Zeroizing::new(key))
}

/// Recipients from `--recipients`: a file of them, one per line (blank lines
/// and `#` comments skipped), or a comma-separated list.
pub(super) fn read_recipients(arg: Option<&str>) -> Result<Vec<String>, CliError> {
    let Some(arg) = arg else {
        return Ok(Vec::new());
    };
    let path = std::path::Path::new(arg);
    let text = if path.is_file() {
        std::fs::read_to_string(path)
            .map_err(|e| CliError::Usage(format!("cannot read the recipients file {arg}: {e}")))?
    } else {
        arg.replace(',', "\n")
    };
    let list: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_string)
        .collect();
    if list.is_empty() {
        return Err(CliError::Usage(format!(
            "--recipients {arg:?} names no recipient"
        )));
    }
    Ok(list)
}
