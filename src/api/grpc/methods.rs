//! Every gRPC method and the action it runs, so a request is known by its
//! path before it is decoded (a standby forwards by it: `api::forward`).
//! Each method's handler names the same action; the test below keeps this
//! table equal to the protos.

use crate::api::actions::{self, Action};

/// `/package.Service/Method` and its action.
const METHODS: &[(&str, &Action)] = &[
    ("/strongroom.v1.Sys/Status", &actions::STATUS),
    (
        "/strongroom.v1.Sys/SealBackendStatus",
        &actions::SEAL_BACKEND_STATUS,
    ),
    ("/strongroom.v1.Sys/Init", &actions::INIT),
    ("/strongroom.v1.Sys/InitConfirm", &actions::INIT_CONFIRM),
    ("/strongroom.v1.Sys/Unseal", &actions::UNSEAL),
    ("/strongroom.v1.Sys/Seal", &actions::SEAL),
    ("/strongroom.v1.Sys/StepDown", &actions::STEP_DOWN),
    ("/strongroom.v1.Sys/Rotate", &actions::ROTATE),
    ("/strongroom.v1.Sys/KeyStatus", &actions::KEY_STATUS),
    ("/strongroom.v1.Sys/SnapshotSave", &actions::SNAPSHOT_SAVE),
    (
        "/strongroom.v1.Sys/SnapshotRestore",
        &actions::SNAPSHOT_RESTORE,
    ),
    ("/strongroom.v1.Sys/AuditHash", &actions::AUDIT_HASH),
    ("/strongroom.v1.Sys/RekeyInit", &actions::REKEY_INIT),
    ("/strongroom.v1.Sys/RekeyUpdate", &actions::REKEY_UPDATE),
    ("/strongroom.v1.Sys/RekeyConfirm", &actions::REKEY_CONFIRM),
    (
        "/strongroom.v1.Sys/RekeyVerifyUpdate",
        &actions::REKEY_VERIFY_UPDATE,
    ),
    (
        "/strongroom.v1.Sys/RekeyVerifyRestart",
        &actions::REKEY_VERIFY_RESTART,
    ),
    ("/strongroom.v1.Sys/RekeyCancel", &actions::REKEY_CANCEL),
    ("/strongroom.v1.Sys/RekeyStatus", &actions::REKEY_STATUS),
    (
        "/strongroom.v1.Sys/RotateRootInit",
        &actions::ROTATE_ROOT_INIT,
    ),
    (
        "/strongroom.v1.Sys/RotateRootUpdate",
        &actions::ROTATE_ROOT_UPDATE,
    ),
    (
        "/strongroom.v1.Sys/RotateRootCancel",
        &actions::ROTATE_ROOT_CANCEL,
    ),
    (
        "/strongroom.v1.Sys/RotateRootStatus",
        &actions::ROTATE_ROOT_STATUS,
    ),
    (
        "/strongroom.v1.Sys/GenerateRootInit",
        &actions::GENERATE_ROOT_INIT,
    ),
    (
        "/strongroom.v1.Sys/GenerateRootUpdate",
        &actions::GENERATE_ROOT_UPDATE,
    ),
    (
        "/strongroom.v1.Sys/GenerateRootCancel",
        &actions::GENERATE_ROOT_CANCEL,
    ),
    (
        "/strongroom.v1.Sys/GenerateRootStatus",
        &actions::GENERATE_ROOT_STATUS,
    ),
    ("/strongroom.v1.Kv/Put", &actions::KV_PUT),
    ("/strongroom.v1.Kv/Get", &actions::KV_GET),
    ("/strongroom.v1.Kv/Delete", &actions::KV_DELETE),
    ("/strongroom.v1.Kv/Undelete", &actions::KV_UNDELETE),
    ("/strongroom.v1.Kv/Destroy", &actions::KV_DESTROY),
    ("/strongroom.v1.Kv/List", &actions::KV_LIST),
    ("/strongroom.v1.Kv/Metadata", &actions::KV_METADATA),
    (
        "/strongroom.v1.Kv/DeleteMetadata",
        &actions::KV_DELETE_METADATA,
    ),
    ("/strongroom.v1.Kv/Patch", &actions::KV_PATCH),
    ("/strongroom.v1.Kv/PutMetadata", &actions::KV_PUT_METADATA),
    ("/strongroom.v1.Kv/ReadConfig", &actions::KV_READ_CONFIG),
    ("/strongroom.v1.Kv/WriteConfig", &actions::KV_WRITE_CONFIG),
    ("/strongroom.v1.Keys/CreateKey", &actions::KEYS_CREATE),
    ("/strongroom.v1.Keys/ReadKey", &actions::KEYS_READ),
    ("/strongroom.v1.Keys/ListKeys", &actions::KEYS_LIST),
    ("/strongroom.v1.Keys/Rotate", &actions::KEYS_ROTATE),
    (
        "/strongroom.v1.Keys/UpdateKeyConfig",
        &actions::KEYS_UPDATE_CONFIG,
    ),
    ("/strongroom.v1.Keys/DeleteKey", &actions::KEYS_DELETE),
    ("/strongroom.v1.Keys/Encrypt", &actions::KEYS_ENCRYPT),
    ("/strongroom.v1.Keys/Decrypt", &actions::KEYS_DECRYPT),
    ("/strongroom.v1.Keys/Rewrap", &actions::KEYS_REWRAP),
    (
        "/strongroom.v1.Keys/GenerateDataKey",
        &actions::KEYS_DATA_KEY,
    ),
    (
        "/strongroom.v1.Keys/BatchEncrypt",
        &actions::KEYS_BATCH_ENCRYPT,
    ),
    (
        "/strongroom.v1.Keys/BatchDecrypt",
        &actions::KEYS_BATCH_DECRYPT,
    ),
    (
        "/strongroom.v1.KeyMgmt/WriteProvider",
        &actions::KEYMGMT_PROVIDER_WRITE,
    ),
    (
        "/strongroom.v1.KeyMgmt/ReadProvider",
        &actions::KEYMGMT_PROVIDER_READ,
    ),
    (
        "/strongroom.v1.KeyMgmt/ListProviders",
        &actions::KEYMGMT_PROVIDER_LIST,
    ),
    (
        "/strongroom.v1.KeyMgmt/DeleteProvider",
        &actions::KEYMGMT_PROVIDER_DELETE,
    ),
    (
        "/strongroom.v1.KeyMgmt/WriteKey",
        &actions::KEYMGMT_KEY_WRITE,
    ),
    ("/strongroom.v1.KeyMgmt/ReadKey", &actions::KEYMGMT_KEY_READ),
    (
        "/strongroom.v1.KeyMgmt/ListKeys",
        &actions::KEYMGMT_KEY_LIST,
    ),
    (
        "/strongroom.v1.KeyMgmt/RotateKey",
        &actions::KEYMGMT_KEY_ROTATE,
    ),
    (
        "/strongroom.v1.KeyMgmt/DeleteKey",
        &actions::KEYMGMT_KEY_DELETE,
    ),
    (
        "/strongroom.v1.KeyMgmt/ListKeyProviders",
        &actions::KEYMGMT_KEY_PROVIDERS,
    ),
    (
        "/strongroom.v1.KeyMgmt/Distribute",
        &actions::KEYMGMT_DISTRIBUTE,
    ),
    (
        "/strongroom.v1.KeyMgmt/ReadDistribution",
        &actions::KEYMGMT_DISTRIBUTION_READ,
    ),
    (
        "/strongroom.v1.KeyMgmt/ListDistributions",
        &actions::KEYMGMT_DISTRIBUTION_LIST,
    ),
    (
        "/strongroom.v1.KeyMgmt/RemoveDistribution",
        &actions::KEYMGMT_DISTRIBUTION_REMOVE,
    ),
    ("/strongroom.v1.Token/CreateToken", &actions::TOKEN_CREATE),
    ("/strongroom.v1.Token/LookupToken", &actions::TOKEN_LOOKUP),
    (
        "/strongroom.v1.Token/LookupSelf",
        &actions::TOKEN_LOOKUP_SELF,
    ),
    ("/strongroom.v1.Token/RenewToken", &actions::TOKEN_RENEW),
    ("/strongroom.v1.Token/RevokeToken", &actions::TOKEN_REVOKE),
    (
        "/strongroom.v1.Token/RevokeAccessor",
        &actions::TOKEN_REVOKE_ACCESSOR,
    ),
    (
        "/strongroom.v1.Token/ListAccessors",
        &actions::TOKEN_LIST_ACCESSORS,
    ),
    ("/strongroom.v1.Policy/PutPolicy", &actions::POLICY_PUT),
    ("/strongroom.v1.Policy/GetPolicy", &actions::POLICY_GET),
    ("/strongroom.v1.Policy/ListPolicies", &actions::POLICY_LIST),
    (
        "/strongroom.v1.Policy/DeletePolicy",
        &actions::POLICY_DELETE,
    ),
];

