"""A Python sidecar that knows nothing of strongroom's .proto files.

It discovers the API through gRPC reflection (grpcio-reflection speaks only
the v1alpha protocol), builds the message classes from the descriptors it
receives, calls strongroom.v1.Sys/Status (and, given a KV path,
strongroom.v1.Kv/Get without a token, as a sidecar that a listener identity
recognises), and prints what it found as JSON.
The channel has grpcio's defaults: no option (such as grpc.default_authority)
is set, so on a unix socket grpc-core sends the percent-encoded socket path as
:authority, as every sidecar using grpcio does.

Usage: reflect.py TARGET [KV_PATH]   (TARGET: HOST:PORT or unix:///PATH)
"""

import json
import sys

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def call(channel, pool, service: str, name: str, **fields):
    """Calls service/name with a request of `fields`; returns the answer as a dict."""
    method = pool.FindServiceByName(service).FindMethodByName(name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    answer = channel.unary_unary(
        f"/{service}/{name}",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )(request_class(**fields), timeout=10)
    return json_format.MessageToDict(
        answer,
        preserving_proto_field_name=True,
        always_print_fields_with_no_presence=True,
    )


def main(target: str, kv_path: str | None) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = DescriptorPool(database)
        found = {
            "services": services,
            "status": call(channel, pool, "strongroom.v1.Sys", "Status"),
        }
        if kv_path is not None:
            found["kv"] = call(channel, pool, "strongroom.v1.Kv", "Get", path=kv_path)
        print(json.dumps(found))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
