//! `sys/metrics?format=prometheus`: a daemon used through gRPC (the CLI)
//! and HTTP, then scraped; who may scrape; the awskms seal's KMS requests;
//! the `telemetry` blocks' config errors; OpenBao 2.6.2's codes side by side.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;
use strongroom_test_support::eventually;
use strongroom_test_support::kms::Fault;

use crate::support::cli::{create_token, write_policy};
use crate::support::daemon::{BIN, Daemon, open, tempdir};
use crate::support::ha::Cluster;
use crate::support::kms::{SOON, init_recovery, kms, seal_block, wait_unsealed};
use crate::support::vault::{Answer, OpenBao, Target, raw};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A daemon with file storage, a TCP listener that asks for a token and a
/// unix listener that serves `sys/metrics` to anyone; `extra` at the end.
fn config(dir: &Path, extra: &str) -> String {
    format!(
        r#"
storage "file" {{
  path = "{data}"
}}
listener "tcp" {{
  address = "127.0.0.1:0"
}}
listener "unix" {{
  path = "{socket}"
  telemetry {{
    unauthenticated_metrics_access = true
  }}
}}
telemetry {{
  prometheus_retention_time = "24h"
  disable_hostname          = true
}}
log_format    = "json"
disable_mlock = true
{extra}
"#,
        data = dir.join("data").display(),
        socket = dir.join("strongroom.sock").display(),
    )
}

/// `GET sys/metrics` with `query` (`?format=prometheus`, …) and `token`.
fn scrape(target: impl Into<Target>, query: &str, token: Option<&str>) -> Answer {
    raw(
        target,
        "GET",
        &format!("/v1/sys/metrics{query}"),
        token,
        None,
    )
}

/// The samples of a text exposition, by series (`name{labels}` as
/// written), after checking every line is a comment, a sample or the end.
fn samples(answer: &Answer) -> BTreeMap<String, f64> {
    assert_eq!(answer.status, 200, "{:?}", answer.body);
    assert_eq!(answer.headers["content-type"], OPENMETRICS);
    let text = answer.body.as_str().expect("a text body");
    assert!(text.ends_with("# EOF\n"), "no end marker");
    let mut found = BTreeMap::new();
    for line in text.lines() {
        if let Some(comment) = line.strip_prefix("# ") {
            let kind = comment.split(' ').next().unwrap_or_default();
            assert!(
                ["HELP", "TYPE", "UNIT", "EOF"].contains(&kind),
                "comment: {line}"
            );
            continue;
        }
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let name = series.split('{').next().unwrap_or_default();
        assert!(
            name.starts_with("strongroom_")
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
            "metric name: {line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "labels: {line}"
            );
        }
        let value: f64 = value.parse().expect("a numeric value");
        found.insert(series.to_string(), value);
    }
    found
}

