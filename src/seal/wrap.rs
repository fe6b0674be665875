//! Wrapping keys under the configured KMS key, shared by init, migration,
//! rekey of recovery keys and root key rotation. Every helper makes its KMS
//! calls and returns envelopes; the caller writes them in one transaction.

use super::envelope::{Envelope, Purpose};
use super::kms::Kms;
use crate::error::Error;
use crate::secret::{SecretKey, ct_eq};

/// Wraps `key` under the configured KMS key and opens it again (one Encrypt,
/// one Decrypt), so a key policy without kms:Decrypt is found before the
/// wrapped key replaces a working one.
pub async fn seal_and_check(
    kms: &dyn Kms,
    purpose: Purpose,
    cluster_id: &str,
    key: &SecretKey,
) -> Result<Envelope, Error> {
    let envelope = Envelope::seal(kms, purpose, cluster_id, key).await?;
    let reopened = envelope.open(kms, purpose, cluster_id).await?;
    if !ct_eq(reopened.expose(), key.expose()) {
        return Err(Error::Internal(
            "KMS returned a different key than it was given; nothing was written".into(),
        ));
    }
    Ok(envelope)
}

/// Wraps the root key and the recovery key (two Encrypts, in parallel), then
/// opens the root-key envelope again (one Decrypt): what a new awskms store
/// needs, at init and at a migration to awskms.
pub async fn wrap_root_and_recovery(
    kms: &dyn Kms,
    cluster_id: &str,
    root_key: &SecretKey,
    recovery_key: &SecretKey,
) -> Result<(Envelope, Envelope), Error> {
    let (root, recovery) = tokio::try_join!(
        Envelope::seal(kms, Purpose::RootKey, cluster_id, root_key),
        Envelope::seal(kms, Purpose::RecoveryKey, cluster_id, recovery_key),
    )?;
    let reopened = root.open(kms, Purpose::RootKey, cluster_id).await?;
    if !ct_eq(reopened.expose(), root_key.expose()) {
        return Err(Error::Internal(
            "KMS returned a different root key than it was given; nothing was written".into(),
        ));
    }
    Ok((root, recovery))
}

/// [`seal_and_check`] for a key that joins envelopes already stored: the new
/// envelope must be under the same KMS key as they are (`stored_arn`), or the
/// store would end up split across two keys. A configured key that now
/// resolves elsewhere is adopted by the rewrap after unseal (same account and
/// region) or by a seal migration, not here.
pub async fn seal_beside(
    kms: &dyn Kms,
    purpose: Purpose,
    cluster_id: &str,
    key: &SecretKey,
    stored_arn: &str,
) -> Result<Envelope, Error> {
    let envelope = seal_and_check(kms, purpose, cluster_id, key).await?;
    if envelope.key_arn != stored_arn {
        return Err(Error::FailedPrecondition(format!(
            "the configured KMS key now wraps with {}, but the stored keys are wrapped by {stored_arn}; nothing changed. Wait for the automatic rewrap (same account and region: `strongroom status` shows it), or move with a seal migration, then try again",
            envelope.key_arn
        )));
    }
    Ok(envelope)
}
