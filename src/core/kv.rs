//! The minimal key/value store: secrets (maps of strings) at slash-separated
//! paths, stored behind the barrier under `kv/`.

use std::collections::{BTreeMap, BTreeSet};

use super::CoreError;
use crate::barrier::Barrier;

const PREFIX: &str = "kv/";
/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// A secret: names to values.
pub type Secret = BTreeMap<String, String>;

/// Checks a secret path: non-empty, at most [`MAX_PATH_LEN`] bytes,
/// segments separated by single slashes, no `.` or `..`, no control characters.
pub fn validate_path(path: &str) -> Result<(), CoreError> {
    let bad = |why: &str| {
        Err(CoreError::InvalidArgument(format!(
            "kv path {path:?} is not valid: {why}"
        )))
    };
    if path.is_empty() {
        return Err(CoreError::InvalidArgument("the kv path is empty".into()));
    }
    if path.len() > MAX_PATH_LEN {
        return bad(&format!("it is longer than {MAX_PATH_LEN} bytes"));
    }
    if path.chars().any(char::is_control) {
        return bad("it contains control characters");
    }
    for segment in path.split('/') {
        match segment {
            "" => return bad("it has an empty segment (a leading, trailing or doubled slash)"),
            "." | ".." => return bad("it has a . or .. segment"),
            _ => {}
        }
    }
    Ok(())
}

/// Normalises a list prefix: "" for the top, otherwise a valid path plus "/".
fn folder(prefix: &str) -> Result<String, CoreError> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_path(trimmed)?;
    Ok(format!("{trimmed}/"))
}

/// Writes (or replaces) the secret at `path`.
pub async fn put(barrier: &Barrier, path: &str, secret: &Secret) -> Result<(), CoreError> {
    validate_path(path)?;
    if secret.keys().any(String::is_empty) {
        return Err(CoreError::InvalidArgument(
            "secret field names must not be empty".into(),
        ));
    }
    let encoded = serde_json::to_vec(secret).map_err(|e| CoreError::Internal(e.to_string()))?;
    barrier.put(&format!("{PREFIX}{path}"), &encoded).await?;
    Ok(())
}

/// Reads the secret at `path`.
pub async fn get(barrier: &Barrier, path: &str) -> Result<Secret, CoreError> {
    validate_path(path)?;
    let stored = barrier
        .get(&format!("{PREFIX}{path}"))
        .await?
        .ok_or_else(|| CoreError::NotFound(format!("no secret at kv path {path:?}")))?;
    serde_json::from_slice(stored.expose())
        .map_err(|e| CoreError::Internal(format!("the secret at kv path {path:?} is damaged: {e}")))
}

/// Deletes the secret at `path`; a missing one is not an error.
pub async fn delete(barrier: &Barrier, path: &str) -> Result<(), CoreError> {
    validate_path(path)?;
    barrier.delete(&format!("{PREFIX}{path}")).await?;
    Ok(())
}

/// The names directly under `prefix`; sub-folders end in `/`.
pub async fn list(barrier: &Barrier, prefix: &str) -> Result<Vec<String>, CoreError> {
    let folder = folder(prefix)?;
    let full = format!("{PREFIX}{folder}");
    let mut names = BTreeSet::new();
    for key in barrier.list(&full).await? {
        let rest = &key[full.len()..];
        match rest.split_once('/') {
            Some((dir, _)) => names.insert(format!("{dir}/")),
            None => names.insert(rest.to_string()),
        };
    }
    Ok(names.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_are_validated() {
        for good in [
            "a",
            "app/db",
            "a-b_c.d/e f",
            "x/../../y".replace("..", "dots").as_str(),
        ] {
            assert!(validate_path(good).is_ok(), "{good}");
        }
        for bad in ["", "/a", "a/", "a//b", "a/../b", ".", "a\u{0}b"] {
            assert!(validate_path(bad).is_err(), "{bad:?}");
        }
        assert!(validate_path(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
        assert_eq!(folder("").unwrap(), "");
        assert_eq!(folder("app").unwrap(), "app/");
        assert_eq!(folder("app/").unwrap(), "app/");
    }
}
