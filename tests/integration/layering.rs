//! The layers import only what is below them: every `crate::` path in
//! `src/` (in `use` lines, `use crate::{…}` groups, inline paths such as
//! `crate::secret::random_uuid()`, `$crate::` in macros, and `super::`
//! chains that climb out of their top-level module) is checked against
//! [`ALLOWED`]. docs/ARCHITECTURE.md draws the same table.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

/// Each top-level module of the crate, and the modules it may import.
/// `lib.rs` and `main.rs` (the crate's roots) may name every module.
const ALLOWED: &[(&str, &[&str])] = &[
    // The leaves.
    ("error", &["text"]),
    ("failpoint", &[]),
    ("metrics", &[]),
    ("names", &["text"]),
    ("pad", &["secret"]),
    ("proto", &[]),
    ("secret", &[]),
    ("text", &[]),
    ("time", &[]),
    // Configuration: the leaves only.
    ("config", &["names", "secret", "text", "time"]),
    // Storage, the barrier above it, and the seals.
    ("storage", &["config", "error", "failpoint", "metrics"]),
    (
        "barrier",
        &["storage", "error", "metrics", "secret", "time"],
    ),
    (
        "seal",
        &["config", "error", "failpoint", "metrics", "secret", "time"],
    ),
    // The components.
    (
        "access",
        &[
            "barrier", "storage", "error", "names", "pad", "secret", "text", "time",
        ],
    ),
    (
        "audit",
        &[
            "barrier", "storage", "config", "error", "metrics", "secret", "text", "time",
        ],
    ),
    (
        "engines",
        &[
            "access",
            "seal",
            "barrier",
            "storage",
            "config",
            "error",
            // Key Management's crash points (a leaf, as for the seal).
            "failpoint",
            "secret",
            "text",
            "time",
        ],
    ),
    (
        "lifecycle",
        &[
            "access",
            "seal",
            "barrier",
            "storage",
            "config",
            "error",
            "failpoint",
            "metrics",
            "pad",
            "secret",
            "text",
            "time",
        ],
    ),
    // The cluster's certificates for mutual TLS between HA nodes.
    ("cluster", &["barrier", "error", "secret"]),
    // The election loop of a node with HA: drives the lifecycle's roles.
    ("ha", &["lifecycle", "storage", "config", "failpoint"]),
    // Their composition, then the transports and the gate.
    (
        "node",
        &[
            "lifecycle",
            "cluster",
            "access",
            "engines",
            "audit",
            "seal",
            "barrier",
            "storage",
            "config",
            "error",
        ],
    ),
    (
        "api",
        &[
            "node",
            "lifecycle",
            "cluster",
            "access",
            "engines",
            "audit",
            "config",
            "error",
            "metrics",
            "proto",
            "pad",
            "secret",
            "text",
            "time",
        ],
    ),
    // The process, then the command line (a gRPC client, and `server`).
    (
        "server",
        &[
            "api",
            "ha",
            "node",
            "lifecycle",
            "cluster",
            "audit",
            "seal",
            "storage",
            "config",
            "error",
        ],
    ),
    // The checks of a setup before the daemon starts (`diagnose`).
    (
        "diagnose",
        &[
            "server", "audit", "seal", "storage", "config", "error", "secret", "text", "time",
        ],
    ),
    (
        "cli",
        &[
            "diagnose", "server", "config", "proto", "pad", "secret", "text", "time",
        ],
    ),
];

/// One `crate::` reference: the file, its line, the module it is in and the
/// top-level module it names.
struct Reference {
    file: PathBuf,
    line: usize,
    from: String,
    to: String,
    /// In a `pub use`: whoever imports `from` gets `to` too.
    reexport: bool,
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file under `src/`: `a/b.rs` and `a/b/mod.rs` are
/// `[a, b]`; the crate's roots are `[]`.
fn module_of(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod") {
        parts.pop();
    }
    if parts == ["lib"] || parts == ["main"] {
        parts.clear();
    }
    parts
}

