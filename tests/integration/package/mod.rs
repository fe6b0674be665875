//! The Debian package (`scripts/package-deb`), checked without installing
//! it on this machine: its control data and file list, its files extracted
//! into a temporary root (the unit verified, the packaged binary's
//! diagnose on the packaged config), the maintainer scripts run against
//! that root with DPKG_ROOT, and lintian.
//!
//! Each test packages the test binary itself (`--binary`), so no release
//! build is needed; gzip at level 1 instead of xz keeps a build to seconds
//! (dpkg-deb's DPKG_DEB_COMPRESSOR_* variables; the contents are the same).

mod build;
mod scripts;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;

use crate::support::daemon::tempdir;
use build::{Package, SOURCE, bounded, contents, succeed, text};

#[test]
fn the_package_holds_its_files_with_their_modes_and_conffiles() {
    let package = Package::build();
    let info = package.dpkg_deb(&["--info"], &[]);
    let field = |name: &str| {
        info.lines()
            .find_map(|l| l.trim().strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no {name} in:\n{info}"))
            .to_string()
    };
    assert_eq!(field("Package"), "strongroom");
    assert_eq!(field("Version"), format!("{}-1", env!("CARGO_PKG_VERSION")));
    assert_eq!(field("Section"), "admin");
    let depends = field("Depends");
    assert!(depends.contains("libc6 (>= "), "{depends}");
    assert!(depends.contains("systemd-sysusers | adduser"), "{depends}");
    for script in ["postinst", "prerm", "postrm"] {
        assert!(
            info.lines().any(|l| l.contains(script) && l.contains('*')),
            "no executable {script}:\n{info}"
        );
    }
    let conffiles = package.dpkg_deb(&["--info"], &[Path::new("conffiles")]);
    let mut conffiles: Vec<&str> = conffiles.lines().collect();
    conffiles.sort_unstable();
    assert_eq!(
        conffiles,
        [
            "/etc/strongroom/strongroom.env",
            "/etc/strongroom/strongroom.hcl"
        ]
    );

    let entries = contents(&package);
    for entry in &entries {
        // Owners are root's; postinst gives strongroom.hcl its group.
        assert_eq!(entry.owner, "root/root", "{}", entry.path);
        assert!(!entry.mode.contains(['s', 'S']), "setuid: {}", entry.path);
        assert_ne!(&entry.mode[8..9], "w", "world-writable: {}", entry.path);
        // The store is never the package's: dpkg must not remove it.
        assert!(
            !entry.path.starts_with("/var/lib/strongroom"),
            "{}",
            entry.path
        );
    }
    let mode_of = |path: &str| {
        entries
            .iter()
            .find(|e| e.path == path)
            .map(|e| e.mode.clone())
            .unwrap_or_else(|| panic!("{path} is not in the package"))
    };
    for (path, mode) in FILES {
        assert_eq!(mode_of(path), *mode, "{path}");
    }
    // Nothing else but directories and the other commands' man pages.
    for entry in &entries {
        let known = entry.mode.starts_with('d')
            || entry.path.starts_with("/usr/share/man/man1/strongroom-")
            || FILES.iter().any(|(path, _)| *path == entry.path);
        assert!(known, "unexpected {} in the package", entry.path);
    }
}

/// The package's files and their modes.
const FILES: &[(&str, &str)] = &[
    ("/usr/bin/strongroom", "-rwxr-xr-x"),
    ("/usr/lib/systemd/system/strongroom.service", "-rw-r--r--"),
    ("/usr/lib/sysusers.d/strongroom.conf", "-rw-r--r--"),
    ("/usr/lib/tmpfiles.d/strongroom.conf", "-rw-r--r--"),
    ("/etc/strongroom/strongroom.hcl", "-rw-r-----"),
    ("/etc/strongroom/strongroom.env", "-rw-------"),
    ("/usr/share/man/man1/strongroom.1.gz", "-rw-r--r--"),
    ("/usr/share/man/man1/strongroom-unseal.1.gz", "-rw-r--r--"),
    ("/usr/share/man/man1/strongroom-kv-get.1.gz", "-rw-r--r--"),
    (
        "/usr/share/bash-completion/completions/strongroom",
        "-rw-r--r--",
    ),
    (
        "/usr/share/zsh/vendor-completions/_strongroom",
        "-rw-r--r--",
    ),
    (
        "/usr/share/fish/vendor_completions.d/strongroom.fish",
        "-rw-r--r--",
    ),
    ("/usr/share/doc/strongroom/copyright", "-rw-r--r--"),
    (
        "/usr/share/doc/strongroom/changelog.Debian.gz",
        "-rw-r--r--",
    ),
    ("/usr/share/doc/strongroom/README.md.gz", "-rw-r--r--"),
    ("/usr/share/lintian/overrides/strongroom", "-rw-r--r--"),
];

#[test]
fn the_extracted_unit_verifies_and_the_binary_diagnoses_the_packaged_config() {
    let package = Package::build();
    let root = package.extract();
    let read = |path: &str| std::fs::read_to_string(root.join(path)).unwrap();

    let unit = read("usr/lib/systemd/system/strongroom.service");
    for line in [
        "ExecStart=/usr/bin/strongroom server --config /etc/strongroom/strongroom.hcl",
        "EnvironmentFile=-/etc/strongroom/strongroom.env",
        "User=strongroom",
    ] {
        assert!(unit.lines().any(|l| l == line), "the unit lacks {line}");
    }
    let binary = root.join("usr/bin/strongroom");
    let verify_dir = package.dir.path().join("verify");
    std::fs::create_dir(&verify_dir).unwrap();
    let unit_path = verify_dir.join("strongroom.service");
    std::fs::write(
        &unit_path,
        unit.replace("/usr/bin/strongroom", binary.to_str().unwrap()),
    )
    .unwrap();
    let out = bounded(
        Command::new("systemd-analyze")
            .arg("verify")
            .arg(&unit_path),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(out.stderr.is_empty(), "warned:\n{}", text(&out.stderr));

    let sysusers = read("usr/lib/sysusers.d/strongroom.conf");
    assert!(
        sysusers.lines().any(|l| l.starts_with("u strongroom ")),
        "{sysusers}"
    );
    let tmpfiles = read("usr/lib/tmpfiles.d/strongroom.conf");
    assert!(
        tmpfiles
            .lines()
            .any(|l| l == "d /var/lib/strongroom 0700 strongroom strongroom -"),
        "{tmpfiles}"
    );
    let env = read("etc/strongroom/strongroom.env");
    assert!(
        env.lines()
            .all(|l| l.trim().is_empty() || l.starts_with('#')),
        "the packaged environment file sets something:\n{env}"
    );

    // The man pages and completions are the packaged binary's own.
    let page = succeed(
        Command::new("zcat").arg(root.join("usr/share/man/man1/strongroom.1.gz")),
        Duration::from_secs(30),
    );
    assert!(page.contains(".TH strongroom 1 "), "{page}");
    assert!(page.contains("strongroom\\-diagnose(1)"), "{page}");
    let bash = read("usr/share/bash-completion/completions/strongroom");
    assert!(bash.contains("complete -F") && bash.contains("diagnose"));

    let config = root.join("etc/strongroom/strongroom.hcl");
    let mut diagnose = Command::new(&binary);
    diagnose
        .args(["diagnose", "--format", "json", "--config"])
        .arg(&config)
        .arg("--env-file")
        .arg(root.join("etc/strongroom/strongroom.env"));
    // As a unit would run it: no AWS setting of this machine's shell.
    for (var, _) in std::env::vars() {
        if var.starts_with("AWS_") {
            diagnose.env_remove(var);
        }
    }
    let out = bounded(&mut diagnose, Duration::from_secs(60));
    let code = out.status.code();
    assert!(
        matches!(code, Some(0 | 1)),
        "diagnose exited {code:?}:\n{}",
        text(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let process = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "process")
        .unwrap_or_else(|| panic!("no process area: {report}"));
    assert_ne!(process["status"], "skipped", "{process}");
    // The packaged environment file is read and sets nothing.
    let config_area = report["findings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "config")
        .unwrap_or_else(|| panic!("no config area: {report}"));
    let env_file = config_area["children"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "environment file")
        .unwrap_or_else(|| panic!("no environment file check: {config_area}"));
    assert_eq!(env_file["status"], "success", "{env_file}");
    assert!(
        env_file["message"]
            .as_str()
            .unwrap()
            .contains("sets nothing"),
        "{env_file}"
    );
    assert!(!process["children"].as_array().unwrap().is_empty());
    // The packaged config passes on a machine without the package: only
    // what depends on this host (the service user, its limits) may fail.
    let mut failed = Vec::new();
    failures(&report["findings"], "", &mut failed);
    assert!(
        failed.iter().all(|path| path.starts_with("process/")),
        "the packaged config fails {failed:?}:\n{report:#}"
    );
    assert_eq!(code == Some(1), !failed.is_empty(), "{report:#}");
}

/// The `/`-joined names of every failed check under `findings`.
fn failures(findings: &Value, above: &str, into: &mut Vec<String>) {
    for finding in findings.as_array().into_iter().flatten() {
        let path = format!("{above}{}", finding["name"].as_str().unwrap_or("?"));
        match finding["children"].as_array() {
            Some(children) if !children.is_empty() => {
                failures(&finding["children"], &format!("{path}/"), into)
            }
            _ if finding["status"] == "failure" => into.push(path),
            _ => {}
        }
    }
}

#[test]
fn lintian_finds_no_unjustified_tag() {
    if Command::new("lintian").arg("--version").output().is_err() {
        // In CI (and under scripts/test, which installs it) a missing
        // lintian must not pass as clean.
        assert!(
            std::env::var_os("CI").is_none()
                && std::env::var_os("STRONGROOM_SCRIPTS_TEST").is_none(),
            "lintian is not installed: scripts/test installs it"
        );
        eprintln!("lintian is not installed (scripts/test installs it): not checked");
        return;
    }
    let package = Package::build();
    // Every level, and an override that no longer matches is reported too.
    let out = bounded(
        Command::new("lintian")
            .args(["--display-info", "--pedantic"])
            .args(["--fail-on", "error,warning,info,pedantic"])
            .arg(&package.deb),
        Duration::from_secs(240),
    );
    let said = text(&out.stdout);
    // The spelling overrides match only a release build's strings (a debug
    // build does not embed age's translations): unused here, and only those.
    let release_only = "I: strongroom: unused-override spelling-error-in-binary ";
    let tags: Vec<&str> = said
        .lines()
        .filter(|l| !l.starts_with("N:") && !l.trim().is_empty())
        .filter(|l| !l.starts_with(release_only))
        .collect();
    // Exit 2 is lintian's "a tag at a --fail-on level", which the
    // release-only lines above are; 1 would be lintian itself failing.
    assert!(
        matches!(out.status.code(), Some(0 | 2)) && tags.is_empty(),
        "lintian ({}): fix these or justify them in packaging/debian/lintian-overrides:\n{said}{}",
        out.status,
        text(&out.stderr)
    );
}

#[test]
fn package_deb_refuses_bad_arguments_with_a_sentence() {
    let dir = tempdir();
    let script = format!("{SOURCE}/scripts/package-deb");
    let missing = dir.path().join("missing");
    for (args, says) in [
        (vec!["--frobnicate"], "unknown argument '--frobnicate'"),
        (vec!["--binary"], "usage: scripts/package-deb"),
        (
            vec!["--binary", missing.to_str().unwrap()],
            "is not an executable file",
        ),
    ] {
        let out = bounded(
            Command::new(&script).args(&args).env("TMPDIR", dir.path()),
            Duration::from_secs(60),
        );
        assert_eq!(out.status.code(), Some(64), "{args:?}");
        assert!(
            text(&out.stderr).contains(says),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(std::fs::read_dir(dir.path()).unwrap().next().is_none());
}
