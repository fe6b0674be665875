//! The words of config errors: qualified key names, and "did you mean"
//! hints for unknown keys and blocks.

pub(super) fn qualified(section: &str, key: &str) -> String {
    if section.is_empty() {
        key.to_string()
    } else {
        format!("{section}.{key}")
    }
}

pub(super) fn example_label(ident: &str) -> &'static str {
    match ident {
        "storage" | "storage_source" | "storage_destination" => "file",
        _ => "tcp",
    }
}

pub(super) fn unknown_message(what: &str, found: &str, expected: &[&str]) -> String {
    if expected.is_empty() {
        return format!("unknown {what} {found:?}: this block takes none");
    }
    let hint = expected
        .iter()
        .map(|e| (edit_distance(found, e), *e))
        .filter(|(d, _)| *d <= 2)
        .min()
        .map(|(_, e)| format!(" (did you mean {e:?}?)"))
        .unwrap_or_default();
    format!(
        "unknown {what} {found:?}{hint}; expected one of: {}",
        expected.join(", ")
    )
}

/// Levenshtein distance, for "did you mean" hints on short key names.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let current = row[j + 1];
            row[j + 1] = if ca == *cb {
                prev
            } else {
                1 + prev.min(row[j]).min(current)
            };
            prev = current;
        }
    }
    row[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edit_distance_works() {
        assert_eq!(edit_distance("tls_cert_fil", "tls_cert_file"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("same", "same"), 0);
    }
}
