//! The provider credentials `kms write` sends, taken where `ps` and shell
//! history cannot see them: the secret key and the session token from
//! files, or all three from the CLI's own AWS environment variables.

use std::path::{Path, PathBuf};

use zeroize::Zeroizing;

use crate::cli::CliError;
use crate::proto;

/// `kms write`'s credential flags.
#[derive(clap::Args)]
pub struct CredentialArgs {
    /// Static access key id (its secret from --secret-key-file).
    #[arg(long, value_name = "ID")]
    pub access_key: Option<String>,
    /// Read the secret access key from FILE (/dev/stdin to pipe it); it is
    /// never a command-line argument, which `ps` would show.
    #[arg(long, value_name = "FILE")]
    pub secret_key_file: Option<PathBuf>,
    /// Read the session token of temporary keys from FILE.
    #[arg(long, value_name = "FILE")]
    pub session_token_file: Option<PathBuf>,
    /// Send this shell's AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
    /// AWS_SESSION_TOKEN (if set) as the provider's credentials.
    #[arg(
        long,
        conflicts_with_all = ["access_key", "secret_key_file", "session_token_file"]
    )]
    pub credentials_from_env: bool,
    /// Forget the stored credentials: the daemon's AWS credential chain
    /// (environment, web identity / IRSA, instance role) is used.
    #[arg(
        long,
        conflicts_with_all = ["access_key", "secret_key_file", "session_token_file", "credentials_from_env"]
    )]
    pub clear_credentials: bool,
}

/// One credential read from `path`: its text without the surrounding
/// whitespace (a file written by `echo` ends with a newline).
fn read_secret(path: &Path, what: &str) -> Result<Zeroizing<String>, CliError> {
    let bytes = Zeroizing::new(std::fs::read(path).map_err(|e| {
        CliError::Usage(format!(
            "cannot read the {what} from {}: {e}",
            path.display()
        ))
    })?);
    let text = std::str::from_utf8(&bytes)
        .map_err(|_| CliError::Usage(format!("the {what} file {} is not text", path.display())))?;
    let secret = Zeroizing::new(text.trim().to_string());
    if secret.is_empty() {
        return Err(CliError::Usage(format!(
            "the {what} file {} is empty",
            path.display()
        )));
    }
    Ok(secret)
}

/// A variable of the CLI's environment, unset when empty.
fn env(name: &str) -> Result<Option<Zeroizing<String>>, CliError> {
    match std::env::var(name) {
        Ok(value) if value.trim().is_empty() => Ok(None),
        Ok(value) => Ok(Some(Zeroizing::new(value.trim().to_string()))),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(CliError::Usage(format!(
            "the environment variable {name} is not text"
        ))),
    }
}

impl CredentialArgs {
    /// The credentials to send; none when no flag asks for a change (the
    /// stored ones are kept).
    pub fn read(&self) -> Result<Option<proto::ProviderCredentials>, CliError> {
        if self.clear_credentials {
            return Ok(Some(proto::ProviderCredentials {
                clear: true,
                ..Default::default()
            }));
        }
        if self.credentials_from_env {
            return from_env().map(Some);
        }
        let secret_key = match (&self.access_key, &self.secret_key_file) {
            (None, None) if self.session_token_file.is_none() => return Ok(None),
            (Some(_), Some(file)) => read_secret(file, "secret key")?,
            (Some(_), None) => {
                return Err(CliError::Usage(
                    "--access-key needs its secret key: give --secret-key-file FILE (or use --credentials-from-env)".into(),
                ));
            }
            (None, _) => {
                return Err(CliError::Usage(
                    "--secret-key-file and --session-token-file need --access-key".into(),
                ));
            }
        };
        let session_token = match &self.session_token_file {
            Some(file) => read_secret(file, "session token")?,
            None => Zeroizing::new(String::new()),
        };
        Ok(Some(proto::ProviderCredentials {
            access_key: self.access_key.clone().unwrap_or_default(),
            secret_key: secret_key.to_string(),
            session_token: session_token.to_string(),
            clear: false,
        }))
    }
}

/// AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN.
fn from_env() -> Result<proto::ProviderCredentials, CliError> {
    let missing = |name: &str| {
        CliError::Usage(format!(
            "--credentials-from-env needs {name} set in this shell's environment"
        ))
    };
    let access_key = env("AWS_ACCESS_KEY_ID")?.ok_or_else(|| missing("AWS_ACCESS_KEY_ID"))?;
    let secret_key =
        env("AWS_SECRET_ACCESS_KEY")?.ok_or_else(|| missing("AWS_SECRET_ACCESS_KEY"))?;
    let session_token = env("AWS_SESSION_TOKEN")?.unwrap_or_default();
    Ok(proto::ProviderCredentials {
        access_key: access_key.to_string(),
        secret_key: secret_key.to_string(),
        session_token: session_token.to_string(),
        clear: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> CredentialArgs {
        CredentialArgs {
            access_key: None,
            secret_key_file: None,
            session_token_file: None,
            credentials_from_env: false,
            clear_credentials: false,
        }
    }

    fn usage(result: Result<impl Sized, CliError>) -> String {
        match result {
            Err(CliError::Usage(message)) => message,
            Err(CliError::Failed(message)) => panic!("not a usage error: {message}"),
            Ok(_) => panic!("accepted"),
        }
    }

    #[test]
    fn no_flag_keeps_the_stored_credentials_and_clear_says_so() {
        assert!(args().read().unwrap().is_none());
        let cleared = CredentialArgs {
            clear_credentials: true,
            ..args()
        };
        let sent = cleared.read().unwrap().unwrap();
        assert!(sent.clear && sent.access_key.is_empty() && sent.secret_key.is_empty());
    }

    #[test]
    fn secrets_come_from_files_trimmed_and_never_empty() {
        let dir = tempfile::tempdir().unwrap();
        let secret = dir.path().join("secret");
        let token = dir.path().join("token");
        std::fs::write(&secret, "wJalrXUtnFEMI\n").unwrap();
        std::fs::write(&token, "  FwoGZXIvYXdz \n").unwrap();
        let given = CredentialArgs {
            access_key: Some("AKIAEXAMPLE".into()),
            secret_key_file: Some(secret.clone()),
            session_token_file: Some(token),
            ..args()
        };
        let sent = given.read().unwrap().unwrap();
        assert_eq!(sent.access_key, "AKIAEXAMPLE");
        assert_eq!(sent.secret_key, "wJalrXUtnFEMI");
        assert_eq!(sent.session_token, "FwoGZXIvYXdz");
        assert!(!sent.clear);

        std::fs::write(&secret, "\n").unwrap();
        let empty = CredentialArgs {
            access_key: Some("AKIAEXAMPLE".into()),
            secret_key_file: Some(secret.clone()),
            ..args()
        };
        assert!(usage(empty.read()).contains("is empty"));
        std::fs::write(&secret, [0xff, 0xfe]).unwrap();
        let binary = CredentialArgs {
            access_key: Some("AKIAEXAMPLE".into()),
            secret_key_file: Some(secret),
            ..args()
        };
        let message = usage(binary.read());
        assert!(message.contains("is not text"), "{message}");
    }

    #[test]
    fn a_secret_needs_its_access_key_and_the_other_way_round() {
        let alone = CredentialArgs {
            access_key: Some("AKIAEXAMPLE".into()),
            ..args()
        };
        assert!(usage(alone.read()).contains("--secret-key-file FILE"));
        let token_only = CredentialArgs {
            session_token_file: Some("/nonexistent".into()),
            ..args()
        };
        assert!(usage(token_only.read()).contains("need --access-key"));
    }
}
