//! Several seals in the config file (`enable_multiseal`, issue 16), as
//! `server --check` reads them: every seal listed, mistakes named by line.

use std::process::{Command, Output};

use crate::support::daemon::tempdir;

/// `strongroom server --config FILE --check` on `text`, with `env` set.
fn check(text: &str, env: &[(&str, &str)]) -> (Output, String) {
    let dir = tempdir();
    let path = dir.path().join("multiseal.hcl");
    std::fs::write(&path, text).unwrap();
    let out = Command::new(crate::support::daemon::BIN)
        .args(["server", "--config", path.to_str().unwrap(), "--check"])
        .current_dir(dir.path())
        .env_remove("STRONGROOM_LOG_LEVEL")
        .env_remove("STRONGROOM_AWSKMS_KEY_ID")
        .env_remove("STRONGROOM_AWSKMS_ENDPOINT")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (out, path.display().to_string())
}

const HEAD: &str = "enable_multiseal = true\nstorage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\n";

const SEALS: &str = r#"seal "awskms" {
  name       = "osaka"
  priority   = 2
  region     = "ap-northeast-3"
  disabled   = true
  access_key = "AKIDEXAMPLE"
  secret_key = "never-printed-secret"
}
seal "awskms" {
  name        = "tokyo"
  priority    = 1
  region      = "ap-northeast-1"
  kms_timeout = "2s"
}
seal "shamir" {
  name = "emergency"
}
"#;

#[test]
fn check_lists_every_seal_of_a_multiseal_config() {
    let (out, path) = check(
        &format!("{HEAD}{SEALS}"),
        &[("STRONGROOM_AWSKMS_KEY_ID_TOKYO", "alias/tokyo")],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().collect::<Vec<_>>(),
        [
            format!("{path}: the configuration is valid"),
            "seal \"tokyo\": awskms, priority 1, key \"alias/tokyo\", region ap-northeast-1, kms_timeout 2s".into(),
            "seal \"osaka\": awskms, priority 2, disabled (decrypt only), no key id (decrypt only: the ciphertext names its key), region ap-northeast-3, kms_timeout 5s".into(),
            "seal \"emergency\": shamir, emergency (never tried automatically; unseal --seal emergency)".into(),
        ]
    );
    let all = format!("{stdout}{}", String::from_utf8_lossy(&out.stderr));
    assert!(!all.contains("never-printed-secret"), "{all}");
}

#[test]
fn check_names_each_multiseal_mistake_with_its_line() {
    // Line 4 on: a second seal with priority 1, a shamir seal with a priority.
    let text = format!(
        "{HEAD}{}seal \"awskms\" {{\n  name = \"kyoto\"\n  priority = 1\n  kms_key_id = \"k\"\n}}\n",
        SEALS
            .replace("seal \"shamir\" {\n", "seal \"shamir\" {\n  priority = 9\n")
            .replace("kms_timeout = \"2s\"", "kms_key_id = \"k\"")
    );
    let (out, path) = check(&text, &[]);
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .collect::<Vec<_>>(),
        [
            format!(
                "{path}:19: seal.shamir.priority: is not taken by the shamir seal: it is never tried automatically, only by unseal --seal with its name"
            ),
            format!(
                "{path}:24: seal.awskms.priority: priority 1 is already taken by seal \"tokyo\" (line 14); each seal needs its own"
            ),
        ]
    );
}

#[test]
fn a_seal_variable_for_no_configured_seal_is_refused() {
    let (out, _) = check(
        &format!(
            "{HEAD}{}",
            SEALS.replace("kms_timeout = \"2s\"", "kms_key_id = \"k\"")
        ),
        &[("STRONGROOM_AWSKMS_ENDPOINT_KYOTO", "http://127.0.0.1:9")],
    );
    assert_eq!(out.status.code(), Some(64));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "STRONGROOM_AWSKMS_ENDPOINT_KYOTO: is set, but no seal \"awskms\" block is named for its suffix \"KYOTO\" (the seals' suffixes: TOKYO, OSAKA)\n"
    );
}