/// Where `pattern` next occurs in `bytes` from `from`.
fn find(bytes: &[u8], from: usize, pattern: &[u8]) -> Option<usize> {
    bytes[from..]
        .windows(pattern.len())
        .position(|w| w == pattern)
        .map(|n| from + n)
}

/// Blanks comments, string and char literals and every non-ASCII byte,
/// keeping lines and offsets.
fn code_only(source: &str) -> String {
    let bytes = source.as_bytes();
    let mut out = bytes.to_vec();
    let mut i = 0;
    while i < bytes.len() {
        let starts = |text: &[u8]| bytes[i..].starts_with(text);
        let end = if starts(b"//") {
            find(bytes, i, b"\n").unwrap_or(bytes.len())
        } else if starts(b"/*") {
            find(bytes, i, b"*/").map_or(bytes.len(), |n| n + 2)
        } else if let Some(hashes) = raw_string_at(bytes, i) {
            // A raw string ends at a quote followed by as many hashes.
            let mut close = vec![b'"'];
            close.extend(std::iter::repeat_n(b'#', hashes));
            let open = i + 1 + hashes + 1;
            find(bytes, open, &close).map_or(bytes.len(), |n| n + close.len())
        } else if starts(b"\"") {
            let mut j = i + 1;
            while j < bytes.len() && bytes[j] != b'"' {
                j += if bytes[j] == b'\\' { 2 } else { 1 };
            }
            j + 1
        } else if starts(b"'\\") {
            find(bytes, i + 2, b"'").map_or(bytes.len(), |n| n + 1)
        } else if bytes[i] == b'\'' && bytes.get(i + 2) == Some(&b'\'') {
            i + 3
        } else {
            i += 1;
            continue;
        };
        for b in &mut out[i..end.min(bytes.len())] {
            if *b != b'\n' {
                *b = b' ';
            }
        }
        i = end;
    }
    // Paths are ASCII: whatever else is left becomes blanks too, so the
    // scan may index the text byte by byte.
    for b in &mut out {
        if !b.is_ascii() {
            *b = b' ';
        }
    }
    String::from_utf8(out).unwrap()
}

/// Whether a raw string (`r"`, `r#"`, the `r` of `br"`) opens at `i`, and
/// with how many hashes; `r#type` is a raw identifier, not a string.
fn raw_string_at(bytes: &[u8], i: usize) -> Option<usize> {
    let word_char = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    if bytes[i] != b'r' {
        return None;
    }
    let starts_word = match i {
        0 => true,
        1 => !word_char(bytes[0]) || bytes[0] == b'b',
        _ => !word_char(bytes[i - 1]) || (bytes[i - 1] == b'b' && !word_char(bytes[i - 2])),
    };
    let hashes = bytes[i + 1..].iter().take_while(|b| **b == b'#').count();
    (starts_word && bytes.get(i + 1 + hashes) == Some(&b'"')).then_some(hashes)
}

