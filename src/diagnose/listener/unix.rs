//! A unix socket listener: its directory exists and the service can create
//! the socket in it, the path is free (or a strongroom answers there), and
//! the configured owner and group exist and the service may set them.

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use nix::unistd::{AccessFlags, Gid, Group, Uid, User};

use super::ask;
use crate::config::UnixListener;
use crate::diagnose::{Context, Finding};

const DIRECTORY: &str = "socket directory";
const BIND: &str = "bind";
const OWNER: &str = "socket owner";

/// Who the daemon will run as: the service user when diagnose runs as
/// root, else whoever runs diagnose.
struct Service {
    name: String,
    uid: u32,
    gid: u32,
}

fn service(context: &Context) -> Service {
    match &context.service_user {
        Some(user) => Service {
            name: user.name.clone(),
            uid: user.uid,
            gid: user.gid,
        },
        None => Service {
            name: context.running_as.clone(),
            uid: nix::unistd::geteuid().as_raw(),
            gid: nix::unistd::getegid().as_raw(),
        },
    }
}

/// The checks of one unix socket listener, under its heading.
pub async fn check(context: &Context, listener: &UnixListener) -> Finding {
    let path = &listener.path;
    let label = format!("unix {}", path.display());
    if context.skipped(&label) {
        return Finding::skipped(&label, "skipped (--skip)");
    }
    let service = service(context);
    let skip = |name: &str| {
        context
            .skipped(name)
            .then(|| Finding::skipped(name, "skipped (--skip)"))
    };
    let directory = skip(DIRECTORY).unwrap_or_else(|| directory(path, &service));
    let bind = match skip(BIND) {
        Some(skipped) => skipped,
        None => bind(path).await,
    };
    let owner = skip(OWNER).unwrap_or_else(|| owner(listener, &service));
    Finding::heading(&label, "", vec![directory, bind, owner])
}

/// Whether `user` may write and search a directory with `meta`.
fn may_create_in(meta: &std::fs::Metadata, service: &Service) -> bool {
    if service.uid == 0 {
        return true;
    }
    let mode = meta.mode();
    let in_group = meta.gid() == service.gid || member(service, meta.gid());
    if meta.uid() == service.uid {
        mode & 0o300 == 0o300
    } else if in_group {
        mode & 0o030 == 0o030
    } else {
        mode & 0o003 == 0o003
    }
}

/// Whether the service user is in group `gid` (primary or supplementary).
fn member(service: &Service, gid: u32) -> bool {
    if service.gid == gid {
        return true;
    }
    let Ok(name) = std::ffi::CString::new(service.name.as_str()) else {
        return false;
    };
    nix::unistd::getgrouplist(&name, Gid::from_raw(service.gid))
        .is_ok_and(|groups| groups.iter().any(|g| g.as_raw() == gid))
}

fn directory(path: &Path, service: &Service) -> Finding {
    let Some(dir) = path.parent() else {
        return Finding::failure(
            DIRECTORY,
            format!("{} has no directory", path.display()),
            "give the socket an absolute path",
        );
    };
    let meta = match std::fs::metadata(dir) {
        Ok(meta) if meta.is_dir() => meta,
        Ok(_) => {
            return Finding::failure(
                DIRECTORY,
                format!("{} is not a directory", dir.display()),
                "point the socket's path into a directory",
            );
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(finding) = made_by_systemd(dir) {
                return finding;
            }
            return Finding::failure(
                DIRECTORY,
                format!(
                    "the socket's directory {} does not exist: the daemon creates the socket, not its directory",
                    dir.display()
                ),
                "create it, owned by the service user (RuntimeDirectory=strongroom in the unit makes /run/strongroom)",
            );
        }
        Err(e) => {
            return Finding::failure(
                DIRECTORY,
                format!(
                    "the socket's directory {} cannot be used: {e}",
                    dir.display()
                ),
                "give the service user access to it, or point the socket elsewhere",
            );
        }
    };
    let mode = meta.mode() & 0o7777;
    let owner = User::from_uid(Uid::from_raw(meta.uid()))
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {}", meta.uid()), |u| u.name);
    // For the user diagnose runs as, ask the kernel (ACLs count); for the
    // service user, read the mode bits.
    let writable = if service.uid == nix::unistd::geteuid().as_raw() {
        nix::unistd::access(dir, AccessFlags::W_OK | AccessFlags::X_OK).is_ok()
    } else {
        may_create_in(&meta, service)
    };
    if !writable {
        return Finding::failure(
            DIRECTORY,
            format!(
                "{} (mode {mode:04o}, owner {owner}) does not let {} create the socket in it",
                dir.display(),
                service.name
            ),
            format!(
                "give {} write access to the directory, or put the socket in one it owns",
                service.name
            ),
        );
    }
    if mode & 0o002 != 0 {
        return Finding::warning(
            DIRECTORY,
            format!(
                "{} (mode {mode:04o}) is writable by every user: another user could take the socket's path before the daemon starts",
                dir.display()
            ),
            "put the socket in a directory only the service user can write (/run/strongroom)",
        );
    }
    Finding::success(
        DIRECTORY,
        format!(
            "{} exists (mode {mode:04o}, owner {owner}) and {} can create the socket in it",
            dir.display(),
            service.name
        ),
    )
}

/// Where an installed unit may be.
const UNIT_FILES: [&str; 3] = [
    "/etc/systemd/system/strongroom.service",
    "/usr/lib/systemd/system/strongroom.service",
    "/lib/systemd/system/strongroom.service",
];

