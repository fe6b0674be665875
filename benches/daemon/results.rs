//! The numbers: each scenario's samples per peer, medians and p90s, the
//! table printed and the JSON written.

use std::time::Duration;

use serde_json::{Value, json};

use crate::grpc_load::Load;
use crate::peers::Peer;

pub(crate) fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// The results, keyed by scenario, each with a value per peer.
#[derive(Default)]
pub(crate) struct Results {
    pub(crate) scenarios: Vec<Value>,
    pub(crate) notes: Vec<String>,
}

impl Results {
    /// A measured quantity: median and p90 per peer over its samples.
    pub(crate) fn samples(
        &mut self,
        id: &str,
        name: &str,
        unit: &str,
        samples: &mut [(Peer, f64)],
    ) {
        let mut entry = json!({"id": id, "name": name, "unit": unit, "better": "lower"});
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let mut values: Vec<f64> = samples
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, v)| *v)
                .collect();
            if values.is_empty() {
                continue;
            }
            values.sort_by(f64::total_cmp);
            entry[peer.key()] = json!({
                "median": percentile(&values, 0.5),
                "p90": percentile(&values, 0.9),
                "runs": values.len(),
            });
        }
        self.scenarios.push(entry);
    }

    /// A timed scenario with few runs (ms): median, p90, min and max.
    pub(crate) fn spread(&mut self, id: &str, name: &str, samples: &mut [(Peer, f64)]) {
        self.samples(id, name, "ms", samples);
        let entry = self.scenarios.last_mut().expect("just pushed");
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let values = samples.iter().filter(|(p, _)| *p == peer).map(|(_, v)| *v);
            let (min, max) = values.fold((f64::INFINITY, 0.0_f64), |(lo, hi), v| {
                (lo.min(v), hi.max(v))
            });
            if let Some(stats) = entry.get_mut(peer.key()) {
                stats["min"] = json!(min);
                stats["max"] = json!(max);
            }
        }
    }

    /// A timed scenario (ms).
    pub(crate) fn timing(&mut self, id: &str, name: &str, samples: &mut [(Peer, f64)]) {
        self.samples(id, name, "ms", samples);
    }

    /// KMS requests by action, per run: every run must agree.
    pub(crate) fn counts(&mut self, id: &str, name: &str, runs: &[(Peer, Value)]) {
        let mut entry = json!({"id": id, "name": name, "unit": "requests", "better": "lower"});
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let seen: Vec<&Value> = runs
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, v)| v)
                .collect();
            let Some(first) = seen.first() else { continue };
            assert!(
                seen.iter().all(|v| v == first),
                "{name}: {peer:?} made different requests in different runs: {seen:?}"
            );
            entry[peer.key()] = json!({"counts": first, "runs": seen.len()});
        }
        self.scenarios.push(entry);
    }

    /// Status load per peer: the mean over the rounds.
    pub(crate) fn load(&mut self, id: &str, name: &str, rounds: &[(Peer, Load)]) {
        let mut entry = json!({"id": id, "name": name, "unit": "load", "better": "higher"});
        for peer in [Peer::Strongroom, Peer::OpenBao] {
            let of: Vec<&Load> = rounds
                .iter()
                .filter(|(p, _)| *p == peer)
                .map(|(_, l)| l)
                .collect();
            if of.is_empty() {
                continue;
            }
            let mean = |f: fn(&Load) -> f64| of.iter().map(|l| f(l)).sum::<f64>() / of.len() as f64;
            entry[peer.key()] = json!({
                "rps": mean(|l| l.rps),
                "p50_ms": mean(|l| l.p50_ms),
                "p99_ms": mean(|l| l.p99_ms),
                "server_cpu": mean(|l| l.server_cpu),
                "client_cpu": mean(|l| l.client_cpu),
                "runs": of.len(),
            });
        }
        self.scenarios.push(entry);
    }

    pub(crate) fn print(&self) {
        for s in &self.scenarios {
            println!(
                "{}\n  strongroom: {}\n  OpenBao:    {}",
                s["name"].as_str().unwrap_or(""),
                s["strongroom"],
                s["openbao"]
            );
        }
        for note in &self.notes {
            println!("\nnote: {note}");
        }
    }
}

/// Counts of each KMS action, as a JSON object.
pub(crate) fn count_actions(requests: &[String]) -> Value {
    let mut counts = serde_json::Map::new();
    for r in requests {
        let n = counts.get(r).and_then(Value::as_u64).unwrap_or(0);
        counts.insert(r.clone(), json!(n + 1));
    }
    Value::Object(counts)
}
