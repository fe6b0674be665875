//! `deploy/terraform/`, the seal's KMS key as Terraform, read with the
//! project's HCL parser (hcl-edit): Terraform and its AWS provider cannot be
//! fetched here, so the module is checked as written. Every `.tf` file
//! parses; the policies grant exactly the actions strongroom's code lists
//! (`SEAL_ACTIONS`, `BYOK_ACTIONS`, which unit tests hold to the SDK calls);
//! the key is symmetric and rotates; every variable used is declared and
//! described.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use hcl_edit::expr::{Expression, Traversal, TraversalOperator};
use hcl_edit::structure::{Block, Body};
use hcl_edit::visit::{Visit, visit_traversal};
use strongroom::seal::awskms::SEAL_ACTIONS;
use strongroom::seal::import::aws::BYOK_ACTIONS;

const MODULE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/terraform");

/// The sid prefixes of the statements that grant strongroom's role the
/// seal's actions and Key Management's; the root's statement is the other one.
const SEAL_SID: &str = "StrongroomSeal";
const BYOK_SID: &str = "StrongroomKeyMgmt";
const ROOT_SID: &str = "EnableRootAdministration";

struct TfFile {
    path: PathBuf,
    body: Body,
}

/// Every `.tf` file under the module, parsed; a parse error fails the test
/// with the file, line and column.
fn module() -> Vec<TfFile> {
    fn walk(dir: &Path, found: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            // A `terraform init` here leaves .terraform/ with providers.
            if path
                .file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with('.'))
            {
                continue;
            }
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "tf") {
                found.push(path);
            }
        }
    }
    let mut paths = Vec::new();
    walk(Path::new(MODULE), &mut paths);
    paths.sort();
    paths
        .into_iter()
        .map(|path| {
            let text = std::fs::read_to_string(&path).unwrap();
            let body = hcl_edit::parser::parse_body(&text).unwrap_or_else(|e| {
                let at = e.location();
                panic!(
                    "{}:{}:{}: {}",
                    path.display(),
                    at.line(),
                    at.column(),
                    e.message()
                )
            });
            TfFile { path, body }
        })
        .collect()
}

fn file<'a>(files: &'a [TfFile], name: &str) -> &'a Body {
    let found = files.iter().find(|f| f.path.ends_with(name));
    &found
        .unwrap_or_else(|| panic!("{MODULE}/{name} is missing"))
        .body
}

/// The one top-level block `kind "labels[0]" "labels[1]"` of the module.
fn the<'a>(files: &'a [TfFile], kind: &str, labels: &[&str]) -> &'a Block {
    let found: Vec<&Block> = files
        .iter()
        .flat_map(|f| f.body.blocks())
        .filter(|b| b.has_ident(kind) && b.has_exact_labels(labels))
        .collect();
    assert_eq!(found.len(), 1, "{kind} {labels:?}: one expected");
    found[0]
}

fn attr<'a>(body: &'a Body, key: &str) -> &'a Expression {
    &body
        .get_attribute(key)
        .unwrap_or_else(|| panic!("no attribute {key}"))
        .value
}

fn string(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => s.value().clone(),
        _ => panic!("expected a plain string, got {expr}"),
    }
}

/// A string as written, a template's `${…}` kept.
fn written(expr: &Expression) -> String {
    match expr {
        Expression::String(s) => s.value().clone(),
        _ => expr.to_string().trim().trim_matches('"').to_string(),
    }
}

/// A list written out as strings: what the test can read without Terraform.
fn strings(expr: &Expression) -> Vec<String> {
    match expr {
        Expression::Array(items) => items.iter().map(string).collect(),
        _ => panic!("expected a list of strings, got {expr}"),
    }
}

/// `var.x`, `aws_kms_key.seal.arn`: a traversal's leading names.
fn path_of(traversal: &Traversal) -> Option<String> {
    let Expression::Variable(root) = &traversal.expr else {
        return None;
    };
    let mut path = root.as_str().to_string();
    for operator in &traversal.operators {
        let TraversalOperator::GetAttr(name) = operator.value() else {
            break;
        };
        path.push('.');
        path.push_str(name.as_str());
    }
    Some(path)
}

/// Every reference in a piece of the module, templates included.
#[derive(Default)]
struct References(BTreeSet<String>);

impl Visit for References {
    fn visit_traversal(&mut self, node: &Traversal) {
        self.0.extend(path_of(node));
        visit_traversal(self, node);
    }
}

fn references_in_body(body: &Body) -> BTreeSet<String> {
    let mut found = References::default();
    found.visit_body(body);
    found.0
}

fn references(expr: &Expression) -> BTreeSet<String> {
    let mut found = References::default();
    found.visit_expr(expr);
    found.0
}

