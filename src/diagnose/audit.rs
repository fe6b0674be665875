//! The audit area: for each `audit "file"` device, the directory the file
//! is in (there, and writable by the service user so the daemon can create
//! and reopen it), the file itself when it exists (appendable, and not
//! readable by others: its lines name every caller and path), and the free
//! space where it grows. A device that cannot write stops every call, so
//! each of these is a failure where the daemon would fail.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::config::access::{Want, Who};
use super::config::labels;
use super::storage::free_space;
use super::{Context, Finding};
use crate::config::AuditDevice;

/// The audit area.
pub fn check(context: &Context) -> Finding {
    let config = match context.config_or_skip("audit") {
        Ok(config) => config,
        Err(skipped) => return skipped,
    };
    if config.audit.is_empty() {
        return Finding::heading(
            "audit",
            "",
            vec![Finding::warning(
                "devices",
                "no audit device is configured: calls are not logged",
                "add audit \"file\" { path = \"/var/log/strongroom/audit.log\" } (or audit \"stdout\" {} under systemd)",
            )],
        );
    }
    let users = Who::all(context);
    let children = config
        .audit
        .iter()
        .map(|device| match device {
            AuditDevice::Stdout => Finding::success(
                "stdout",
                "audit lines go to standard output (the journal under systemd)",
            ),
            AuditDevice::File { path } => file_device(context, &users, path),
        })
        .collect();
    Finding::heading("audit", "", children)
}

fn file_device(context: &Context, users: &[Who], path: &Path) -> Finding {
    let name = format!("file {}", path.display());
    let dir = path.parent().unwrap_or(Path::new("/"));
    let mut checks = vec![];
    if !context.skipped("directory") {
        checks.push(directory(users, dir));
    }
    if !context.skipped("file") {
        checks.push(file(users, path));
    }
    if !context.skipped("free space") && dir.is_dir() {
        checks.push(free_space("free space", dir));
    }
    Finding::heading(&name, "", checks)
}

fn directory(users: &[Who], dir: &Path) -> Finding {
    const NAME: &str = "directory";
    if !dir.is_dir() {
        return Finding::failure(
            NAME,
            format!("{} does not exist", dir.display()),
            format!(
                "create it for the service user: install -d -o strongroom -g strongroom -m 0750 {}",
                dir.display()
            ),
        );
    }
    match users.iter().find_map(|who| who.denied(dir, Want::WriteDir)) {
        Some(denied) => Finding::failure(
            NAME,
            denied,
            "the daemon creates the file there and logrotate replaces it: give the service user write access to the directory",
        ),
        None => Finding::success(
            NAME,
            format!("{} can create files in {}", labels(users), dir.display()),
        ),
    }
}

fn file(users: &[Who], path: &Path) -> Finding {
    const NAME: &str = "file";
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(_) => {
            return Finding::success(
                NAME,
                format!(
                    "{} does not exist yet; the daemon creates it with mode 0600",
                    path.display()
                ),
            );
        }
    };
    if meta.is_dir() {
        return Finding::failure(
            NAME,
            format!("{} is a directory, not a file", path.display()),
            "point the audit device's path at a file",
        );
    }
    if let Some(denied) = users.iter().find_map(|who| who.denied(path, Want::Append)) {
        return Finding::failure(
            NAME,
            denied,
            "chown the file to the service user (mode 0600)",
        );
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        Finding::warning(
            NAME,
            format!(
                "{} has mode {mode:04o}: other users can read who called what",
                path.display()
            ),
            format!("chmod 0600 {}", path.display()),
        )
    } else {
        Finding::success(
            NAME,
            format!(
                "{} has mode {mode:04o} and {} can write to it",
                path.display(),
                labels(users)
            ),
        )
    }
}
