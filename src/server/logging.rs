//! Logging to stderr (journald picks it up), text or JSON, with a level that
//! SIGHUP can change.

use std::io::IsTerminal;

use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{Registry, fmt, reload};

use crate::config::{LogFormat, LogLevel};

/// Changes the log level of the running daemon.
#[derive(Clone)]
pub struct LogLevelHandle(reload::Handle<LevelFilter, Registry>);

impl LogLevelHandle {
    /// Applies `level` to every later event.
    pub fn set(&self, level: LogLevel) {
        if let Err(e) = self.0.reload(filter(level)) {
            tracing::warn!(error = %e, "could not change the log level");
        }
    }
}

fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Trace => LevelFilter::TRACE,
        LogLevel::Debug => LevelFilter::DEBUG,
        LogLevel::Info => LevelFilter::INFO,
        LogLevel::Warn => LevelFilter::WARN,
        LogLevel::Error => LevelFilter::ERROR,
    }
}

/// Installs the global subscriber. Call once, before anything logs.
pub fn init(level: LogLevel, format: LogFormat) -> LogLevelHandle {
    let (level_layer, handle) = reload::Layer::new(filter(level));
    let registry = tracing_subscriber::registry().with(level_layer);
    // Another subscriber may already be installed (tests); keep it then.
    let _ = match format {
        LogFormat::Text => registry
            .with(
                fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_target(false)
                    // Colour only on a terminal: journald and files get plain text.
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt::layer()
                    .json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_writer(std::io::stderr),
            )
            .try_init(),
    };
    LogLevelHandle(handle)
}
