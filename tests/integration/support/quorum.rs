//! Shares and the quorum operations, as operators run them with the CLI.

use serde_json::Value;

use super::cli::Cli;
use super::daemon::Daemon;

/// `strongroom rekey|rotate-root|generate-root --init …` and its nonce.
pub fn start(daemon: &Daemon, command: &str, extra: &[&str]) -> (String, Value) {
    start_as(&mut daemon.cli(), command, extra)
}

/// [`start`] through `cli` (another token, or none).
pub fn start_as(cli: &mut Cli, command: &str, extra: &[&str]) -> (String, Value) {
    let mut args = vec![command, "--init", "--format", "json"];
    args.extend_from_slice(extra);
    let started = cli.run(&args).ok().json();
    let nonce = started["nonce"].as_str().unwrap().to_string();
    assert!(!nonce.is_empty(), "{started}");
    (nonce, started)
}

/// A one-time pad from `strongroom generate-root --generate-otp`.
pub fn fresh_otp(daemon: &Daemon) -> String {
    let out = daemon.cli().run(&["generate-root", "--generate-otp"]).ok();
    out.stdout.trim().to_string()
}

/// Enters `keys` under `nonce`; returns the last answer.
pub fn enter(daemon: &Daemon, command: &str, nonce: &str, keys: &[&String]) -> Value {
    let mut last = Value::Null;
    for key in keys {
        last = daemon
            .cli()
            .run(&[command, "--nonce", nonce, key, "--format", "json"])
            .ok()
            .json();
    }
    last
}

/// Every form in which a secret could be written: as typed, and the bytes it
/// stands for in hex and base64.
pub fn forms(hex_share: &str) -> Vec<String> {
    use base64::Engine;
    let bytes = hex::decode(hex_share).unwrap();
    vec![
        hex_share.to_string(),
        hex_share.to_uppercase(),
        base64::engine::general_purpose::STANDARD.encode(&bytes),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(&bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes),
    ]
}
