//! The `seal "awskms"` block: which KMS key wraps the root key, and how
//! to reach it. Secrets print as `<redacted>` and compare in constant time.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use super::Setting;
use crate::secret::SecretString;

/// How often the `awskms` seal checks its key's state while unsealed, by default.
pub const DEFAULT_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(600);
/// The shortest health check interval accepted (other than zero, which turns
/// the checks off): each check is a KMS request.
pub const MIN_HEALTH_CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// How long one Decrypt on the path to unsealed waits for KMS, by default.
pub const DEFAULT_KMS_TIMEOUT: Duration = Duration::from_secs(5);
/// The `kms_timeout` values accepted: below a second a healthy but distant
/// region could miss it; above a minute the next seal waits too long.
pub const KMS_TIMEOUT_RANGE: std::ops::RangeInclusive<Duration> =
    Duration::from_secs(1)..=Duration::from_secs(60);

/// Checks a KMS endpoint URL, from the file or `STRONGROOM_AWSKMS_ENDPOINT`.
pub fn check_endpoint(value: &str) -> Result<(), String> {
    let Some(rest) = value
        .strip_prefix("https://")
        .or_else(|| value.strip_prefix("http://"))
    else {
        return Err(format!(
            "expected a URL starting with https:// (or http:// for a local KMS), got {}",
            crate::text::quote(value)
        ));
    };
    // A user and password in the URL would be stored, shown and logged
    // with it; KMS takes credentials in signed headers only.
    if rest
        .split('/')
        .next()
        .is_some_and(|host| host.contains('@'))
    {
        return Err(
            "the URL carries a user or password (user@host): KMS takes no credentials in its URL; give the host alone"
                .into(),
        );
    }
    Ok(())
}

/// The regions AWS lists (with GovCloud, China, the ISO partitions and
/// the European Sovereign Cloud). A region outside it is warned about, not
/// refused: AWS opens new ones, and a private endpoint may serve any name.
const KNOWN_REGIONS: &[&str] = &[
    "af-south-1",
    "ap-east-1",
    "ap-east-2",
    "ap-northeast-1",
    "ap-northeast-2",
    "ap-northeast-3",
    "ap-south-1",
    "ap-south-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "ap-southeast-6",
    "ap-southeast-7",
    "ca-central-1",
    "ca-west-1",
    "cn-north-1",
    "cn-northwest-1",
    "eu-central-1",
    "eu-central-2",
    "eu-isoe-west-1",
    "eu-north-1",
    "eu-south-1",
    "eu-south-2",
    "eu-west-1",
    "eu-west-2",
    "eu-west-3",
    "eusc-de-east-1",
    "il-central-1",
    "me-central-1",
    "me-south-1",
    "mx-central-1",
    "sa-east-1",
    "us-east-1",
    "us-east-2",
    "us-gov-east-1",
    "us-gov-west-1",
    "us-iso-east-1",
    "us-iso-west-1",
    "us-isob-east-1",
    "us-isof-east-1",
    "us-isof-south-1",
    "us-west-1",
    "us-west-2",
];

/// Checks a region's form: lowercase words joined by hyphens, the first of
/// letters and the last a number, as `eu-west-1` or `us-gov-west-1`.
/// `Ok(false)` when the form is right but AWS does not list the region.
pub fn check_region(value: &str) -> Result<bool, String> {
    let parts: Vec<&str> = value.split('-').collect();
    let word = |p: &&str| {
        !p.is_empty()
            && p.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
    };
    let well_formed = parts.len() >= 3
        && parts.iter().all(word)
        && parts[0].bytes().all(|b| b.is_ascii_lowercase())
        && parts
            .last()
            .is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !well_formed {
        return Err(format!(
            "expected an AWS region such as \"eu-west-1\", got {value:?}"
        ));
    }
    Ok(KNOWN_REGIONS.contains(&value))
}

