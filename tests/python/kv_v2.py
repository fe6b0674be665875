"""hvac (PyPI) against a strongroom daemon's kv v2 at secret/: the calls an
application makes, with a cas conflict. Prints what it saw as JSON for the
Rust test to assert on. Usage: kv_v2.py ADDR TOKEN"""

import json
import sys

import hvac
from hvac import exceptions

addr, token = sys.argv[1], sys.argv[2]
client = hvac.Client(url=addr, token=token)
kv = client.secrets.kv.v2
seen = {}

written = kv.create_or_update_secret(
    path="app/db", secret={"user": "app", "port": 5432, "tls": {"on": True}}, cas=0
)
seen["created"] = written["data"]["version"]
try:
    kv.create_or_update_secret(path="app/db", secret={"user": "x"}, cas=0)
    seen["cas_conflict"] = None
except exceptions.InvalidRequest as e:
    seen["cas_conflict"] = type(e).__name__
    seen["cas_message"] = str(e)

read = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
seen["read"] = read["data"]["data"]
kv.patch(path="app/db", secret={"port": 6432})
seen["patched"] = kv.read_secret_version(path="app/db", raise_on_deleted_version=True)[
    "data"
]["data"]

kv.delete_latest_version_of_secret(path="app/db")
try:
    kv.read_secret_version(path="app/db", raise_on_deleted_version=True)
    seen["deleted_read"] = None
except exceptions.InvalidPath as e:
    seen["deleted_read"] = type(e).__name__
kv.undelete_secret_versions(path="app/db", versions=[2])
# The undeleted version reads again, with its data.
seen["undeleted"] = kv.read_secret_version(
    path="app/db", version=2, raise_on_deleted_version=True
)["data"]["data"]
seen["undeleted_version"] = kv.create_or_update_secret(
    path="app/db", secret={"user": "app", "port": 6432, "tls": {"on": True}}
)["data"]["version"]
kv.destroy_secret_versions(path="app/db", versions=[1])
meta = kv.read_secret_metadata(path="app/db")
seen["destroyed"] = meta["data"]["versions"]["1"]["destroyed"]
seen["current_version"] = meta["data"]["current_version"]
seen["listed"] = kv.list_secrets(path="app")["data"]["keys"]

print(json.dumps(seen))
