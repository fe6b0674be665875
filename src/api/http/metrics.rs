//! `sys/metrics?format=prometheus`: the daemon's metrics ([`crate::metrics`])
//! in Prometheus's text format, with the node's state read at scrape time.
//!
//! As Vault: a token with `read` on `sys/metrics`, unless the listener's
//! `telemetry { unauthenticated_metrics_access = true }` says anyone may
//! scrape; the caller is asked first, then the format. Without a top-level
//! `telemetry` block, or with `prometheus_retention_time = 0` in it, it is
//! off (400), as in OpenBao 2.6.2.

use super::{HttpError, Op, Outcome, Reply, Request};
use crate::api::Gate;
use crate::api::actions;
use crate::error::Error;
use crate::metrics::{self, Scrape};
use crate::node::Node;
use crate::text;

/// Serves `sys/metrics`.
pub async fn route(gate: &Gate, request: &Request) -> Outcome {
    if request.op != Op::Read {
        return Err(HttpError::unsupported());
    }
    let access = gate.identities().metrics();
    if !access.unauthenticated {
        // Not audited, as Status: it reads memory and changes nothing.
        request
            .call(gate, &actions::METRICS, "")
            .run(|_| async { Ok(()) }, |()| Vec::new())
            .await?;
    }
    check_format(request.query("format"))?;
    if !access.served {
        return Err(HttpError::bad_request(
            "prometheus is not enabled: add a telemetry block with a prometheus_retention_time above 0 to the config",
        ));
    }
    let text = metrics::render(&scrape(gate.node()))
        .map_err(|_| Error::Internal("the metrics could not be written out".into()))?;
    Ok(Reply::text(metrics::CONTENT_TYPE, text))
}

/// Only Prometheus's format is served: Vault's JSON dump of its in-memory
/// sink has no counterpart here (docs/DECISIONS.md).
fn check_format(format: Option<&str>) -> Result<(), HttpError> {
    match format {
        Some("prometheus") => Ok(()),
        None | Some("") => Err(HttpError::bad_request(
            "strongroom serves its metrics in Prometheus's format only: ask for sys/metrics?format=prometheus",
        )),
        Some(other) => Err(HttpError::bad_request(format!(
            "metric response format {} unknown: strongroom serves format=prometheus only",
            text::quote(other)
        ))),
    }
}

/// What the node knows now: its seal state, its HA role, the keyring term.
fn scrape(node: &Node) -> Scrape {
    let status = node.lifecycle.status();
    let standby = status.ha.as_ref().is_some_and(|ha| !ha.is_self);
    let term = node
        .lifecycle
        .key_status()
        .ok()
        .and_then(|keys| keys.terms.into_iter().find(|t| t.active));
    Scrape {
        initialized: status.initialized,
        sealed: status.sealed,
        active: !status.sealed && !standby,
        ha_enabled: status.ha.is_some(),
        term: term.as_ref().map_or(0, |t| t.term),
        term_encryptions: term.map_or(0, |t| t.encryptions),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_prometheus_is_a_format() {
        assert!(check_format(Some("prometheus")).is_ok());
        for asked in [None, Some(""), Some("json"), Some("xml")] {
            let refused = check_format(asked).unwrap_err();
            assert_eq!(refused.status(), http::StatusCode::BAD_REQUEST);
        }
    }
}
