//! One check's result, and a heading's: the worst of its children.

use serde::Serialize;

/// How a check came out, from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Not run: skipped on request, or it needs what is missing.
    Skipped,
    /// Fine.
    Success,
    /// The daemon would run, but something deserves a look.
    Warning,
    /// The daemon would not run, or not as configured.
    Failure,
}

impl Status {
    /// The word printed between brackets.
    pub fn word(self) -> &'static str {
        match self {
            Status::Skipped => "skipped",
            Status::Success => "success",
            Status::Warning => "warning",
            Status::Failure => "failure",
        }
    }
}

/// One check, or a heading over several.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The check's name (`--skip` takes it).
    pub name: String,
    /// How it came out; a heading's is the worst of its children's.
    pub status: Status,
    /// One sentence: what was found.
    pub message: String,
    /// What to do about a warning or failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub advice: Option<String>,
    /// The checks under a heading.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub children: Vec<Finding>,
}

impl Finding {
    fn new(name: &str, status: Status, message: impl Into<String>) -> Self {
        Self {
            name: name.to_string(),
            status,
            message: message.into(),
            advice: None,
            children: Vec::new(),
        }
    }

    /// A check that passed.
    pub fn success(name: &str, message: impl Into<String>) -> Self {
        Self::new(name, Status::Success, message)
    }

    /// A check that found something to look at; `advice` says what to do.
    pub fn warning(name: &str, message: impl Into<String>, advice: impl Into<String>) -> Self {
        Self::new(name, Status::Warning, message).advise(advice)
    }

    /// A check that failed; `advice` says how to fix it.
    pub fn failure(name: &str, message: impl Into<String>, advice: impl Into<String>) -> Self {
        Self::new(name, Status::Failure, message).advise(advice)
    }

    /// A check not run, and why.
    pub fn skipped(name: &str, reason: impl Into<String>) -> Self {
        Self::new(name, Status::Skipped, reason)
    }

    /// A heading over `children`: the worst of their statuses (success
    /// when none ran), and `message` said of the whole.
    pub fn heading(name: &str, message: impl Into<String>, children: Vec<Finding>) -> Self {
        let status = children
            .iter()
            .map(|c| c.status)
            .filter(|s| *s != Status::Skipped)
            .max()
            .unwrap_or(if children.is_empty() {
                Status::Success
            } else {
                Status::Skipped
            });
        Self {
            children,
            ..Self::new(name, status, message)
        }
    }

    fn advise(mut self, advice: impl Into<String>) -> Self {
        let advice = advice.into();
        self.advice = (!advice.is_empty()).then_some(advice);
        self
    }

    /// The worst status anywhere under (and at) this finding.
    pub fn worst(&self) -> Status {
        self.children
            .iter()
            .map(Finding::worst)
            .fold(self.status, Status::max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heading_takes_the_worst_of_its_children() {
        let heading = Finding::heading(
            "storage",
            "",
            vec![
                Finding::success("a", "fine"),
                Finding::warning("b", "slow", "look"),
                Finding::skipped("c", "skipped"),
            ],
        );
        assert_eq!(heading.status, Status::Warning);
        let failed = Finding::heading(
            "seal",
            "",
            vec![heading.clone(), Finding::failure("d", "broken", "fix it")],
        );
        assert_eq!(failed.status, Status::Failure);
        assert_eq!(failed.worst(), Status::Failure);
        let only_skipped = Finding::heading("x", "", vec![Finding::skipped("c", "no")]);
        assert_eq!(only_skipped.status, Status::Skipped);
    }
}
