use super::BYOK_ACTIONS;
use super::errors::{distribution_sentence, permission};
use crate::seal::kms::KmsErrorKind;

/// The `kms:` actions of the README's Terraform snippet for Key Management.
fn readme_actions() -> Vec<String> {
    let readme = include_str!("../../../../README.md");
    let start = readme
        .find("data \"aws_iam_policy_document\" \"strongroom_keymgmt\"")
        .expect("the README has the Key Management IAM policy");
    let snippet = &readme[start..];
    let snippet = &snippet[..snippet.find("```").expect("the snippet ends")];
    // Actions only: a condition's `variable = "kms:KeyOrigin"` is a key.
    let mut actions: Vec<String> = snippet
        .lines()
        .filter(|line| !line.trim_start().starts_with("variable"))
        .flat_map(|line| line.split('"'))
        .filter(|word| word.starts_with("kms:"))
        .map(str::to_string)
        .collect();
    actions.sort();
    actions.dedup();
    actions
}

#[test]
fn the_readme_policy_lists_exactly_the_byok_actions() {
    let mut expected: Vec<String> = BYOK_ACTIONS.iter().map(|a| a.to_string()).collect();
    expected.sort();
    let before = expected.len();
    expected.dedup();
    assert_eq!(before, expected.len(), "BYOK_ACTIONS lists one twice");
    assert_eq!(readme_actions(), expected);
}

/// Every call of a distribution names a permission of the policy.
#[test]
fn each_call_names_a_permission_of_the_policy() {
    let calls = [
        "CreateKey",
        "GetParametersForImport",
        "ImportKeyMaterial",
        "CreateAlias",
        "UpdateAlias",
        "DeleteAlias",
        "ListAliases",
        "ListKeys",
        "ListResourceTags",
        "EnableKey",
        "DisableKey",
        "ScheduleKeyDeletion",
        "DescribeKey",
    ];
    for call in calls {
        for named in permission(call).split(" and ") {
            assert!(BYOK_ACTIONS.contains(&named), "{call}: {named}");
        }
    }
    assert_eq!(permission("CreateKey"), "kms:CreateKey and kms:TagResource");
}

const KEY: &str = "KMS key 1234abcd-12ab-34cd-56ef-1234567890ab";
const ALIAS: &str = "alias alias/orders (to KMS key 1234abcd-12ab-34cd-56ef-1234567890ab)";

#[test]
fn access_denied_names_the_missing_permission_the_subject_and_the_code() {
    let e = distribution_sentence(
        "CreateAlias",
        ALIAS,
        "AccessDeniedException",
        "User: arn:aws:iam::111122223333:user/sr is not authorized to perform: kms:CreateAlias",
    )
    .unwrap();
    assert_eq!(e.kind, KmsErrorKind::Denied);
    assert_eq!(
        e.message,
        "KMS refused CreateAlias on alias alias/orders (to KMS key 1234abcd-12ab-34cd-56ef-1234567890ab): AccessDeniedException, the provider's credentials lack kms:CreateAlias (the README's IAM policy for Key Management lists what they need): User: arn:aws:iam::111122223333:user/sr is not authorized to perform: kms:CreateAlias"
    );
    let e =
        distribution_sentence("CreateKey", "a new KMS key", "AccessDeniedException", "no").unwrap();
    assert!(
        e.message
            .contains("AccessDeniedException, the provider's credentials lack kms:CreateKey and kms:TagResource"),
        "{}",
        e.message
    );
}

#[test]
fn each_distribution_error_is_one_sentence_with_the_subject_and_the_code() {
    let cases = [
        (
            "CreateKey",
            "LimitExceededException",
            "too many keys",
            KmsErrorKind::Denied,
            "an AWS KMS quota of the account in this region is reached",
        ),
        (
            "ImportKeyMaterial",
            "KMSInvalidStateException",
            "arn:aws:kms:us-east-1:000000000000:key/k is pending deletion.",
            KmsErrorKind::KeyUnusable,
            "the key is pending deletion",
        ),
        (
            "EnableKey",
            "KMSInvalidStateException",
            "key is PendingImport",
            KmsErrorKind::KeyUnusable,
            "the key's state does not allow it: key is PendingImport",
        ),
        (
            "DescribeKey",
            "NotFoundException",
            "Key 'k' does not exist",
            KmsErrorKind::KeyUnusable,
            "it was not found in this region",
        ),
        (
            "CreateAlias",
            "AlreadyExistsException",
            "An alias with the name alias/orders already exists",
            KmsErrorKind::Rejected,
            "it already exists",
        ),
    ];
    for (action, code, message, kind, says) in cases {
        let e = distribution_sentence(action, KEY, code, message).unwrap();
        assert_eq!(e.kind, kind, "{code}");
        assert!(
            e.message
                .starts_with(&format!("KMS refused {action} on {KEY}: {code}, {says}")),
            "{}",
            e.message
        );
        assert!(!e.message.contains('\n'), "{}", e.message);
    }
    // The pending-deletion sentence drops KMS's message, which only repeats it.
    let e = distribution_sentence(
        "DisableKey",
        KEY,
        "KMSInvalidStateException",
        "k is pending deletion.",
    )
    .unwrap();
    assert_eq!(
        e.message,
        format!(
            "KMS refused DisableKey on {KEY}: KMSInvalidStateException, the key is pending deletion"
        )
    );
}

#[test]
fn other_codes_keep_the_seal_sentences_and_messages_are_bounded() {
    assert!(distribution_sentence("CreateKey", KEY, "ThrottlingException", "slow").is_none());
    assert!(distribution_sentence("CreateKey", KEY, "", "").is_none());
    let long = "x".repeat(5000);
    let e = distribution_sentence("ListKeys", KEY, "NotFoundException", &long).unwrap();
    assert!(e.message.len() < 400, "{}", e.message.len());
    assert!(e.message.ends_with('…'));
}
