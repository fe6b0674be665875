//! Certificates with chosen validity, made in the test: a root CA, an
//! intermediate it signed, and leaves the intermediate signs.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};

/// Now, shifted by `days` (negative: in the past).
fn days_from_now(days: i64) -> Duration {
    let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
    let shift = Duration::from_secs(days.unsigned_abs() * 24 * 3600);
    if days < 0 { now - shift } else { now + shift }
}

/// Certificate parameters for `cn`, valid from `from` to `until` days from now.
fn params(cn: &str, from: i64, until: i64, ca: bool) -> CertificateParams {
    let names = if ca {
        vec![]
    } else {
        vec!["localhost".to_string(), "127.0.0.1".to_string()]
    };
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    if ca {
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    }
    let epoch = rcgen::date_time_ymd(1970, 1, 1);
    params.not_before = epoch + days_from_now(from);
    params.not_after = epoch + days_from_now(until);
    params
}

/// A root CA, an intermediate it signed, and PEM files in `dir`.
pub struct Pki {
    pub root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
    dir: PathBuf,
}

impl Pki {
    pub fn new(dir: &Path) -> Self {
        let root = CertifiedIssuer::self_signed(
            params("Test Root", -10, 3650, true),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            params("Test Intermediate", -10, 1825, true),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        Self {
            root,
            intermediate,
            dir: dir.to_path_buf(),
        }
    }

    /// The intermediate CA's certificate, PEM.
    pub fn intermediate_pem(&self) -> String {
        self.intermediate.pem()
    }

    /// A leaf the intermediate signed, valid `from`..`until` days from now,
    /// written as `name.crt` (leaf, then intermediate) and `name.key`.
    pub fn leaf(&self, name: &str, from: i64, until: i64) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let cert = params(name, from, until, false)
            .signed_by(&key, &self.intermediate)
            .unwrap();
        let (cert_path, key_path) = (
            self.dir.join(format!("{name}.crt")),
            self.dir.join(format!("{name}.key")),
        );
        std::fs::write(&cert_path, cert.pem() + &self.intermediate.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }
}