/// The names `prefix.NAME` the module refers to (`var`, `local`), outside
/// variables.tf (a variable's validation naming itself is no use of it).
fn used(files: &[TfFile], prefix: &str) -> BTreeSet<String> {
    files
        .iter()
        .filter(|f| !f.path.ends_with("variables.tf"))
        .flat_map(|f| references_in_body(&f.body))
        .filter_map(|path| {
            let name = path.strip_prefix(prefix)?.strip_prefix('.')?;
            Some(name.split('.').next().unwrap_or(name).to_string())
        })
        .collect()
}

struct Statement {
    sid: String,
    /// `Deny`, or `Allow` (the default).
    effect: String,
    actions: Vec<String>,
    /// Its `principals { identifiers = … }` as written; empty in an IAM policy.
    principals: String,
    /// The `for_each` of a `dynamic "statement"`; None for a plain one.
    for_each: Option<BTreeSet<String>>,
    /// Its `resources` as written.
    resources: String,
    /// Its plain `condition` blocks: (test, variable).
    conditions: Vec<(String, String)>,
}

/// The statements of `data "aws_iam_policy_document" "name"`, plain and dynamic.
fn statements(files: &[TfFile], name: &str) -> Vec<Statement> {
    let document = the(files, "data", &["aws_iam_policy_document", name]);
    let mut found = Vec::new();
    for block in document.body.blocks() {
        let (body, for_each) = if block.has_ident("statement") {
            (&block.body, None)
        } else if block.has_ident("dynamic") && block.has_exact_labels(&["statement"]) {
            let content = block.body.get_blocks("content").next();
            let for_each = references(attr(&block.body, "for_each"));
            (
                &content.expect("a dynamic statement's content").body,
                Some(for_each),
            )
        } else {
            continue;
        };
        let principals = body.get_blocks("principals").next();
        found.push(Statement {
            sid: string(attr(body, "sid")),
            effect: body
                .get_attribute("effect")
                .map_or("Allow".to_string(), |e| string(&e.value)),
            actions: strings(attr(body, "actions")),
            principals: principals
                .map_or(String::new(), |p| attr(&p.body, "identifiers").to_string()),
            for_each,
            resources: attr(body, "resources").to_string(),
            conditions: body
                .get_blocks("condition")
                .map(|c| {
                    (
                        string(attr(&c.body, "test")),
                        written(attr(&c.body, "variable")),
                    )
                })
                .collect(),
        });
    }
    found
}

/// The actions of the statements whose sid starts with `prefix`, sorted,
/// a duplicate kept (so listing one twice fails too).
fn granted(statements: &[Statement], prefix: &str) -> Vec<String> {
    let mut actions: Vec<String> = statements
        .iter()
        .filter(|s| s.sid.starts_with(prefix) && s.effect == "Allow")
        .flat_map(|s| s.actions.clone())
        .collect();
    actions.sort();
    actions
}

fn sorted(actions: &[&str]) -> Vec<String> {
    let mut actions: Vec<String> = actions.iter().map(|a| a.to_string()).collect();
    actions.sort();
    actions
}

#[test]
fn every_terraform_file_parses_with_the_project_hcl_parser() {
    let files = module();
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.path.strip_prefix(MODULE).unwrap().display().to_string())
        .collect();
    for expected in ["main.tf", "variables.tf", "outputs.tf", "versions.tf"] {
        assert!(names.contains(expected), "{expected} in {names:?}");
    }
    for f in &files {
        assert!(!f.body.is_empty(), "{} is empty", f.path.display());
    }
    let versions = file(&files, "versions.tf");
    let terraform = versions
        .get_blocks("terraform")
        .next()
        .expect("terraform {}");
    let providers = terraform.body.get_blocks("required_providers").next();
    let aws = attr(&providers.expect("required_providers").body, "aws");
    assert!(aws.to_string().contains("hashicorp/aws"), "{aws}");
}

