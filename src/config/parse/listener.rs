//! `listener "tcp"` and `listener "unix"` blocks, with their `identity`
//! blocks.

use std::collections::HashMap;
use std::path::PathBuf;

use hcl_edit::Span;
use hcl_edit::structure::Block;

use super::values::{
    as_id, as_policy_list, as_string, as_u64, as_uri, nonempty, parse_address, resolve_group,
    resolve_user,
};
use super::words::qualified;
use super::{Ctx, Section};
use crate::config::{
    DEFAULT_MAX_REQUEST_SIZE, FileUse, IdentityRule, IdentitySelector, Listener, TcpListener,
    TlsFiles, UnixListener,
};

/// Where a TCP listener without an `address` listens.
pub(super) const DEFAULT_ADDRESS: &str = "127.0.0.1:8400";

impl Ctx<'_> {
    pub(super) fn listener(&mut self, block: &Block, kind: &str, line: usize) -> Option<Listener> {
        let name = format!("listener.{kind}");
        match kind {
            "tcp" => self.tcp_listener(block, &name, line).map(Listener::Tcp),
            "unix" => self.unix_listener(block, &name, line).map(Listener::Unix),
            other => {
                self.error(
                    line,
                    "listener",
                    format!(
                        "unknown listener type {other:?} (strongroom has \"tcp\" and \"unix\")"
                    ),
                );
                None
            }
        }
    }

    fn tcp_listener(&mut self, block: &Block, name: &str, line: usize) -> Option<TcpListener> {
        let keys = [
            "address",
            "tls_cert_file",
            "tls_key_file",
            "tls_client_ca_file",
            "tls_disable",
            "max_request_size",
            "allow_init",
        ];
        let (section, blocks) = self.section(&block.body, name, &keys, &["identity", "telemetry"]);
        let errors_before = self.errors.len();

        let mut address_line = line;
        let address = match self.string(&section, "address") {
            Some((text, at)) => match parse_address(&text) {
                Some(address) => {
                    address_line = at;
                    Some(address)
                }
                None => {
                    self.error(
                        at,
                        qualified(name, "address"),
                        format!("expected IP:PORT such as 127.0.0.1:8400, got {text:?}"),
                    );
                    None
                }
            },
            None if section.attrs.contains_key("address") => None,
            None => parse_address(DEFAULT_ADDRESS),
        };
        let mut file = |key: &str| -> Option<PathBuf> {
            let (path, at) = self.string(&section, key)?;
            let key = qualified(name, key);
            let path = self.absolute(&path, at, &key)?;
            self.named_file(&path, at, &key, FileUse::Read);
            Some(path)
        };
        let cert = file("tls_cert_file");
        let key = file("tls_key_file");
        let client_ca = file("tls_client_ca_file");
        let (tls_disable, tls_disable_line) = self
            .boolean(&section, "tls_disable")
            .unwrap_or((false, line));
        let max_request_size = self.max_request_size(&section);
        let allow_init = self.allow_init(&section);
        let unauthenticated_metrics_access = self.listener_telemetry(&blocks, name);
        let identities = self.identities(&blocks, name, &["cert_san", "cert_dns_san", "cert_cn"]);
        if !identities.is_empty() && client_ca.is_none() {
            self.error(
                line,
                qualified(name, "identity"),
                "needs tls_client_ca_file: identities come from verified client certificates",
            );
        }

        let tls = match (cert, key) {
            (Some(cert), Some(key)) => Some(TlsFiles {
                cert,
                key,
                client_ca,
            }),
            (None, None) => {
                if client_ca.is_some() {
                    self.error(
                        line,
                        qualified(name, "tls_client_ca_file"),
                        "needs tls_cert_file and tls_key_file: mutual TLS is TLS first",
                    );
                }
                None
            }
            (Some(_), None) => {
                self.error(
                    line,
                    qualified(name, "tls_key_file"),
                    "is required when tls_cert_file is set",
                );
                None
            }
            (None, Some(_)) => {
                self.error(
                    line,
                    qualified(name, "tls_cert_file"),
                    "is required when tls_key_file is set",
                );
                None
            }
        };
        if tls_disable
            && section
                .attrs
                .keys()
                .any(|k| k.starts_with("tls_") && *k != "tls_disable")
        {
            self.error(
                tls_disable_line,
                qualified(name, "tls_disable"),
                "is true, but TLS files are also set: remove one or the other",
            );
        }
        if let Some(address) = address
            && tls.is_none()
            && !tls_disable
            && !address.ip().is_loopback()
            && self.errors.len() == errors_before
        {
            self.error(
                address_line,
                qualified(name, "address"),
                format!("listener on {address} has no TLS certificate; serving plaintext on a non-loopback address needs tls_disable = true"),
            );
        }
        if self.errors.len() > errors_before {
            return None;
        }
        Some(TcpListener {
            address: address?,
            tls,
            max_request_size: max_request_size?,
            identities,
            allow_init,
            unauthenticated_metrics_access,
            line,
        })
    }

    /// `allow_init`: whether Init may be called through this listener
    /// (default true).
    fn allow_init(&mut self, section: &Section<'_>) -> bool {
        self.boolean(section, "allow_init")
            .is_none_or(|(allow, _)| allow)
    }

    fn unix_listener(&mut self, block: &Block, name: &str, line: usize) -> Option<UnixListener> {
        let keys = [
            "path",
            "socket_mode",
            "socket_user",
            "socket_group",
            "max_request_size",
            "allow_init",
        ];
        let (section, blocks) = self.section(&block.body, name, &keys, &["identity", "telemetry"]);
        let errors_before = self.errors.len();

        let path = match self.string(&section, "path") {
            Some((path, at)) => self.absolute(&path, at, &qualified(name, "path")),
            None => {
                if !section.attrs.contains_key("path") {
                    self.error(
                        line,
                        qualified(name, "path"),
                        "is required: where to create the socket",
                    );
                }
                None
            }
        };
        let mode = self.value(&section, "socket_mode", |e| {
            let text = as_string(e)?;
            u32::from_str_radix(&text, 8)
                .ok()
                .filter(|m| *m <= 0o777)
                .ok_or_else(|| {
                    format!("expected octal permission bits such as \"0660\", got {text:?}")
                })
        });
        let uid = self.value(&section, "socket_user", |e| resolve_user(&as_string(e)?));
        let gid = self.value(&section, "socket_group", |e| resolve_group(&as_string(e)?));
        let max_request_size = self.max_request_size(&section);
        let allow_init = self.allow_init(&section);
        let unauthenticated_metrics_access = self.listener_telemetry(&blocks, name);
        let identities = self.identities(&blocks, name, &["uid", "gid"]);
        if self.errors.len() > errors_before {
            return None;
        }
        Some(UnixListener {
            path: path?,
            mode: mode.map(|(m, _)| m),
            uid: uid.map(|(u, _)| u),
            gid: gid.map(|(g, _)| g),
            max_request_size: max_request_size?,
            identities,
            allow_init,
            unauthenticated_metrics_access,
            line,
        })
    }

    /// A listener's `identity` blocks; each has exactly one of `selectors`
    /// and a non-empty `policies` list.
    fn identities(
        &mut self,
        blocks: &[&Block],
        listener: &str,
        selectors: &[&str],
    ) -> Vec<IdentityRule> {
        let name = qualified(listener, "identity");
        let mut keys = selectors.to_vec();
        keys.push("policies");
        let mut rules: Vec<IdentityRule> = Vec::new();
        for block in blocks.iter().filter(|b| b.ident.as_str() == "identity") {
            let line = self.line(block.span());
            if !block.labels.is_empty() {
                self.error(line, name.clone(), "takes no label: identity { … }");
                continue;
            }
            let (section, _) = self.section(&block.body, &name, &keys, &[]);
            let present: Vec<&str> = selectors
                .iter()
                .copied()
                .filter(|k| section.attrs.contains_key(k))
                .collect();
            let selector = match present.as_slice() {
                [key] => {
                    let key = *key;
                    self.value(&section, key, |e| match key {
                        "uid" => resolve_user(&as_id(e)?).map(IdentitySelector::Uid),
                        "gid" => resolve_group(&as_id(e)?).map(IdentitySelector::Gid),
                        "cert_san" => as_uri(as_string(e)?).map(IdentitySelector::CertSan),
                        "cert_dns_san" => nonempty(as_string(e)?).map(IdentitySelector::CertDnsSan),
                        _ => nonempty(as_string(e)?).map(IdentitySelector::CertCn),
                    })
                }
                _ => {
                    self.error(
                        line,
                        name.clone(),
                        format!("needs exactly one of {}", selectors.join(" or ")),
                    );
                    None
                }
            };
            let policies = match self.value(&section, "policies", as_policy_list) {
                Some((policies, _)) => Some(policies),
                None => {
                    if !section.attrs.contains_key("policies") {
                        self.error(
                            line,
                            qualified(&name, "policies"),
                            "is required: the policies this identity gets, such as [\"app\"]",
                        );
                    }
                    None
                }
            };
            if let (Some((selector, _)), Some(policies)) = (selector, policies) {
                if rules.iter().any(|r| r.selector == selector) {
                    self.error(
                        line,
                        name.clone(),
                        format!(
                            "{} is matched by an earlier identity block",
                            selector.label()
                        ),
                    );
                    continue;
                }
                rules.push(IdentityRule {
                    selector,
                    policies,
                    line,
                });
            }
        }
        rules
    }

    fn max_request_size(&mut self, section: &Section<'_>) -> Option<usize> {
        match self.value(section, "max_request_size", as_u64) {
            None => Some(DEFAULT_MAX_REQUEST_SIZE),
            Some((0, line)) => {
                self.error(
                    line,
                    qualified(&section.name, "max_request_size"),
                    "must be at least 1 byte",
                );
                None
            }
            Some((size, line)) => match usize::try_from(size) {
                Ok(size) => Some(size),
                Err(_) => {
                    self.error(
                        line,
                        qualified(&section.name, "max_request_size"),
                        "is too large",
                    );
                    None
                }
            },
        }
    }

    pub(super) fn check_listeners_distinct(&mut self, listeners: &[Listener]) {
        let mut seen: HashMap<String, usize> = HashMap::new();
        for listener in listeners {
            let (key, line) = match listener {
                Listener::Tcp(l) => (l.address.to_string(), l.line),
                Listener::Unix(l) => (l.path.display().to_string(), l.line),
            };
            if let Some(first) = seen.insert(key.clone(), line) {
                self.error(
                    line,
                    "listener",
                    format!("{key} is already used by the listener on line {first}"),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{errors, parse};
    use crate::config::IdentitySelector;

    #[test]
    fn plaintext_on_a_public_address_needs_tls_disable() {
        let errs =
            errors("storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8400\"\n}\n");
        assert_eq!(errs.len(), 1);
        assert!(
            errs[0].starts_with(
                "test.hcl:3: listener.tcp.address: listener on 0.0.0.0:8400 has no TLS certificate"
            ),
            "{errs:?}"
        );
        parse(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  address = \"0.0.0.0:8400\"\n  tls_disable = \"true\"\n}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
    }

    #[test]
    fn tls_settings_must_agree() {
        let errs = errors("storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_cert_file = \"c\"\n}\n");
        assert_eq!(
            errs,
            vec!["test.hcl:2: listener.tcp.tls_key_file: is required when tls_cert_file is set"]
        );
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  tls_disable = true\n  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n}\n",
        );
        assert_eq!(
            errs,
            vec![
                "test.hcl:3: listener.tcp.tls_disable: is true, but TLS files are also set: remove one or the other"
            ]
        );
    }

    #[test]
    fn bad_listener_values() {
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"tcp\" { address = \"example.com\" }\nlistener \"unix\" {\n  path = \"/tmp/s\"\n  socket_mode = \"rw\"\n  socket_user = \"no-such-user-xyz\"\n}\n",
        );
        assert_eq!(
            errs,
            vec![
                "test.hcl:2: listener.tcp.address: expected IP:PORT such as 127.0.0.1:8400, got \"example.com\"",
                "test.hcl:5: listener.unix.socket_mode: expected octal permission bits such as \"0660\", got \"rw\"",
                "test.hcl:6: listener.unix.socket_user: no user named \"no-such-user-xyz\" on this host",
            ]
        );
    }

    #[test]
    fn cert_san_takes_uris_and_cert_dns_san_names() {
        let tls =
            "  tls_cert_file = \"c\"\n  tls_key_file = \"k\"\n  tls_client_ca_file = \"ca\"\n";
        let config = parse(
            &format!("storage \"inmem\" {{}}\nlistener \"tcp\" {{\n{tls}  identity {{\n    cert_san = \"spiffe://example.org/app\"\n    policies = [\"a\"]\n  }}\n  identity {{\n    cert_dns_san = \"app.example.org\"\n    policies = [\"b\"]\n  }}\n}}\n"),
            Path::new("t.hcl"),
        )
        .unwrap();
        let selectors: Vec<_> = config.listeners[0]
            .identities()
            .iter()
            .map(|r| r.selector.clone())
            .collect();
        assert_eq!(
            selectors,
            vec![
                IdentitySelector::CertSan("spiffe://example.org/app".into()),
                IdentitySelector::CertDnsSan("app.example.org".into()),
            ]
        );
        let errs = errors(&format!(
            "storage \"inmem\" {{}}\nlistener \"tcp\" {{\n{tls}  identity {{\n    cert_san = \"app.example.org\"\n    policies = [\"a\"]\n  }}\n}}\n"
        ));
        assert_eq!(
            errs,
            vec![
                "test.hcl:7: listener.tcp.identity.cert_san: expected a URI such as \"spiffe://example.org/app\", got \"app.example.org\"; a DNS name goes in cert_dns_san"
            ]
        );
    }

    #[test]
    fn allow_init_is_read_per_listener() {
        let config = parse(
            "storage \"inmem\" {}\nlistener \"tcp\" {\n  allow_init = false\n}\nlistener \"unix\" {\n  path = \"/tmp/s.sock\"\n}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        let allowed: Vec<bool> = config.listeners.iter().map(|l| l.allow_init()).collect();
        assert_eq!(allowed, vec![false, true]);
        let errs = errors(
            "storage \"inmem\" {}\nlistener \"unix\" {\n  path = \"/s\"\n  allow_init = \"no\"\n}\n",
        );
        assert_eq!(
            errs,
            vec!["test.hcl:4: listener.unix.allow_init: expected true or false, got \"no\""]
        );
    }

    #[test]
    fn same_address_twice_is_refused() {
        let errs = errors("storage \"inmem\" {}\nlistener \"tcp\" {}\nlistener \"tcp\" {}\n");
        assert_eq!(
            errs,
            vec!["test.hcl:3: listener: 127.0.0.1:8400 is already used by the listener on line 2"]
        );
    }
}
