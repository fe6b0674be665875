"""Vault Enterprise's Key Management tutorial with AWS KMS, run with hvac
(PyPI) against a strongroom daemon's keymgmt/ paths, and checked on the
KMS side with boto3 against LocalStack's emulator, as `aws kms` would.
Prints what it saw as JSON for the Rust test to assert on.
Usage: keymgmt_hvac.py ADDR TOKEN KMS_ENDPOINT PROVIDER KEY SECRET_KEY"""

import base64
import json
import sys

import boto3
import hvac
from botocore.exceptions import ClientError

addr, token, endpoint, provider, key, secret_key = sys.argv[1:7]
client = hvac.Client(url=addr, token=token)
kms = boto3.client(
    "kms",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
)
alias = f"alias/{key}"
seen = {}


def error_of(call):
    """The AWS error code of a KMS call, or None when it succeeded."""
    try:
        call()
        return None
    except ClientError as e:
        return e.response["Error"]["Code"]


def encrypt(key_id, text=b"hashi4lyf"):
    return kms.encrypt(KeyId=key_id, Plaintext=text)


def decrypt_naming(key_id, ciphertext):
    return kms.decrypt(KeyId=key_id, CiphertextBlob=ciphertext)["Plaintext"]


def distribution():
    return client.read(f"keymgmt/kms/{provider}/key/{key}")["data"]


# 1. The provider, credentials as Vault's map.
client.write_data(
    f"keymgmt/kms/{provider}",
    data={
        "provider": "awskms",
        "key_collection": "us-east-1",
        "endpoint": endpoint,
        "credentials": {"access_key": "test", "secret_key": secret_key},
    },
)
seen["provider"] = client.read(f"keymgmt/kms/{provider}")["data"]
seen["providers"] = client.list("keymgmt/kms")["data"]["keys"]

# 2. The key (type left to its default).
client.write_data(f"keymgmt/key/{key}", data={"deletion_allowed": False})
seen["key"] = client.read(f"keymgmt/key/{key}")["data"]
seen["keys"] = client.list("keymgmt/key")["data"]["keys"]

# 3. Distribute, as the tutorial's `purpose=encrypt,decrypt protection=hsm`.
written = client.write_data(
    f"keymgmt/kms/{provider}/key/{key}",
    data={"purpose": "encrypt,decrypt", "protection": "hsm"},
)
seen["distribute_status"] = written.status_code
seen["distribution"] = distribution()
seen["distributed_keys"] = client.list(f"keymgmt/kms/{provider}/key")["data"]["keys"]
seen["key_providers"] = client.list(f"keymgmt/key/{key}/kms")["data"]["keys"]
v1 = seen["distribution"]["versions"]["1"]
encrypted = encrypt(alias)
seen["encrypt_key_arn"] = encrypted["KeyId"]
first = encrypted["CiphertextBlob"]
seen["alias_roundtrip"] = kms.decrypt(CiphertextBlob=first)["Plaintext"] == b"hashi4lyf"

# 4. Rotate: a new KMS key, the alias moved to it.
client.write_data(f"keymgmt/key/{key}/rotate", data={})
seen["rotated_key"] = client.read(f"keymgmt/key/{key}")["data"]
seen["rotated"] = distribution()
v2 = seen["rotated"]["versions"]["2"]
seen["alias_target"] = kms.describe_key(KeyId=alias)["KeyMetadata"]["KeyId"]
seen["v1_ciphertext_naming_v2"] = error_of(lambda: decrypt_naming(v2, first))
seen["v1_ciphertext_naming_v1"] = decrypt_naming(v1, first) == b"hashi4lyf"

# 5. min_enabled_version: v1 disabled, then enabled again.
client.write_data(f"keymgmt/key/{key}", data={"min_enabled_version": 2})
seen["min2_v1"] = error_of(lambda: encrypt(v1))
seen["min2_v2"] = error_of(lambda: encrypt(v2))
seen["min2_states"] = {
    version: details["state"]
    for version, details in distribution()["version_details"].items()
}
client.write_data(f"keymgmt/key/{key}", data={"min_enabled_version": 0})
seen["min0_v1"] = error_of(lambda: encrypt(v1))
seen["min0_kms_state"] = kms.describe_key(KeyId=v1)["KeyMetadata"]["KeyState"]

# 6. Remove the distribution: both KMS keys pending deletion, the alias gone.
client.adapter.delete(
    f"/v1/keymgmt/kms/{provider}/key/{key}", params={"deletion_window_days": 7}
)
seen["removed_v2"] = error_of(lambda: encrypt(v2))
seen["removed_v1_decrypt"] = error_of(lambda: decrypt_naming(v1, first))
seen["removed_alias"] = error_of(lambda: encrypt(alias))
seen["removed_kms_states"] = [
    kms.describe_key(KeyId=k)["KeyMetadata"]["KeyState"] for k in (v1, v2)
]
seen["removed_deletion_date"] = kms.describe_key(KeyId=v1)["KeyMetadata"][
    "DeletionDate"
].isoformat()
seen["removed"] = distribution()

# The key itself: deletion must be allowed first; then it is gone.
try:
    client.delete(f"keymgmt/key/{key}")
    seen["delete_refused"] = None
except hvac.exceptions.InvalidRequest as e:
    seen["delete_refused"] = str(e)
client.write_data(f"keymgmt/key/{key}", data={"deletion_allowed": True})
client.delete(f"keymgmt/key/{key}")
seen["deleted_read"] = client.read(f"keymgmt/key/{key}")

print(json.dumps(seen))
