//! How the commands print: `bao`'s key/value tables and JSON.

use serde::Serialize;

use super::CliError;

/// Prints `value` as pretty JSON.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot format JSON: {e}")))?;
    println!("{text}");
    Ok(())
}

/// Prints rows as `bao` does: a Key and a Value column.
pub(super) fn print_table(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    println!("{:width$}    Value", "Key");
    println!("{:width$}    -----", "---");
    for (key, value) in rows {
        println!("{key:width$}    {value}");
    }
}
