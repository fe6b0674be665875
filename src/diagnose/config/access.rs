//! Who the file checks are about, and whether they may read or write a
//! path. The user diagnose runs as is asked of the kernel (`access(2)`);
//! the service user, when diagnose runs as root, is worked out from the
//! mode bits, owner and group of the path and of every directory above it,
//! with the user's supplementary groups (ACLs are not read).

use std::ffi::CString;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use nix::unistd::{AccessFlags, Gid, access, getgrouplist};

use crate::diagnose::Context;

/// What a user must be able to do with a path.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// Read a file.
    Read,
    /// Create and remove entries in a directory (write and search).
    WriteDir,
    /// Append to a file.
    Append,
}

/// A user the checks are made for.
pub struct Who {
    /// How sentences name it, such as `strongroom (uid 996)`.
    pub label: String,
    /// Worked out from mode bits (the service user); else the kernel is
    /// asked for the process's own user.
    by_mode: Option<Ids>,
}

struct Ids {
    uid: u32,
    gid: u32,
    groups: Vec<u32>,
}

impl Who {
    /// The users to check access for: the service user when diagnose runs
    /// as root (root itself can read anything), else the user diagnose runs
    /// as.
    pub fn all(context: &Context) -> Vec<Who> {
        if !nix::unistd::geteuid().is_root() {
            return vec![Who {
                label: context.running_as.clone(),
                by_mode: None,
            }];
        }
        match &context.service_user {
            Some(user) => {
                let groups = CString::new(user.name.as_str())
                    .ok()
                    .and_then(|name| getgrouplist(&name, Gid::from_raw(user.gid)).ok())
                    .map(|groups| groups.into_iter().map(Gid::as_raw).collect())
                    .unwrap_or_else(|| vec![user.gid]);
                vec![Who {
                    label: format!("the service user {} (uid {})", user.name, user.uid),
                    by_mode: Some(Ids {
                        uid: user.uid,
                        gid: user.gid,
                        groups,
                    }),
                }]
            }
            // The process area fails this; here every sentence says so.
            None => vec![Who {
                label: format!(
                    "{} only (the service user {} does not exist)",
                    context.running_as,
                    crate::text::quote(&context.service_user_name)
                ),
                by_mode: None,
            }],
        }
    }

    /// The uid files this user creates are owned by, when known.
    pub fn uid(&self) -> u32 {
        self.by_mode
            .as_ref()
            .map_or_else(|| nix::unistd::geteuid().as_raw(), |ids| ids.uid)
    }

    /// Why this user cannot do `want` with `path` (which exists), as one
    /// sentence; `None` when it can.
    pub fn denied(&self, path: &Path, want: Want) -> Option<String> {
        match &self.by_mode {
            None => {
                let flags = match want {
                    Want::Read => AccessFlags::R_OK,
                    Want::WriteDir => AccessFlags::W_OK | AccessFlags::X_OK,
                    Want::Append => AccessFlags::W_OK,
                };
                access(path, flags).err().map(|e| {
                    format!(
                        "{} cannot {} {}: {}",
                        self.label,
                        verb(want),
                        path.display(),
                        e.desc()
                    )
                })
            }
            Some(ids) => ids
                .denied(path, want)
                .map(|(what, dir)| format!("{} cannot {what} {}", self.label, describe(dir))),
        }
    }
}

fn verb(want: Want) -> &'static str {
    match want {
        Want::Read => "read",
        Want::WriteDir => "create files in",
        Want::Append => "write to",
    }
}

/// `PATH (mode 0700, owner root, group root)`.
fn describe(path: &Path) -> String {
    match std::fs::metadata(path) {
        Ok(meta) => format!(
            "{} (mode {:04o}, owner {}, group {})",
            path.display(),
            meta.permissions().mode() & 0o7777,
            user_name(meta.uid()),
            group_name(meta.gid())
        ),
        Err(_) => path.display().to_string(),
    }
}

/// A user's name, or `uid N`.
pub fn user_name(uid: u32) -> String {
    nix::unistd::User::from_uid(uid.into())
        .ok()
        .flatten()
        .map_or_else(|| format!("uid {uid}"), |u| u.name)
}

fn group_name(gid: u32) -> String {
    nix::unistd::Group::from_gid(gid.into())
        .ok()
        .flatten()
        .map_or_else(|| format!("gid {gid}"), |g| g.name)
}

impl Ids {
    /// The bits (r=4, w=2, x=1) this user has on a path of `meta`.
    fn bits(&self, meta: &std::fs::Metadata) -> u32 {
        let mode = meta.permissions().mode();
        if self.uid == 0 {
            0o7
        } else if meta.uid() == self.uid {
            (mode >> 6) & 0o7
        } else if meta.gid() == self.gid || self.groups.contains(&meta.gid()) {
            (mode >> 3) & 0o7
        } else {
            mode & 0o7
        }
    }

    /// What is refused and where: ("enter", a directory above) or
    /// (the verb, the path itself).
    fn denied<'p>(&self, path: &'p Path, want: Want) -> Option<(&'static str, &'p Path)> {
        let above: Vec<&Path> = path.ancestors().skip(1).collect();
        for dir in above.into_iter().rev() {
            let Ok(meta) = std::fs::metadata(dir) else {
                continue;
            };
            if self.bits(&meta) & 0o1 == 0 {
                return Some(("enter", dir));
            }
        }
        let meta = std::fs::metadata(path).ok()?;
        let needed = match want {
            Want::Read => 0o4,
            Want::WriteDir => 0o3,
            Want::Append => 0o2,
        };
        (self.bits(&meta) & needed != needed).then_some((verb(want), path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mode_bits_decide_for_another_user() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, "x").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).unwrap();
        let meta = std::fs::metadata(&file).unwrap();
        let stranger = Ids {
            uid: meta.uid() + 12345,
            gid: meta.gid() + 12345,
            groups: vec![],
        };
        assert_eq!(
            stranger.denied(&file, Want::Read).unwrap().1,
            file.as_path()
        );
        let member = Ids {
            groups: vec![meta.gid()],
            ..stranger
        };
        assert!(member.denied(&file, Want::Read).is_none());
        assert!(member.denied(&file, Want::Append).is_some());
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let (what, at) = member.denied(&file, Want::Read).unwrap();
        assert_eq!((what, at), ("enter", dir.path()));
    }
}
