"""gRPC server reflection as ``grpc.reflection.v1`` as well as ``v1alpha``.

grpcio-reflection ships only ``grpc.reflection.v1alpha.ServerReflection``; current
clients (grpcurl, Postman, grpc-js tools) ask ``grpc.reflection.v1.ServerReflection``
first.  The two protocols differ only in their package: every message and field
(name, number, type) is the same (grpc/reflection/v1/reflection.proto was copied from
v1alpha when it was promoted).  So:

* the v1 file descriptor is v1alpha's with the package renamed, added to the default
  descriptor pool, so that reflection itself describes ``grpc.reflection.v1``;
* both methods are generic handlers for one servicer: a v1 request's bytes parse as the
  v1alpha message they are identical to, and its v1alpha answers are sent as they are
  (identical bytes on the wire).
"""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool
from grpc_reflection.v1alpha import reflection, reflection_pb2

__all__ = ["V1ALPHA_SERVICE", "V1_SERVICE", "enable_reflection"]

V1ALPHA_SERVICE: str = reflection.SERVICE_NAME
V1_SERVICE = "grpc.reflection.v1.ServerReflection"
_V1_FILE = "grpc/reflection/v1/reflection.proto"  # its path upstream (grpc-proto)


def v1_file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    """grpc/reflection/v1/reflection.proto, derived from the v1alpha descriptor."""
    fdp = descriptor_pb2.FileDescriptorProto()
    reflection_pb2.DESCRIPTOR.CopyToProto(fdp)
    old, new = f".{fdp.package}.", ".grpc.reflection.v1."
    fdp.name, fdp.package = _V1_FILE, "grpc.reflection.v1"
    for message in fdp.message_type:
        for fld in message.field:
            if fld.type_name.startswith(old):
                fld.type_name = new + fld.type_name[len(old):]
    for service in fdp.service:
        for method in service.method:
            method.input_type = new + method.input_type[len(old):]
            method.output_type = new + method.output_type[len(old):]
    fdp.options.Clear()  # v1alpha's say deprecated and name v1alpha's packages
    fdp.options.java_package = "io.grpc.reflection.v1"
    fdp.options.java_outer_classname = "ServerReflectionProto"
    fdp.options.java_multiple_files = True
    fdp.options.go_package = "google.golang.org/grpc/reflection/grpc_reflection_v1"
    return fdp


def _register_v1(pool: descriptor_pool.DescriptorPool) -> None:
    try:
        pool.FindServiceByName(V1_SERVICE)
        return  # already there (a second server in this process, or a newer grpcio)
    except KeyError:
        pool.AddSerializedFile(v1_file_descriptor().SerializeToString())


def enable_reflection(service_names: Sequence[str], server: grpc.aio.Server) -> None:
    """Serve reflection (v1 and v1alpha) listing ``service_names`` and both reflections."""
    pool = descriptor_pool.Default()
    _register_v1(pool)
    servicer = reflection.aio.ReflectionServicer(
        (*service_names, V1_SERVICE, V1ALPHA_SERVICE), pool=pool)
    server.add_generic_rpc_handlers(tuple(
        grpc.method_handlers_generic_handler(name, {
            "ServerReflectionInfo": grpc.stream_stream_rpc_method_handler(
                servicer.ServerReflectionInfo,
                request_deserializer=reflection_pb2.ServerReflectionRequest.FromString,
                response_serializer=reflection_pb2.ServerReflectionResponse.SerializeToString),
        }) for name in (V1_SERVICE, V1ALPHA_SERVICE)))
