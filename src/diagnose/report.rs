//! What diagnose found, printed as Vault's `operator diagnose` prints it
//! (`[ success ] name: sentence`, children indented, advice under a warning
//! or failure) or as JSON.

use serde::Serialize;

use super::finding::{Finding, Status};

/// Every area's finding.
#[derive(Debug, Serialize)]
pub struct Report {
    /// The worst status of all.
    pub status: Status,
    /// One finding per area, in order.
    pub findings: Vec<Finding>,
    /// The configuration's errors, as `server --check` prints them, when
    /// it did not parse (exit 64).
    #[serde(skip)]
    pub config_errors: Option<String>,
}

impl Report {
    /// The report of `findings`.
    pub fn new(findings: Vec<Finding>) -> Self {
        let status = findings
            .iter()
            .map(Finding::worst)
            .max()
            .unwrap_or(Status::Success);
        Self {
            status,
            findings,
            config_errors: None,
        }
    }

    /// The names in `skip` that no finding of this report carries: a
    /// misspelt area or check, which skipped nothing.
    pub fn unmatched<'a>(&self, skip: &'a [String]) -> Vec<&'a str> {
        fn carries(findings: &[Finding], name: &str) -> bool {
            findings
                .iter()
                .any(|f| f.name.eq_ignore_ascii_case(name) || carries(&f.children, name))
        }
        skip.iter()
            .map(String::as_str)
            .filter(|name| !carries(&self.findings, name))
            .collect()
    }

    /// Whether a check failed (exit 1).
    pub fn failed(&self) -> bool {
        self.status == Status::Failure
    }

    /// The findings as text, one line per check.
    pub fn table(&self) -> String {
        let mut out = String::new();
        for finding in &self.findings {
            write_finding(&mut out, finding, 0);
        }
        out
    }

    /// The findings as JSON.
    pub fn json(&self) -> String {
        // Strings, enums and vectors always serialise.
        serde_json::to_string_pretty(self).unwrap_or_default()
    }
}

fn write_finding(out: &mut String, finding: &Finding, depth: usize) {
    let indent = "  ".repeat(depth);
    let word = finding.status.word();
    if finding.message.is_empty() {
        out.push_str(&format!("{indent}[ {word} ] {}\n", finding.name));
    } else {
        out.push_str(&format!(
            "{indent}[ {word} ] {}: {}\n",
            finding.name, finding.message
        ));
    }
    if let Some(advice) = &finding.advice {
        out.push_str(&format!("{indent}    advice: {advice}\n"));
    }
    for child in &finding.children {
        write_finding(out, child, depth + 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn findings_print_nested_with_their_advice() {
        let report = Report::new(vec![
            Finding::heading(
                "storage",
                "",
                vec![Finding::failure(
                    "data directory",
                    "/var/lib/strongroom does not exist",
                    "create it, owned by strongroom, mode 0700",
                )],
            ),
            Finding::success("process", "core dumps are off"),
        ]);
        assert!(report.failed());
        assert_eq!(
            report.table(),
            "[ failure ] storage\n  [ failure ] data directory: /var/lib/strongroom does not exist\n      advice: create it, owned by strongroom, mode 0700\n[ success ] process: core dumps are off\n"
        );
        let json: serde_json::Value = serde_json::from_str(&report.json()).unwrap();
        assert_eq!(json["status"], "failure");
        assert_eq!(json["findings"][0]["children"][0]["status"], "failure");
        assert_eq!(json["findings"][1]["status"], "success");
    }
}