/// A scrape as Prometheus makes it (`params: {format: [prometheus]}`,
/// `bearer_token`), over plain HTTP/1.1; the whole answer as text.
fn prometheus_scrape(addr: &str, token: &str) -> String {
    let mut stream = TcpStream::connect(addr.trim_start_matches("http://")).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let request = format!(
        "GET /v1/sys/metrics?format=prometheus HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: Prometheus/2.53.0\r\nAccept: application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// The value of `series`, 0 when absent (a family with no sample yet).
fn value(samples: &BTreeMap<String, f64>, series: &str) -> f64 {
    samples.get(series).copied().unwrap_or(0.0)
}

fn requests(operation: &str, outcome: &str) -> String {
    format!(
        "strongroom_request_duration_seconds_count{{operation=\"{operation}\",outcome=\"{outcome}\"}}"
    )
}

#[test]
fn a_scrape_counts_what_the_daemon_did_and_asks_for_read_on_sys_metrics() {
    let dir = tempdir();
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), ""));
    let tcp = daemon.addr.clone();
    let unix = Target::Unix(daemon.socket.clone().unwrap());

    // Not initialized: the open listener answers with the seal state; the
    // other one needs a token, which needs an unsealed store (503, as
    // OpenBao answers while sealed).
    let sealed = samples(&scrape(unix.clone(), "?format=prometheus", None));
    assert_eq!(value(&sealed, "strongroom_sealed"), 1.0);
    assert_eq!(value(&sealed, "strongroom_initialized"), 0.0);
    assert_eq!(scrape(&tcp, "?format=prometheus", None).status, 503);

    let init = open(&mut daemon);
    let root = init.root_token.clone();
    let before = samples(&scrape(&tcp, "?format=prometheus", Some(&root)));
    assert_eq!(value(&before, "strongroom_sealed"), 0.0);
    assert_eq!(value(&before, "strongroom_initialized"), 1.0);
    assert_eq!(value(&before, "strongroom_active"), 1.0);
    assert_eq!(value(&before, "strongroom_keyring_term"), 1.0);
    assert_eq!(
        value(&before, "strongroom_unseals_total{method=\"shamir\"}"),
        1.0
    );
    assert_eq!(value(&before, &requests("sys.Unseal", "ok")), 2.0);
    assert_eq!(value(&before, &requests("sys.Init", "ok")), 1.0);

    // Through gRPC: two writes, a read, and a read refused by policy.
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter2"])
        .ok();
    daemon
        .cli()
        .run(&["kv", "put", "app/db", "password=hunter3"])
        .ok();
    daemon.cli().run(&["kv", "get", "app/db"]).ok();
    write_policy(
        &mut daemon.cli(),
        "scraper",
        "path \"sys/metrics\" { capabilities = [\"read\"] }\n",
    );
    write_policy(
        &mut daemon.cli(),
        "other",
        "path \"secret/data/other/*\" { capabilities = [\"read\"] }\n",
    );
    let (scraper, _) = create_token(&mut daemon.cli(), &["--policy", "scraper"]);
    let (other, _) = create_token(&mut daemon.cli(), &["--policy", "other"]);
    daemon
        .cli()
        .token(&other)
        .run(&["kv", "get", "app/db"])
        .code(1);
    // Through HTTP: the seal status, through the gate too.
    let status = raw(&tcp, "GET", "/v1/sys/seal-status", None, None);
    assert_eq!(status.status, 200);

    // Who may scrape: a token with read on sys/metrics; anyone on the
    // open listener; nobody else.
    assert_eq!(scrape(&tcp, "?format=prometheus", None).status, 403);
    let refused = scrape(&tcp, "?format=prometheus", Some(&other));
    assert_eq!(refused.status, 403, "{:?}", refused.body);
    assert_eq!(
        scrape(&tcp, "?format=prometheus", Some("sr.not-a-token")).status,
        403
    );
    let after = samples(&scrape(&tcp, "?format=prometheus", Some(&scraper)));
    // As Prometheus sends it: a bearer token and its Accept header.
    let scraped = prometheus_scrape(&tcp, &scraper);
    assert!(scraped.starts_with("HTTP/1.1 200"), "{scraped}");
    assert!(scraped.contains(OPENMETRICS) && scraped.ends_with("# EOF\n"));
    samples(&scrape(unix.clone(), "?format=prometheus", None));

    let moved = |series: &str| value(&after, series) - value(&before, series);
    assert_eq!(moved(&requests("kv.Put", "ok")), 2.0);
    assert_eq!(moved(&requests("kv.Get", "ok")), 1.0);
    assert_eq!(moved(&requests("kv.Get", "permission_denied")), 1.0);
    assert!(moved(&requests("sys.Status", "ok")) >= 1.0);
    // The refused scrapes went through the gate as refusals.
    assert!(moved(&requests("sys.Metrics", "unauthenticated")) >= 1.0);
    assert!(moved(&requests("sys.Metrics", "permission_denied")) >= 1.0);
    assert!(
        moved("strongroom_barrier_duration_seconds_count{operation=\"write\"}")
            + moved("strongroom_barrier_duration_seconds_count{operation=\"put\"}")
            >= 2.0
    );
    assert!(moved("strongroom_barrier_duration_seconds_count{operation=\"get\"}") >= 1.0);
    assert!(moved("strongroom_storage_commit_duration_seconds_count{backend=\"file\"}") >= 2.0);
    assert!(value(&after, "strongroom_keyring_term_encryptions") >= 2.0);
    // No secret, path or token in a label or anywhere in the text.
    let text = scrape(&tcp, "?format=prometheus", Some(&root)).body;
    let text = text.as_str().unwrap();
    for secret in [
        "hunter2",
        "hunter3",
        "app/db",
        root.as_str(),
        scraper.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} in the metrics");
    }

    // Only Prometheus's format, only GET; asked after the caller.
    let json = scrape(&tcp, "", Some(&root));
    assert_eq!(json.status, 400);
    assert!(
        json.body["errors"][0]
            .as_str()
            .unwrap()
            .contains("format=prometheus"),
        "{:?}",
        json.body
    );
    assert_eq!(scrape(&tcp, "?format=xml", Some(&root)).status, 400);
    assert_eq!(scrape(&tcp, "?format=xml", None).status, 403);
    let put = raw(&tcp, "PUT", "/v1/sys/metrics", Some(&root), Some(b"{}"));
    assert_eq!(put.status, 405);

    // A seal: the gauge flips and the seal is counted; a token no longer
    // opens the authenticated listener (503, as OpenBao's), the open one
    // still answers.
    daemon.cli().run(&["seal"]).ok();
    assert_eq!(scrape(&tcp, "?format=prometheus", Some(&root)).status, 503);
    let sealed = samples(&scrape(unix, "?format=prometheus", None));
    assert_eq!(value(&sealed, "strongroom_sealed"), 1.0);
    assert_eq!(value(&sealed, "strongroom_active"), 0.0);
    assert_eq!(value(&sealed, "strongroom_keyring_term"), 0.0);
    assert_eq!(value(&sealed, "strongroom_seals_total"), 1.0);
}

