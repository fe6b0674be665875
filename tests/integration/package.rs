//! The Debian package (`scripts/package-deb`), checked without installing
//! it on this machine: its control data and file list, its files extracted
//! into a temporary root (the unit verified, the packaged binary's
//! diagnose on the packaged config), the maintainer scripts run against
//! that root with DPKG_ROOT, and lintian.
//!
//! Each test packages the test binary itself (`--binary`), so no release
//! build is needed; gzip at level 1 instead of xz keeps a build to seconds
//! (dpkg-deb's DPKG_DEB_COMPRESSOR_* variables; the contents are the same).

use std::io::Read;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::support::daemon::{BIN, tempdir};

const SOURCE: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `command` to its end; killed (by its PID) and failing the test
/// after `limit`.
fn bounded(command: &mut Command, limit: Duration) -> Output {
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {:?}: {e}", command.get_program()));
    let drain = |mut stream: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut bytes = Vec::new();
            let _ = stream.read_to_end(&mut bytes);
            bytes
        })
    };
    let stdout = drain(Box::new(child.stdout.take().unwrap()));
    let stderr = drain(Box::new(child.stderr.take().unwrap()));
    let deadline = Instant::now() + limit;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{command:?} did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    Output {
        status,
        stdout: stdout.join().unwrap(),
        stderr: stderr.join().unwrap(),
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command`, which must succeed, and returns its stdout.
#[track_caller]
fn succeed(command: &mut Command, limit: Duration) -> String {
    let out = bounded(command, limit);
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// A package built from the test binary, in its own temporary directory.
struct Package {
    dir: tempfile::TempDir,
    deb: PathBuf,
}

impl Package {
    fn build() -> Self {
        let dir = tempdir();
        let out = dir.path().join("out");
        let printed = succeed(
            Command::new(format!("{SOURCE}/scripts/package-deb"))
                .args(["--binary", BIN, "--out"])
                .arg(&out)
                .env("TMPDIR", dir.path())
                .env("DPKG_DEB_COMPRESSOR_TYPE", "gzip")
                .env("DPKG_DEB_COMPRESSOR_LEVEL", "1"),
            Duration::from_secs(240),
        );
        let arch = succeed(
            Command::new("dpkg").arg("--print-architecture"),
            Duration::from_secs(30),
        );
        let name = format!(
            "strongroom_{}-1_{}.deb",
            env!("CARGO_PKG_VERSION"),
            arch.trim()
        );
        let deb = out.join(name);
        assert_eq!(printed.lines().last(), deb.to_str(), "{printed}");
        assert!(deb.is_file(), "no {}", deb.display());
        Self { dir, deb }
    }

    /// `dpkg-deb ARGS… DEB MORE…`.
    fn dpkg_deb(&self, args: &[&str], more: &[&Path]) -> String {
        succeed(
            Command::new("dpkg-deb")
                .args(args)
                .arg(&self.deb)
                .args(more),
            Duration::from_secs(120),
        )
    }

    /// The package's files and control area unpacked into a new root.
    fn extract(&self) -> PathBuf {
        let root = self.dir.path().join("root");
        let control = self.dir.path().join("control");
        self.dpkg_deb(&["-x"], &[&root]);
        self.dpkg_deb(&["-e"], &[&control]);
        root
    }

    fn control_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("control").join(name)
    }
}

/// One line of `dpkg-deb --contents`: mode, owner/group, path.
struct Entry {
    mode: String,
    owner: String,
    path: String,
}

fn contents(package: &Package) -> Vec<Entry> {
    package
        .dpkg_deb(&["--contents"], &[])
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            assert!(fields.len() >= 6, "{line}");
            Entry {
                mode: fields[0].to_string(),
                owner: fields[1].to_string(),
                path: fields[5].trim_start_matches('.').to_string(),
            }
        })
        .collect()
}

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
    let out = bounded(
        Command::new(&binary)
            .args(["diagnose", "--format", "json", "--config"])
            .arg(&config),
        Duration::from_secs(60),
    );
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
    assert!(!process["children"].as_array().unwrap().is_empty());
}

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

#[test]
fn lintian_finds_no_unjustified_tag() {
    if Command::new("lintian").arg("--version").output().is_err() {
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
    let tags: Vec<&str> = said
        .lines()
        .filter(|l| !l.starts_with("N:") && !l.trim().is_empty())
        .collect();
    assert!(
        out.status.success() && tags.is_empty(),
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