/// The action of the method at `path`; `None` for another path (health,
/// reflection, an unknown method).
pub fn action_of(path: &str) -> Option<&'static Action> {
    METHODS
        .iter()
        .find(|(method, _)| *method == path)
        .map(|(_, action)| *action)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/strongroom.v1.Service/Method` of every `rpc` in the protos.
    fn proto_methods() -> Vec<String> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/proto/strongroom/v1");
        let mut methods = Vec::new();
        for file in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(file.unwrap().path()).unwrap();
            let mut service = "";
            for line in text.lines().map(str::trim) {
                if let Some(rest) = line.strip_prefix("service ") {
                    service = rest.split_whitespace().next().unwrap();
                }
                if let Some(rest) = line.strip_prefix("rpc ") {
                    let name = rest.split('(').next().unwrap().trim();
                    methods.push(format!("/strongroom.v1.{service}/{name}"));
                }
            }
        }
        methods.sort();
        methods
    }

    /// A method's name without the words that name its service's things.
    fn without_nouns(name: &str) -> String {
        let mut words: Vec<String> = Vec::new();
        for c in name.chars() {
            match words.last_mut() {
                Some(word) if !c.is_ascii_uppercase() => word.push(c),
                _ => words.push(c.to_string()),
            }
        }
        words.retain(|w| !["Key", "Keys", "Token", "Policy", "Policies"].contains(&w.as_str()));
        words.concat()
    }

    #[test]
    fn every_method_of_the_protos_has_one_action_and_every_action_one_method() {
        let mut listed: Vec<String> = METHODS.iter().map(|(m, _)| m.to_string()).collect();
        listed.sort();
        assert_eq!(listed, proto_methods());
        for action in actions::ALL {
            if actions::HTTP_ONLY.contains(action) || actions::BY_REQUEST.contains(action) {
                continue;
            }
            let methods = METHODS
                .iter()
                .filter(|(_, a)| a.name == action.name)
                .count();
            let expected = usize::from(!actions::HTTP_ONLY.contains(action));
            assert_eq!(methods, expected, "{}", action.name);
        }
        // The action's name is the method's, but for the service's noun
        // (`CreateKey` is `keys.Create`).
        for (method, action) in METHODS {
            let (service, name) = method
                .trim_start_matches("/strongroom.v1.")
                .split_once('/')
                .unwrap();
            let (action_service, action_name) = action.name.split_once('.').unwrap();
            assert_eq!(service.to_ascii_lowercase(), action_service, "{method}");
            assert_eq!(without_nouns(name), without_nouns(action_name), "{method}");
        }
        assert!(action_of("/grpc.health.v1.Health/Check").is_none());
    }
}
