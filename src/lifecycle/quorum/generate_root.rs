//! Generate-root: a new root token for when the root token is lost, made by
//! a quorum of share holders without any token, and returned only under
//! the one-time pad its requester made (`crate::pad`).

use super::{Completed, Kind, Lifecycle, Operation, QuorumStatus};
use crate::access::token;
use crate::barrier::Barrier;
use crate::error::Error;
use crate::pad;
use crate::secret::SecretBytes;
use crate::storage::Batch;

impl Lifecycle {
    /// Starts a generate-root. `otp` is the client's one-time pad, base64;
    /// a bad pad is refused before the seal state matters.
    pub fn generate_root_init(&self, otp: &str) -> Result<QuorumStatus, Error> {
        let otp = pad::parse(otp).map_err(Error::InvalidArgument)?;
        self.unsealed()?;
        self.start(Operation::GenerateRoot, Kind::GenerateRoot { otp })
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
        let err = lifecycle.generate_root_init("c2hvcnQ=").err().unwrap();
        assert_eq!(
            err.to_string(),
            "the one-time pad is 5 bytes long, but it must be 35 (as long as a token)"
        );
        let pad = otp();
        let started = lifecycle.generate_root_init(&pad).unwrap();
        assert!(matches!(
            lifecycle.generate_root_init(&otp()),
            Err(Error::FailedPrecondition(_))
        ));
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
