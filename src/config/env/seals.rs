//! With `enable_multiseal`, each KMS seal's own variables: today's names
//! with the seal's [`env_suffix`].

use std::borrow::Cow;

use super::{AWSKMS_ENDPOINT, AWSKMS_KEY_ID, Overrides, nonempty};
use crate::config::{Config, ConfigError, ConfigErrors, Location, check_endpoint, env_suffix};

/// With `enable_multiseal`: each KMS seal's `STRONGROOM_AWSKMS_KEY_ID_<NAME>`
/// and `STRONGROOM_AWSKMS_ENDPOINT_<NAME>` (see [`env_suffix`]), disabled
/// seals included (a decrypt-only seal's endpoint still matters); the
/// unsuffixed variables are refused, as they would not say which seal.
pub(super) fn multiseal_env<E: Fn(&str) -> Option<String>>(
    config: &mut Config,
    vars: &mut Overrides<E>,
) {
    for var in [AWSKMS_KEY_ID, AWSKMS_ENDPOINT] {
        if (vars.env)(var).is_some() {
            vars.bad(
                var,
                format!("is set, but with enable_multiseal = true it would not say which seal; name the seal, as {var}_<NAME> ({var}_TOKYO for the seal named tokyo)"),
            );
        }
    }
    let (Some(multi), Some(file)) = (config.multiseal.as_mut(), &config.file) else {
        return;
    };
    for named in &mut multi.seals {
        let suffix = env_suffix(&named.name);
        let key_var = format!("{AWSKMS_KEY_ID}_{suffix}");
        if let Some(key) = vars.get(key_var.clone(), nonempty) {
            named.seal.kms_key_id = key;
        }
        let endpoint_var = format!("{AWSKMS_ENDPOINT}_{suffix}");
        if let Some(endpoint) = vars.get(endpoint_var, |value| {
            let value = nonempty(value)?;
            check_endpoint(&value)?;
            Ok(value)
        }) {
            named.seal.endpoint = Some(endpoint);
        }
        // A disabled seal needs no key id: Decrypt names no key.
        if !named.disabled && named.seal.kms_key_id.value.is_empty() {
            vars.errors.push(ConfigError {
                location: Location::File {
                    path: file.clone(),
                    line: named.seal.line,
                },
                key: "seal.awskms.kms_key_id".into(),
                message: format!(
                    "is required for the seal {}: the KMS key (id, ARN or alias/…) that wraps the root key, here or in {key_var}",
                    crate::text::quote(&named.name)
                ),
            });
        }
    }
}

