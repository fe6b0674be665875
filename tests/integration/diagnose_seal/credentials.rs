//! Where the seal's credentials come from: the environment, or nowhere.

use std::path::Path;

use super::{assert_check, assert_clean, seal_check, write};
use crate::support::cli::{Cli, Run};
use crate::support::daemon::tempdir;
use crate::support::kms::{SECRET_KEY, kms, seal_block};

#[test]
fn credentials_come_from_the_environment_or_are_missing() {
    let kms = kms();
    let dir = tempdir();
    let block = seal_block(&kms.proxy.endpoint(), "")
        .lines()
        .filter(|l| !l.contains("access_key") && !l.contains("secret_key"))
        .collect::<Vec<_>>()
        .join("\n");
    let path = write(dir.path(), &block);
    let home = dir.path().display().to_string();
    let args = |key: &str| {
        vec![
            ("HOME", home.clone()),
            ("AWS_ACCESS_KEY_ID", key.to_string()),
            (
                "AWS_SECRET_ACCESS_KEY",
                if key.is_empty() {
                    String::new()
                } else {
                    SECRET_KEY.to_string()
                },
            ),
        ]
    };
    let run = diagnose_with(&path, &args("AKIDFROMENV")).ok();
    assert_clean(&run);
    let report = run.json();
    assert_check(
        &report,
        "credentials",
        "success",
        "credentials are found (the environment (AWS_ACCESS_KEY_ID)",
    );
    assert_check(&report, "encrypt and decrypt", "success", "work");

    let report = diagnose_with(&path, &args("")).code(1).json();
    assert_check(
        &report,
        "credentials",
        "failure",
        "no AWS credentials were found",
    );
    assert_eq!(seal_check(&report, "key")["status"], "skipped");
    assert!(
        kms.proxy.requests().len() == 3,
        "{:?}",
        kms.proxy.requests()
    );
}

/// [`diagnose`] of the seal area with `env` set.
fn diagnose_with(path: &Path, env: &[(&str, String)]) -> Run {
    let mut cli = Cli::new();
    cli.env("AWS_EC2_METADATA_DISABLED", "true");
    for (k, v) in env {
        cli.env(k, v);
    }
    let config = path.display().to_string();
    cli.run(&[
        "diagnose",
        "--config",
        &config,
        "--format",
        "json",
        "--skip",
        "config,storage,listener,process,audit",
        "--no-env-file",
    ])
}
