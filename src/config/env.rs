//! The `STRONGROOM_*` environment variables, which override the file: the
//! top-level keys, and the `awskms` seal's key and endpoint.

mod seals;

use std::borrow::Cow;

pub use seals::check_seal_env_names;
use seals::multiseal_env;

use super::{
    Config, ConfigError, ConfigErrors, ConnectionUrl, Location, LogFormat, LogLevel,
    PG_CONNECTION_URL, Setting, Source, StorageConfig, check_endpoint, parse_bool,
};

/// Overrides `kms_key_id` of the `awskms` seal.
pub const AWSKMS_KEY_ID: &str = "STRONGROOM_AWSKMS_KEY_ID";
/// Overrides `endpoint` of the `awskms` seal.
pub const AWSKMS_ENDPOINT: &str = "STRONGROOM_AWSKMS_ENDPOINT";
const CLUSTER_NAME: &str = "STRONGROOM_CLUSTER_NAME";
const API_ADDR: &str = "STRONGROOM_API_ADDR";
const CLUSTER_ADDR: &str = "STRONGROOM_CLUSTER_ADDR";
const DISABLE_MLOCK: &str = "STRONGROOM_DISABLE_MLOCK";
const LOG_LEVEL: &str = "STRONGROOM_LOG_LEVEL";
const LOG_FORMAT: &str = "STRONGROOM_LOG_FORMAT";

/// Whether the configuration reads the environment variable `name`: the
/// top-level keys, the PostgreSQL URL, the seal's key and endpoint (with
/// several seals, their `_<NAME>` forms too).
pub fn reads_variable(name: &str) -> bool {
    let top = [
        CLUSTER_NAME,
        API_ADDR,
        CLUSTER_ADDR,
        DISABLE_MLOCK,
        LOG_LEVEL,
        LOG_FORMAT,
        PG_CONNECTION_URL,
    ];
    top.contains(&name)
        || [AWSKMS_KEY_ID, AWSKMS_ENDPOINT].iter().any(|seal| {
            name.strip_prefix(seal)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('_'))
        })
}

/// The variables as they are read, and the errors found.
struct Overrides<E> {
    env: E,
    errors: Vec<ConfigError>,
}

impl<E: Fn(&str) -> Option<String>> Overrides<E> {
    fn bad(&mut self, var: impl Into<Cow<'static, str>>, message: String) {
        let var = var.into();
        self.errors.push(ConfigError {
            key: var.to_string(),
            location: Location::Env(var),
            message,
        });
    }

    /// `var`'s value read by `read`, as a setting from that variable; `None`
    /// when unset, or when it does not read (the error is recorded).
    fn get<T>(
        &mut self,
        var: impl Into<Cow<'static, str>>,
        read: impl FnOnce(String) -> Result<T, String>,
    ) -> Option<Setting<T>> {
        let var = var.into();
        let value = (self.env)(&var)?;
        match read(value) {
            Ok(value) => Some(Setting {
                value,
                source: Source::Env(var),
            }),
            Err(message) => {
                self.bad(var, message);
                None
            }
        }
    }
}

fn node_address(value: String) -> Result<String, String> {
    super::check_node_address(&value).map(|()| value)
}

fn nonempty(value: String) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("is set but empty".into())
    } else {
        Ok(value)
    }
}

