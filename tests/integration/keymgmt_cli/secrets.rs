//! The provider's credentials: taken from files or the environment, never
//! shown, logged or audited in the clear.

use super::*;
use crate::support::cli::Cli;

#[test]
fn the_providers_secret_key_is_never_shown_logged_or_audited_in_the_clear() {
    let byok = Byok::start();
    for format in ["table", "json"] {
        let read = byok
            .run(&["keymgmt", "kms", "read", PROVIDER, "--format", format])
            .ok();
        assert!(!read.stdout.contains(&byok.secret), "{}", read.stdout);
        assert!(!read.stdout.contains("Zq7-"), "{}", read.stdout);
        assert!(read.stdout.contains("us-east-1"), "{}", read.stdout);
    }
    let json = byok
        .run(&["keymgmt", "kms", "read", PROVIDER, "--format", "json"])
        .ok()
        .json();
    assert_eq!(json["static_credentials"], true);
    assert_eq!(json["endpoint"], localstack().endpoint().as_str());

    // Written again with a session token from a file.
    let secret = byok.file("secret-2", &format!("{}-2", byok.secret));
    let token = byok.file(
        "token",
        &format!("Zq7-provider-secret-token-{}", unique("t")),
    );
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        PROVIDER,
        "--key-collection",
        "us-east-1",
        "--endpoint",
        &localstack().endpoint(),
        "--access-key",
        "test",
        "--secret-key-file",
        &secret,
        "--session-token-file",
        &token,
    ])
    .ok();
    let with_token = byok.run(&["keymgmt", "kms", "read", PROVIDER]).ok().stdout;
    assert!(
        with_token.contains("static (stored; never shown)"),
        "{with_token}"
    );
    assert!(!with_token.contains("Zq7-"), "{with_token}");

    // Written again from this shell's AWS variables, then cleared.
    let mut cli = byok.daemon.cli();
    cli.env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", &format!("{}-env", byok.secret));
    let endpoint = localstack().endpoint();
    let write = |cli: &mut Cli, flag: &str| {
        cli.run(&[
            "keymgmt",
            "kms",
            "write",
            PROVIDER,
            "--key-collection",
            "us-east-1",
            "--endpoint",
            &endpoint,
            flag,
        ])
    };
    write(&mut cli, "--credentials-from-env").ok();
    // The environment's credentials work: a distribution goes through.
    let key = unique("envcreds");
    let v1 = byok.distributed(&key);
    assert_eq!(key_state(&v1)["KeyState"], "Enabled");
    write(&mut byok.daemon.cli(), "--clear-credentials").ok();
    let cleared = byok
        .run(&["keymgmt", "kms", "read", PROVIDER, "--format", "json"])
        .ok()
        .json();
    assert_eq!(cleared["static_credentials"], false);
    let mut bare = byok.daemon.cli();
    bare.env("AWS_ACCESS_KEY_ID", "test");
    write(&mut bare, "--credentials-from-env")
        .code(64)
        .error_says("--credentials-from-env needs AWS_SECRET_ACCESS_KEY set");

    // Neither log holds a secret; the audit log holds its HMAC.
    let audit = std::fs::read_to_string(&byok.audit).unwrap();
    let log = byok.daemon.stderr.text();
    assert!(audit.contains("keymgmt.WriteProvider"), "{audit}");
    assert!(log.contains("KMS provider written"), "{log}");
    for text in [&audit, &log] {
        assert!(!text.contains("Zq7-provider-secret"));
    }
    let hashed = byok
        .daemon
        .cli()
        .run_stdin(&["audit-hash"], &byok.secret)
        .ok();
    let hmac = hashed.stdout.trim();
    assert!(hmac.starts_with("hmac-sha256:"), "{hmac}");
    assert!(audit.contains(hmac), "the secret key's HMAC is audited");
}
