//! What is refused: bad input as one sentence with nothing changed on
//! either side, and a token that may only read a distribution, over gRPC.

use strongroom::proto::{self, key_mgmt_client::KeyMgmtClient};

use super::*;
use crate::support::cli::{create_token, write_policy};
use crate::support::grpc::{channel, with_token};

#[test]
fn bad_input_is_one_sentence_and_changes_nothing_on_either_side() {
    let byok = Byok::start();
    let endpoint = localstack().endpoint();

    // An unknown provider.
    let orphan = unique("orphan");
    byok.write_key(&orphan, &[]).ok();
    byok.run(&["keymgmt", "distribute", "nowhere", &orphan])
        .code(1)
        .error_says("no KMS provider named \"nowhere\"");
    byok.run(&["keymgmt", "kms", "read", "nowhere"])
        .code(1)
        .error_says("no KMS provider named \"nowhere\"");

    // A wrong region: unknown to AWS, or not a region at all.
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "mars",
        "--key-collection",
        "mars-central-1",
    ])
    .code(1)
    .error_says("key_collection \"mars-central-1\" is not an AWS region strongroom knows");
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "shouting",
        "--key-collection",
        "US_EAST_1",
        "--endpoint",
        &endpoint,
    ])
    .code(1)
    .error_says("expected an AWS region such as \"eu-west-1\"");

    // An access key without its secret, or a secret without an access key:
    // refused before the daemon is asked.
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "halfway",
        "--key-collection",
        "us-east-1",
        "--access-key",
        "AKIAEXAMPLE",
    ])
    .code(64)
    .error_says("--access-key needs its secret key: give --secret-key-file FILE");
    let secret = byok.file("orphan-secret", "s3cr3t\n");
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "halfway",
        "--key-collection",
        "us-east-1",
        "--secret-key-file",
        &secret,
    ])
    .code(64)
    .error_says("--secret-key-file and --session-token-file need --access-key");
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "halfway",
        "--key-collection",
        "us-east-1",
        "--access-key",
        "AKIAEXAMPLE",
        "--secret-key-file",
        "/nonexistent/secret",
    ])
    .code(64)
    .error_says("cannot read the secret key from /nonexistent/secret");
    let providers = byok
        .run(&["keymgmt", "kms", "list", "--format", "json"])
        .ok()
        .json();
    assert_eq!(providers, json!([PROVIDER]), "only the one registered");

    // A type AWS KMS cannot import.
    let rsa = unique("rsa");
    byok.write_key(&rsa, &["--type", "rsa-2048"])
        .code(1)
        .error_says("type \"rsa-2048\" cannot be distributed to AWS KMS");
    byok.run(&["keymgmt", "key", "read", &rsa])
        .code(1)
        .error_says("no key named");

    // A second distribution of a complete one.
    let twice = unique("twice");
    let v1 = byok.distributed(&twice);
    let before = byok.distribution(&twice);
    byok.run(&["keymgmt", "distribute", PROVIDER, &twice])
        .code(1)
        .error_says("is already distributed to KMS provider \"aws\", every version up to date; nothing was changed");
    assert_eq!(byok.distribution(&twice), before);
    assert_eq!(alias_target(&twice).unwrap(), v1);

    // An alias someone else's key holds.
    let taken = unique("taken");
    let foreign = kms("CreateKey", json!({"Description": "not strongroom's"})).unwrap();
    let foreign = foreign["KeyMetadata"]["KeyId"].as_str().unwrap();
    kms(
        "CreateAlias",
        json!({"AliasName": format!("alias/{taken}"), "TargetKeyId": foreign}),
    )
    .unwrap();
    byok.write_key(&taken, &[]).ok();
    byok.run(&["keymgmt", "distribute", PROVIDER, &taken])
        .code(1)
        .error_says(&format!(
            "already points at key {foreign}, which strongroom did not make"
        ));
    assert_eq!(alias_target(&taken).unwrap(), foreign);
    byok.run(&["keymgmt", "distribution", "read", PROVIDER, &taken])
        .code(1)
        .error_says(&format!(
            "key \"{taken}\" is not distributed to KMS provider"
        ));

    // On the KMS side: no key for the refused ones, one for the twice.
    assert_eq!(alias_target(&orphan).unwrap_err(), "NotFoundException");
    assert_eq!(alias_target(&rsa).unwrap_err(), "NotFoundException");
    let made = kms_keys_made_for(&[&orphan, &rsa, &taken, &twice]);
    assert_eq!(
        made,
        vec![format!("strongroom keymgmt key {twice} version 1")]
    );
}

