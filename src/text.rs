//! Text a caller sent, as messages and audit lines show it: quoted, cut to
//! a bounded prefix, and refused where a character would make it read as
//! something else (a line break in a log, a right-to-left override in a
//! path shown to an operator).

/// The most characters of caller text an error message quotes.
pub const QUOTE_CHARS: usize = 64;
/// The most bytes of an error sentence: what a caller or an audit line gets.
pub const MESSAGE_BYTES: usize = 1024;

/// `text` quoted for a message: its first [`QUOTE_CHARS`] characters,
/// escaped as a Rust string literal, and how long it was when cut.
pub fn quote(text: &str) -> String {
    match text.char_indices().nth(QUOTE_CHARS) {
        None => format!("{text:?}"),
        Some((end, _)) => format!("{:?}… ({} bytes)", &text[..end], text.len()),
    }
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub fn prefix(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// `message` cut to [`MESSAGE_BYTES`], marked where it was cut.
pub fn bounded(message: String) -> String {
    if message.len() <= MESSAGE_BYTES {
        return message;
    }
    format!("{}…", prefix(&message, MESSAGE_BYTES - '…'.len_utf8()))
}

/// The first character of `text` that may not be in a path or a name,
/// with what it is: control characters (line breaks included), the
/// Unicode line and paragraph separators, and the invisible formatting
/// characters that reorder or hide text (bidi overrides and isolates,
/// zero-width characters, the byte-order mark).
pub fn forbidden_char(text: &str) -> Option<(char, &'static str)> {
    text.chars().find_map(|c| {
        let what = match c {
            c if c.is_control() => "a control character",
            '\u{2028}' | '\u{2029}' => "a line or paragraph separator",
            '\u{061C}'
            | '\u{200E}'
            | '\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2066}'..='\u{2069}' => "a bidirectional formatting character",
            '\u{200B}'..='\u{200D}' | '\u{2060}'..='\u{2064}' | '\u{FEFF}' | '\u{00AD}' => {
                "an invisible character"
            }
            _ => return None,
        };
        Some((c, what))
    })
}

/// [`forbidden_char`] as the end of a sentence: "it contains …".
pub fn check_chars(text: &str) -> Result<(), String> {
    match forbidden_char(text) {
        None => Ok(()),
        Some((c, what)) => Err(format!("it contains {what} (U+{:04X})", u32::from(c))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_are_bounded() {
        assert_eq!(quote("app/db"), "\"app/db\"");
        let long = "é".repeat(10_000);
        let quoted = quote(&long);
        assert!(quoted.len() < 200, "{quoted}");
        assert!(quoted.ends_with("… (20000 bytes)"), "{quoted}");
        assert_eq!(quote("a\nb"), "\"a\\nb\"");
    }

    #[test]
    fn prefixes_end_on_a_character() {
        assert_eq!(prefix("héllo", 2), "h");
        assert_eq!(prefix("héllo", 3), "hé");
        assert_eq!(prefix("abc", 10), "abc");
        let message = bounded("x".repeat(5000));
        assert!(message.len() <= MESSAGE_BYTES && message.ends_with('…'));
        assert_eq!(bounded("short".into()), "short");
    }

    #[test]
    fn characters_that_disguise_text_are_named() {
        for (text, what) in [
            ("a\u{202E}b", "bidirectional"),
            ("a\u{2028}b", "separator"),
            ("a\nb", "control"),
            ("a\u{200B}b", "invisible"),
            ("\u{FEFF}a", "invisible"),
        ] {
            let refused = check_chars(text).unwrap_err();
            assert!(refused.contains(what), "{text:?}: {refused}");
        }
        check_chars("app/données-ü/ключ").unwrap();
    }
}
