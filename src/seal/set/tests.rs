//! The seal set with in-memory KMSes: opening in priority order, wrapping
//! side by side, and the stored set's format.

use super::envelopes::MAX_ENVELOPES;
use super::*;
use crate::seal::kms::testing::FakeKms;
use crate::seal::kms::{KmsError, KmsErrorKind};

const CLUSTER: &str = "5f0c2a4e-0000-4000-8000-000000000002";

fn set_of(kms: &[Arc<FakeKms>]) -> SealSet {
    let members = kms
        .iter()
        .enumerate()
        .map(|(i, k)| {
            let priority = u32::try_from(i).unwrap() + 1;
            Member::new(
                format!("s{priority}"),
                priority,
                false,
                Duration::ZERO,
                k.clone() as Arc<dyn Kms>,
            )
        })
        .collect();
    SealSet::new(members, None)
}

async fn wrapped(set: &SealSet, key: &SecretKey) -> EnvelopeSet {
    let wrapping = set.wrap(&[(Purpose::RootKey, key)], CLUSTER, None).await;
    assert!(wrapping.failed.is_empty());
    let mut envelopes = EnvelopeSet::default();
    for (_, mut made) in wrapping.made {
        envelopes.put(made.remove(0));
    }
    envelopes
}

#[tokio::test]
async fn the_first_seal_that_answers_opens_with_one_decrypt() {
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let set = set_of(&[a.clone(), b.clone()]);
    let key = SecretKey::generate();
    let envelopes =
        EnvelopeSet::decode(Purpose::RootKey, &wrapped(&set, &key).await.encode()).unwrap();
    assert_eq!(envelopes.seals().collect::<Vec<_>>().len(), 2);
    let (a_calls, b_calls) = (a.calls().len(), b.calls().len());
    let (opened, by) = set
        .open(&envelopes, Purpose::RootKey, CLUSTER)
        .await
        .unwrap();
    assert_eq!((opened.expose(), by.as_str()), (key.expose(), "s1"));
    assert_eq!(a.calls().len(), a_calls + 1);
    assert_eq!(b.calls().len(), b_calls);

    // The first one failing: the second opens, the first is unhealthy.
    a.fail_next(KmsError::new(KmsErrorKind::Unavailable, "KMS s1 is down"));
    let (_, by) = set
        .open(&envelopes, Purpose::RootKey, CLUSTER)
        .await
        .unwrap();
    assert_eq!(by, "s2");
    let health = set.member("s1").unwrap().health();
    assert!(!health.healthy());
    assert_eq!(health.last_error.as_deref(), Some("KMS s1 is down"));
    assert!(set.member("s2").unwrap().health().healthy());
}

#[tokio::test]
async fn every_seal_failing_says_what_each_said() {
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let set = set_of(&[a.clone(), b.clone()]);
    let envelopes = wrapped(&set, &SecretKey::generate()).await;
    a.fail_next(KmsError::new(KmsErrorKind::Unavailable, "KMS s1 is down"));
    b.fail_next(KmsError::new(KmsErrorKind::Denied, "KMS s2 denied"));
    let failure = set
        .open(&envelopes, Purpose::RootKey, CLUSTER)
        .await
        .err()
        .unwrap();
    assert!(failure.transient);
    assert_eq!(
        failure.to_string(),
        "no seal could open the key: seal \"s1\" said: KMS s1 is down; seal \"s2\" said: KMS s2 denied"
    );
}

#[tokio::test]
async fn a_seal_that_cannot_wrap_is_named_and_the_others_wrap() {
    let (a, b) = (Arc::new(FakeKms::new()), Arc::new(FakeKms::new()));
    let set = set_of(&[a.clone(), b.clone()]);
    b.fail_next(KmsError::new(KmsErrorKind::Unavailable, "KMS s2 is down"));
    let key = SecretKey::generate();
    let wrapping = set.wrap(&[(Purpose::RootKey, &key)], CLUSTER, None).await;
    assert_eq!(wrapping.made.len(), 1);
    assert_eq!(wrapping.made[0].0, "s1");
    assert_eq!(
        wrapping.failed,
        [("s2".to_string(), "KMS s2 is down".to_string())]
    );
}

#[test]
fn a_set_holds_at_most_max_envelopes_and_stays_readable() {
    let named = |i: usize| {
        Envelope::decode(
            Purpose::RootKey,
            &[
                &[2u8, 3][..],
                format!("s{i:02}").as_bytes(),
                &[0, 3],
                b"arn",
                &[0, 2],
                &[9, 9],
                &[1; 12],
                &[2; 48],
            ]
            .concat(),
        )
        .unwrap()
    };
    let mut set = EnvelopeSet::default();
    for i in 0..=MAX_ENVELOPES {
        set.put(named(i));
    }
    assert_eq!(set.seals().count(), MAX_ENVELOPES);
    assert!(set.get(&format!("s{MAX_ENVELOPES:02}")).is_none());
    // Replacing one of them still works when full.
    set.put(named(0));
    assert_eq!(set.seals().count(), MAX_ENVELOPES);
    assert_eq!(
        EnvelopeSet::decode(Purpose::RootKey, &set.encode()).unwrap(),
        {
            let mut again = EnvelopeSet::default();
            for i in 1..MAX_ENVELOPES {
                again.put(named(i));
            }
            again.put(named(0));
            again
        }
    );
}

#[test]
fn malformed_sets_are_refused_without_panicking() {
    let set = EnvelopeSet {
        envelopes: vec![
            Envelope::decode(
                Purpose::RootKey,
                &[
                    &[2u8, 1, b'a'][..],
                    &[0, 3],
                    b"arn",
                    &[0, 2],
                    &[9, 9],
                    &[1; 12],
                    &[2; 48],
                ]
                .concat(),
            )
            .unwrap(),
        ],
    };
    let good = set.encode();
    assert_eq!(EnvelopeSet::decode(Purpose::RootKey, &good).unwrap(), set);
    for len in 0..good.len() {
        assert!(
            EnvelopeSet::decode(Purpose::RootKey, &good[..len]).is_err(),
            "{len}"
        );
    }
    let mut twice = good.clone();
    twice[1] = 2;
    twice.extend_from_slice(&good[2..]);
    assert!(
        EnvelopeSet::decode(Purpose::RootKey, &twice)
            .unwrap_err()
            .to_string()
            .contains("the same seal")
    );
}
