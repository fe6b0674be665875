//! Generate-root: a new root token for when the root token is lost, made by
//! a quorum of share holders without any token, and returned only under
//! the one-time pad its requester made (`crate::pad`).

use super::{Completed, Kind, Lifecycle, Operation, QuorumStatus};
use crate::access::token;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::lifecycle::unseal::issued_share;
use crate::pad;
use crate::secret::SecretBytes;
use crate::storage::Batch;

impl Lifecycle {
    /// Starts a generate-root. `otp` is the client's one-time pad, base64;
    /// a bad pad is refused before the seal state matters. `claim`, one of
    /// the store's shares, proves the caller holds one: the attempt can
    /// then be replaced only by its cancel (or after 15 idle minutes), not
    /// by anyone's start. It is not counted: enter it as any other.
    pub fn generate_root_init(
        &self,
        otp: &str,
        claim: Option<&str>,
    ) -> Result<QuorumStatus, Error> {
        let otp = pad::parse(otp).map_err(Error::InvalidArgument)?;
        let (config, _) = self.unsealed()?;
        if let Some(key) = claim {
            issued_share(key, &config)?;
        }
        self.start(
            Operation::GenerateRoot,
            Kind::GenerateRoot { otp },
            claim.is_some(),
        )
    }

    /// Makes a root token and returns it XORed with the pad.
    pub(super) async fn generate_root_with(
        &self,
        barrier: &Barrier,
        otp: &SecretBytes,
    ) -> Result<Completed, Error> {
        let mut batch = Batch::new();
        let (token, entry) = token::create(barrier, &mut batch, token::Spec::root());
        barrier.write(batch).await?;
        tracing::info!(accessor = %entry.accessor, "generate-root: a new root token was made");
        Ok(Completed::GeneratedRoot {
            encoded_token: pad::apply(token.expose().as_bytes(), otp.expose()),
            accessor: entry.accessor,
        })
    }
}

#[cfg(test)]
mod tests {
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::lifecycle::quorum::testing::{enter, shamir};

    fn otp() -> String {
        STANDARD.encode(crate::secret::random_bytes(pad::PAD_LEN))
    }

    #[tokio::test]
    async fn generate_root_makes_a_working_token_behind_a_pad() {
        let store = shamir(3, 2).await;
        let lifecycle = &store.lifecycle;
        let err = lifecycle
            .generate_root_init("c2hvcnQ=", None)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "the one-time pad is 5 bytes long, but it must be 35 (as long as a token)"
        );
        let pad = otp();
        // Anyone's start replaces an attempt that holds no key...
        let unclaimed = lifecycle.generate_root_init(&otp(), None).unwrap();
        let started = lifecycle
            .generate_root_init(&pad, Some(&store.shares[2]))
            .unwrap();
        assert_ne!(started.nonce, unclaimed.nonce);
        // ...but not one that does, with or without a key.
        for claim in [None, Some(store.shares[1].as_str())] {
            assert!(matches!(
                lifecycle.generate_root_init(&otp(), claim),
                Err(Error::FailedPrecondition(_))
            ));
        }
        // A claim must be one of the store's keys.
        let other = shamir(3, 2).await;
        let refused = other
            .lifecycle
            .generate_root_init(&otp(), Some(&store.shares[0]))
            .unwrap_err();
        assert!(refused.to_string().contains("never issued"), "{refused}");
        let done = enter(
            lifecycle,
            Operation::GenerateRoot,
            &started.nonce,
            &store.shares[..2],
        )
        .await;
        let Some(Completed::GeneratedRoot {
            encoded_token,
            accessor,
        }) = done.result
        else {
            panic!("no token");
        };
        let token = pad::remove(&encoded_token, &pad).unwrap();
        // A root token that works (the gate's tests authorize with one).
        let found = token::lookup(&lifecycle.barrier().unwrap(), Some(token.expose()))
            .await
            .unwrap();
        assert!(found.entry.is_root());
        assert_eq!(accessor.len(), 24);
        assert!(pad::remove(&encoded_token, &otp()).is_err(), "another pad");
    }
}
