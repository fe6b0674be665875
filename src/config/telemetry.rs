//! The top-level `telemetry` block, as Vault's: what `sys/metrics` serves.
//! Without the block, `sys/metrics` is off, as OpenBao 2.6.2 has it (its
//! retention defaults to 24 hours inside the block, zero without one).

use std::time::Duration;

/// How long Vault keeps a metric its sink has not seen updated; the
/// default inside a `telemetry` block.
pub const DEFAULT_PROMETHEUS_RETENTION: Duration = Duration::from_secs(24 * 3600);

/// The top-level `telemetry` block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Telemetry {
    /// `prometheus_retention_time`: zero turns `sys/metrics` off, as in
    /// Vault; any other value serves it (strongroom's series are
    /// cumulative and never expire, docs/DECISIONS.md).
    pub prometheus_retention_time: Duration,
    /// `disable_hostname`: accepted for Vault's configs; strongroom never
    /// prefixes metric names with the host's name.
    pub disable_hostname: bool,
    /// Line of the block, for messages; 0 without one.
    pub line: usize,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self {
            prometheus_retention_time: DEFAULT_PROMETHEUS_RETENTION,
            disable_hostname: false,
            line: 0,
        }
    }
}

impl Telemetry {
    /// No `telemetry` block: `sys/metrics` is off.
    pub fn absent() -> Self {
        Self {
            prometheus_retention_time: Duration::ZERO,
            ..Self::default()
        }
    }

    /// Whether `sys/metrics?format=prometheus` is served.
    pub fn prometheus_enabled(&self) -> bool {
        !self.prometheus_retention_time.is_zero()
    }
}
