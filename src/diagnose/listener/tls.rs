//! A TLS listener's files as clients will see them: the certificate and
//! key parse and match (and rustls takes them, as start-up checks), the
//! chain the server sends is complete and in order, how long it is valid,
//! and the client CA file.

use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use x509_parser::certificate::X509Certificate;

use crate::config::TlsFiles;
use crate::diagnose::{Context, Finding};

const PAIR: &str = "certificate and key";
const CHAIN: &str = "chain";
const EXPIRY: &str = "expiry";
const CLIENT_CA: &str = "client ca";

/// Warn when less than this share of a certificate's lifetime is left…
const LIFETIME_LEFT_PERCENT: i64 = 15;
/// …or less than this many days.
const DAYS_LEFT: i64 = 30;
const DAY: i64 = 24 * 3600;

/// The TLS checks of one listener.
pub fn check(context: &Context, files: &TlsFiles) -> Vec<Finding> {
    let mut findings = Vec::new();
    let ders = match load(&files.cert) {
        Ok(ders) => ders,
        Err(reason) => {
            findings.push(Finding::failure(
                PAIR,
                reason,
                "tls_cert_file must hold the PEM certificate chain, leaf first",
            ));
            findings
                .extend([CHAIN, EXPIRY].map(|n| Finding::skipped(n, "no certificate was read")));
            findings.extend(
                files
                    .client_ca
                    .as_ref()
                    .map(|ca| client_ca(context, ca, files)),
            );
            return findings;
        }
    };
    let mut parsed = Vec::new();
    for (n, der) in ders.iter().enumerate() {
        match x509_parser::parse_x509_certificate(der) {
            Ok((_, cert)) => parsed.push(cert),
            Err(e) => {
                findings.push(Finding::failure(
                    PAIR,
                    format!(
                        "certificate {} in {} does not parse: {}",
                        n + 1,
                        files.cert.display(),
                        parse_error(&e)
                    ),
                    "replace the file with the PEM chain your CA issued",
                ));
                return findings;
            }
        }
    }
    findings.push(context.unless_skipped(PAIR, || pair(files, &ders, &parsed)));
    findings.push(context.unless_skipped(CHAIN, || {
        chain(&files.cert, &parsed, files.client_ca.as_deref())
    }));
    findings.push(context.unless_skipped(EXPIRY, || expiry(&files.cert, &parsed)));
    findings.extend(
        files
            .client_ca
            .as_ref()
            .map(|ca| client_ca(context, ca, files)),
    );
    findings
}

