//! How long a token lives: its expiry and latest expiry when it is made,
//! and the expiry a renewal gives it. Pure functions of the entry and the
//! clock, so the rules are tested without waiting.

use super::store::{MAX_TTL_SECS, Spec, TokenEntry};

/// When a token made at `now` from `spec` expires, and the latest its
/// renewals may reach (0 and 0: never expires; a periodic token without an
/// explicit maximum has no latest: 0). The expiry is capped at the
/// parent's expiry now; the latest is not, as the parent may be renewed
/// (each renewal is capped at the parent's expiry then). Saturating: no
/// duration overflows the clock.
pub(super) fn lifetime(spec: &Spec, now: u64) -> (u64, u64) {
    let parent = spec
        .parent
        .as_ref()
        .map(|p| p.expire_unix)
        .filter(|e| *e != 0);
    let cap = |at: u64| match parent {
        Some(parent) if at == 0 || parent < at => parent,
        _ => at,
    };
    let explicit =
        (spec.explicit_max_ttl_secs > 0).then(|| now.saturating_add(spec.explicit_max_ttl_secs));
    let (ttl, max) = if spec.period_secs > 0 {
        (spec.period_secs, explicit.unwrap_or(0))
    } else if spec.ttl_secs == 0 {
        match explicit {
            // A root token made without a ttl never expires, unless its
            // creator gave it a hard limit.
            None => return (cap(0), 0),
            Some(at) => (
                spec.explicit_max_ttl_secs,
                at.min(now.saturating_add(MAX_TTL_SECS)),
            ),
        }
    } else {
        let max = now.saturating_add(MAX_TTL_SECS);
        (spec.ttl_secs, explicit.map_or(max, |e| e.min(max)))
    };
    let mut expire = now.saturating_add(ttl);
    if max != 0 {
        expire = expire.min(max);
    }
    (cap(expire), max)
}

