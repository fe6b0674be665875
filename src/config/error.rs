//! Config errors: each names the file and line (or the environment
//! variable), the key, and what is wrong, in one sentence.

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
    Env(&'static str),
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

/// Every problem found, so an operator fixes them in one pass.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}