fn ident_at(code: &str, at: usize) -> &str {
    let rest = &code[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    &rest[..end]
}

/// The module a path names at `at`: an identifier, or `*` for a glob
/// (which names every module at once, and is refused).
fn head_at(code: &str, at: usize) -> &str {
    if code[at..].starts_with('*') {
        "*"
    } else {
        ident_at(code, at)
    }
}

/// The first identifier of each item of a `{…}` group starting at `at`.
fn group_heads(code: &str, at: usize) -> Vec<&str> {
    let mut heads = Vec::new();
    let mut depth = 0;
    let mut expecting = true;
    for (i, c) in code[at..].char_indices() {
        match c {
            '{' => {
                depth += 1;
                expecting = depth == 1;
            }
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => expecting = true,
            c if expecting && depth == 1 && (c.is_ascii_alphabetic() || c == '_' || c == '*') => {
                heads.push(head_at(code, at + i));
                expecting = false;
            }
            _ => {}
        }
    }
    heads
}

/// The inline modules (`mod name {`) open at each byte of `code`.
fn inline_modules(code: &str) -> Vec<Vec<String>> {
    let mut open: Vec<(String, usize)> = Vec::new();
    let mut depth = 0;
    let mut at = Vec::with_capacity(code.len());
    let mut pending: Option<String> = None;
    let mut i = 0;
    while i < code.len() {
        let c = code.as_bytes()[i];
        if code[i..].starts_with("mod ")
            && (i == 0 || !code.as_bytes()[i - 1].is_ascii_alphanumeric())
        {
            let name = ident_at(code, i + 4).to_string();
            pending = Some(name);
        }
        match c {
            b'{' => {
                depth += 1;
                if let Some(name) = pending.take() {
                    open.push((name, depth));
                }
            }
            b'}' => {
                if open.last().is_some_and(|(_, d)| *d == depth) {
                    open.pop();
                }
                depth = depth.saturating_sub(1);
            }
            b';' => pending = None,
            _ => {}
        }
        at.push(open.iter().map(|(n, _)| n.clone()).collect());
        i += 1;
    }
    at
}

fn references(src: &Path) -> Vec<Reference> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap().to_path_buf();
        let module = module_of(&relative);
        let Some(top) = module.first().cloned() else {
            continue;
        };
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let inline = inline_modules(&code);
        let line_of = |at: usize| code[..at].matches('\n').count() + 1;
        let mut add = |at: usize, to: &str| {
            if to != top {
                let line_start = code[..at].rfind('\n').map_or(0, |n| n + 1);
                let statement = code[line_start..].trim_start();
                found.push(Reference {
                    file: relative.clone(),
                    line: line_of(at),
                    from: top.clone(),
                    to: to.to_string(),
                    reexport: statement.starts_with("pub") && statement.contains(" use "),
                });
            }
        };
        // crate:: and $crate:: paths, single or grouped.
        for (at, _) in code.match_indices("crate::") {
            if at > 0 {
                let before = code.as_bytes()[at - 1];
                if before.is_ascii_alphanumeric() || before == b'_' {
                    continue;
                }
            }
            let after = at + "crate::".len();
            if code[after..].starts_with('{') {
                for head in group_heads(&code, after) {
                    add(at, head);
                }
            } else {
                add(at, head_at(&code, after));
            }
        }
        // super:: chains that climb out of the file's top-level module.
        let mut search = 0;
        while let Some(offset) = code[search..].find("super::") {
            let at = search + offset;
            search = at + 1;
            if at > 0 && code[..at].ends_with("super::") {
                continue;
            }
            let mut rest = at;
            let mut climbs = 0;
            while code[rest..].starts_with("super::") {
                climbs += 1;
                rest += "super::".len();
            }
            let mut path = module.clone();
            path.extend(inline[at].iter().cloned());
            if climbs > path.len() {
                continue;
            }
            path.truncate(path.len() - climbs);
            if path.is_empty() {
                if code[rest..].starts_with('{') {
                    for head in group_heads(&code, rest) {
                        add(at, head);
                    }
                } else {
                    add(at, head_at(&code, rest));
                }
            }
        }
    }
    found
}