/// Credentials and role settings of a `seal "awskms"` block. Everything left
/// unset falls back to the standard AWS chain. `Debug` leaves the secrets out.
#[derive(Clone, Default)]
pub struct AwsCredentialSettings {
    /// Static access key id.
    pub access_key: Option<String>,
    /// Static secret access key.
    pub secret_key: Option<SecretString>,
    /// Session token that goes with temporary static keys.
    pub session_token: Option<SecretString>,
    /// A shared credentials file other than `~/.aws/credentials`.
    pub shared_creds_filename: Option<PathBuf>,
    /// The profile to read from the shared files.
    pub shared_creds_profile: Option<String>,
    /// A role to assume (with web identity when a token file is set).
    pub role_arn: Option<String>,
    /// The web identity token file (IRSA and the like), with `role_arn`.
    pub web_identity_token_file: Option<PathBuf>,
    /// Session name for the assumed role.
    pub role_session_name: Option<String>,
}

impl fmt::Debug for AwsCredentialSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsCredentialSettings")
            .field("access_key", &self.access_key)
            .field(
                "secret_key",
                &self.secret_key.as_ref().map(|_| "<redacted>"),
            )
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("shared_creds_filename", &self.shared_creds_filename)
            .field("shared_creds_profile", &self.shared_creds_profile)
            .field("role_arn", &self.role_arn)
            .field("web_identity_token_file", &self.web_identity_token_file)
            .field("role_session_name", &self.role_session_name)
            .finish()
    }
}

impl PartialEq for AwsCredentialSettings {
    fn eq(&self, other: &Self) -> bool {
        let secret = |a: &Option<SecretString>, b: &Option<SecretString>| match (a, b) {
            (Some(a), Some(b)) => {
                crate::secret::ct_eq(a.expose().as_bytes(), b.expose().as_bytes())
            }
            (None, None) => true,
            _ => false,
        };
        self.access_key == other.access_key
            && secret(&self.secret_key, &other.secret_key)
            && secret(&self.session_token, &other.session_token)
            && self.shared_creds_filename == other.shared_creds_filename
            && self.shared_creds_profile == other.shared_creds_profile
            && self.role_arn == other.role_arn
            && self.web_identity_token_file == other.web_identity_token_file
            && self.role_session_name == other.role_session_name
    }
}

impl Eq for AwsCredentialSettings {}

/// A `seal "awskms"` block: the root key is wrapped by this KMS key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AwsKmsSeal {
    /// Key id, key ARN or `alias/…`.
    pub kms_key_id: Setting<String>,
    /// Region; `None` leaves it to `AWS_REGION` and the rest of the AWS chain.
    pub region: Option<Setting<String>>,
    /// Endpoint URL; `None` leaves it to `AWS_ENDPOINT_URL_KMS` or AWS's default.
    pub endpoint: Option<Setting<String>>,
    /// Credentials; unset parts come from the AWS chain.
    pub credentials: AwsCredentialSettings,
    /// How often to check the key's state while unsealed; zero turns it off.
    pub health_check_interval: Duration,
    /// How long the one Decrypt on the path to unsealed may take (one
    /// attempt, no retries), before the next seal is tried.
    pub kms_timeout: Duration,
    /// Line of the block, for messages.
    pub line: usize,
}

#[cfg(test)]
mod region_tests {
    use super::check_region;

    #[test]
    fn regions_are_checked_for_form_and_listed() {
        for known in [
            "eu-west-1",
            "us-gov-west-1",
            "cn-northwest-1",
            "us-isob-east-1",
        ] {
            assert_eq!(check_region(known), Ok(true), "{known}");
        }
        assert_eq!(check_region("mars-north-9"), Ok(false));
        for bad in [
            "eu west 1",
            "EU-WEST-1",
            "eu-west",
            "eu-west-x",
            "-eu-west-1",
            "1u-west-1",
            "",
        ] {
            assert!(check_region(bad).is_err(), "{bad}");
        }
    }
}
