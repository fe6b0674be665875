//! `storage "file"`: the data directory (there, or creatable), its owner
//! and mode, free space, the `flock` the daemon takes, the store's format,
//! and a scratch round trip; or, when a daemon holds the lock, its status.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use super::{daemon, free_space, round_trip};
use crate::config::Config;
use crate::diagnose::config::access::{Want, Who, user_name};
use crate::diagnose::config::labels;
use crate::diagnose::{Context, Finding, Status};
use crate::storage::{FORMAT_VERSION, FileBackend, LOCK_FILE, OpenError};

/// The checks of a file store in `dir`.
pub async fn checks(context: &Context, config: &Config, dir: &Path) -> Vec<Finding> {
    let users = Who::all(context);
    let meta = match std::fs::metadata(dir) {
        Ok(meta) => meta,
        Err(_) => return missing(context, &users, dir),
    };
    if !meta.is_dir() {
        return vec![Finding::failure(
            "data directory",
            format!("{} exists and is not a directory", dir.display()),
            "point storage.file.path at a directory, or move the file away",
        )];
    }
    let mut found = vec![
        context.unless_skipped("data directory", || writable(&users, dir)),
        context.unless_skipped("owner", || owner(&users, dir, &meta)),
        context.unless_skipped("mode", || mode(dir, &meta)),
        context.unless_skipped("free space", || free_space("free space", dir)),
    ];
    if context.skipped("lock") {
        found.push(Finding::skipped("lock", "skipped (--skip)"));
        return found;
    }
    let holder = match FileBackend::lock_holder(dir) {
        Ok(holder) => holder,
        Err(e) => {
            // An `Io` error whose reason starts so is flock's own refusal;
            // any other is about opening the lock file.
            let unsupported =
                matches!(&e, OpenError::Io { reason, .. } if reason.starts_with("cannot lock"));
            let advice = if unsupported {
                "put the data directory on a local filesystem that supports flock (not every network filesystem does)"
            } else {
                "run diagnose as root or as the service user, which can open the lock file"
            };
            found.push(Finding::failure(
                "lock",
                format!(
                    "the daemon's lock cannot be taken on {}: {e}",
                    dir.display()
                ),
                advice,
            ));
            return found;
        }
    };
    if let Some(pid) = holder {
        found.push(Finding::success(
            "lock",
            format!(
                "a strongroom process (pid {pid}) holds the lock on {}",
                dir.display()
            ),
        ));
        found.push(if context.skipped("running daemon") {
            Finding::skipped("running daemon", "skipped (--skip)")
        } else {
            daemon::status(config, &pid).await
        });
        return found;
    }
    found.push(Finding::success(
        "lock",
        format!(
            "the filesystem of {} takes the lock the daemon takes (flock), and no process holds it",
            dir.display()
        ),
    ));
    let format = FileBackend::stored_format(dir);
    found.push(context.unless_skipped("format", || format_finding(&format)));
    if context.skipped("round trip") {
        found.push(Finding::skipped("round trip", "skipped (--skip)"));
    } else {
        found.push(match format {
            Ok(Some(FORMAT_VERSION)) => match lock_file_missing_as_root(dir) {
                Some(skipped) => skipped,
                None => store_round_trip(dir).await,
            },
            Ok(None) => scratch_store_round_trip(dir).await,
            Ok(Some(_)) => Finding::skipped(
                "round trip",
                "not made: opening the store would change its format, which the daemon does at its start",
            ),
            Err(OpenError::NotClosedCleanly { .. }) => Finding::skipped(
                "round trip",
                "not made: opening the store for writing would repair it, which the daemon does at its start",
            ),
            Err(_) => Finding::skipped("round trip", "not made: the store cannot be read"),
        });
    }
    found
}

