//! What a SIGHUP cannot apply: the settings that differ between the
//! running config and the file read again, and take a restart.

use std::path::PathBuf;

use super::{
    AwsKmsSeal, BarrierConfig, Config, EmergencySeal, IdentityRule, Listener, Multiseal, NamedSeal,
    Setting, TcpListener, Telemetry, TlsFiles, UnixListener,
};

/// A seal block's settings without where they stand in the file.
fn unplaced(seal: &AwsKmsSeal) -> AwsKmsSeal {
    let value = |s: &Setting<String>| Setting::default_value(s.value.clone());
    AwsKmsSeal {
        kms_key_id: value(&seal.kms_key_id),
        region: seal.region.as_ref().map(value),
        endpoint: seal.endpoint.as_ref().map(value),
        line: 0,
        ..seal.clone()
    }
}

impl Config {
    /// The settings that differ between `self` (running) and `new` (re-read on
    /// SIGHUP) and that only a restart applies. The log level and the TLS
    /// certificate files are reloaded in place, so they are not listed.
    pub fn restart_needed(&self, new: &Config) -> Vec<&'static str> {
        // A listener as a restart sees it: TLS on or off, not which files.
        fn shape(listeners: &[Listener]) -> Vec<Listener> {
            let unlined = |rules: &[IdentityRule]| {
                rules
                    .iter()
                    .map(|r| IdentityRule {
                        line: 0,
                        ..r.clone()
                    })
                    .collect()
            };
            listeners
                .iter()
                .map(|listener| match listener {
                    Listener::Tcp(tcp) => Listener::Tcp(TcpListener {
                        tls: tcp.tls.as_ref().map(|_| TlsFiles {
                            cert: PathBuf::new(),
                            key: PathBuf::new(),
                            client_ca: None,
                        }),
                        identities: unlined(&tcp.identities),
                        line: 0,
                        ..tcp.clone()
                    }),
                    Listener::Unix(unix) => Listener::Unix(UnixListener {
                        identities: unlined(&unix.identities),
                        line: 0,
                        ..unix.clone()
                    }),
                })
                .collect()
        }
        // Where a block stands in the file is not a setting.
        let block = |seal: &Option<AwsKmsSeal>| seal.as_ref().map(unplaced);
        let seals = |c: &Config| {
            c.multiseal.clone().map(|m| Multiseal {
                seals: m
                    .seals
                    .into_iter()
                    .map(|n| NamedSeal {
                        seal: unplaced(&n.seal),
                        ..n
                    })
                    .collect(),
                emergency: m.emergency.map(|e| EmergencySeal { line: 0, ..e }),
                line: 0,
            })
        };
        let barrier = |c: &Config| BarrierConfig {
            line: 0,
            ..c.barrier.clone()
        };
        let telemetry = |c: &Config| Telemetry {
            line: 0,
            ..c.telemetry.clone()
        };
        let mut changed = Vec::new();
        for (name, differs) in [
            (
                "cluster_name",
                self.cluster_name.value != new.cluster_name.value,
            ),
            ("api_addr", self.api_addr.value != new.api_addr.value),
            (
                "cluster_addr",
                self.cluster_addr.value != new.cluster_addr.value,
            ),
            (
                "disable_mlock",
                self.disable_mlock.value != new.disable_mlock.value,
            ),
            ("log_format", self.log_format.value != new.log_format.value),
            ("storage", self.storage.value != new.storage.value),
            ("listener", shape(&self.listeners) != shape(&new.listeners)),
            ("seal", block(&self.seal) != block(&new.seal)),
            (
                "seal (disabled)",
                block(&self.disabled_seal) != block(&new.disabled_seal),
            ),
            ("seal (enable_multiseal)", seals(self) != seals(new)),
            ("barrier", barrier(self) != barrier(new)),
            ("kv", self.kv != new.kv),
            ("audit", self.audit != new.audit),
            ("telemetry", telemetry(self) != telemetry(new)),
        ] {
            if differs {
                changed.push(name);
            }
        }
        changed
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::parse;

    #[test]
    fn a_reload_names_what_needs_a_restart() {
        let running = parse(
            "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        assert!(running.restart_needed(&running.clone()).is_empty());
        let hcl = "log_level = \"debug\"\nlog_format = \"json\"\n\nstorage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\nlistener \"unix\" { path = \"/tmp/x.sock\" }\n";
        let new = parse(hcl, Path::new("t.hcl")).unwrap();
        assert_eq!(running.restart_needed(&new), ["log_format", "listener"]);
        let mut rotated = running.clone();
        rotated.barrier.rotation_max_encryptions = 1000;
        assert_eq!(running.restart_needed(&rotated), ["barrier"]);
    }

    #[test]
    fn a_changed_set_of_seals_needs_a_restart() {
        let seals = |extra: &str| {
            parse(
                &format!(
                    "enable_multiseal = true\nstorage \"inmem\" {{}}\nlistener \"tcp\" {{ address = \"127.0.0.1:0\" }}\n{extra}seal \"awskms\" {{\n  name = \"tokyo\"\n  priority = 1\n  kms_key_id = \"k1\"\n}}\n"
                ),
                Path::new("t.hcl"),
            )
            .unwrap()
        };
        let running = seals("");
        // The same seals on other lines: nothing to restart for.
        assert!(running.restart_needed(&seals("\n\n")).is_empty());
        let added = seals(
            "seal \"awskms\" {\n  name = \"osaka\"\n  priority = 2\n  kms_key_id = \"k2\"\n}\n",
        );
        assert_eq!(running.restart_needed(&added), ["seal (enable_multiseal)"]);
        let emergency = seals("seal \"shamir\" { name = \"emergency\" }\n");
        assert_eq!(
            running.restart_needed(&emergency),
            ["seal (enable_multiseal)"]
        );
    }
}
