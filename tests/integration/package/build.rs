//! Building the package from the test binary, and running the tools that
//! look at it, each run bounded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::support::daemon::{BIN, tempdir};

pub const SOURCE: &str = env!("CARGO_MANIFEST_DIR");

/// Runs `command` to its end with nothing on stdin; killed and failing
/// the test after `limit`.
pub fn bounded(command: &mut Command, limit: Duration) -> Output {
    crate::support::cli::bounded(command.stdin(Stdio::null()), None, limit)
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `command`, which must succeed, and returns its stdout.
#[track_caller]
pub fn succeed(command: &mut Command, limit: Duration) -> String {
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
pub struct Package {
    pub dir: tempfile::TempDir,
    pub deb: PathBuf,
}

impl Package {
    pub fn build() -> Self {
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
    pub fn dpkg_deb(&self, args: &[&str], more: &[&Path]) -> String {
        succeed(
            Command::new("dpkg-deb")
                .args(args)
                .arg(&self.deb)
                .args(more),
            Duration::from_secs(120),
        )
    }

    /// The package's files and control area unpacked into a new root.
    pub fn extract(&self) -> PathBuf {
        let root = self.dir.path().join("root");
        let control = self.dir.path().join("control");
        self.dpkg_deb(&["-x"], &[&root]);
        self.dpkg_deb(&["-e"], &[&control]);
        root
    }

    pub fn control_file(&self, name: &str) -> PathBuf {
        self.dir.path().join("control").join(name)
    }
}

/// One line of `dpkg-deb --contents`: mode, owner/group, path.
pub struct Entry {
    pub mode: String,
    pub owner: String,
    pub path: String,
}

pub fn contents(package: &Package) -> Vec<Entry> {
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
