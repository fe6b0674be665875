//! One KMS seal's checks: its credentials, DescribeKey, an Encrypt and
//! Decrypt round trip of a random value and its latency, and whether the
//! stored root key is wrapped by its key.

use std::time::{Duration, Instant};

use super::root::stored_root;
use super::stored::Stored;
use super::{Target, wrapped_by};
use crate::diagnose::{Context, Finding, Status};
use crate::seal::awskms::{AwsKms, KeyDescription, arn_scope, is_access_denied};
use crate::seal::kms::{EncryptionContext, KeyState, Kms, KmsError, KmsErrorKind};

const CREDENTIALS: &str = "credentials";
const KEY: &str = "key";
const ROUND_TRIP: &str = "encrypt and decrypt";
const LATENCY: &str = "latency";
/// The check of the stored root key ([`stored_root`]).
pub const STORED: &str = "stored root key";

/// The key spec and usage the seal needs.
const SPEC: &str = "SYMMETRIC_DEFAULT";
const USAGE: &str = "ENCRYPT_DECRYPT";

/// Over this, a round trip is slow: every unseal and rewrap waits on it.
const SLOW: Duration = Duration::from_millis(500);

/// The encryption context's purpose for diagnose's round trip: its blob
/// can never pass for a store key's (`root-key`, `recovery-key`).
const PURPOSE: &str = "diagnose";

/// The checks of one KMS seal, under its heading.
pub async fn check(context: &Context, target: &Target<'_>, stored: &Stored) -> Finding {
    let seal = target.seal;
    let kms = AwsKms::new(seal.clone());
    let key = seal.kms_key_id.value.as_str();
    let mut children = Vec::new();
    let skip = |name: &str| {
        context
            .skipped(name)
            .then(|| Finding::skipped(name, "skipped (--skip)"))
    };

    let credentials = match skip(CREDENTIALS) {
        Some(skipped) => skipped,
        None => match kms.resolve_credentials().await {
            Ok(source) => {
                Finding::success(CREDENTIALS, format!("AWS credentials are found ({source})"))
            }
            // The chain's list of what it tried is long: bounded.
            Err(e) => Finding::failure(
                CREDENTIALS,
                crate::text::bounded(e.message),
                "give the seal credentials: an instance role or web identity, AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY in the unit's environment file, or a shared credentials file",
            ),
        },
    };
    let no_credentials = credentials.status == Status::Failure;
    children.push(credentials);
    if no_credentials {
        for name in [KEY, ROUND_TRIP, LATENCY] {
            children.push(Finding::skipped(
                name,
                "no AWS credentials (see credentials)",
            ));
        }
    }

    let mut arn = None;
    let mut usable = !no_credentials;
    if !no_credentials {
        let found = match skip(KEY) {
            Some(skipped) => skipped,
            None => {
                let (finding, described) = describe(&kms, key).await;
                match described {
                    Ok(described) => {
                        usable = described.state == KeyState::Enabled;
                        arn = Some(described.arn);
                    }
                    // Not described (DescribeKey denied, say): the round
                    // trip still tells whether the key works.
                    Err(unusable) => usable = !unusable,
                }
                finding
            }
        };
        children.push(found);
    }
    if usable {
        let (round_trip, latency) = match skip(ROUND_TRIP) {
            Some(skipped) => (skipped, Finding::skipped(LATENCY, "no round trip was made")),
            None => {
                let (finding, done) = round_trip(&kms, key, target, stored).await;
                let latency = match done {
                    Some((took, wrapped_by)) => {
                        arn.get_or_insert(wrapped_by);
                        latency(took)
                    }
                    None => {
                        Finding::skipped(LATENCY, "the round trip failed (see encrypt and decrypt)")
                    }
                };
                (finding, latency)
            }
        };
        children.push(round_trip);
        children.push(skip(LATENCY).unwrap_or(latency));
    } else if !no_credentials {
        children.push(Finding::skipped(
            ROUND_TRIP,
            "the key is not usable (see key)",
        ));
        children.push(Finding::skipped(LATENCY, "no round trip was made"));
    }
    let arn = arn.or_else(|| key.starts_with("arn:").then(|| key.to_string()));
    children.push(skip(STORED).unwrap_or_else(|| stored_root(stored, target, arn.as_deref())));

    // A decrypt-only seal that wraps nothing in the store is not needed:
    // its problems are worth a look, not a failed start.
    if target.disabled
        && !arn
            .as_deref()
            .is_some_and(|a| wrapped_by(stored, target, a))
    {
        children = children.into_iter().map(soften).collect();
    }
    let region = seal.region.as_ref().map_or_else(
        || "the region of the AWS chain".to_string(),
        |r| format!("region {}", r.value),
    );
    let through = seal
        .endpoint
        .as_ref()
        .map(|e| format!(", through {}", e.value))
        .unwrap_or_default();
    Finding::heading(
        &target.label,
        format!("KMS key {key} in {region}{through}"),
        children,
    )
}