/// A missing `/run/NAME` is what a stopped unit with
/// `RuntimeDirectory=NAME` leaves (systemd makes it at start and removes
/// it at stop): success when an installed unit says so, else a warning;
/// `None` for a directory elsewhere.
fn made_by_systemd(dir: &Path) -> Option<Finding> {
    if dir.parent() != Some(Path::new("/run")) {
        return None;
    }
    let name = dir.file_name()?.to_str()?;
    let unit = UNIT_FILES.iter().find(|unit| {
        std::fs::read_to_string(unit).is_ok_and(|text| runtime_directories(&text).contains(&name))
    });
    Some(match unit {
        Some(unit) => Finding::success(
            DIRECTORY,
            format!(
                "{} does not exist while the service is stopped: {unit} has RuntimeDirectory={name}, so systemd makes it at start",
                dir.display()
            ),
        ),
        None => Finding::warning(
            DIRECTORY,
            format!(
                "{} does not exist, and no installed strongroom.service has RuntimeDirectory={name}, which would make it at start",
                dir.display()
            ),
            format!(
                "install the unit (deploy/strongroom.service has RuntimeDirectory=strongroom), or create {} owned by the service user",
                dir.display()
            ),
        ),
    })
}

/// The directories a unit's `RuntimeDirectory=` lines name.
fn runtime_directories(unit: &str) -> Vec<&str> {
    unit.lines()
        .filter_map(|line| line.trim().strip_prefix("RuntimeDirectory="))
        .flat_map(str::split_whitespace)
        .collect()
}

/// The path is free, a stale socket the daemon replaces, or taken.
async fn bind(path: &Path) -> Finding {
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) => meta,
        Err(_) => return Finding::success(BIND, format!("{} is free", path.display())),
    };
    if !meta.file_type().is_socket() {
        return Finding::failure(
            BIND,
            format!(
                "{} exists and is not a socket: the daemon will not replace it",
                path.display()
            ),
            "remove the file, or choose another path",
        );
    }
    if std::os::unix::net::UnixStream::connect(path).is_err() {
        return Finding::success(
            BIND,
            format!(
                "{} is a stale socket no process answers on: the daemon replaces it",
                path.display()
            ),
        );
    }
    match ask::unix(path).await {
        Ok(state) => Finding::warning(
            BIND,
            format!(
                "a running strongroom answers on {} ({state}): a second daemon could not listen there",
                path.display()
            ),
            "stop the running daemon before starting another on this socket; nothing to do if it is this config's own daemon",
        ),
        Err(_) => Finding::failure(
            BIND,
            format!(
                "another process answers on {}, and not as a strongroom",
                path.display()
            ),
            "stop that process, or choose another path",
        ),
    }
}

/// `socket_user` and `socket_group` exist, and the service may give the
/// socket to them (only root gives files away; a group needs membership).
fn owner(listener: &UnixListener, service: &Service) -> Finding {
    if listener.uid.is_none() && listener.gid.is_none() {
        return Finding::success(
            OWNER,
            format!(
                "no socket_user or socket_group: the socket belongs to {}",
                service.name
            ),
        );
    }
    let mut named = Vec::new();
    if let Some(uid) = listener.uid {
        let Some(user) = User::from_uid(Uid::from_raw(uid)).ok().flatten() else {
            return Finding::failure(
                OWNER,
                format!("socket_user {uid} is not a user of this host"),
                "create the user, or name an existing one",
            );
        };
        if service.uid != 0 && service.uid != uid {
            return Finding::failure(
                OWNER,
                format!(
                    "{} cannot give the socket to user {} (uid {uid}): only a process with CAP_CHOWN may give a file away",
                    service.name, user.name
                ),
                "leave socket_user out and grant access through socket_group",
            );
        }
        named.push(format!("user {}", user.name));
    }
    if let Some(gid) = listener.gid {
        let Some(group) = Group::from_gid(Gid::from_raw(gid)).ok().flatten() else {
            return Finding::failure(
                OWNER,
                format!("socket_group {gid} is not a group of this host"),
                "create the group, or name an existing one",
            );
        };
        if service.uid != 0 && !member(service, gid) {
            return Finding::failure(
                OWNER,
                format!(
                    "{} is not in group {} (gid {gid}), so it cannot give the socket to that group",
                    service.name, group.name
                ),
                format!(
                    "add {} to the group (SupplementaryGroups={} in a drop-in, or usermod -aG)",
                    service.name, group.name
                ),
            );
        }
        named.push(format!("group {}", group.name));
    }
    Finding::success(
        OWNER,
        format!(
            "{} can give the socket to {}",
            service.name,
            named.join(" and ")
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_units_runtime_directories_are_read() {
        let unit = "[Service]\nUser=strongroom\nRuntimeDirectory=strongroom other\n  RuntimeDirectoryMode=0711\n";
        assert_eq!(runtime_directories(unit), ["strongroom", "other"]);
        assert!(runtime_directories("[Service]\nStateDirectory=strongroom\n").is_empty());
    }

    #[test]
    fn only_a_directory_right_under_run_may_be_systemds() {
        assert!(made_by_systemd(Path::new("/var/run-not/strongroom")).is_none());
        assert!(made_by_systemd(Path::new("/run/strongroom/deeper")).is_none());
        let found = made_by_systemd(Path::new("/run/strongroom-no-such-unit")).unwrap();
        assert_eq!(found.status, crate::diagnose::Status::Warning);
        assert!(
            found
                .message
                .contains("RuntimeDirectory=strongroom-no-such-unit")
        );
    }
}