/// With `enable_multiseal`: refuses a `STRONGROOM_AWSKMS_KEY_ID_…` or
/// `STRONGROOM_AWSKMS_ENDPOINT_…` among `names` (the environment's variable
/// names) that names no KMS seal of `config`, a typo that would otherwise
/// leave the file's value in force without a word.
pub fn check_seal_env_names(
    config: &Config,
    names: impl IntoIterator<Item = String>,
) -> Result<(), ConfigErrors> {
    let Some(multi) = &config.multiseal else {
        return Ok(());
    };
    let mut errors = Vec::new();
    for name in names {
        let suffix = [AWSKMS_KEY_ID, AWSKMS_ENDPOINT]
            .iter()
            .find_map(|var| name.strip_prefix(var)?.strip_prefix('_'));
        let Some(suffix) = suffix else {
            continue;
        };
        if multi.seals.iter().any(|s| env_suffix(&s.name) == suffix) {
            continue;
        }
        let known: Vec<String> = multi.seals.iter().map(|s| env_suffix(&s.name)).collect();
        errors.push(ConfigError {
            key: crate::text::prefix(&name, 128).to_string(),
            location: Location::Env(Cow::Owned(crate::text::prefix(&name, 128).to_string())),
            message: format!(
                "is set, but no seal \"awskms\" block is named for its suffix {} (the seals' suffixes: {})",
                crate::text::quote(suffix),
                known.join(", ")
            ),
        });
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Source, apply_env, check_seal_env_names, parse};

    /// Two KMS seals, `tokyo` with a key and `osaka-2` without, and a
    /// disabled one without a key.
    fn config() -> crate::config::Config {
        parse(
            "enable_multiseal = true\nstorage \"inmem\" {}\nlistener \"tcp\" { address = \"127.0.0.1:0\" }\nseal \"awskms\" {\n  name = \"tokyo\"\n  priority = 1\n  kms_key_id = \"k1\"\n}\nseal \"awskms\" {\n  name = \"osaka-2\"\n  priority = 2\n}\nseal \"awskms\" {\n  name = \"old\"\n  priority = 3\n  disabled = true\n}\n",
            Path::new("t.hcl"),
        )
        .unwrap()
    }

    #[test]
    fn each_seal_has_its_own_variables_and_an_enabled_one_needs_a_key() {
        let errors = apply_env(&mut config(), |_| None).unwrap_err();
        assert_eq!(
            errors.to_string(),
            "t.hcl:9: seal.awskms.kms_key_id: is required for the seal \"osaka-2\": the KMS key (id, ARN or alias/…) that wraps the root key, here or in STRONGROOM_AWSKMS_KEY_ID_OSAKA_2"
        );
        let mut config = config();
        apply_env(&mut config, |var| match var {
            "STRONGROOM_AWSKMS_KEY_ID_OSAKA_2" => Some("alias/osaka".into()),
            "STRONGROOM_AWSKMS_ENDPOINT_OLD" => Some("http://127.0.0.1:9".into()),
            _ => None,
        })
        .unwrap();
        let set = config.multiseal.unwrap();
        let osaka = set.named("osaka-2").unwrap();
        assert_eq!(osaka.seal.kms_key_id.value, "alias/osaka");
        assert_eq!(
            osaka.seal.kms_key_id.source,
            Source::Env("STRONGROOM_AWSKMS_KEY_ID_OSAKA_2".into())
        );
        let old = set.named("old").unwrap();
        assert_eq!(
            old.seal.endpoint.as_ref().unwrap().value,
            "http://127.0.0.1:9"
        );
        assert_eq!(set.named("tokyo").unwrap().seal.kms_key_id.value, "k1");
        let errors = apply_env(&mut self::config(), |var| match var {
            "STRONGROOM_AWSKMS_KEY_ID_OSAKA_2" => Some("k".into()),
            "STRONGROOM_AWSKMS_ENDPOINT_TOKYO" => Some("kms.local".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(
            errors.to_string(),
            "STRONGROOM_AWSKMS_ENDPOINT_TOKYO: expected a URL starting with https:// (or http:// for a local KMS), got \"kms.local\""
        );
    }

    #[test]
    fn the_unsuffixed_variables_are_ambiguous_with_several_seals() {
        let errors = apply_env(&mut config(), |var| match var {
            "STRONGROOM_AWSKMS_KEY_ID" => Some("k".into()),
            "STRONGROOM_AWSKMS_KEY_ID_OSAKA_2" => Some("k2".into()),
            _ => None,
        })
        .unwrap_err();
        assert_eq!(
            errors.to_string(),
            "STRONGROOM_AWSKMS_KEY_ID: is set, but with enable_multiseal = true it would not say which seal; name the seal, as STRONGROOM_AWSKMS_KEY_ID_<NAME> (STRONGROOM_AWSKMS_KEY_ID_TOKYO for the seal named tokyo)"
        );
    }

    #[test]
    fn a_variable_for_no_configured_seal_is_refused() {
        let names = |list: &[&str]| list.iter().map(ToString::to_string).collect::<Vec<_>>();
        check_seal_env_names(
            &config(),
            names(&[
                "STRONGROOM_AWSKMS_KEY_ID_TOKYO",
                "STRONGROOM_AWSKMS_ENDPOINT_OSAKA_2",
                "STRONGROOM_LOG_LEVEL",
                "HOME",
            ]),
        )
        .unwrap();
        let errors = check_seal_env_names(&config(), names(&["STRONGROOM_AWSKMS_KEY_ID_KYOTO"]))
            .unwrap_err();
        assert_eq!(
            errors.to_string(),
            "STRONGROOM_AWSKMS_KEY_ID_KYOTO: is set, but no seal \"awskms\" block is named for its suffix \"KYOTO\" (the seals' suffixes: TOKYO, OSAKA_2, OLD)"
        );
        // Without enable_multiseal nothing changes from before.
        let single = parse(
            "storage \"inmem\" {}\nlistener \"tcp\" {}\n",
            Path::new("t.hcl"),
        )
        .unwrap();
        check_seal_env_names(&single, names(&["STRONGROOM_AWSKMS_KEY_ID_KYOTO"])).unwrap();
    }
}
