//! Every crash-point scope in `src/` has a crash case here, and every
//! boundary and step the code names is one the matrix knows.

use super::*;

/// Every operation that names itself for the crash points (a
/// `failpoint::scope` in `src/`) is in `failpoint::OPERATIONS`, and each of
/// those has a crash case in this file; each kind of boundary the wrappers
/// count is one the matrix knows.
#[test]
fn every_crash_point_scope_has_a_crash_case() {
    use strongroom::failpoint::OPERATIONS;

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut scoped = Vec::new();
    let mut boundaries = Vec::new();
    let mut steps = 0;
    for file in rust_files(&root.join("src")) {
        let text = std::fs::read_to_string(&file).unwrap();
        for argument in arguments_of(&text, "failpoint::scope(") {
            let names = match argument.strip_prefix('"') {
                Some(literal) => vec![literal.split('"').next().unwrap().to_string()],
                None if argument.starts_with("op.command()") => quorum_commands(),
                None => panic!("{}: a scope named by {argument:.40}", file.display()),
            };
            scoped.extend(names);
        }
        for kind in arguments_of(&text, "failpoint::before(Boundary::") {
            boundaries.push(kind.split(')').next().unwrap().to_lowercase());
        }
        for step in arguments_of(&text, "failpoint::step(") {
            let name = step.strip_prefix('"').and_then(|s| s.split('"').next());
            assert!(
                name.is_some_and(|n| STEPS.contains(&n)),
                "{}: a step the matrix does not know: {step:.40}",
                file.display()
            );
            steps += 1;
        }
    }
    for name in &scoped {
        assert!(
            OPERATIONS.contains(&name.as_str()),
            "the scope {name} is not in failpoint::OPERATIONS"
        );
    }
    for name in OPERATIONS {
        assert!(
            scoped.iter().any(|s| s == name),
            "failpoint::OPERATIONS lists {name}, which no scope in src/ uses"
        );
    }
    // Rekey's confirmation and verification are the two ways to its one
    // commit, each with its case (rekey with and without --verify); any
    // other name used twice could not be told apart by a crash point.
    scoped.sort();
    for pair in scoped.windows(2) {
        assert!(
            pair[0] != pair[1] || pair[0] == "rekey-commit",
            "two scopes share the name {}",
            pair[0]
        );
    }

    let this: String = rust_files(&root.join("tests/integration/crash"))
        .iter()
        .map(|file| std::fs::read_to_string(file).unwrap())
        .collect();
    let mut cases: Vec<String> = arguments_of(&this, "crash_matrix(")
        .into_iter()
        .chain(arguments_of(&this, "crash_matrix_of("))
        .chain(arguments_of(&this, "ha_crash_matrix("))
        .filter_map(|a| Some(a.strip_prefix('"')?.split('"').next()?.to_string()))
        .filter(|name| name.chars().all(|c| c.is_ascii_lowercase() || c == '-'))
        .collect();
    cases.sort();
    cases.dedup();
    for name in OPERATIONS {
        assert!(
            cases.iter().any(|c| c == name),
            "the operation {name} has no crash case in tests/integration/crash/ ({cases:?})"
        );
    }
    boundaries.sort();
    boundaries.dedup();
    for kind in &boundaries {
        assert!(
            is_point(&format!("before-{kind}-1")),
            "unknown boundary {kind}"
        );
    }
    // Both kinds are counted: storage commits and KMS calls; and each
    // named step is used once.
    assert_eq!(boundaries, ["commit", "kms"]);
    assert_eq!(steps, STEPS.len());
}

/// The names `op.command()` gives a scope: one per quorum operation (a new
/// operation stops this match from compiling until it is listed).
fn quorum_commands() -> Vec<String> {
    use strongroom::lifecycle::Operation;
    let all = [
        Operation::Rekey,
        Operation::RotateRoot,
        Operation::GenerateRoot,
    ];
    for operation in all {
        match operation {
            Operation::Rekey | Operation::RotateRoot | Operation::GenerateRoot => {}
        }
    }
    all.iter().map(|o| o.command().to_string()).collect()
}

/// The text after each `call` in `text`, from its first non-blank character.
fn arguments_of(text: &str, call: &str) -> Vec<String> {
    text.match_indices(call)
        .filter(|(at, _)| !text[..*at].ends_with("fn "))
        .map(|(at, _)| text[at + call.len()..].trim_start().to_string())
        .collect()
}

/// The `.rs` files under `dir`.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}