/// A data directory that does not exist yet: the daemon creates it (and
/// its parents) at start, so the nearest existing directory above must let
/// the service user create entries.
fn missing(context: &Context, users: &[Who], dir: &Path) -> Vec<Finding> {
    let Some(existing) = dir.ancestors().skip(1).find(|a| a.is_dir()) else {
        return vec![Finding::failure(
            "data directory",
            format!(
                "{} does not exist, nor any directory above it",
                dir.display()
            ),
            "create it, owned by the service user, mode 0700",
        )];
    };
    let created = match users
        .iter()
        .find_map(|who| who.denied(existing, Want::WriteDir))
    {
        Some(denied) => Finding::failure(
            "data directory",
            format!(
                "{} does not exist and cannot be created: {denied}",
                dir.display()
            ),
            format!(
                "create {} owned by the service user, mode 0700 (install -d -o strongroom -g strongroom -m 0700 {})",
                dir.display(),
                dir.display()
            ),
        ),
        None => Finding::success(
            "data directory",
            format!(
                "{} does not exist yet; the daemon creates it (mode 0700) in {}, where {} can create it",
                dir.display(),
                existing.display(),
                labels(users)
            ),
        ),
    };
    let not_yet = "the data directory does not exist yet";
    vec![
        created,
        context.unless_skipped("free space", || free_space("free space", existing)),
        Finding::skipped("format", format!("{not_yet}: not initialized yet")),
        Finding::skipped("round trip", not_yet),
    ]
}

fn writable(users: &[Who], dir: &Path) -> Finding {
    const NAME: &str = "data directory";
    match users.iter().find_map(|who| who.denied(dir, Want::WriteDir)) {
        Some(denied) => Finding::failure(
            NAME,
            denied,
            "make the service user the directory's owner (chown -R strongroom: DIR) with mode 0700",
        ),
        None => Finding::success(
            NAME,
            format!(
                "{} exists and {} can write to it",
                dir.display(),
                labels(users)
            ),
        ),
    }
}

fn owner(users: &[Who], dir: &Path, meta: &std::fs::Metadata) -> Finding {
    const NAME: &str = "owner";
    let owner = user_name(meta.uid());
    match users.iter().find(|who| who.uid() != meta.uid()) {
        Some(who) => Finding::warning(
            NAME,
            format!(
                "{} is owned by {owner}, not by {}: the daemon's files in it may end up with owners that one of them cannot open",
                dir.display(),
                who.label
            ),
            "chown -R the directory to the user the daemon runs as",
        ),
        None => Finding::success(NAME, format!("{} is owned by {owner}", dir.display())),
    }
}

fn mode(dir: &Path, meta: &std::fs::Metadata) -> Finding {
    const NAME: &str = "mode";
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 == 0 {
        Finding::success(NAME, format!("{} has mode {mode:04o}", dir.display()))
    } else {
        Finding::warning(
            NAME,
            format!(
                "{} has mode {mode:04o}: other users can see how much is stored and when (the data is encrypted)",
                dir.display()
            ),
            format!("chmod 0700 {}", dir.display()),
        )
    }
}

fn format_finding(format: &Result<Option<u32>, OpenError>) -> Finding {
    const NAME: &str = "format";
    match format {
        Ok(None) => Finding::success(
            NAME,
            format!(
                "no store yet: not initialized yet (the daemon creates one, format {FORMAT_VERSION}, at its first start)"
            ),
        ),
        Ok(Some(FORMAT_VERSION)) => Finding::success(
            NAME,
            format!("storage format {FORMAT_VERSION}, the one this build writes"),
        ),
        Ok(Some(found)) if *found > FORMAT_VERSION => Finding::failure(
            NAME,
            format!(
                "storage format {found} was written by a newer strongroom; this build reads format {FORMAT_VERSION} and older"
            ),
            "run the strongroom version that wrote it, or a newer one",
        ),
        Ok(Some(found)) => Finding::warning(
            NAME,
            format!(
                "storage format {found}: the daemon raises it to {FORMAT_VERSION} at its next start, after which older builds refuse it"
            ),
            "take a snapshot before starting this version",
        ),
        Err(e @ OpenError::NotClosedCleanly { .. }) => Finding::warning(
            NAME,
            e.to_string(),
            "nothing to do: the daemon's next start repairs it (run diagnose again after that to check the store itself)",
        ),
        Err(e) => Finding::failure(
            NAME,
            format!("the store cannot be read: {e}"),
            "restore the data directory from a snapshot, or check the disk",
        ),
    }
}