#[test]
fn no_layer_imports_one_above_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let references = references(&src);
    assert!(
        references.len() > 100,
        "the scan found only {} references: it is broken",
        references.len()
    );
    let modules: BTreeSet<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    let mut problems = Vec::new();
    for r in &references {
        let Some((_, allowed)) = ALLOWED.iter().find(|(m, _)| *m == r.from) else {
            problems.push(format!(
                "src/{} is in module {}, which the table does not list",
                r.file.display(),
                r.from
            ));
            continue;
        };
        if !modules.contains(r.to.as_str()) {
            problems.push(format!(
                "src/{}:{}: crate::{} is not a module the table lists",
                r.file.display(),
                r.line,
                r.to
            ));
        } else if !allowed.contains(&r.to.as_str()) {
            problems.push(format!(
                "src/{}:{}: {} may not import {} (it may import: {})",
                r.file.display(),
                r.line,
                r.from,
                r.to,
                allowed.join(", ")
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// A `pub use` of module `to` in module `from` hands `to` to every module
/// that may import `from`: each of them must be allowed `to` itself, or the
/// re-export is a back door through the table.
#[test]
fn no_reexport_widens_what_a_layer_may_import() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut problems = Vec::new();
    for r in references(&src).iter().filter(|r| r.reexport) {
        for (importer, may) in ALLOWED {
            if may.contains(&r.from.as_str()) && *importer != r.to && !may.contains(&r.to.as_str())
            {
                problems.push(format!(
                    "src/{}:{}: {} re-exports {}, which {} (an importer of {}) may not import",
                    r.file.display(),
                    r.line,
                    r.from,
                    r.to,
                    importer,
                    r.from
                ));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_scan_sees_every_form_of_path() {
    let code = code_only(
        "use crate::{a::B, c};\nfn f() { crate::d::e(); $crate::g::h }\n// crate::comment\nlet s = \"crate::string\";\nlet r = r#\"crate::\"raw\"#;\nlet c = '{';\nmod tests { use super::super::x; }\n",
    );
    assert_eq!(group_heads(&code, code.find('{').unwrap()), ["a", "c"]);
    assert!(code.contains("crate::d::e"));
    assert!(code.contains("$crate::g"));
    assert!(!code.contains("comment"));
    assert!(!code.contains("crate::string"));
    assert!(!code.contains("raw"));
    assert!(!code.contains("'{'"));
    let inline = inline_modules(&code);
    let at = code.find("super::super").unwrap();
    assert_eq!(inline[at], ["tests"]);
    assert_eq!(module_of(Path::new("a/b/mod.rs")), ["a", "b"]);
    assert_eq!(module_of(Path::new("a/b.rs")), ["a", "b"]);
    assert!(module_of(Path::new("lib.rs")).is_empty());

    // A raw identifier is code; a byte raw string is not.
    let code = code_only(
        "let r#type = 1;\nlet b = br\"crate::bytes\";\nfn g() { crate::after::x() }\nuse crate::*;\nuse crate::{m, *};\n",
    );
    assert!(code.contains("r#type"));
    assert!(!code.contains("crate::bytes"));
    assert!(code.contains("crate::after::x"));
    let glob = code.find("crate::*").unwrap() + "crate::".len();
    assert_eq!(head_at(&code, glob), "*");
    let group = code.rfind('{').unwrap();
    assert_eq!(group_heads(&code, group), ["m", "*"]);
}

/// deny.toml excepts RUSTSEC-2023-0071 (timing in `rsa`'s *private*-key
/// operations) because strongroom only encrypts to public keys: no RSA
/// private key may appear in `src/` outside test code (after a file's
/// `#[cfg(test)]`, or in a `tests.rs`). If this fails, drop the exception
/// and choose again (docs/DECISIONS.md).
#[test]
fn no_rsa_private_key_outside_tests() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut found = Vec::new();
    for file in files {
        let code = code_only(&std::fs::read_to_string(&file).unwrap());
        let is_test_file = file
            .file_name()
            .is_some_and(|n| n.to_string_lossy().ends_with("tests.rs"));
        let tests_from = code.find("#[cfg(test)]").unwrap_or(code.len());
        // Every `rsa::` path, to the end of its statement or expression.
        let mut at = 0;
        while let Some(i) = code[at..].find("rsa::") {
            let position = at + i;
            let end = code[position..]
                .find([';', ')', '\n'])
                .map_or(code.len(), |n| position + n);
            let path = &code[position..end];
            if path.contains("Private") && !is_test_file && position < tests_from {
                found.push(format!("{}: {path}", file.display()));
            }
            at = position + "rsa::".len();
        }
    }
    assert!(
        found.is_empty(),
        "RSA private keys outside tests: {found:?}"
    );
}
