//! Config errors: each names the file and line (or the environment
//! variable), the key, and what is wrong, in one sentence.

use std::borrow::Cow;
use std::fmt;
use std::path::PathBuf;

/// Where a config error is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A line of a file.
    File {
        /// The file.
        path: PathBuf,
        /// One-based line.
        line: usize,
    },
    /// An environment variable.
    Env(Cow<'static, str>),
}

/// One problem in the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Where it is.
    pub location: Location,
    /// The key (`listener.tcp.address`), or the block.
    pub key: String,
    /// What is wrong, as one sentence.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.location {
            Location::File { path, line: 0 } => write!(f, "{}: {}", path.display(), self.message),
            Location::File { path, line } => {
                write!(
                    f,
                    "{}:{line}: {}: {}",
                    path.display(),
                    self.key,
                    self.message
                )
            }
            Location::Env(var) => write!(f, "{var}: {}", self.message),
        }
    }
}

/// At most this many errors are printed; the rest are counted.
pub const SHOWN_ERRORS: usize = 50;

/// Every problem found, so an operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// The first [`SHOWN_ERRORS`], then "and N more": a generated file with
    /// thousands of bad keys must not flood the terminal or the journal.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().take(SHOWN_ERRORS).enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        if let Some(more) = self.0.len().checked_sub(SHOWN_ERRORS).filter(|n| *n > 0) {
            let noun = if more == 1 { "error" } else { "errors" };
            write!(f, "\nand {more} more {noun}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(n: usize) -> ConfigErrors {
        ConfigErrors(
            (1..=n)
                .map(|line| ConfigError {
                    location: Location::File {
                        path: "t.hcl".into(),
                        line,
                    },
                    key: format!("k{line}"),
                    message: "unknown key".into(),
                })
                .collect(),
        )
    }

    #[test]
    fn only_the_first_fifty_errors_are_printed() {
        let text = errors(200_000).to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), SHOWN_ERRORS + 1);
        assert_eq!(lines[49], "t.hcl:50: k50: unknown key");
        assert_eq!(lines[50], "and 199950 more errors");
        assert_eq!(errors(50).to_string().lines().count(), 50);
        assert!(errors(51).to_string().ends_with("\nand 1 more error"));
    }
}