/// The round trip in the store itself, under its lock.
async fn store_round_trip(dir: &Path) -> Finding {
    match FileBackend::open(dir) {
        Ok(backend) => round_trip(&backend, &format!("the store in {}", dir.display())).await,
        Err(e) => Finding::failure(
            "round trip",
            format!("the store cannot be opened: {e}"),
            "the daemon could not open it either: fix the error above",
        ),
    }
}

/// No store yet: the round trip runs in a scratch store in a new
/// directory inside the data directory (same filesystem, same code), which
/// is then removed, so no store is created before the daemon's first start.
async fn scratch_store_round_trip(dir: &Path) -> Finding {
    let scratch = dir.join(format!(
        ".diagnose-{}",
        hex::encode(crate::secret::random_bytes(6))
    ));
    let finding = match FileBackend::open(&scratch) {
        Ok(backend) => {
            round_trip(
                &backend,
                &format!("a scratch store in {} (no store exists yet)", dir.display()),
            )
            .await
        }
        Err(e) => Finding::failure(
            "round trip",
            format!("a scratch store cannot be made in {}: {e}", dir.display()),
            "the daemon could not make its store either: fix the error above",
        ),
    };
    let removed = match std::fs::remove_dir_all(&scratch) {
        Err(e) if scratch.exists() => Err(e.to_string()),
        _ => Ok(()),
    };
    after_removal(finding, &scratch, removed)
}

/// The round trip's finding once its scratch store was removed, or not: a
/// scratch store left behind is worth a warning, but never hides a failure.
fn after_removal(finding: Finding, scratch: &Path, removed: Result<(), String>) -> Finding {
    let Err(e) = removed else {
        return finding;
    };
    let message = format!(
        "{}; the scratch store {} could not be removed: {e}",
        finding.message,
        scratch.display()
    );
    let advice = format!("remove {}", scratch.display());
    match finding.status {
        Status::Failure => Finding::failure(
            &finding.name,
            message,
            format!(
                "{}; then {advice}",
                finding.advice.as_deref().unwrap_or("fix the error above")
            ),
        ),
        _ => Finding::warning(&finding.name, message, advice),
    }
}

/// As root, opening the store would create a missing lock file owned by
/// root, mode 0600, which the daemon's own user then cannot open: the
/// round trip is skipped, and why is said.
fn lock_file_missing_as_root(dir: &Path) -> Option<Finding> {
    (nix::unistd::geteuid().is_root() && !dir.join(LOCK_FILE).exists()).then(|| {
        Finding::skipped(
            "round trip",
            format!(
                "not made: {} has no {LOCK_FILE}, and opening the store as root would create one owned by root that the service user could not open (run diagnose as the service user to make the round trip)",
                dir.display()
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_round_trip_stays_failed_when_its_scratch_remains() {
        let scratch = Path::new("/data/.diagnose-00");
        let failed = Finding::failure("round trip", "writing failed", "fix the disk");
        let kept = after_removal(failed.clone(), scratch, Err("busy".into()));
        assert_eq!(kept.status, Status::Failure);
        assert!(
            kept.message.contains("could not be removed: busy"),
            "{kept:?}"
        );
        let fine = Finding::success("round trip", "wrote");
        assert_eq!(
            after_removal(fine.clone(), scratch, Err("busy".into())).status,
            Status::Warning
        );
        assert_eq!(after_removal(fine.clone(), scratch, Ok(())), fine);
        assert_eq!(after_removal(failed.clone(), scratch, Ok(())), failed);
    }
}
