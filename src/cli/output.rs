//! How the commands print: `bao`'s key/value tables and JSON, and every
//! write to stdout and stderr.
//!
//! `println!` panics when the reader went away (`strongroom status | head
//! -1`). Every command prints through [`outln!`] and [`out!`] instead: a
//! closed pipe is remembered and printing goes quiet, so the command ends
//! with the exit code it had and no message.

use std::fmt::Arguments;
use std::io::{ErrorKind, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use super::CliError;

/// Set once a write to stdout found the reader gone.
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Set once a write to stdout failed for another reason (a full disk).
static STDOUT_FAILED: AtomicBool = AtomicBool::new(false);

/// Writes formatted text to stdout; see [`write_out`].
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!($($arg)*))
    };
}

/// Writes a line to stdout; see [`write_out`].
macro_rules! outln {
    () => {
        $crate::cli::output::write_out(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::cli::output::write_out(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// Writes a line to stderr, never panicking.
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::cli::output::write_err(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};

/// Writes to stdout. After the reader has gone (EPIPE) nothing more is
/// written and nothing is said; the command carries on to its exit code.
pub fn write_out(text: Arguments<'_>) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_fmt(text).and_then(|()| stdout.flush()) {
        note_failure(&e);
    }
}

/// Writes bytes to stdout as they are (a decrypted plaintext), as
/// [`write_out`] does.
pub fn write_bytes(bytes: &[u8]) {
    if STDOUT_CLOSED.load(Ordering::Relaxed) {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.write_all(bytes).and_then(|()| stdout.flush()) {
        note_failure(&e);
    }
}

fn note_failure(e: &std::io::Error) {
    if e.kind() == ErrorKind::BrokenPipe {
        STDOUT_CLOSED.store(true, Ordering::Relaxed);
    } else if !STDOUT_FAILED.swap(true, Ordering::Relaxed) {
        write_err(format_args!("error: cannot write to stdout: {e}\n"));
    }
}

/// Writes to stderr; a closed stderr is ignored (there is nobody to tell).
pub fn write_err(text: Arguments<'_>) {
    let _ = std::io::stderr().lock().write_fmt(text);
}

/// Whether everything printed so far reached stdout: false once the reader
/// went away or a write failed. Init and rekey confirm new keys only if so.
pub fn delivered() -> bool {
    !STDOUT_CLOSED.load(Ordering::Relaxed) && !STDOUT_FAILED.load(Ordering::Relaxed)
}

/// The exit code once output is flushed: `code`, or 1 if stdout failed for
/// another reason than a closed pipe (the reason was said on stderr).
pub fn exit_code(code: u8) -> u8 {
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout.flush() {
        note_failure(&e);
    }
    if STDOUT_FAILED.load(Ordering::Relaxed) && code == super::EXIT_OK {
        super::EXIT_ERROR
    } else {
        code
    }
}

/// Prints `value` as pretty JSON.
pub(super) fn print_json(value: &impl Serialize) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::Failed(format!("cannot format JSON: {e}")))?;
    outln!("{text}");
    Ok(())
}

/// Prints rows as `bao` does: a Key and a Value column.
pub(super) fn print_table(rows: &[(&str, String)]) {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(3).max(3);
    outln!("{:width$}    Value", "Key");
    outln!("{:width$}    -----", "---");
    for (key, value) in rows {
        outln!("{key:width$}    {value}");
    }
}