/// The expiry a renewal at `now` gives `entry`: a periodic token's is now
/// plus its period (whatever the increment); another's now plus the
/// increment (0: its own ttl). Either is capped at the entry's latest
/// (`max_expire_unix`, 0: none) and at `parent_expire` (0: never), and a
/// renewal never brings an expiry forward.
pub fn renewed_expiry(entry: &TokenEntry, now: u64, increment: u64, parent_expire: u64) -> u64 {
    let extend = match (entry.period_secs, increment) {
        (0, 0) => entry.ttl_secs,
        (0, increment) => increment,
        (period, _) => period,
    };
    let mut expire = now.saturating_add(extend);
    if entry.max_expire_unix != 0 {
        expire = expire.min(entry.max_expire_unix);
    }
    if parent_expire != 0 {
        expire = expire.min(parent_expire);
    }
    expire.max(entry.expire_unix)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn spec(ttl_secs: u64, period_secs: u64, explicit_max_ttl_secs: u64) -> Spec {
        Spec {
            policies: vec!["app".into()],
            ttl_secs,
            renewable: true,
            period_secs,
            explicit_max_ttl_secs,
            ..Spec::root()
        }
    }

    /// The entry `spec` makes at `now`, without storage.
    fn made_at(spec: &Spec, now: u64) -> TokenEntry {
        let (expire_unix, max_expire_unix) = lifetime(spec, now);
        TokenEntry {
            accessor: "a".repeat(24),
            policies: spec.policies.clone(),
            created_unix: now,
            expire_unix,
            ttl_secs: spec.period_secs.max(spec.ttl_secs),
            renewable: true,
            max_expire_unix,
            uses_left: 0,
            parent: None,
            period_secs: spec.period_secs,
            explicit_max_ttl_secs: spec.explicit_max_ttl_secs,
            renewed_unix: 0,
            display_name: String::new(),
            meta: BTreeMap::new(),
        }
    }

    #[test]
    fn durations_beyond_the_clock_saturate_instead_of_overflowing() {
        let now = 1_000_000;
        let (expire, max) = lifetime(&spec(0, 0, u64::MAX), now);
        assert_eq!(max, now + MAX_TTL_SECS);
        assert!(expire <= max);
        let (expire, _) = lifetime(&spec(0, u64::MAX, 0), now);
        assert_eq!(expire, u64::MAX);
        let entry = made_at(&spec(0, u64::MAX, 0), now);
        assert_eq!(renewed_expiry(&entry, now, 0, 0), u64::MAX);
    }

    #[test]
    fn a_periodic_child_outlives_its_parents_first_expiry_once_the_parent_is_renewed() {
        let now = 1_000_000;
        let parent = made_at(&spec(0, 6, 0), now);
        let child_spec = Spec {
            parent: Some(parent.clone()),
            ..spec(0, 6, 0)
        };
        let (expire, max) = lifetime(&child_spec, now);
        assert_eq!(expire, parent.expire_unix, "capped by the parent now");
        assert_eq!(max, 0, "but no latest expiry of its own");
        let mut child = made_at(&child_spec, now);
        (child.expire_unix, child.max_expire_unix) = (expire, max);
        // The parent renewed at +4 s lives to +10 s; so may the child.
        let parent_now = now + 4 + 6;
        assert_eq!(renewed_expiry(&child, now + 4, 0, parent_now), now + 10);
    }

    #[test]
    fn a_periodic_token_renewed_lives_past_the_768_hour_maximum() {
        const HOUR: u64 = 3600;
        let created = 1_000_000;
        let mut entry = made_at(&spec(0, 24 * HOUR, 0), created);
        assert_eq!(entry.expire_unix, created + 24 * HOUR);
        assert_eq!(entry.max_expire_unix, 0, "no latest expiry");
        // Renewed every 20 hours for 100 days (the clock is the argument):
        // each renewal sets the expiry to now plus the period, whatever the
        // increment asked.
        let mut now = created;
        for _ in 0..120 {
            now += 20 * HOUR;
            entry.expire_unix = renewed_expiry(&entry, now, 5, 0);
            assert_eq!(entry.expire_unix, now + 24 * HOUR);
        }
        assert!(entry.expire_unix > created + MAX_TTL_SECS);
        // Its parent's expiry still caps it, and a renewal never shortens.
        let mut child = made_at(&spec(0, 24 * HOUR, 0), now);
        child.expire_unix = now + 10;
        assert_eq!(renewed_expiry(&child, now + 5, 0, now + HOUR), now + HOUR);
        assert_eq!(
            renewed_expiry(&entry, now, 0, now + HOUR),
            entry.expire_unix
        );
    }

    #[test]
    fn a_token_that_is_not_periodic_stops_at_768_hours_or_its_explicit_maximum() {
        const HOUR: u64 = 3600;
        let created = 1_000_000;
        let mut entry = made_at(&spec(HOUR, 0, 0), created);
        assert_eq!(entry.expire_unix, created + HOUR);
        assert_eq!(entry.max_expire_unix, created + MAX_TTL_SECS);
        let mut now = created;
        for _ in 0..100 {
            now += HOUR / 2;
            entry.expire_unix = renewed_expiry(&entry, now, 0, 0);
        }
        assert_eq!(entry.expire_unix, now + HOUR);
        let late = created + MAX_TTL_SECS - 10;
        assert_eq!(renewed_expiry(&entry, late, 0, 0), created + MAX_TTL_SECS);
        // An increment replaces the ttl; a renewal never shortens.
        assert_eq!(renewed_expiry(&entry, now, 7200, 0), now + 7200);
        assert_eq!(renewed_expiry(&entry, now, 1, 0), entry.expire_unix);

        // explicit_max_ttl caps the ttl, renewals, and periodic tokens too.
        let explicit = made_at(&spec(2 * HOUR, 0, HOUR), created);
        assert_eq!(explicit.expire_unix, created + HOUR);
        assert_eq!(
            renewed_expiry(&explicit, created + 10, 0, 0),
            created + HOUR
        );
        let periodic = made_at(&spec(0, HOUR, 3 * HOUR), created);
        assert_eq!(periodic.max_expire_unix, created + 3 * HOUR);
        assert_eq!(
            renewed_expiry(&periodic, created + 2 * HOUR + 30, 0, 0),
            created + 3 * HOUR
        );
        // A root token without a ttl never expires.
        assert_eq!(lifetime(&spec(0, 0, 0), created), (0, 0));
    }
}