/// A failure as a warning, advice kept.
fn soften(mut finding: Finding) -> Finding {
    if finding.status == Status::Failure {
        finding.status = Status::Warning;
        finding.message = format!(
            "{} (a disabled seal, not needed by this store)",
            finding.message
        );
    }
    finding
}

/// A failed KMS call of `action` as one sentence: a missing permission
/// named as such, else the seal's own sentence, with what to do.
fn kms_failure(name: &str, action: &str, key: &str, e: &KmsError) -> Finding {
    if is_access_denied(e) {
        let said = e.message.split_once(": ").map_or("", |(_, said)| said);
        return Finding::failure(
            name,
            format!("kms:{action} is not allowed on key {key} for these credentials: {said}"),
            format!(
                "allow kms:{action} on the key to the seal's identity, in the key policy or an IAM policy"
            ),
        );
    }
    let advice = match e.kind {
        KmsErrorKind::KeyUnusable => {
            "enable the key, cancel its deletion, or configure a usable key"
        }
        KmsErrorKind::Unavailable | KmsErrorKind::Throttled => {
            "check the endpoint, the region and the network path to KMS (proxy, VPC endpoint, firewall)"
        }
        KmsErrorKind::Denied => "check the seal's credentials: KMS refused them",
        KmsErrorKind::Rejected => "check the key and the encryption context a key policy requires",
        KmsErrorKind::Config => "fix the seal block",
    };
    Finding::failure(name, e.message.clone(), advice)
}

/// DescribeKey: the key exists, is enabled, symmetric, for encryption, and
/// in the seal's region. Without a description: whether the key is known
/// to be unusable (missing, disabled, in another region).
async fn describe(kms: &AwsKms, key: &str) -> (Finding, Result<KeyDescription, bool>) {
    let described = kms.describe().await;
    let region = kms.signing_region().unwrap_or_default();
    let elsewhere = |arn: &str| {
        arn_scope(arn)
            .map(|(_, in_region, _)| in_region)
            .filter(|r| !region.is_empty() && *r != region)
            .map(str::to_string)
    };
    let described = match described {
        Ok(described) => described,
        Err(e) => {
            let unusable = e.kind == KmsErrorKind::KeyUnusable;
            let finding = match elsewhere(key) {
                Some(other) => {
                    return (
                        Finding::failure(
                            KEY,
                            format!(
                                "the key {key} is in region {other}, but the seal's region is {region}: KMS keys are regional"
                            ),
                            "set the seal's region to the key's, or use a key in the seal's region",
                        ),
                        Err(true),
                    );
                }
                None => kms_failure(KEY, "DescribeKey", key, &e),
            };
            return (finding, Err(unusable));
        }
    };
    let mut wrong = Vec::new();
    match &described.state {
        KeyState::Enabled => {}
        KeyState::Disabled => wrong.push("it is disabled".to_string()),
        KeyState::PendingDeletion => wrong.push("it is pending deletion".to_string()),
        KeyState::Other(state) => wrong.push(format!("its state is {state}")),
    }
    // Only what KMS names counts: a symmetric key is always for encryption.
    if let Some(spec) = described.key_spec.as_deref().filter(|s| *s != SPEC) {
        wrong.push(format!("its spec is {spec} (the seal needs {SPEC})"));
    }
    if let Some(usage) = described.key_usage.as_deref().filter(|u| *u != USAGE) {
        wrong.push(format!("its usage is {usage} (the seal needs {USAGE})"));
    }
    if let Some(other) = elsewhere(&described.arn) {
        wrong.push(format!(
            "it is in region {other}, but the seal's region is {region}"
        ));
    }
    let finding = if wrong.is_empty() {
        Finding::success(
            KEY,
            format!(
                "KMS key {} is Enabled, {SPEC}, {USAGE}, in region {region}",
                described.arn
            ),
        )
    } else {
        Finding::failure(
            KEY,
            format!(
                "KMS key {} cannot seal: {}",
                described.arn,
                wrong.join(", ")
            ),
            "enable the key (or cancel its deletion), or configure a symmetric encryption key in the seal's region",
        )
    };
    (finding, Ok(described))
}

