"""Bring your own key against LocalStack's KMS with boto3, as Vault Enterprise's
Key Management tutorial checks it: a key of imported material behind an alias
(Origin EXTERNAL, RSAES_OAEP_SHA_256 with RSA_2048, no expiry), a second key of
the same material (a ciphertext names its key), then disabled and pending
deletion, and the key found again by its tag. Prints what it saw as JSON for
the Rust test (tests/integration/localstack.rs) to assert on; it asserts
nothing itself. Usage: localstack_byok.py ENDPOINT TAG_VALUE ALIAS"""

import json
import os
import sys

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding

TAG_KEY = "strongroom-distribution"

endpoint, tag_value, alias = sys.argv[1], sys.argv[2], sys.argv[3]
kms = boto3.client(
    "kms",
    endpoint_url=endpoint,
    region_name="us-east-1",
    aws_access_key_id="test",
    aws_secret_access_key="test",
    config=Config(retries={"max_attempts": 1}, connect_timeout=10, read_timeout=30),
)
seen = {}


def error_code(call, **args):
    """The AWS error code of a call expected to fail; None when it succeeds."""
    try:
        call(**args)
        return None
    except ClientError as e:
        return e.response["Error"]["Code"]


def external_key(tag):
    """CreateKey with Origin EXTERNAL and the distribution tag."""
    meta = kms.create_key(
        Origin="EXTERNAL",
        KeyUsage="ENCRYPT_DECRYPT",
        KeySpec="SYMMETRIC_DEFAULT",
        Tags=[{"TagKey": TAG_KEY, "TagValue": tag}],
    )["KeyMetadata"]
    return meta


def import_material(key_id, material):
    """GetParametersForImport, wrap with RSA-OAEP-SHA-256, ImportKeyMaterial."""
    params = kms.get_parameters_for_import(
        KeyId=key_id, WrappingAlgorithm="RSAES_OAEP_SHA_256", WrappingKeySpec="RSA_2048"
    )
    public = serialization.load_der_public_key(params["PublicKey"])
    wrapped = public.encrypt(
        material,
        padding.OAEP(
            mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=None
        ),
    )
    kms.import_key_material(
        KeyId=key_id,
        ImportToken=params["ImportToken"],
        EncryptedKeyMaterial=wrapped,
        ExpirationModel="KEY_MATERIAL_DOES_NOT_EXPIRE",
    )
    return public.key_size


def state(key_id):
    return kms.describe_key(KeyId=key_id)["KeyMetadata"]["KeyState"]


material = os.urandom(32)
first = external_key(tag_value)
key = first["KeyId"]
seen["key_id"] = key
seen["arn"] = first["Arn"]
seen["origin"] = first["Origin"]
seen["created_state"] = first["KeyState"]
seen["encrypt_before_import"] = error_code(kms.encrypt, KeyId=key, Plaintext=b"x")

seen["wrapping_key_bits"] = import_material(key, material)
seen["imported_state"] = state(key)
seen["expiration_model"] = kms.describe_key(KeyId=key)["KeyMetadata"].get("ExpirationModel")

kms.create_alias(AliasName=alias, TargetKeyId=key)
plaintext = os.urandom(48)
encrypted = kms.encrypt(KeyId=alias, Plaintext=plaintext)
ciphertext = encrypted["CiphertextBlob"]
seen["encrypt_key_arn"] = encrypted["KeyId"]
decrypted = kms.decrypt(CiphertextBlob=ciphertext)
seen["decrypt_roundtrip"] = decrypted["Plaintext"] == plaintext
seen["decrypt_key_arn"] = decrypted["KeyId"]
seen["decrypt_by_alias_roundtrip"] = (
    kms.decrypt(CiphertextBlob=ciphertext, KeyId=alias)["Plaintext"] == plaintext
)

# The same material in a second key: a ciphertext still names its own key.
second = external_key(tag_value + "-second")["KeyId"]
seen["second_key_id"] = second
import_material(second, material)
seen["second_state"] = state(second)
seen["decrypt_naming_first_roundtrip"] = (
    kms.decrypt(CiphertextBlob=ciphertext, KeyId=key)["Plaintext"] == plaintext
)
seen["decrypt_naming_second"] = error_code(kms.decrypt, CiphertextBlob=ciphertext, KeyId=second)

kms.disable_key(KeyId=key)
seen["disabled_state"] = state(key)
seen["encrypt_disabled"] = error_code(kms.encrypt, KeyId=alias, Plaintext=plaintext)
seen["decrypt_disabled"] = error_code(kms.decrypt, CiphertextBlob=ciphertext)

deletion = kms.schedule_key_deletion(KeyId=key, PendingWindowInDays=7)
seen["deletion_date"] = deletion["DeletionDate"].isoformat()
seen["pending_state"] = state(key)
seen["encrypt_pending_deletion"] = error_code(kms.encrypt, KeyId=alias, Plaintext=plaintext)
seen["decrypt_pending_deletion"] = error_code(kms.decrypt, CiphertextBlob=ciphertext)

# Found again by its tag, as a retry after a crash would look for it.
tagged = []
for page in kms.get_paginator("list_keys").paginate():
    for listed in page["Keys"]:
        tags = kms.list_resource_tags(KeyId=listed["KeyId"])["Tags"]
        if {"TagKey": TAG_KEY, "TagValue": tag_value} in tags:
            tagged.append(listed["KeyId"])
seen["found_by_tag"] = tagged

kms.schedule_key_deletion(KeyId=second, PendingWindowInDays=7)
print(json.dumps(seen))