/// Applies `STRONGROOM_CLUSTER_NAME`, `STRONGROOM_API_ADDR`,
/// `STRONGROOM_CLUSTER_ADDR`, `STRONGROOM_DISABLE_MLOCK`,
/// `STRONGROOM_LOG_LEVEL`, `STRONGROOM_LOG_FORMAT`, and for the `awskms`
/// seal `STRONGROOM_AWSKMS_KEY_ID` and `STRONGROOM_AWSKMS_ENDPOINT`.
pub fn apply_env(
    config: &mut Config,
    env: impl Fn(&str) -> Option<String>,
) -> Result<(), ConfigErrors> {
    let mut vars = Overrides {
        env,
        errors: Vec::new(),
    };
    if let Some(name) = vars.get(CLUSTER_NAME, nonempty) {
        config.cluster_name = Setting {
            value: Some(name.value),
            source: name.source,
        };
    }
    if let Some(address) = vars.get(API_ADDR, node_address) {
        config.api_addr = Setting {
            value: Some(address.value),
            source: address.source,
        };
    }
    let ha = super::ha_enabled(&config.storage.value);
    if let Some(address) = vars.get(CLUSTER_ADDR, |value| {
        let value = node_address(value)?;
        if ha {
            super::check_cluster_addr(&value)?;
        }
        Ok(value)
    }) {
        config.cluster_addr = Setting {
            value: Some(address.value),
            source: address.source,
        };
    }
    if let Some(setting) = vars.get(DISABLE_MLOCK, |value| {
        parse_bool(&value).ok_or_else(|| format!("expected true or false, got {value:?}"))
    }) {
        config.disable_mlock = setting;
    }
    if let Some(setting) = vars.get(LOG_LEVEL, |value| {
        LogLevel::parse(&value).ok_or_else(|| {
            format!("expected one of trace, debug, info, warn, error; got {value:?}")
        })
    }) {
        config.log_level = setting;
    }
    if let Some(setting) = vars.get(LOG_FORMAT, |value| {
        LogFormat::parse(&value).ok_or_else(|| format!("expected text or json, got {value:?}"))
    }) {
        config.log_format = setting;
    }
    if config.multiseal.is_some() {
        multiseal_env(config, &mut vars);
    }
    for var in [AWSKMS_KEY_ID, AWSKMS_ENDPOINT] {
        if config.multiseal.is_some() {
            continue;
        }
        if config.seal.is_none() {
            if (vars.env)(var).is_some() {
                vars.bad(
                    var,
                    "is set, but the config has no seal \"awskms\" block in use (a block with disabled = true is not overridden)".into(),
                );
            }
            continue;
        }
        let setting = vars.get(var, |value| {
            let value = nonempty(value)?;
            if var == AWSKMS_ENDPOINT {
                check_endpoint(&value)?;
            }
            Ok(value)
        });
        if let (Some(seal), Some(setting)) = (config.seal.as_mut(), setting) {
            if var == AWSKMS_KEY_ID {
                seal.kms_key_id = setting;
            } else {
                seal.endpoint = Some(setting);
            }
        }
    }
    // A disabled seal needs no key id: Decrypt names no key.
    if let (Some(seal), Some(file)) = (&config.seal, &config.file)
        && seal.kms_key_id.value.is_empty()
    {
        vars.errors.push(ConfigError {
            location: Location::File {
                path: file.clone(),
                line: seal.line,
            },
            key: "seal.awskms.kms_key_id".into(),
            message: format!(
                "is required: the KMS key (id, ARN or alias/…) that wraps the root key, here or in {AWSKMS_KEY_ID}"
            ),
        });
    }
    pg_connection_url(config, &mut vars);
    if vars.errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(vars.errors))
    }
}