/// Adding an action to `SEAL_ACTIONS` or `BYOK_ACTIONS` (which the unit
/// tests of `src/seal/awskms/tests.rs` require with each new KMS call) and
/// not to `deploy/terraform/main.tf` fails here, and so does an action in
/// the module that the code does not call.
#[test]
fn the_policies_grant_exactly_the_actions_strongroom_calls() {
    let files = module();

    let key = statements(&files, "key");
    for s in &key {
        assert!(
            s.sid == ROOT_SID || s.sid.starts_with(SEAL_SID),
            "the key policy's statement {} is neither the root's nor the seal's",
            s.sid
        );
        assert!(s.for_each.is_none(), "{} is always there", s.sid);
        let whom = if s.sid == ROOT_SID {
            ":root\""
        } else {
            "var.role_arn"
        };
        assert!(s.principals.contains(whom), "{}: {}", s.sid, s.principals);
    }
    let root: Vec<&Statement> = key.iter().filter(|s| s.sid == ROOT_SID).collect();
    assert_eq!(root.len(), 1, "the account root administers the key");
    assert_eq!(root[0].actions, ["kms:*"]);
    assert_eq!(granted(&key, SEAL_SID), sorted(SEAL_ACTIONS), "key policy");

    let role = statements(&files, "role");
    for s in &role {
        assert!(
            s.sid.starts_with(SEAL_SID) || s.sid.starts_with(BYOK_SID),
            "the role policy's statement {} is neither the seal's nor Key Management's",
            s.sid
        );
        assert!(
            s.principals.is_empty(),
            "{}: an IAM policy has no principal",
            s.sid
        );
        if s.sid.starts_with(SEAL_SID) {
            assert!(s.for_each.is_none(), "{} is always there", s.sid);
        } else {
            let for_each = s.for_each.as_ref();
            assert!(
                for_each.is_some_and(|refs| refs.contains("var.enable_byok")),
                "{} must be a dynamic statement on var.enable_byok",
                s.sid
            );
        }
    }
    assert_eq!(
        granted(&role, SEAL_SID),
        sorted(SEAL_ACTIONS),
        "role policy"
    );
    // The role's seal statements are about this key only, and Encrypt and
    // Decrypt only with strongroom's encryption context (present: a
    // ForAllValues condition alone also matches a request without one).
    for s in role.iter().filter(|s| s.sid.starts_with(SEAL_SID)) {
        assert!(
            s.resources.contains("local.key_resource"),
            "{}: {}",
            s.sid,
            s.resources
        );
    }
    for s in key
        .iter()
        .chain(&role)
        .filter(|s| s.actions.iter().any(|a| a == "kms:Encrypt"))
    {
        for wanted in [
            ("ForAllValues:StringEquals", "kms:EncryptionContextKeys"),
            ("Null", "kms:EncryptionContextKeys"),
        ] {
            assert!(
                s.conditions
                    .iter()
                    .any(|(t, v)| t == wanted.0 && v == wanted.1),
                "{}: no {} condition on {} in {:?}",
                s.sid,
                wanted.0,
                wanted.1,
                s.conditions
            );
        }
    }
    // The alias actions are granted twice: on the Region's aliases, and on
    // the keys they name (with the conditions below); nothing else is.
    const ALIAS_ACTIONS: [&str; 3] = ["kms:CreateAlias", "kms:UpdateAlias", "kms:DeleteAlias"];
    let mut byok_granted = granted(&role, BYOK_SID);
    for action in ALIAS_ACTIONS {
        let at = byok_granted.iter().position(|a| a == action);
        byok_granted.remove(at.unwrap_or_else(|| panic!("{action} is not granted")));
    }
    assert_eq!(byok_granted, sorted(BYOK_ACTIONS), "role policy");
    // What creates or changes a key needs strongroom's distribution tag
    // (sent, or on the key), so the role cannot touch keys that are not
    // Key Management's; and the seal's key is denied outright.
    let byok = |action: &str| -> Vec<&Statement> {
        role.iter()
            .filter(|s| s.sid.starts_with(BYOK_SID) && s.actions.iter().any(|a| a == action))
            .collect()
    };
    let tag = |on: &str| {
        (
            "Null".to_string(),
            format!("aws:{on}/${{local.distribution_tag}}"),
        )
    };
    let needs = [
        ("RequestTag", &["kms:CreateKey", "kms:TagResource"][..]),
        ("ResourceTag", &ALIAS_ACTIONS[..]),
        (
            "ResourceTag",
            &[
                "kms:ImportKeyMaterial",
                "kms:DisableKey",
                "kms:ScheduleKeyDeletion",
                "kms:EnableKey",
                "kms:GetParametersForImport",
            ][..],
        ),
    ];
    for (on, actions) in needs {
        for action in actions {
            // On keys: an alias resource carries no tag or origin.
            let allowed: Vec<&Statement> = byok(action)
                .into_iter()
                .filter(|s| s.effect == "Allow" && !s.resources.contains(":alias/"))
                .collect();
            assert!(!allowed.is_empty(), "{action} is not granted");
            for s in allowed {
                assert!(
                    s.conditions.contains(&tag(on)),
                    "{}: {:?}",
                    s.sid,
                    s.conditions
                );
                // Only keys of imported material, but for TagResource,
                // whose grant CreateKey's tags use.
                let origin = ("StringEquals".to_string(), "kms:KeyOrigin".to_string());
                assert!(
                    *action == "kms:TagResource" || s.conditions.contains(&origin),
                    "{}: no kms:KeyOrigin condition in {:?}",
                    s.sid,
                    s.conditions
                );
            }
        }
    }
    for action in [
        "kms:TagResource",
        "kms:DisableKey",
        "kms:ScheduleKeyDeletion",
        "kms:ImportKeyMaterial",
    ] {
        assert!(
            byok(action)
                .iter()
                .any(|s| s.effect == "Deny" && s.resources.contains("local.key_resource")),
            "no Deny of {action} on the seal's key"
        );
    }
    let main = std::fs::read_to_string(Path::new(MODULE).join("main.tf")).unwrap();
    assert!(
        main.contains(&format!(
            "distribution_tag = \"{}\"",
            strongroom::seal::import::aws::DISTRIBUTION_TAG
        )),
        "main.tf's distribution_tag is not DISTRIBUTION_TAG"
    );

    let kms_key = the(&files, "resource", &["aws_kms_key", "seal"]);
    assert!(
        references(attr(&kms_key.body, "policy")).contains("data.aws_iam_policy_document.key.json")
    );
    let role_policy = the(&files, "resource", &["aws_iam_role_policy", "strongroom"]);
    assert!(
        references(attr(&role_policy.body, "policy"))
            .contains("data.aws_iam_policy_document.role.json")
    );
    assert!(references(attr(&role_policy.body, "role")).contains("local.role_name"));
}

