"""A Python sidecar that knows nothing of strongroom's .proto files.

It discovers the API through gRPC reflection (grpcio-reflection speaks only
the v1alpha protocol), builds the message classes from the descriptors it
receives, calls strongroom.v1.Sys/Status, and prints what it found as JSON.
The channel has grpcio's defaults: no option (such as grpc.default_authority)
is set, so on a unix socket grpc-core sends the percent-encoded socket path as
:authority, as every sidecar using grpcio does.

Usage: reflect.py TARGET (HOST:PORT or unix:///PATH)
"""

import json
import sys

import grpc
from google.protobuf import json_format, message_factory
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def main(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = sorted(database.get_services())
        pool = DescriptorPool(database)
        method = pool.FindServiceByName("strongroom.v1.Sys").FindMethodByName("Status")
        request_class = message_factory.GetMessageClass(method.input_type)
        response_class = message_factory.GetMessageClass(method.output_type)
        status = channel.unary_unary(
            "/strongroom.v1.Sys/Status",
            request_serializer=request_class.SerializeToString,
            response_deserializer=response_class.FromString,
        )(request_class(), timeout=10)
        print(
            json.dumps(
                {
                    "services": services,
                    "status": json_format.MessageToDict(
                        status,
                        preserving_proto_field_name=True,
                        always_print_fields_with_no_presence=True,
                    ),
                }
            )
        )


if __name__ == "__main__":
    main(sys.argv[1])
