//! Reading HCL values: strings, booleans, numbers and durations as Vault's
//! parser takes them, addresses, users and groups, policy lists. Each
//! error is a sentence naming what was found.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use hcl_edit::expr::Expression;

use crate::config::parse_bool;
use crate::names;

pub(super) fn kind_of(expr: &Expression) -> &'static str {
    match expr {
        Expression::Null(_) => "null",
        Expression::Bool(_) => "a boolean",
        Expression::Number(_) => "a number",
        Expression::String(_) | Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            "a string"
        }
        Expression::Array(_) => "a list",
        Expression::Object(_) => "an object",
        _ => "an expression",
    }
}

pub(super) fn as_string(expr: &Expression) -> Result<String, String> {
    match expr {
        Expression::String(s) => Ok(s.value().clone()),
        Expression::StringTemplate(_) | Expression::HeredocTemplate(_) => {
            Err("expected a plain string; interpolation (${…}) is not supported".into())
        }
        other => Err(format!("expected a string, got {}", kind_of(other))),
    }
}

/// `true`, `"true"`, `1` and their false forms: what Vault's parser accepts.
pub(super) fn as_bool(expr: &Expression) -> Result<bool, String> {
    let parsed = match expr {
        Expression::Bool(b) => Some(*b.value()),
        Expression::String(s) => parse_bool(s.value()),
        Expression::Number(n) => match n.value().as_u64() {
            Some(1) => Some(true),
            Some(0) => Some(false),
            _ => None,
        },
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected true or false, got {}", describe(expr)))
}

/// A duration as Vault writes them: `"10m"`, `"1h30m"`, `"45s"`, `"500ms"`,
/// or a whole number of seconds. `"0"` is zero.
pub(super) fn as_duration(expr: &Expression) -> Result<Duration, String> {
    let text = match expr {
        Expression::Number(n) => n.value().to_string(),
        Expression::String(s) => s.value().trim().to_string(),
        other => {
            return Err(format!(
                "expected a duration such as \"10m\", got {}",
                kind_of(other)
            ));
        }
    };
    parse_duration(&text).ok_or_else(|| {
        format!("expected a duration such as \"10m\", \"30s\" or \"0\", got {text:?}")
    })
}

/// A duration as Vault writes them: `90`, `30s`, `15m`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Option<Duration> {
    if let Ok(seconds) = text.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    if text.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit())?;
        let (number, tail) = rest.split_at(digits);
        let number: u64 = number.parse().ok()?;
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let part = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.checked_mul(60)?),
            "h" => Duration::from_secs(number.checked_mul(3600)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        rest = tail;
    }
    Some(total)
}

pub(super) fn as_u64(expr: &Expression) -> Result<u64, String> {
    let parsed = match expr {
        Expression::Number(n) => n.value().as_u64(),
        Expression::String(s) => s.value().trim().parse().ok(),
        _ => None,
    };
    parsed.ok_or_else(|| format!("expected a whole number, got {}", describe(expr)))
}

pub(super) fn describe(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => format!("{:?}", s.value()),
        Expression::Number(n) => n.value().to_string(),
        other => kind_of(other).to_string(),
    }
}

pub(super) fn parse_address(text: &str) -> Option<SocketAddr> {
    if let Ok(address) = text.parse() {
        return Some(address);
    }
    let port = text.strip_prefix("localhost:")?.parse().ok()?;
    Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port))
}

/// A uid or gid: a number, or a name to resolve.
pub(super) fn as_id(expr: &Expression) -> Result<String, String> {
    match expr {
        Expression::Number(n) => n
            .value()
            .as_u64()
            .map(|n| n.to_string())
            .ok_or_else(|| format!("expected a whole number or a name, got {}", describe(expr))),
        other => as_string(other),
    }
}

pub(super) fn nonempty(text: String) -> Result<String, String> {
    if text.is_empty() {
        Err("must not be empty".into())
    } else {
        Ok(text)
    }
}

/// A URI, as a certificate's URI subject alternative name holds one: a
/// scheme (RFC 3986: a letter, then letters, digits, `+`, `-`, `.`), a colon
/// and more.
pub(super) fn as_uri(text: String) -> Result<String, String> {
    let is_uri = text.split_once(':').is_some_and(|(scheme, rest)| {
        !rest.is_empty()
            && scheme.starts_with(|c: char| c.is_ascii_alphabetic())
            && scheme
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    });
    if is_uri {
        Ok(text)
    } else {
        Err(format!(
            "expected a URI such as \"spiffe://example.org/app\", got {text:?}; a DNS name goes in cert_dns_san"
        ))
    }
}

/// A non-empty list of valid policy names other than root.
pub(super) fn as_policy_list(expr: &Expression) -> Result<Vec<String>, String> {
    let Expression::Array(items) = expr else {
        return Err(format!(
            "expected a list of policy names, got {}",
            kind_of(expr)
        ));
    };
    let mut list = Vec::new();
    for item in items.iter() {
        let name = as_string(item)?;
        names::check_policy_name(&name)?;
        if name == names::ROOT_POLICY {
            return Err(
                "an identity may not be given the root policy; write a policy with what it needs"
                    .into(),
            );
        }
        list.push(name);
    }
    if list.is_empty() {
        return Err("the list is empty; name at least one policy".into());
    }
    Ok(list)
}

pub(super) fn resolve_user(name: &str) -> Result<u32, String> {
    if let Ok(uid) = name.parse() {
        return Ok(uid);
    }
    match nix::unistd::User::from_name(name) {
        Ok(Some(user)) => Ok(user.uid.as_raw()),
        _ => Err(format!("no user named {name:?} on this host")),
    }
}

pub(super) fn resolve_group(name: &str) -> Result<u32, String> {
    if let Ok(gid) = name.parse() {
        return Ok(gid);
    }
    match nix::unistd::Group::from_name(name) {
        Ok(Some(group)) => Ok(group.gid.as_raw()),
        _ => Err(format!("no group named {name:?} on this host")),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{MINIMAL, errors, parse};
    use super::*;

    #[test]
    fn durations_read_like_vaults() {
        for (text, secs) in [
            ("0", 0),
            ("45", 45),
            ("10m", 600),
            ("1h30m", 5400),
            ("90s", 90),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        for bad in ["", "m", "10x", "1.5h", "-1s", "10 m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn booleans_accept_vault_forms() {
        for form in ["true", "\"true\"", "1", "\"1\""] {
            let config = parse(
                &format!("disable_mlock = {form}\n{MINIMAL}"),
                Path::new("t.hcl"),
            )
            .unwrap();
            assert!(config.disable_mlock.value, "{form}");
        }
        let errs = errors(&format!("disable_mlock = \"perhaps\"\n{MINIMAL}"));
        assert_eq!(
            errs,
            vec!["test.hcl:1: disable_mlock: expected true or false, got \"perhaps\""]
        );
    }
}