#[test]
fn a_token_that_may_only_read_a_distribution_reads_it_over_grpc_and_cannot_remove_it() {
    let byok = Byok::start();
    let key = unique("grpc");
    let v1 = byok.distributed(&key);
    let path = format!("keymgmt/kms/{PROVIDER}/key/{key}");
    write_policy(
        &mut byok.daemon.cli(),
        "reader",
        &format!("path \"{path}\" {{ capabilities = [\"read\"] }}"),
    );
    let (token, _) = create_token(&mut byok.daemon.cli(), &["--policy", "reader"]);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    let (read, removed) = runtime.block_on(async {
        let mut client = KeyMgmtClient::new(channel(&byok.daemon.addr).await);
        let read = client
            .read_distribution(with_token(
                proto::ReadDistributionRequest {
                    provider: PROVIDER.into(),
                    key: key.clone(),
                },
                &token,
            ))
            .await
            .unwrap()
            .into_inner();
        let removed = client
            .remove_distribution(with_token(
                proto::RemoveDistributionRequest {
                    provider: PROVIDER.into(),
                    key: key.clone(),
                    deletion_window_days: 7,
                },
                &token,
            ))
            .await
            .unwrap_err();
        (read, removed)
    });
    assert_eq!(read.alias, format!("alias/{key}"));
    assert_eq!(read.alias_version, 1);
    assert_eq!(read.versions[0].kms_key_id, v1);
    assert_eq!(read.versions[0].state, "enabled");
    assert_eq!(removed.code(), tonic::Code::PermissionDenied);
    assert!(removed.message().contains(&path), "{}", removed.message());

    // The CLI with that token: the same refusal, in one sentence.
    byok.daemon
        .cli()
        .token(&token)
        .run(&["keymgmt", "distribution", "remove", PROVIDER, &key])
        .code(1)
        .error_says("permission denied");
    // KMS still encrypts with the key.
    assert_eq!(key_state(&v1)["KeyState"], "Enabled");
    encrypt(&format!("alias/{key}")).unwrap();
}

#[test]
fn a_provider_without_credentials_where_the_aws_chain_has_none_is_refused_in_a_sentence() {
    // The daemon runs with no AWS variables, no shared files and no
    // instance metadata (support/daemon.rs): the chain finds nothing.
    let byok = Byok::start();
    let endpoint = localstack().endpoint();
    byok.run(&[
        "keymgmt",
        "kms",
        "write",
        "chain",
        "--key-collection",
        "us-east-1",
        "--endpoint",
        &endpoint,
    ])
    .ok();
    let key = unique("nocreds");
    byok.write_key(&key, &[]).ok();
    byok.run(&["keymgmt", "distribute", "chain", &key])
        .code(1)
        .error_says("credentials");
    // Nothing made in KMS, nothing recorded.
    assert!(kms_keys_made_for(&[&key]).is_empty());
    byok.run(&["keymgmt", "distribution", "read", "chain", &key])
        .code(1)
        .error_says("is not distributed to KMS provider");
}

#[test]
fn distributing_needs_update_on_the_key_and_an_endpoint_needs_sudo() {
    let byok = Byok::start();
    let key = unique("authz");
    byok.write_key(&key, &[]).ok();
    // May distribute anything to any provider, and write providers, but
    // neither update the key nor use sudo.
    write_policy(
        &mut byok.daemon.cli(),
        "distributor",
        "path \"keymgmt/kms/*\" { capabilities = [\"create\", \"update\", \"read\"] }",
    );
    let (token, _) = create_token(&mut byok.daemon.cli(), &["--policy", "distributor"]);
    byok.daemon
        .cli()
        .token(&token)
        .run(&["keymgmt", "distribute", PROVIDER, &key])
        .code(1)
        .error_says(&format!("keymgmt/key/{key}"));
    assert!(kms_keys_made_for(&[&key]).is_empty());
    // A provider at an endpoint of the caller's choosing would receive
    // key material wrapped to its own public key: sudo only.
    byok.daemon
        .cli()
        .token(&token)
        .run(&[
            "keymgmt",
            "kms",
            "write",
            "elsewhere",
            "--key-collection",
            "us-east-1",
            "--endpoint",
            "https://kms.attacker.example",
        ])
        .code(1)
        .error_says("permission denied");
    byok.run(&["keymgmt", "kms", "read", "elsewhere"])
        .code(1)
        .error_says("no KMS provider named \"elsewhere\"");
    // Without an endpoint, create is enough.
    byok.daemon
        .cli()
        .token(&token)
        .run(&[
            "keymgmt",
            "kms",
            "write",
            "plain",
            "--key-collection",
            "eu-west-1",
        ])
        .ok();
}
