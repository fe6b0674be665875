//! The maintainer scripts, run against an extracted root with DPKG_ROOT.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use super::build::{Package, bounded, text};

/// The passwd line of `name` in `root`, split at its colons.
fn account(root: &Path, file: &str, name: &str) -> Vec<Vec<String>> {
    std::fs::read_to_string(root.join("etc").join(file))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').map(str::to_string).collect::<Vec<_>>())
        .filter(|fields| fields[0] == name)
        .collect()
}

#[test]
fn the_maintainer_scripts_work_on_a_dpkg_root_and_keep_the_store() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "the maintainer scripts set owners in the root they configure, which needs root"
    );
    let package = Package::build();
    let root = package.extract();
    let script = |name: &str, args: &[&str]| {
        let out = bounded(
            Command::new(package.control_file(name))
                .args(args)
                .env("DPKG_ROOT", &root),
            Duration::from_secs(60),
        );
        let stdout = text(&out.stdout);
        assert!(
            out.status.success(),
            "{name} {args:?} failed:\n{stdout}{}",
            text(&out.stderr)
        );
        stdout
    };

    let said = script("postinst", &["configure", ""]);
    assert!(said.contains("systemctl daemon-reload skipped"), "{said}");
    assert!(said.contains("systemctl enable --now strongroom"), "{said}");
    let users = account(&root, "passwd", "strongroom");
    assert_eq!(users.len(), 1, "{users:?}");
    assert_eq!(users[0][5], "/var/lib/strongroom");
    let groups = account(&root, "group", "strongroom");
    assert_eq!(groups.len(), 1, "{groups:?}");
    let uid: u32 = users[0][2].parse().unwrap();
    let gid: u32 = groups[0][2].parse().unwrap();

    let store = root.join("var/lib/strongroom");
    let meta = std::fs::metadata(&store).unwrap();
    assert!(meta.is_dir());
    assert_eq!(meta.permissions().mode() & 0o7777, 0o700);
    assert_eq!((meta.uid(), meta.gid()), (uid, gid));
    let config = std::fs::metadata(root.join("etc/strongroom/strongroom.hcl")).unwrap();
    assert_eq!(config.permissions().mode() & 0o7777, 0o640);
    assert_eq!((config.uid(), config.gid()), (0, gid));
    let env = std::fs::metadata(root.join("etc/strongroom/strongroom.env")).unwrap();
    assert_eq!(env.permissions().mode() & 0o7777, 0o600);
    assert_eq!((env.uid(), env.gid()), (0, 0));

    // An upgrade configures again: the same user, nothing restarted.
    script("prerm", &["upgrade", "0.1.0-1"]);
    let said = script("postinst", &["configure", "0.1.0-1"]);
    assert!(!said.contains("installed, not enabled"), "{said}");
    assert_eq!(account(&root, "passwd", "strongroom"), users);

    // A conffile the admin deleted stays deleted, and configure still works.
    let hcl = root.join("etc/strongroom/strongroom.hcl");
    let kept = std::fs::read(&hcl).unwrap();
    std::fs::remove_file(&hcl).unwrap();
    script("postinst", &["configure", "0.1.0-1"]);
    assert!(!hcl.exists(), "configure brought back a deleted conffile");
    std::fs::write(&hcl, kept).unwrap();

    // What an operator and the daemon add: a key, the store, an enablement.
    std::fs::create_dir(root.join("etc/strongroom/tls")).unwrap();
    std::fs::write(root.join("etc/strongroom/tls/server.key"), "key").unwrap();
    std::fs::write(store.join("strongroom.redb"), "the store").unwrap();
    let wants = root.join("etc/systemd/system/multi-user.target.wants");
    std::fs::create_dir_all(&wants).unwrap();
    std::os::unix::fs::symlink(
        "/usr/lib/systemd/system/strongroom.service",
        wants.join("strongroom.service"),
    )
    .unwrap();

    let said = script("prerm", &["remove"]);
    assert!(said.contains("not stopped"), "{said}");
    script("postrm", &["remove"]);
    assert!(root.join("etc/strongroom/strongroom.hcl").exists());
    assert!(store.join("strongroom.redb").exists());

    let said = script("postrm", &["purge"]);
    assert!(said.contains("is kept"), "{said}");
    assert!(
        !root.join("etc/strongroom").exists(),
        "purge left /etc/strongroom"
    );
    assert!(
        std::fs::symlink_metadata(wants.join("strongroom.service")).is_err(),
        "purge left the enablement link"
    );
    assert_eq!(
        std::fs::read_to_string(store.join("strongroom.redb")).unwrap(),
        "the store"
    );
    assert_eq!(account(&root, "passwd", "strongroom"), users);

    // dpkg never calls them so, but a wrong call must not pass silently.
    let out = bounded(
        Command::new(package.control_file("postinst"))
            .arg("triggered-by-mistake")
            .env("DPKG_ROOT", &root),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stderr).contains("unknown argument"));
}