/// `STRONGROOM_PG_CONNECTION_URL` replaces `connection_url` (a password
/// kept out of the file); one of the two must give it.
fn pg_connection_url<E: Fn(&str) -> Option<String>>(config: &mut Config, vars: &mut Overrides<E>) {
    let StorageConfig::Postgresql(pg) = &mut config.storage.value else {
        if (vars.env)(PG_CONNECTION_URL).is_some() {
            vars.bad(
                PG_CONNECTION_URL,
                "is set, but the config has no storage \"postgresql\" block".into(),
            );
        }
        return;
    };
    if let Some(url) = vars.get(PG_CONNECTION_URL, |v| ConnectionUrl::parse(&v)) {
        pg.connection_url = Some(url.value);
        pg.url_source = url.source;
    }
    if let (None, Some(file)) = (&pg.connection_url, &config.file)
        && !vars.errors.iter().any(|e| e.key == PG_CONNECTION_URL)
    {
        vars.errors.push(ConfigError {
            location: Location::File {
                path: file.clone(),
                line: pg.line,
            },
            key: "storage.postgresql.connection_url".into(),
            message: format!(
                "is required: the database's postgres:// URL, here or in {PG_CONNECTION_URL}"
            ),
        });
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::parse;

    fn base() -> Config {
        parse(
            "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\n",
            Path::new("t.hcl"),
        )
        .unwrap()
    }

    fn config_with_seal() -> Config {
        let hcl = "storage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\nseal \"awskms\" {\n  region = \"eu-west-1\"\n}\n";
        parse(hcl, Path::new("t.hcl")).unwrap()
    }

    #[test]
    fn pg_connection_url_comes_from_the_env_or_is_required() {
        let hcl = "storage \"postgresql\" {}\nlistener \"tcp\" {}\n";
        let mut config = parse(hcl, Path::new("t.hcl")).unwrap();
        config.file = Some("t.hcl".into());
        let errors = apply_env(&mut config.clone(), |_| None).unwrap_err();
        assert!(
            errors
                .to_string()
                .starts_with("t.hcl:1: storage.postgresql.connection_url: is required"),
            "{errors}"
        );
        let errors = apply_env(&mut config.clone(), |var| {
            (var == PG_CONNECTION_URL).then(|| "pg://a:hunter2@x".to_string())
        })
        .unwrap_err();
        assert!(!errors.to_string().contains("hunter2"), "{errors}");
        apply_env(&mut config, |var| {
            (var == PG_CONNECTION_URL).then(|| "postgres://a:hunter2@x/db".to_string())
        })
        .unwrap();
        let StorageConfig::Postgresql(pg) = config.storage.value else {
            panic!("postgresql")
        };
        assert_eq!(
            pg.connection_url.unwrap().expose(),
            "postgres://a:hunter2@x/db"
        );
        let errors = apply_env(&mut base(), |var| {
            (var == PG_CONNECTION_URL).then(|| "postgres://x".to_string())
        })
        .unwrap_err();
        assert!(
            errors.to_string().contains("no storage \"postgresql\""),
            "{errors}"
        );
    }

    #[test]
    fn env_overrides_top_level_keys_and_records_the_source() {
        let mut config = base();
        apply_env(&mut config, |var| match var {
            "STRONGROOM_LOG_LEVEL" => Some("debug".into()),
            "STRONGROOM_DISABLE_MLOCK" => Some("1".into()),
            "STRONGROOM_CLUSTER_NAME" => Some("prod".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(config.log_level.value, LogLevel::Debug);
        assert_eq!(
            config.log_level.source,
            Source::Env("STRONGROOM_LOG_LEVEL".into())
        );
        assert!(config.disable_mlock.value);
        assert_eq!(config.cluster_name.value.as_deref(), Some("prod"));
        assert_eq!(config.log_format.source, Source::Default);
    }

    #[test]
    fn bad_env_values_name_the_variable() {
        let mut config = base();
        let errors = apply_env(&mut config, |var| match var {
            "STRONGROOM_LOG_FORMAT" => Some("xml".into()),
            "STRONGROOM_DISABLE_MLOCK" => Some("maybe".into()),
            _ => None,
        })
        .unwrap_err();
        let text = errors.to_string();
        assert!(
            text.contains("STRONGROOM_LOG_FORMAT: expected text or json"),
            "{text}"
        );
        assert!(
            text.contains("STRONGROOM_DISABLE_MLOCK: expected true or false"),
            "{text}"
        );
    }

    #[test]
    fn awskms_env_overrides_win_and_a_key_is_required() {
        let mut config = config_with_seal();
        let errors = apply_env(&mut config.clone(), |_| None).unwrap_err();
        assert!(
            errors
                .to_string()
                .starts_with("t.hcl:3: seal.awskms.kms_key_id: is required"),
            "{errors}"
        );
        apply_env(&mut config, |var| match var {
            AWSKMS_KEY_ID => Some("alias/from-env".into()),
            AWSKMS_ENDPOINT => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        let seal = config.seal.unwrap();
        assert_eq!(seal.kms_key_id.value, "alias/from-env");
        assert_eq!(seal.kms_key_id.source, Source::Env(AWSKMS_KEY_ID.into()));
        assert_eq!(
            seal.endpoint.unwrap().source,
            Source::Env(AWSKMS_ENDPOINT.into())
        );

        let errors = apply_env(&mut base(), |var| {
            (var == AWSKMS_KEY_ID).then(|| "k".to_string())
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_AWSKMS_KEY_ID: is set, but the config has no seal"),
            "{errors}"
        );
        let errors = apply_env(&mut config_with_seal(), |var| {
            (var == AWSKMS_ENDPOINT).then(|| "kms.local".to_string())
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_AWSKMS_ENDPOINT: expected a URL starting with https://"),
            "{errors}"
        );
        let errors = apply_env(&mut base(), |var| {
            (var == "STRONGROOM_CLUSTER_NAME").then(String::new)
        })
        .unwrap_err();
        assert!(
            errors
                .to_string()
                .contains("STRONGROOM_CLUSTER_NAME: is set but empty"),
            "{errors}"
        );
    }
}