#[test]
fn the_key_is_a_rotated_symmetric_key_with_an_alias() {
    let files = module();
    let key = &the(&files, "resource", &["aws_kms_key", "seal"]).body;
    assert!(
        matches!(attr(key, "enable_key_rotation"), Expression::Bool(b) if *b.value()),
        "enable_key_rotation = true"
    );
    assert_eq!(string(attr(key, "key_usage")), "ENCRYPT_DECRYPT");
    assert_eq!(
        string(attr(key, "customer_master_key_spec")),
        "SYMMETRIC_DEFAULT"
    );
    for (setting, variable) in [
        ("deletion_window_in_days", "var.deletion_window_in_days"),
        ("multi_region", "var.multi_region"),
    ] {
        assert_eq!(
            references(attr(key, setting)),
            BTreeSet::from([variable.to_string()]),
            "{setting}"
        );
    }
    let alias = &the(&files, "resource", &["aws_kms_alias", "seal"]).body;
    assert!(references(attr(alias, "target_key_id")).contains("aws_kms_key.seal.key_id"));
    assert!(references(attr(alias, "name")).contains("var.alias_name"));
}

#[test]
fn every_variable_used_is_declared_described_and_documented() {
    let files = module();
    let variables = file(&files, "variables.tf");
    let mut declared = BTreeSet::new();
    for block in variables.get_blocks("variable") {
        let name = block.labels[0].as_str().to_string();
        let description = string(attr(&block.body, "description"));
        assert!(
            !description.trim().is_empty(),
            "variable {name}: no description"
        );
        assert!(block.body.has_attribute("type"), "variable {name}: no type");
        declared.insert(name);
    }
    for f in &files {
        if !f.path.ends_with("variables.tf") {
            let elsewhere = f.body.get_blocks("variable").count();
            assert_eq!(
                elsewhere,
                0,
                "{}: variables belong in variables.tf",
                f.path.display()
            );
        }
    }
    assert_eq!(used(&files, "var"), declared, "used vs declared variables");

    let defined: BTreeSet<String> = files
        .iter()
        .flat_map(|f| f.body.get_blocks("locals"))
        .flat_map(|b| b.body.attributes().map(|a| a.key.as_str().to_string()))
        .collect();
    assert_eq!(used(&files, "local"), defined, "used vs defined locals");

    let readme = std::fs::read_to_string(format!("{MODULE}/README.md")).unwrap();
    for name in &declared {
        assert!(
            readme.contains(&format!("| `{name}` |")),
            "{name} in the README's table"
        );
    }
}

#[test]
fn the_outputs_give_the_key_arn_the_alias_and_a_seal_block() {
    let files = module();
    for (name, source) in [
        ("key_arn", "aws_kms_key.seal.arn"),
        ("alias_name", "aws_kms_alias.seal.name"),
        ("seal_config", "aws_kms_key.seal.arn"),
        ("seal_config", "local.region"),
    ] {
        let output = &the(&files, "output", &[name]).body;
        assert!(!string(attr(output, "description")).is_empty(), "{name}");
        assert!(
            references(attr(output, "value")).contains(source),
            "{name}: {source}"
        );
    }
    let block = attr(&the(&files, "output", &["seal_config"]).body, "value").to_string();
    for written in ["seal \\\"awskms\\\" {", "kms_key_id = ", "region     = "] {
        assert!(block.contains(written), "{written} in {block}");
    }
}
