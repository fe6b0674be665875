//! Names that the config file and the daemon both use: policy names (an
//! `identity` block names policies, a token carries them, the policy store
//! keeps them), checked by one rule.

/// The policy that may do everything; built in, cannot be written or deleted.
pub const ROOT_POLICY: &str = "root";
/// Longest accepted policy name.
pub const MAX_POLICY_NAME_LEN: usize = 128;

/// Checks a policy name: 1 to 128 characters of `a-z 0-9 - _ .`, starting
/// with a letter or digit. The error is a sentence naming the name.
pub fn check_policy_name(name: &str) -> Result<(), String> {
    let shape_ok = !name.is_empty()
        && name.len() <= MAX_POLICY_NAME_LEN
        && name.as_bytes()[0].is_ascii_alphanumeric()
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b));
    if shape_ok {
        Ok(())
    } else {
        Err(format!(
            "policy name {} is not valid: use 1 to {MAX_POLICY_NAME_LEN} lower-case letters, digits, '-', '_' or '.', starting with a letter or digit",
            crate::text::quote(name)
        ))
    }
}
