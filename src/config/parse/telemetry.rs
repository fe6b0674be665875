//! `telemetry` blocks, as Vault's: the top-level one (what `sys/metrics`
//! serves) and a listener's (whether it serves `sys/metrics` without a
//! token).

use hcl_edit::Span;
use hcl_edit::structure::Block;

use super::Ctx;
use super::values::as_duration;
use super::words::qualified;
use crate::config::Telemetry;

impl Ctx<'_> {
    /// The top-level `telemetry { prometheus_retention_time, disable_hostname }`.
    pub(super) fn telemetry(&mut self, block: &Block, line: usize) -> Option<Telemetry> {
        let name = "telemetry";
        if !block.labels.is_empty() {
            self.error(
                line,
                name,
                "the telemetry block takes no label: telemetry { … }",
            );
            return None;
        }
        let keys = ["prometheus_retention_time", "disable_hostname"];
        let (section, _) = self.section(&block.body, name, &keys, &[]);
        let errors_before = self.errors.len();
        let mut telemetry = Telemetry {
            line,
            ..Telemetry::default()
        };
        if let Some((retention, _)) = self.value(&section, "prometheus_retention_time", as_duration)
        {
            telemetry.prometheus_retention_time = retention;
        }
        if let Some((disable, _)) = self.boolean(&section, "disable_hostname") {
            telemetry.disable_hostname = disable;
        }
        (self.errors.len() == errors_before).then_some(telemetry)
    }

    /// A listener's `telemetry { unauthenticated_metrics_access }` blocks
    /// (at most one): whether it serves `sys/metrics` without a token.
    pub(super) fn listener_telemetry(&mut self, blocks: &[&Block], listener: &str) -> bool {
        let name = qualified(listener, "telemetry");
        let mut blocks = blocks.iter().filter(|b| b.ident.as_str() == "telemetry");
        let Some(block) = blocks.next() else {
            return false;
        };
        let line = self.line(block.span());
        if let Some(second) = blocks.next() {
            let at = self.line(second.span());
            self.error(
                at,
                name.clone(),
                format!("only one telemetry block is allowed in a listener (the first is on line {line})"),
            );
        }
        if !block.labels.is_empty() {
            self.error(line, name, "takes no label: telemetry { … }");
            return false;
        }
        let (section, _) =
            self.section(&block.body, &name, &["unauthenticated_metrics_access"], &[]);
        self.boolean(&section, "unauthenticated_metrics_access")
            .is_some_and(|(open, _)| open)
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;
    use std::time::Duration;

    use super::super::{MINIMAL, errors, parse};

    #[test]
    fn the_telemetry_blocks_read_as_vaults() {
        // Without a block, off (OpenBao's default); with one, on.
        let config = parse(MINIMAL, Path::new("t.hcl")).unwrap();
        assert!(!config.telemetry.prometheus_enabled());
        let hcl = format!("{MINIMAL}telemetry {{\n  disable_hostname = true\n}}\n");
        assert!(
            parse(&hcl, Path::new("t.hcl"))
                .unwrap()
                .telemetry
                .prometheus_enabled()
        );
        assert!(!config.listeners[0].unauthenticated_metrics_access());

        let hcl = "storage \"inmem\" {}\ntelemetry {\n  prometheus_retention_time = \"0\"\n  disable_hostname = true\n}\nlistener \"tcp\" {\n  telemetry {\n    unauthenticated_metrics_access = true\n  }\n}\nlistener \"unix\" {\n  path = \"/tmp/m.sock\"\n}\n";
        let config = parse(hcl, Path::new("t.hcl")).unwrap();
        assert_eq!(config.telemetry.prometheus_retention_time, Duration::ZERO);
        assert!(!config.telemetry.prometheus_enabled());
        assert!(config.telemetry.disable_hostname);
        let open: Vec<bool> = config
            .listeners
            .iter()
            .map(|l| l.unauthenticated_metrics_access())
            .collect();
        assert_eq!(open, [true, false]);
    }

    #[test]
    fn a_bad_telemetry_block_is_named_with_its_line() {
        let bad = "storage \"inmem\" {}\nlistener \"tcp\" {}\ntelemetry {\n  statsd_address = \"x\"\n  prometheus_retention_time = \"soon\"\n}\n";
        let found = errors(bad);
        assert!(
            found
                .iter()
                .any(|e| e.contains(":4") && e.contains("telemetry.statsd_address")),
            "{found:?}"
        );
        assert!(
            found
                .iter()
                .any(|e| e.contains(":5") && e.contains("prometheus_retention_time")),
            "{found:?}"
        );
        let bad = "storage \"inmem\" {}\nlistener \"tcp\" {\n  telemetry {\n    unauthenticated_metrics_access = \"maybe\"\n  }\n}\n";
        let found = errors(bad);
        assert!(
            found
                .iter()
                .any(|e| e.contains(":4") && e.contains("unauthenticated_metrics_access")),
            "{found:?}"
        );
        let twice = "storage \"inmem\" {}\nlistener \"tcp\" {}\ntelemetry {}\ntelemetry {}\n";
        let found = errors(twice);
        assert!(
            found
                .iter()
                .any(|e| e.contains(":4") && e.contains("only one telemetry")),
            "{found:?}"
        );
    }
}
