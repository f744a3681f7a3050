"""Fixtures: an in-process entroq-svc over mem, and raw stubs generated from the proto."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from entroq_grpc._proto import entroq_pb2 as pb
from entroq_grpc._proto import entroq_pb2_grpc
from scripts.servers.entroq_svc import ServerThread


@pytest.fixture(scope="session")
def server() -> Iterator[ServerThread]:
    """One entroq-svc (mem backend) for the session; tests use unique queue names."""
    with ServerThread("mem://") as running:
        yield running


@pytest.fixture(scope="session")
def small_server() -> Iterator[ServerThread]:
    """An entroq-svc with a 1 MiB message limit, for size tests."""
    with ServerThread("mem://", max_message_mb=1) as running:
        yield running


@pytest.fixture
def channel(server: ServerThread) -> Iterator[grpc.Channel]:
    """A plain synchronous channel to ``server``: a client that knows only the proto."""
    with grpc.insecure_channel(server.address) as ch:
        yield ch


@pytest.fixture
def stub(channel: grpc.Channel) -> entroq_pb2_grpc.EntroQStub:
    """The generated EntroQ stub."""
    return entroq_pb2_grpc.EntroQStub(channel)


@pytest.fixture
def still_serving() -> Callable[[grpc.Channel], None]:
    """A check that the server still answers health checks and a normal Modify."""
    return assert_serving


def assert_serving(channel: grpc.Channel) -> None:
    """The server still answers health checks and a normal Modify."""
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "proto.EntroQ"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=30)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    stub = entroq_pb2_grpc.EntroQStub(channel)
    done = stub.Modify(
        pb.ModifyRequest(claimant_id="check", inserts=[pb.TaskData(queue="still-serving/q")]),
        timeout=30,
    )
    assert done.inserted[0].queue == "still-serving/q"
    stub.Modify(
        pb.ModifyRequest(
            claimant_id="check",
            deletes=[pb.TaskID(id=done.inserted[0].id, version=done.inserted[0].version)],
        ),
        timeout=30,
    )
