//! What the commands read besides their arguments: keys typed at a hidden
//! prompt or piped in, and recipients lists.

use std::io::{BufRead, IsTerminal, Read};

use serde_json::{Map, Value};
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

/// The fields of `kv put`, as Vault reads them: `NAME=VALUE`, `NAME=@FILE`
/// (the value is the file's content, as is, a string), `@FILE.json` (a JSON
/// object of fields, each value kept as it is typed there) and `-` (the
/// same on stdin). Later fields replace earlier ones.
pub(super) fn read_fields(args: Vec<String>) -> Result<Map<String, Value>, CliError> {
    let mut fields = Map::new();
    for arg in args {
        let arg = Zeroizing::new(arg);
        if arg.as_str() == "-" {
            let mut text = Zeroizing::new(String::new());
            std::io::stdin().read_to_string(&mut text).map_err(|e| {
                CliError::Usage(format!("cannot read the JSON fields from stdin: {e}"))
            })?;
            fields.extend(json_fields(&text, "stdin")?);
        } else if let Some(file) = arg.strip_prefix('@') {
            let text = Zeroizing::new(std::fs::read_to_string(file).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read the JSON fields from {}: {e}",
                    quoted(file)
                ))
            })?);
            fields.extend(json_fields(&text, &quoted(file))?);
        } else if let Some((name, value)) = arg.split_once('=') {
            let value = match value.strip_prefix('@') {
                Some(file) => std::fs::read_to_string(file).map_err(|e| {
                    CliError::Usage(format!(
                        "cannot read the value of {} from {}: {e}",
                        quoted(name),
                        quoted(file)
                    ))
                })?,
                None => value.to_string(),
            };
            fields.insert(name.to_string(), Value::String(value));
        } else {
            // The field may be a value typed without its name: not repeated.
            return Err(CliError::Usage(
                "each field must be NAME=VALUE, NAME=@FILE, @FILE.json or -".into(),
            ));
        }
    }
    Ok(fields)
}

/// A JSON object's fields, their values as typed (numbers, objects, lists
/// stay JSON, as Vault's CLI sends them).
fn json_fields(text: &str, source: &str) -> Result<Map<String, Value>, CliError> {
    // serde_json's message gives the line and column, never the text.
    let value: Value = serde_json::from_str(text)
        .map_err(|e| CliError::Usage(format!("{source} is not valid JSON: {e}")))?;
    let Value::Object(object) = value else {
        return Err(CliError::Usage(format!(
            "{source} must hold a JSON object of fields, such as {{\"password\": \"…\"}}"
        )));
    };
    Ok(object)
}

/// A name or path from the command line, quoted and cut to a bounded length
/// for an error sentence.
pub(super) fn quoted(text: &str) -> String {
    const MAX: usize = 80;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{:?}…", &text[..cut]),
        None => format!("{text:?}"),
    }
}
