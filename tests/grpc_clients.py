"""grpc_health's and grpc_reflection's client stubs as the tests call them, typed.

Their published stubs do not describe them: types-grpcio-health-checking declares
``HealthStub`` with no methods, and types-grpcio-reflection types
``ServerReflectionStub.ServerReflectionInfo`` as ``binascii.Incomplete`` (an exception
class).  At run time both set their multi-callables on the instance in ``__init__``;
:func:`health_stub` and :func:`reflection_stub` give the same objects under protocols that
name the one method each that the tests call.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol, cast

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

__all__ = ["HealthCheck", "ReflectionInfo", "health_stub", "reflection_stub"]


class HealthCheck(Protocol):
    """``HealthStub`` at run time: ``Check`` is a unary-unary multi-callable."""

    def Check(self, request: health_pb2.HealthCheckRequest,
              timeout: float | None = None) -> health_pb2.HealthCheckResponse: ...


class ReflectionInfo(Protocol):
    """``ServerReflectionStub`` at run time: ``ServerReflectionInfo`` is stream-stream."""

    def ServerReflectionInfo(
            self, request_iterator: Iterator[reflection_pb2.ServerReflectionRequest],
            timeout: float | None = None) -> Iterator[reflection_pb2.ServerReflectionResponse]: ...


def health_stub(channel: grpc.Channel) -> HealthCheck:
    """``health_pb2_grpc.HealthStub(channel)``, typed with its ``Check``."""
    return cast(HealthCheck, health_pb2_grpc.HealthStub(channel))


def reflection_stub(channel: grpc.Channel) -> ReflectionInfo:
    """``reflection_pb2_grpc.ServerReflectionStub(channel)``, typed with its one method."""
    return cast(ReflectionInfo, reflection_pb2_grpc.ServerReflectionStub(channel))
