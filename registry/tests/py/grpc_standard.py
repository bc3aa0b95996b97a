"""Asks a Waymark node's standard gRPC services with the real Python grpcio clients.

Usage: grpc_standard.py ADDR
Prints one JSON object: health Check of "" and of each Waymark service, the first
status a health Watch sends, and, over reflection v1alpha and v1, the services listed
and the file that defines waymark.v1.Catalog.
"""
import json
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2

SERVICES = ["", "waymark.v1.Catalog", "waymark.v1.Config", "waymark.v1.Leases", "waymark.v1.Cluster"]


def reflect(channel, version):
    # grpcio-reflection ships only v1alpha stubs; v1 is the same messages under
    # another service name, so both are called through one generic stub.
    call = channel.stream_stream(
        f"/grpc.reflection.{version}.ServerReflection/ServerReflectionInfo",
        request_serializer=reflection_pb2.ServerReflectionRequest.SerializeToString,
        response_deserializer=reflection_pb2.ServerReflectionResponse.FromString,
    )
    requests = [
        reflection_pb2.ServerReflectionRequest(list_services=""),
        reflection_pb2.ServerReflectionRequest(file_containing_symbol="waymark.v1.Catalog"),
    ]
    listed, files = [], []
    for resp in call(iter(requests), timeout=10):
        which = resp.WhichOneof("message_response")
        if which == "list_services_response":
            listed = sorted(s.name for s in resp.list_services_response.service)
        elif which == "file_descriptor_response":
            from google.protobuf import descriptor_pb2

            for raw in resp.file_descriptor_response.file_descriptor_proto:
                fd = descriptor_pb2.FileDescriptorProto.FromString(raw)
                files.append(fd.name)
        elif which == "error_response":
            files.append("error: " + resp.error_response.error_message)
    return {"services": listed, "files": sorted(files)}


def main():
    addr = sys.argv[1]
    out = {}
    with grpc.insecure_channel(addr) as channel:
        health = health_pb2_grpc.HealthStub(channel)
        out["check"] = {
            s: health_pb2.HealthCheckResponse.ServingStatus.Name(
                health.Check(health_pb2.HealthCheckRequest(service=s), timeout=10).status
            )
            for s in SERVICES
        }
        watch = health.Watch(health_pb2.HealthCheckRequest(service=""), timeout=10)
        out["watch_first"] = health_pb2.HealthCheckResponse.ServingStatus.Name(next(watch).status)
        watch.cancel()
        out["v1alpha"] = reflect(channel, "v1alpha")
        out["v1"] = reflect(channel, "v1")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