/// Encrypt and Decrypt of a random value with the seal's encryption
/// context; the time both took and the ARN Encrypt named, when they worked.
async fn round_trip(
    kms: &AwsKms,
    key: &str,
    target: &Target<'_>,
    stored: &Stored,
) -> (Finding, Option<(Duration, String)>) {
    let context = EncryptionContext {
        purpose: PURPOSE,
        cluster_id: stored.cluster_id().unwrap_or(PURPOSE).to_string(),
        seal: target.name.map(str::to_string),
    };
    let mut value = [0u8; 32];
    crate::secret::fill_random(&mut value);
    // The store is there but its cluster id was not read (a running
    // daemon holds it, say): a key policy conditioned on the cluster id
    // denies this context, and that says nothing of the daemon's.
    let unknown = match stored {
        Stored::Unknown(why) => Some(why.as_str()),
        _ => None,
    };
    let started = Instant::now();
    let wrapped = match kms.encrypt(&value, &context).await {
        Ok(wrapped) => wrapped,
        Err(e) => return (round_trip_failure("Encrypt", key, &e, unknown), None),
    };
    let opened = match kms
        .decrypt(&wrapped.ciphertext, &context, &wrapped.key_arn)
        .await
    {
        Ok(opened) => opened,
        Err(e) => return (round_trip_failure("Decrypt", key, &e, unknown), None),
    };
    let took = started.elapsed();
    if opened.plaintext.expose() != value.as_slice() {
        return (
            Finding::failure(
                ROUND_TRIP,
                format!(
                    "KMS decrypted the test value under {} to other bytes",
                    wrapped.key_arn
                ),
                "check the endpoint: it does not behave as KMS",
            ),
            None,
        );
    }
    let keys: Vec<&str> = context.pairs().iter().map(|(k, _)| *k).collect();
    let finding = Finding::success(
        ROUND_TRIP,
        format!(
            "Encrypt and Decrypt of a random value under {} work (kms:Encrypt and kms:Decrypt are allowed, with the encryption context's {})",
            wrapped.key_arn,
            keys.join(", ")
        ),
    );
    (finding, Some((took, wrapped.key_arn)))
}

/// A failed Encrypt or Decrypt of the round trip; denied while the
/// store's cluster id is `unknown` (why), a warning: the context could not
/// carry the cluster id a key policy may require.
fn round_trip_failure(action: &str, key: &str, e: &KmsError, unknown: Option<&str>) -> Finding {
    let failure = kms_failure(ROUND_TRIP, action, key, e);
    match unknown {
        Some(why) if is_access_denied(e) => Finding::warning(
            ROUND_TRIP,
            format!(
                "{}; the store's cluster id could not be read ({why}), so the encryption context carried cluster_id = \"{PURPOSE}\" instead, which a key policy conditioned on the cluster id denies",
                failure.message
            ),
            "run diagnose while the daemon is stopped to check with the store's cluster id, or see `strongroom status`: a running daemon that unsealed has the permission it needs",
        ),
        _ => failure,
    }
}

fn latency(took: Duration) -> Finding {
    let ms = took.as_millis();
    if took > SLOW {
        Finding::warning(
            LATENCY,
            format!(
                "the Encrypt and Decrypt round trip took {ms} ms (over {} ms): every unseal waits on KMS",
                SLOW.as_millis()
            ),
            "use KMS in the daemon's region, or a VPC endpoint; check for a slow proxy on the way",
        )
    } else {
        Finding::success(
            LATENCY,
            format!("the Encrypt and Decrypt round trip took {ms} ms"),
        )
    }
}