#[test]
fn a_zero_retention_turns_the_endpoint_off_as_vaults() {
    let dir = tempdir();
    let text = format!(
        "storage \"file\" {{\n  path = \"{}\"\n}}\nlistener \"tcp\" {{\n  address = \"127.0.0.1:0\"\n}}\ntelemetry {{\n  prometheus_retention_time = \"0\"\n}}\ndisable_mlock = true\nlog_format = \"json\"\n",
        dir.path().join("data").display()
    );
    let mut daemon = Daemon::start(dir.path(), &text);
    let root = open(&mut daemon).root_token;
    let off = scrape(&daemon.addr, "?format=prometheus", Some(&root));
    assert_eq!(off.status, 400);
    assert_eq!(
        off.body,
        json!({"errors": ["prometheus is not enabled: add a telemetry block with a prometheus_retention_time above 0 to the config"]})
    );
    // The caller is asked first, as OpenBao does.
    assert_eq!(scrape(&daemon.addr, "?format=prometheus", None).status, 403);
}

#[test]
fn an_awskms_daemon_counts_its_kms_requests_by_action() {
    let kms = kms();
    let dir = tempdir();
    let seal = seal_block(&kms.proxy.endpoint(), "");
    let mut daemon = Daemon::start(dir.path(), &config(dir.path(), &seal));
    let unix = Target::Unix(daemon.socket.clone().unwrap());
    init_recovery(&daemon);
    let proxy_count = |action: &str| {
        kms.proxy
            .requests()
            .iter()
            .filter(|r| r.as_str() == action)
            .count() as f64
    };
    let after_init = samples(&scrape(unix.clone(), "?format=prometheus", None));
    let kms_requests = |samples: &BTreeMap<String, f64>, action: &str| {
        value(
            samples,
            &format!("strongroom_kms_requests_total{{action=\"{action}\",outcome=\"ok\"}}"),
        )
    };
    // What the daemon counted is what KMS received.
    assert!(kms_requests(&after_init, "Encrypt") > 0.0);
    assert_eq!(kms_requests(&after_init, "Encrypt"), proxy_count("Encrypt"));
    assert_eq!(kms_requests(&after_init, "Decrypt"), proxy_count("Decrypt"));

    // A restart auto-unseals with one Decrypt, counted as such.
    daemon.restart();
    wait_unsealed(&daemon);
    let restarted = samples(&scrape(unix, "?format=prometheus", None));
    assert_eq!(kms_requests(&restarted, "Decrypt"), 1.0);
    assert_eq!(kms_requests(&restarted, "Encrypt"), 0.0);
    assert_eq!(
        value(
            &restarted,
            "strongroom_kms_request_duration_seconds_count{action=\"Decrypt\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&restarted, "strongroom_unseals_total{method=\"kms\"}"),
        1.0
    );
    assert_eq!(
        value(
            &restarted,
            "strongroom_auto_unseal_attempts_total{outcome=\"ok\"}"
        ),
        1.0
    );
    assert_eq!(
        value(
            &restarted,
            "strongroom_auto_unseal_next_attempt_timestamp_seconds"
        ),
        0.0
    );
    assert_eq!(value(&restarted, "strongroom_sealed"), 0.0);

    // KMS refuses Decrypt: the daemon stays up sealed and retries; each
    // attempt and each refused request is counted, with the next attempt's time.
    kms.proxy
        .fault(Some("Decrypt"), Fault::access_denied("Decrypt"));
    daemon.restart();
    let unix = Target::Unix(daemon.socket.clone().unwrap());
    let mut failing = BTreeMap::new();
    eventually("a failed auto-unseal attempt in the metrics", SOON, || {
        failing = samples(&scrape(unix.clone(), "?format=prometheus", None));
        value(
            &failing,
            "strongroom_auto_unseal_attempts_total{outcome=\"failed\"}",
        ) >= 1.0
    });
    assert!(
        value(
            &failing,
            "strongroom_kms_requests_total{action=\"Decrypt\",outcome=\"denied\"}"
        ) >= 1.0
    );
    assert!(
        value(
            &failing,
            "strongroom_auto_unseal_next_attempt_timestamp_seconds"
        ) > 0.0
    );
    assert_eq!(value(&failing, "strongroom_sealed"), 1.0);
    assert_eq!(kms_requests(&failing, "Decrypt"), 0.0);
}

#[test]
fn a_bad_telemetry_block_exits_64_naming_file_line_and_key() {
    let dir = tempdir();
    let path = dir.path().join("bad.hcl");
    std::fs::write(
        &path,
        "storage \"inmem\" {}\nlistener \"tcp\" {\n  telemetry {\n    unauthenticated_metrics_access = \"maybe\"\n  }\n}\ntelemetry {\n  statsd_address = \"127.0.0.1:8125\"\n  prometheus_retention_time = \"a day\"\n}\n",
    )
    .unwrap();
    let out = Command::new(BIN)
        .args(["server", "--check", "--config"])
        .arg(&path)
        .current_dir(dir.path())
        .env_remove("STRONGROOM_LOG_LEVEL")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(64));
    let shown = path.display().to_string();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        [
            format!(
                "{shown}:4: listener.tcp.telemetry.unauthenticated_metrics_access: expected true or false, got \"maybe\""
            ),
            format!(
                "{shown}:8: telemetry.statsd_address: unknown key \"statsd_address\"; expected one of: prometheus_retention_time, disable_hostname"
            ),
            format!(
                "{shown}:9: telemetry.prometheus_retention_time: expected a duration such as \"10m\", \"30s\" or \"0\", got \"a day\""
            ),
        ]
    );
}

