//! What start-up checks before it touches anything: every file the config
//! names can be read (or appended to), and every TLS listener's files load.
//! A problem here is a configuration error (exit 64), so systemd does not
//! restart into it.

use std::fs::{self, OpenOptions};
use std::path::Path;

use nix::unistd::{AccessFlags, access};

use super::tls::{self, TlsError};
use crate::config::{Config, FileUse, Listener, NamedFile, Source, StorageConfig, TlsFiles};

/// One `FILE:LINE: KEY: sentence` per problem; empty when all is well.
pub fn check(config: &Config) -> Vec<String> {
    let shown = config
        .file
        .as_deref()
        .map(|f| f.display().to_string())
        .unwrap_or_default();
    let at = |line: usize, key: &str, message: String| format!("{shown}:{line}: {key}: {message}");
    let mut problems: Vec<String> = config
        .files
        .iter()
        .filter_map(|named| file_problem(named).map(|message| at(named.line, &named.key, message)))
        .collect();
    // A file that cannot be read has been named already; what is left is
    // content: PEM that does not parse, a key that does not match.
    if problems.is_empty() {
        problems.extend(tls_problems(config, &at));
    }
    if let Err(message) = config.advertised_api_addr() {
        let line = match config.storage.source {
            Source::File { line } => line,
            _ => 0,
        };
        problems.push(at(line, "api_addr", message));
    }
    if let (StorageConfig::File { path, .. }, Source::File { line }) =
        (&config.storage.value, &config.storage.source)
        && let Some(message) = storage_problem(path)
    {
        problems.push(at(*line, "storage.file.path", message));
    }
    problems
}

fn file_problem(named: &NamedFile) -> Option<String> {
    let path = &named.path;
    match named.usage {
        FileUse::Read => match fs::metadata(path) {
            Ok(meta) if meta.is_dir() => {
                Some(format!("{} is a directory, not a file", path.display()))
            }
            Ok(_) => fs::File::open(path)
                .err()
                .map(|e| format!("cannot read {}: {e}", path.display())),
            Err(e) => Some(format!("cannot read {}: {e}", path.display())),
        },
        FileUse::Append => append_problem(path),
    }
}

/// An audit file must be appendable; one that does not exist yet needs a
/// directory the daemon may create it in.
fn append_problem(path: &Path) -> Option<String> {
    match fs::metadata(path) {
        Ok(meta) if meta.is_dir() => Some(format!("{} is a directory, not a file", path.display())),
        Ok(_) => OpenOptions::new()
            .append(true)
            .open(path)
            .err()
            .map(|e| format!("cannot append to {}: {e}", path.display())),
        Err(_) => {
            let parent = path.parent().unwrap_or(Path::new("/"));
            match fs::metadata(parent) {
                Ok(meta) if meta.is_dir() => access(parent, AccessFlags::W_OK | AccessFlags::X_OK)
                    .err()
                    .map(|e| {
                        format!(
                            "cannot create {} in {}: {}",
                            path.display(),
                            parent.display(),
                            e.desc()
                        )
                    }),
                _ => Some(format!(
                    "cannot create {}: the directory {} does not exist",
                    path.display(),
                    parent.display()
                )),
            }
        }
    }
}

fn storage_problem(path: &Path) -> Option<String> {
    match fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => {
            Some(format!("{} exists and is not a directory", path.display()))
        }
        _ => None,
    }
}

/// Start-up's check of one TLS listener's files (they load, the key
/// matches, rustls takes them), for `diagnose`; `None` when all is well.
pub fn tls_files_problem(files: &TlsFiles) -> Option<String> {
    tls::server_config(files).err().map(|e| e.to_string())
}

fn tls_problems(config: &Config, at: &impl Fn(usize, &str, String) -> String) -> Vec<String> {
    let mut problems = Vec::new();
    for listener in &config.listeners {
        let Listener::Tcp(tcp) = listener else {
            continue;
        };
        let Some(files) = &tcp.tls else {
            continue;
        };
        let Err(e) = tls::server_config(files) else {
            continue;
        };
        // Point at the key that names the bad file, else at the certificate.
        let named = |path: &Path| config.files.iter().find(|f| f.path == path);
        let key = match &e {
            TlsError::File { path, .. } => named(Path::new(path)),
            TlsError::Rustls(_) => None,
        }
        .or_else(|| named(&files.cert));
        match key {
            Some(named) => problems.push(at(named.line, &named.key, e.to_string())),
            None => problems.push(at(tcp.line, "listener.tcp", e.to_string())),
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::check;
    use crate::config::parse;

    #[test]
    fn files_are_checked_with_their_line() {
        let dir = tempfile::tempdir().unwrap();
        let readable = dir.path().join("ok.pem");
        std::fs::write(&readable, "not pem").unwrap();
        let hcl = format!(
            "storage \"file\" {{ path = \"{d}/data\" }}\nlistener \"tcp\" {{\n  tls_cert_file = \"{d}/missing.crt\"\n  tls_key_file = \"{ok}\"\n}}\naudit \"file\" {{\n  path = \"{d}/no-dir/audit.log\"\n}}\naudit \"file\" {{\n  path = \"{d}/audit.log\"\n}}\n",
            d = dir.path().display(),
            ok = readable.display()
        );
        let config = parse(&hcl, Path::new("t.hcl")).unwrap();
        let problems = check(&config);
        let d = dir.path().display();
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(
            problems[0].starts_with(&format!(
                "t.hcl:3: listener.tcp.tls_cert_file: cannot read {d}/missing.crt: No such file"
            )),
            "{problems:?}"
        );
        assert_eq!(
            problems[1],
            format!(
                "t.hcl:7: audit.file.path: cannot create {d}/no-dir/audit.log: the directory {d}/no-dir does not exist"
            )
        );
        // Nothing was created by the check.
        assert!(!dir.path().join("data").exists());
        assert!(!dir.path().join("audit.log").exists());
    }

    #[test]
    fn unparsable_tls_files_point_at_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("c.pem");
        std::fs::write(&cert, "not pem").unwrap();
        let hcl = format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n  tls_cert_file = \"{c}\"\n  tls_key_file = \"{c}\"\n}}\n",
            c = cert.display()
        );
        let problems = check(&parse(&hcl, Path::new("t.hcl")).unwrap());
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(
            problems[0].starts_with("t.hcl:3: listener.tcp.tls_cert_file: "),
            "{problems:?}"
        );
    }
}