/// The PEM certificates of `path`, or why there are none.
fn load(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("{} cannot be read: {e}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{} does not parse as PEM: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// x509-parser's error as a sentence (nom's own Display is a Debug dump).
fn parse_error(e: &x509_parser::nom::Err<x509_parser::error::X509Error>) -> String {
    match e {
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e.to_string(),
        x509_parser::nom::Err::Incomplete(_) => "it is cut short".to_string(),
    }
}

fn subject(cert: &X509Certificate<'_>) -> String {
    crate::text::quote(&cert.subject().to_string())
}

/// The key parses and belongs to the leaf; then start-up's own check.
fn pair(
    files: &TlsFiles,
    ders: &[CertificateDer<'static>],
    parsed: &[X509Certificate<'_>],
) -> Finding {
    let key = match PrivateKeyDer::from_pem_file(&files.key) {
        Ok(key) => key,
        Err(e) => {
            return Finding::failure(
                PAIR,
                format!(
                    "the private key {} does not parse: {e}",
                    files.key.display()
                ),
                "tls_key_file must hold the certificate's PEM private key (PKCS#8, PKCS#1 or SEC1)",
            );
        }
    };
    let provider = rustls::crypto::ring::default_provider();
    let signing = match provider.key_provider.load_private_key(key) {
        Ok(signing) => signing,
        Err(e) => {
            return Finding::failure(
                PAIR,
                format!(
                    "the private key {} cannot be used: {e}",
                    files.key.display()
                ),
                "use an RSA, ECDSA P-256/P-384 or Ed25519 key",
            );
        }
    };
    let certified = rustls::sign::CertifiedKey::new(ders.to_vec(), signing);
    if let Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) =
        certified.keys_match()
    {
        return Finding::failure(
            PAIR,
            format!(
                "the private key {} does not belong to the certificate {} ({})",
                files.key.display(),
                files.cert.display(),
                subject(&parsed[0])
            ),
            "point tls_key_file at the key the certificate was issued for",
        );
    }
    // What start-up checks (src/server/preflight.rs), the client CA aside.
    let without_ca = TlsFiles {
        client_ca: None,
        ..files.clone()
    };
    if let Some(problem) = crate::server::tls_files_problem(&without_ca) {
        return Finding::failure(PAIR, problem, "fix the certificate and key files");
    }
    Finding::success(
        PAIR,
        format!(
            "{} ({}) and its key {} parse and match",
            files.cert.display(),
            subject(&parsed[0]),
            files.key.display()
        ),
    )
}

/// Each certificate is issued by the next one in the file (its name and
/// its signature); the last is a self-signed root, or issued by a CA found
/// in this machine's trust store or the listener's client CA file. A file
/// whose last certificate's issuer is found nowhere (a leaf without its
/// intermediates, most often) is a warning: clients that lack that CA
/// cannot verify the server. A signature in an algorithm that cannot be
/// checked here is a warning too, never a failure.
fn chain(path: &Path, parsed: &[X509Certificate<'_>], client_ca: Option<&Path>) -> Finding {
    let mut unchecked = None;
    for (n, pair) in parsed.windows(2).enumerate() {
        let named = pair[0].issuer().as_raw() == pair[1].subject().as_raw();
        let signed = signature(&pair[0], &pair[1]);
        if signed == Signature::Unchecked {
            unchecked.get_or_insert(n);
        }
        if !named || signed == Signature::Invalid {
            let why = if named {
                format!(
                    "certificate {} ({}) names certificate {} ({}) as its issuer but is not signed by its key",
                    n + 1,
                    subject(&pair[0]),
                    n + 2,
                    subject(&pair[1])
                )
            } else {
                format!(
                    "certificate {} ({}) was issued by {}, but certificate {} is {}",
                    n + 1,
                    subject(&pair[0]),
                    crate::text::quote(&pair[0].issuer().to_string()),
                    n + 2,
                    subject(&pair[1])
                )
            };
            return Finding::failure(
                CHAIN,
                format!(
                    "the chain in {} is incomplete or out of order: {why}",
                    path.display()
                ),
                "put the leaf first, then each intermediate CA in order (cat leaf.pem intermediate.pem > chain.pem); clients without the intermediates cannot verify the server",
            );
        }
    }
    let last = &parsed[parsed.len() - 1];
    let count = parsed.len();
    let self_signed = (last.issuer().as_raw() == last.subject().as_raw())
        .then(|| signature(last, last))
        .filter(|signed| *signed != Signature::Invalid);
    if self_signed == Some(Signature::Unchecked) {
        unchecked.get_or_insert(count - 1);
    }
    let issuer = crate::text::quote(&last.issuer().to_string());
    let found = match self_signed {
        Some(_) => format!(
            "the chain of {count} certificate(s) is complete and ends with the self-signed {}",
            subject(last)
        ),
        None => match trusted_issuer(last, client_ca) {
            Some(found) => format!(
                "the chain of {count} certificate(s) is in order and its last is issued by {issuer}, found in {found}"
            ),
            None => {
                return Finding::warning(
                    CHAIN,
                    format!(
                        "the chain of {count} certificate(s) ends with {}, issued by {issuer}, which is not in the file, this machine's trust store or the client CA file: clients that do not have that CA (or the intermediates up to one they have) cannot verify the server",
                        subject(last)
                    ),
                    "append the intermediate CA certificates to the file, leaf first (cat leaf.pem intermediate.pem > chain.pem); leave it so only when every client trusts that CA itself",
                );
            }
        },
    };
    match unchecked {
        None => Finding::success(CHAIN, found),
        Some(n) => Finding::warning(
            CHAIN,
            format!(
                "{found}; the signature of certificate {} ({}) is in an algorithm diagnose cannot check",
                n + 1,
                parsed[n].signature_algorithm.algorithm.to_id_string()
            ),
            "check the chain with `openssl verify -untrusted chain.pem chain.pem`",
        ),
    }
}

/// What a certificate's signature by an issuer's key says.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Signature {
    Valid,
    Invalid,
    /// An algorithm (or key size) x509-parser with ring does not verify.
    Unchecked,
}

fn signature(cert: &X509Certificate<'_>, issuer: &X509Certificate<'_>) -> Signature {
    match cert.verify_signature(Some(issuer.public_key())) {
        Ok(()) => Signature::Valid,
        Err(x509_parser::error::X509Error::SignatureVerificationError) => Signature::Invalid,
        Err(_) => Signature::Unchecked,
    }
}

/// Where a CA that signed `cert` was found: the listener's client CA file,
/// or this machine's trust store (rustls-native-certs: SSL_CERT_FILE,
/// SSL_CERT_DIR, else the distribution's bundle).
fn trusted_issuer(cert: &X509Certificate<'_>, client_ca: Option<&Path>) -> Option<String> {
    let issued = |ders: &[CertificateDer<'_>]| {
        ders.iter().any(|der| {
            x509_parser::parse_x509_certificate(der).is_ok_and(|(_, ca)| {
                ca.subject().as_raw() == cert.issuer().as_raw()
                    && signature(cert, &ca) != Signature::Invalid
            })
        })
    };
    if let Some(ca) = client_ca
        && load(ca).is_ok_and(|ders| issued(&ders))
    {
        return Some(format!("the client CA file {}", ca.display()));
    }
    issued(&rustls_native_certs::load_native_certs().certs)
        .then(|| "this machine's trust store".to_string())
}

/// The certificate that expires first: expired or not yet valid fails;
/// under 15% of its lifetime or 30 days left warns.
fn expiry(path: &Path, parsed: &[X509Certificate<'_>]) -> Finding {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let renew = "renew the certificate and reload the daemon (systemctl reload strongroom: SIGHUP loads the new files)";
    if let Some(early) = parsed
        .iter()
        .find(|c| c.validity().not_before.timestamp() > now)
    {
        return Finding::failure(
            EXPIRY,
            format!(
                "{} in {} is not valid before {}",
                subject(early),
                path.display(),
                early.validity().not_before
            ),
            "check the system clock, or use a certificate valid now",
        );
    }
    let Some(first) = parsed
        .iter()
        .min_by_key(|c| c.validity().not_after.timestamp())
    else {
        return Finding::skipped(EXPIRY, "no certificate");
    };
    let (from, until) = (
        first.validity().not_before.timestamp(),
        first.validity().not_after.timestamp(),
    );
    let left = until - now;
    let lifetime = (until - from).max(1);
    let what = format!("{} in {}", subject(first), path.display());
    if left <= 0 {
        Finding::failure(
            EXPIRY,
            format!("{what} expired on {}", first.validity().not_after),
            renew,
        )
    } else if left < DAYS_LEFT * DAY || left * 100 < lifetime * LIFETIME_LEFT_PERCENT {
        Finding::warning(
            EXPIRY,
            format!(
                "{what} expires on {}: {} day(s) left, {}% of its lifetime",
                first.validity().not_after,
                left / DAY,
                left * 100 / lifetime
            ),
            renew,
        )
    } else {
        Finding::success(
            EXPIRY,
            format!(
                "{what} is valid until {} ({} days left)",
                first.validity().not_after,
                left / DAY
            ),
        )
    }
}

/// The client CA bundle parses and rustls takes it (mutual TLS).
fn client_ca(context: &Context, ca: &Path, files: &TlsFiles) -> Finding {
    context.unless_skipped(CLIENT_CA, || {
        let advice = "tls_client_ca_file must hold the PEM certificates of the CAs that issue client certificates";
        let ders = match load(ca) {
            Ok(ders) => ders,
            Err(reason) => return Finding::failure(CLIENT_CA, reason, advice),
        };
        let mut names = Vec::new();
        for (n, der) in ders.iter().enumerate() {
            match x509_parser::parse_x509_certificate(der) {
                Ok((_, cert)) => names.push(subject(&cert)),
                Err(e) => {
                    return Finding::failure(
                        CLIENT_CA,
                        format!(
                            "certificate {} in {} does not parse: {}",
                            n + 1,
                            ca.display(),
                            parse_error(&e)
                        ),
                        advice,
                    );
                }
            }
        }
        let only_ca = TlsFiles {
            cert: files.cert.clone(),
            key: files.key.clone(),
            client_ca: Some(ca.to_path_buf()),
        };
        if let Some(problem) = crate::server::tls_files_problem(&only_ca)
            && problem.contains(&ca.display().to_string())
        {
            return Finding::failure(CLIENT_CA, problem, advice);
        }
        Finding::success(
            CLIENT_CA,
            format!(
                "{} holds {} CA certificate(s): {}",
                ca.display(),
                names.len(),
                names.join(", ")
            ),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed P-521 root signed with ecdsa-with-SHA512 (made with
    /// `openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-521`),
    /// which ring cannot verify.
    const P521_ROOT: &str = include_str!("testdata/p521-root.pem");

    #[test]
    fn a_signature_that_cannot_be_checked_is_a_warning_not_a_failure() {
        let der = CertificateDer::from_pem_slice(P521_ROOT.as_bytes()).unwrap();
        let (_, root) = x509_parser::parse_x509_certificate(&der).unwrap();
        assert!(signature(&root, &root) == Signature::Unchecked);
        let found = chain(Path::new("root.pem"), &[root], None);
        assert_eq!(
            found.status,
            crate::diagnose::Status::Warning,
            "{}",
            found.message
        );
        assert!(
            found.message.starts_with(
                "the chain of 1 certificate(s) is complete and ends with the self-signed \"CN=P-521 Root\"; the signature of certificate 1 (1.2.840.10045.4.3.4) is in an algorithm diagnose cannot check"
            ),
            "{}",
            found.message
        );
    }
}