/// Our token and OpenBao's for the same request, or none.
type Tokens<'a> = Option<(&'a str, &'a str)>;

/// Both without a `telemetry` block: the endpoint is off on both, and asks
/// for the caller first on both.
#[test]
fn who_may_scrape_answers_as_openbao_does() {
    let dir = tempdir();
    let plain = crate::support::daemon::config(dir.path(), "");
    let mut daemon = Daemon::start(dir.path(), &plain);
    let ours = daemon.addr.clone();
    let root = open(&mut daemon).root_token;
    write_policy(
        &mut daemon.cli(),
        "other",
        "path \"secret/data/other/*\" { capabilities = [\"read\"] }\n",
    );
    let (our_other, _) = create_token(&mut daemon.cli(), &["--policy", "other"]);

    let bao = OpenBao::start();
    let theirs = bao.addr.as_str();
    let policy = json!({"policy": "path \"secret/*\" { capabilities = [\"read\"] }"});
    let put = crate::support::vault::request(
        theirs,
        "PUT",
        "sys/policies/acl/other",
        Some(&bao.token),
        Some(&policy),
    );
    assert_eq!(put.status, 204, "{:?}", put.body);
    let created = crate::support::vault::request(
        theirs,
        "POST",
        "auth/token/create",
        Some(&bao.token),
        Some(&json!({"policies": ["other"]})),
    );
    let their_other = created.body["auth"]["client_token"]
        .as_str()
        .unwrap()
        .to_string();

    // (case, query, our token and OpenBao's)
    let cases: [(&str, &str, Tokens<'_>); 6] = [
        ("no token", "?format=prometheus", None),
        (
            "unknown token",
            "?format=prometheus",
            Some(("sr.nope", "s.nope")),
        ),
        (
            "token without read",
            "?format=prometheus",
            Some((&our_other, &their_other)),
        ),
        ("root", "?format=prometheus", Some((&root, &bao.token))),
        ("unknown format", "?format=xml", Some((&root, &bao.token))),
        ("no token, unknown format", "?format=xml", None),
    ];
    for (case, query, tokens) in cases {
        let a = scrape(&ours, query, tokens.map(|t| t.0));
        let b = scrape(theirs, query, tokens.map(|t| t.1));
        assert_eq!(a.status, b.status, "{case}: {:?} vs {:?}", a.body, b.body);
        if a.status == 400 && query == "?format=prometheus" {
            // OpenBao says it in plain text, strongroom in Vault's JSON.
            let said = b.body.as_str().unwrap_or_default().trim();
            assert_eq!(said, "prometheus is not enabled");
            assert!(a.body["errors"][0].as_str().unwrap().starts_with(said));
        }
    }
    for method in ["PUT", "DELETE"] {
        let a = raw(&ours, method, "/v1/sys/metrics", Some(&root), None);
        let b = raw(theirs, method, "/v1/sys/metrics", Some(&bao.token), None);
        assert_eq!((a.status, b.status), (405, 405), "{method}");
    }
}

#[test]
fn a_line_no_audit_device_could_write_is_counted() {
    let dir = tempdir();
    let full = "audit \"file\" { path = \"/dev/full\" }";
    let daemon = Daemon::start(dir.path(), &config(dir.path(), full));
    daemon
        .cli()
        .run(&["init", "--key-shares", "1", "--key-threshold", "1"])
        .code(1)
        .error_says("no audit device could record the request");
    let unix = Target::Unix(daemon.socket.clone().unwrap());
    let counted = samples(&scrape(unix, "?format=prometheus", None));
    assert_eq!(
        value(
            &counted,
            "strongroom_audit_write_failures_total{device=\"file\"}"
        ),
        1.0
    );
    assert_eq!(
        value(&counted, &requests("sys.Init", "audit_unavailable")),
        1.0
    );
    assert_eq!(value(&counted, &requests("sys.Init", "ok")), 0.0);
}

/// In the `ha` group (.config/nextest.toml): two nodes on one PostgreSQL.
#[test]
fn ha_take_overs_and_step_downs_are_counted_and_the_role_read_at_scrape() {
    let mut cluster = Cluster::start_with(2, "2s", "telemetry {}\n", &[]);
    cluster.open();
    let first = cluster.wait_active(&[0, 1]);
    let other = 1 - first;
    let token = cluster.init.as_ref().unwrap().root_token.clone();
    // Each node answers for itself, the standby included.
    let scraped = |i: usize| {
        let addr = cluster.nodes[i].daemon.addr.clone();
        samples(&scrape(&addr, "?format=prometheus", Some(&token)))
    };
    let active = scraped(first);
    let standby = scraped(other);
    assert_eq!(value(&active, "strongroom_ha_enabled"), 1.0);
    assert_eq!(
        (
            value(&active, "strongroom_active"),
            value(&standby, "strongroom_active")
        ),
        (1.0, 0.0)
    );
    assert_eq!(value(&standby, "strongroom_sealed"), 0.0);
    assert_eq!(value(&active, "strongroom_ha_takeovers_total"), 1.0);
    assert_eq!(value(&standby, "strongroom_ha_takeovers_total"), 0.0);

    cluster.nodes[first]
        .daemon
        .cli()
        .run(&["operator", "step-down"])
        .ok();
    assert_eq!(cluster.wait_active(&[other]), other);
    let stepped_down = scraped(first);
    let taken_over = scraped(other);
    assert_eq!(value(&stepped_down, "strongroom_ha_step_downs_total"), 1.0);
    assert_eq!(value(&stepped_down, "strongroom_active"), 0.0);
    assert_eq!(value(&taken_over, "strongroom_ha_takeovers_total"), 1.0);
    assert_eq!(value(&taken_over, "strongroom_active"), 1.0);
}
