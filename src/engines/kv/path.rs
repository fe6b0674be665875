//! Secret paths and list folders, checked before anything is done with
//! them.

use crate::error::Error;
use crate::text;

/// Longest accepted path, in bytes.
pub const MAX_PATH_LEN: usize = 512;

/// Checks a secret path: non-empty, at most [`MAX_PATH_LEN`] bytes,
/// segments separated by single slashes, no `.` or `..`, no control,
/// bidi or invisible characters ([`text::forbidden_char`]). The error
/// quotes a bounded prefix of the path.
pub fn validate_path(path: &str) -> Result<(), Error> {
    let bad = |why: &str| {
        Err(Error::InvalidArgument(format!(
            "kv path {} is not valid: {why}",
            text::quote(path)
        )))
    };
    if path.is_empty() {
        return Err(Error::InvalidArgument("the kv path is empty".into()));
    }
    if path.len() > MAX_PATH_LEN {
        return bad(&format!("it is longer than {MAX_PATH_LEN} bytes"));
    }
    if let Err(why) = text::check_chars(path) {
        return bad(&why);
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
pub fn folder(prefix: &str) -> Result<String, Error> {
    let trimmed = prefix.trim_end_matches('/');
    if trimmed.is_empty() {
        return Ok(String::new());
    }
    validate_path(trimmed)?;
    Ok(format!("{trimmed}/"))
}
