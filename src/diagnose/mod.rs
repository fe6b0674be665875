//! `strongroom diagnose`: what `vault operator diagnose` does, for
//! strongroom's parts. It reads the configuration and checks, without
//! starting the server and without touching the store's keys, what would
//! stop the daemon or weaken it: the config and the files it names, the
//! storage, every seal, the listeners, the process's limits, the audit
//! devices.
//!
//! Each area (one module each) returns a [`Finding`] whose children are its
//! checks; a failure under a heading marks the heading. `report.rs` prints
//! them as Vault does (`[ success ]`, `[ warning ]`, `[ failure ]`, nested)
//! or as JSON. A check that needs the configuration is skipped, with the
//! reason, when the configuration does not parse; the others run anyway.

mod audit;
mod config;
pub mod env_file;
mod finding;
mod health;
mod listener;
mod process;
mod report;
mod seal;
mod storage;

use std::path::PathBuf;

use crate::config::{Config, ConfigErrors};

pub use finding::{Finding, Status};
pub use report::Report;

/// The areas, in the order they run and print; `--skip` takes these names
/// (or a check's own name).
pub const AREAS: &[&str] = &["config", "storage", "seal", "listener", "process", "audit"];

/// What to diagnose.
pub struct Options {
    /// The configuration file.
    pub config: PathBuf,
    /// Areas or checks not to run (their names, as printed, any case).
    pub skip: Vec<String>,
    /// The user the service runs as; its access is checked too when
    /// diagnose runs as root.
    pub service_user: String,
    /// The daemon's environment file, as the command line applied it.
    pub env_file: env_file::Applied,
}

/// What every area's checks may look at.
pub struct Context {
    /// The configuration, when it parsed.
    pub config: Option<Config>,
    /// Why it did not.
    pub config_errors: Option<ConfigErrors>,
    /// The user the service runs as, when diagnose runs as root (else the
    /// checks are about the user diagnose runs as).
    pub service_user: Option<ServiceUser>,
    /// Who diagnose runs as, for the sentences.
    pub running_as: String,
    /// The service user's name as asked (`--user`), found or not.
    pub service_user_name: String,
    /// The config area's finding on the environment file.
    pub env_file: Finding,
    skip: Vec<String>,
}

/// A user the checks are made for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceUser {
    /// Its name.
    pub name: String,
    /// Its uid.
    pub uid: u32,
    /// Its primary group.
    pub gid: u32,
}

impl Context {
    /// Whether the check (or area) named `name` was asked not to run.
    pub fn skipped(&self, name: &str) -> bool {
        self.skip.iter().any(|s| s.eq_ignore_ascii_case(name))
    }

    /// Runs `check` unless `name` was asked not to run, when its finding
    /// says so instead.
    pub fn unless_skipped(&self, name: &str, check: impl FnOnce() -> Finding) -> Finding {
        if self.skipped(name) {
            Finding::skipped(name, "skipped (--skip)")
        } else {
            check()
        }
    }

    /// Whether diagnose runs as root and the service user it was asked to
    /// check for does not exist: every access check is then root's only.
    pub fn service_user_missing(&self) -> bool {
        nix::unistd::geteuid().is_root() && self.service_user.is_none()
    }

    /// The configuration, or a skipped finding named `name` that says
    /// why there is none.
    pub fn config_or_skip(&self, name: &str) -> Result<&Config, Finding> {
        self.config.as_ref().ok_or_else(|| {
            Finding::skipped(
                name,
                "the configuration does not parse (see the config checks)",
            )
        })
    }
}

/// Runs every area not skipped and returns what each found.
pub async fn run(options: &Options) -> Report {
    let (config, config_errors) =
        match crate::config::load(&options.config, |name| std::env::var(name).ok()) {
            Ok(config) => (Some(config), None),
            Err(errors) => (None, Some(errors)),
        };
    let running_as = nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map_or_else(
            || format!("uid {}", nix::unistd::geteuid()),
            |user| user.name,
        );
    let service_user = nix::unistd::geteuid()
        .is_root()
        .then(|| lookup_user(&options.service_user))
        .flatten();
    let context = Context {
        config,
        config_errors,
        service_user,
        running_as,
        service_user_name: options.service_user.clone(),
        env_file: env_file::check(&options.env_file),
        skip: options.skip.clone(),
    };
    let config_errors = context.config_errors.as_ref().map(ToString::to_string);
    let mut findings = Vec::new();
    for area in AREAS {
        if context.skipped(area) {
            findings.push(Finding::skipped(area, "skipped (--skip)"));
            continue;
        }
        findings.push(match *area {
            "seal" => seal::check(&context).await,
            "listener" => listener::check(&context).await,
            "config" => config::check(&context),
            "storage" => storage::check(&context).await,
            "process" => process::check(&context),
            "audit" => audit::check(&context),
            other => Finding::skipped(other, "an area this version does not know"),
        });
    }
    let mut report = Report::new(findings);
    report.config_errors = config_errors;
    report
}

/// The user named `name` from the system's user database.
fn lookup_user(name: &str) -> Option<ServiceUser> {
    let user = nix::unistd::User::from_name(name).ok().flatten()?;
    Some(ServiceUser {
        name: user.name,
        uid: user.uid.as_raw(),
        gid: user.gid.as_raw(),
    })
}
