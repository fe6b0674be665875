//! The config area: the file parses (else its first errors, as `server
//! --check` prints them), what `server --check` refuses before start, every
//! file it names can be read by the users the checks are about, the configuration's own warnings, and each setting
//! with where it came from, secrets redacted.

pub mod access;
mod settings;

use crate::config::{Config, ConfigErrors, FileUse};
use crate::diagnose::{Context, Finding};

use access::{Want, Who};

/// The check of what `strongroom server --check` checks.
const START: &str = "start-up";

/// Errors quoted in the `parse` finding; all of them are printed after
/// the report.
const QUOTED_ERRORS: usize = 3;

/// The config area.
pub fn check(context: &Context) -> Finding {
    let mut children = vec![
        parse(context),
        context.unless_skipped("environment file", || context.env_file.clone()),
    ];
    let checks = [
        (
            START,
            (|_, config| start(config)) as fn(&Context, &Config) -> Finding,
        ),
        ("files", files),
        ("warnings", |_, config| warnings(config)),
        ("settings", |_, config| settings::check(config)),
    ];
    for (name, check) in checks {
        children.push(
            context.unless_skipped(name, || match context.config_or_skip(name) {
                Ok(config) => check(context, config),
                Err(skipped) => skipped,
            }),
        );
    }
    Finding::heading("config", "", children)
}

fn parse(context: &Context) -> Finding {
    const NAME: &str = "parse";
    match (&context.config, &context.config_errors) {
        (Some(config), _) => Finding::success(
            NAME,
            format!(
                "{} parses",
                config
                    .file
                    .as_deref()
                    .map_or_else(|| "the configuration".into(), |f| f.display().to_string())
            ),
        ),
        (None, Some(errors)) => Finding::failure(
            NAME,
            format!("the configuration does not parse: {}", quoted(errors)),
            "fix each error printed after the report (the same as `strongroom server --check` prints), then run diagnose again",
        ),
        (None, None) => Finding::failure(NAME, "the configuration was not read", ""),
    }
}

/// What start-up refuses before it touches anything (the files the config
/// names, TLS listeners' files, `api_addr` with HA, the data directory),
/// each problem its own failure with `server --check`'s file:line sentence.
fn start(config: &Config) -> Finding {
    let problems = crate::server::check(config);
    if problems.is_empty() {
        return Finding::success(
            START,
            "`strongroom server --check` finds nothing that stops the start",
        );
    }
    let children = problems
        .into_iter()
        .map(|problem| {
            // `FILE:LINE: KEY: sentence`: the key names the check.
            let key = problem.split(": ").nth(1).unwrap_or(START).to_string();
            Finding::failure(
                &key,
                crate::text::bounded(problem),
                "fix it in the configuration (or the file it names): the daemon refuses to start with it",
            )
        })
        .collect();
    Finding::heading(START, "what `strongroom server --check` refuses", children)
}

/// The first errors, `; `-separated, and how many more.
fn quoted(errors: &ConfigErrors) -> String {
    let mut text: Vec<String> = errors
        .0
        .iter()
        .take(QUOTED_ERRORS)
        .map(ToString::to_string)
        .collect();
    if errors.0.len() > QUOTED_ERRORS {
        text.push(format!("and {} more", errors.0.len() - QUOTED_ERRORS));
    }
    text.join("; ")
}

/// Every file the daemon reads (certificates, keys, CA bundles,
/// credentials); audit files, which it appends to, are the audit area's.
fn files(context: &Context, config: &Config) -> Finding {
    let users = Who::all(context);
    let mut children: Vec<Finding> = config
        .file
        .iter()
        .map(|path| config_file(&users, path))
        .collect();
    children.extend(config
        .files
        .iter()
        .filter(|named| named.usage == FileUse::Read)
        .map(|named| {
            let name = named.key.as_str();
            let at = format!("{} (line {})", named.path.display(), named.line);
            match std::fs::metadata(&named.path) {
                // start-up names it, with server --check's sentence.
                Err(e) => Finding::skipped(
                    name,
                    format!("{at} cannot be read ({e}): see start-up"),
                ),
                Ok(meta) if meta.is_dir() => Finding::failure(
                    name,
                    format!("{at} is a directory, not a file"),
                    "point the setting at the file itself",
                ),
                Ok(_) => match users
                    .iter()
                    .find_map(|who| who.denied(&named.path, Want::Read))
                {
                    Some(denied) => Finding::failure(
                        name,
                        format!("{at}: {denied}"),
                        "give the service user read access (such as chgrp strongroom and chmod 0640), and let it enter the directories above",
                    ),
                    None => Finding::success(
                        name,
                        format!("{at} is readable by {}", labels(&users)),
                    ),
                },
            }
        }));
    let message = if children.is_empty() {
        "the configuration names no file to read"
    } else {
        ""
    };
    Finding::heading("files", message, children)
}

/// The configuration file itself: the daemon reads it at every start and
/// reload, as its own user, and exits 64 (which systemd does not retry)
/// when it cannot.
fn config_file(users: &[Who], path: &std::path::Path) -> Finding {
    const NAME: &str = "config file";
    match users.iter().find_map(|who| who.denied(path, Want::Read)) {
        Some(denied) => Finding::failure(
            NAME,
            format!("{}: {denied}", path.display()),
            "give the service user read access (chgrp strongroom and chmod 0640, as the Debian package does), and let it enter the directories above",
        ),
        None => Finding::success(
            NAME,
            format!("{} is readable by {}", path.display(), labels(users)),
        ),
    }
}

/// `a and b`.
pub fn labels(users: &[Who]) -> String {
    let names: Vec<&str> = users.iter().map(|w| w.label.as_str()).collect();
    names.join(" and ")
}

/// What the configuration accepted but deserves a word (the daemon logs
/// the same at start).
fn warnings(config: &Config) -> Finding {
    if config.warnings.is_empty() {
        return Finding::success("warnings", "the configuration has nothing to warn about");
    }
    let children = config
        .warnings
        .iter()
        .map(|w| {
            Finding::warning(
                &w.key,
                w.to_string(),
                "see the configuration reference in the README",
            )
        })
        .collect();
    Finding::heading("warnings", "", children)
}
