"""The grpc:// client backend: error mapping, skip-colliding, long claims, TLS, URLs."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import grpc
import pytest

from entroq_core import AsyncEntroQ, Modification, TaskData, TaskID, connect
from entroq_core.errors import (
    AuthenticationError,
    BackendUnavailable,
    DeadlineExceeded,
    DependencyError,
    EntroQError,
    InvalidArgument,
    MessageTooLarge,
    PermissionDenied,
    RetryableConflict,
)
from entroq_core.mem import MemBackend
from entroq_core.requests import ClaimRequest
from entroq_core.types import Task
from entroq_grpc._proto import entroq_pb2 as pb
from entroq_grpc._proto import entroq_pb2_grpc
from entroq_grpc.backend import GrpcBackend, open_backend, parse_target
from entroq_svc.tls import TlsFiles
from scripts.servers.entroq_svc import ServerThread

if TYPE_CHECKING:
    from entroq_svc.inflight import Continuation

T = TypeVar("T")
WAIT = 60.0


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(asyncio.wait_for(coro, WAIT))  # type: ignore[arg-type]


def unique(name: str = "q") -> str:
    return f"client-{uuid.uuid4().hex[:10]}/{name}"


async def wait_until(condition: Callable[[], bool], what: str) -> None:
    """Poll a condition owned by the server's thread (no event to await across threads)."""
    deadline = asyncio.get_running_loop().time() + WAIT
    while not condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.01)


# --- every status back to the same exception ------------------------------------

ONE = TaskID("t1", 3, "q1")
TWO = TaskID("t2", 0, "q2")

RAISED: dict[str, BaseException] = {
    "dependency": DependencyError(
        inserts=[ONE],
        depends=[TWO],
        deletes=[TaskID("t3", 1)],
        changes=[],
        claims=[TaskID("t4", 2)],
        message="custom detail",
    ),
    "invalid": InvalidArgument("queues", "bad\x01", "is not allowed here"),
    "too-large": MessageTooLarge("inserts[0].value", "<99 bytes>", "exceeds the limit of 10"),
    "deadline": DeadlineExceeded("backend timed out"),
    "unavailable": BackendUnavailable("database is down"),
    "conflict": RetryableConflict("serialization failure, retries exhausted"),
    "unauthenticated": AuthenticationError("who are you"),
    "denied": PermissionDenied("not your queue"),
    "other-entroq": EntroQError("something odd"),
    "bug": RuntimeError("a bug in a backend"),
    "plain-value-error": ValueError("not an InvalidArgument"),
}

STATUS = {
    "dependency": grpc.StatusCode.NOT_FOUND,
    "invalid": grpc.StatusCode.INVALID_ARGUMENT,
    "too-large": grpc.StatusCode.RESOURCE_EXHAUSTED,
    "deadline": grpc.StatusCode.DEADLINE_EXCEEDED,
    "unavailable": grpc.StatusCode.UNAVAILABLE,
    "conflict": grpc.StatusCode.ABORTED,
    "unauthenticated": grpc.StatusCode.UNAUTHENTICATED,
    "denied": grpc.StatusCode.PERMISSION_DENIED,
    "other-entroq": grpc.StatusCode.FAILED_PRECONDITION,
    "bug": grpc.StatusCode.UNAVAILABLE,
    "plain-value-error": grpc.StatusCode.UNAVAILABLE,
}

# What the client raises; server-side surprises come back as "unavailable, retry".
CLIENT_ERROR = {
    "dependency": DependencyError,
    "invalid": InvalidArgument,
    "too-large": MessageTooLarge,
    "deadline": DeadlineExceeded,
    "unavailable": BackendUnavailable,
    "conflict": RetryableConflict,
    "unauthenticated": AuthenticationError,
    "denied": PermissionDenied,
    "other-entroq": EntroQError,
    "bug": BackendUnavailable,
    "plain-value-error": BackendUnavailable,
}


class RaisingBackend(MemBackend):
    """mem, except that claiming from a queue named ``raise/KEY`` raises RAISED[KEY]."""

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        for queue in request.queues:
            if queue.startswith("raise/"):
                raise RAISED[queue.removeprefix("raise/")]
        return await super().try_claim(request)


@pytest.fixture(scope="module")
def raising_server() -> Iterator[ServerThread]:
    with ServerThread(backend=RaisingBackend()) as running:
        yield running


@pytest.mark.parametrize("key", sorted(RAISED))
def test_every_error_crosses_the_wire_as_its_status(
    key: str, raising_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    with grpc.insecure_channel(raising_server.address) as channel:
        stub = entroq_pb2_grpc.EntroQStub(channel)
        request = pb.ClaimRequest(claimant_id="c", queues=[f"raise/{key}"], duration_ms=1000)
        with pytest.raises(grpc.RpcError) as info:
            stub.TryClaim(request, timeout=WAIT)
    assert info.value.code() == STATUS[key]
    assert info.value.code() not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)
    assert info.value.details()


@pytest.mark.parametrize("key", sorted(RAISED))
def test_every_status_comes_back_as_the_library_exception(
    key: str, raising_server: ServerThread
) -> None:
    async def claim() -> BaseException:
        async with await AsyncEntroQ.open(raising_server.url) as eq:
            with pytest.raises(CLIENT_ERROR[key]) as info:
                await eq.try_claim(f"raise/{key}", 1)
            return info.value

    exc = run(claim())
    assert type(exc) is CLIENT_ERROR[key]
    sent = RAISED[key]
    if isinstance(sent, DependencyError):
        assert isinstance(exc, DependencyError)
        assert exc.inserts == sent.inserts and exc.depends == sent.depends
        assert exc.deletes == sent.deletes and exc.changes == sent.changes
        assert exc.claims == sent.claims and exc.message == "custom detail"
    elif isinstance(sent, InvalidArgument):
        assert isinstance(exc, InvalidArgument)
        assert (exc.field, exc.reason) == (sent.field, sent.reason)
        assert str(exc) == str(sent)
    elif CLIENT_ERROR[key] is BackendUnavailable and type(sent) is not BackendUnavailable:
        assert type(sent).__name__ in str(exc)  # the server names what went wrong
    else:
        assert str(sent) in str(exc)


def test_unexpected_server_errors_are_logged(
    raising_server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    async def claim() -> None:
        async with await AsyncEntroQ.open(raising_server.url) as eq:
            with pytest.raises(BackendUnavailable):
                await eq.try_claim("raise/bug", 1)

    with caplog.at_level("ERROR", logger="entroq_grpc.servicer"):
        run(claim())
    assert any("a bug in a backend" in str(r.exc_info[1]) for r in caplog.records if r.exc_info)


# --- modify semantics only the client can provide ------------------------------------------


def test_skip_colliding_inserts_are_dropped_through_the_wire(server: ServerThread) -> None:
    async def go() -> None:
        async with await AsyncEntroQ.open(server.url) as eq:
            q = unique()
            known = f"known-{uuid.uuid4()}"
            await eq.modify(inserts=[TaskData(queue=q, id=known, value=b"first")])
            done = await eq.modify(
                inserts=[
                    TaskData(queue=q, id=known, value=b"again", skip_colliding=True),
                    TaskData(queue=q, value=b"new"),
                ]
            )
            assert [t.value for t in done.inserted] == [b"new"]
            only_skippable = await eq.modify(
                inserts=[TaskData(queue=q, id=known, skip_colliding=True)]
            )
            assert only_skippable.inserted == ()
            with pytest.raises(DependencyError) as info:
                await eq.modify(
                    inserts=[
                        TaskData(queue=q, id=known, skip_colliding=False),
                        TaskData(queue=q, value=b"not applied"),
                    ]
                )
            assert [i.id for i in info.value.inserts] == [known]
            values = sorted(t.value for t in await eq.tasks(q))
            assert values == [b"first", b"new"]

    run(go())


def test_a_dependency_error_naming_thousands_of_tasks_crosses_the_wire(
    server: ServerThread,
) -> None:
    # Every offending task goes in the status details, a trailer: over gRPC's
    # default metadata limit (16 KiB, about 130 tasks) it came back as
    # MessageTooLarge, an invalid argument, instead of the dependency error.
    async def go() -> None:
        async with await AsyncEntroQ.open(server.url) as eq:
            q = unique("a-queue-name-of-ordinary-length")
            done = await eq.modify(inserts=[TaskData(queue=q) for _ in range(3000)])
            stale = [TaskID(t.id, t.version + 1, t.queue) for t in done.inserted]
            with pytest.raises(DependencyError) as info:
                await eq.modify(deletes=stale)
            assert sorted(d.id for d in info.value.deletes) == sorted(t.id for t in stale)
            assert len(await eq.tasks(q)) == 3000

    run(go())


# --- long claims ----------------------------------------------------------------------------


class CountingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Counts Claim calls as the server receives them."""

    def __init__(self) -> None:
        self.claims = 0

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if details.method == "/proto.EntroQ/Claim":
            self.claims += 1
        return await continuation(details)


def test_claim_without_deadline_outlives_many_per_call_deadlines() -> None:
    counter = CountingInterceptor()
    with ServerThread("mem://", interceptors=[counter]) as srv:

        async def go() -> None:
            # Per-call deadlines long enough that a slow machine answers within them.
            waiter = AsyncEntroQ(await open_backend(srv.url, claim_call_seconds=1.0))
            producer = await AsyncEntroQ.open(srv.url)
            q = unique()
            claim = asyncio.create_task(waiter.claim(q, 10))
            # Three calls means two per-call deadlines passed and the claim went on.
            await wait_until(lambda: counter.claims >= 3, "the claim to be re-issued")
            assert not claim.done()
            (task,) = (await producer.modify(Modification().insert(q, b"late"))).inserted
            got = await claim
            assert (got.id, got.version, got.value) == (task.id, 1, b"late")
            await waiter.aclose()
            await producer.aclose()

        run(go())


def test_claim_with_a_timeout_raises_deadline_exceeded(server: ServerThread) -> None:
    async def go() -> None:
        async with await AsyncEntroQ.open(server.url) as eq:
            with pytest.raises(DeadlineExceeded):
                await eq.claim(unique(), 1, timeout=0.3)

    run(go())


def test_cancelling_a_claim_cancels_the_call_on_the_server() -> None:
    # Its own server: the waiting-claims counter must not see other tests' claims.
    with ServerThread("mem://") as server:
        assert server.server is not None
        servicer = server.server.servicer

        async def go() -> None:
            async with await AsyncEntroQ.open(server.url) as eq:
                assert servicer.waiting_claims == 0
                q = unique()
                claim = asyncio.create_task(eq.claim(q, 10))
                await wait_until(lambda: servicer.waiting_claims == 1, "the claim to wait")
                claim.cancel()
                with pytest.raises(asyncio.CancelledError):
                    await claim
                await wait_until(lambda: servicer.waiting_claims == 0, "the server to let go")
                await eq.modify(Modification().insert(q, b"x"))
                assert (await eq.try_claim(q, 1)) is not None

        run(go())


class CancellingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Ends every Modify with CANCELLED, as grpc does to calls still pending when
    a server shuts down (not reproducible on demand: they are the calls that
    arrive in the instant before the shutdown)."""

    async def intercept_service(
        self, continuation: Continuation, details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler[Any, Any] | None:
        if details.method != "/proto.EntroQ/Modify":
            return await continuation(details)

        async def cancelled(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> Any:
            await context.abort(grpc.StatusCode.CANCELLED, "Server shutdown")

        return grpc.unary_unary_rpc_method_handler(cancelled)


def test_a_call_the_server_cancels_is_unavailable_not_a_cancellation() -> None:
    """A client that cancels its own call never sees CANCELLED (grpc raises
    CancelledError locally); one that arrives is the server's doing. The client
    must not cancel a task nobody cancelled (a Worker would stop), but report
    the server gone, as UNAVAILABLE."""
    with ServerThread("mem://", interceptors=[CancellingInterceptor()]) as server:

        async def go() -> None:
            async with await AsyncEntroQ.open(server.url) as eq:
                call = asyncio.create_task(eq.modify(Modification().insert(unique(), b"x")))
                with pytest.raises(BackendUnavailable, match="server cancelled the call"):
                    await call
                assert not call.cancelled()
                current = asyncio.current_task()
                assert current is not None and current.cancelling() == 0
                assert await eq.try_claim(unique(), 1) is None  # the channel still works

        run(go())


# --- streams and sizes -----------------------------------------------------------------------


def test_leaving_a_stream_early_is_clean(server: ServerThread) -> None:
    async def go() -> None:
        async with await AsyncEntroQ.open(server.url) as eq:
            q = unique()
            await eq.modify(inserts=[TaskData(queue=q) for _ in range(2000)])
            seen = 0
            async for _ in eq.stream_tasks(q):
                seen += 1
                if seen == 10:
                    break
            assert seen == 10
            assert len(await eq.tasks(q)) == 2000

    run(go())


def test_a_client_cancelling_a_blocked_stream_is_no_server_error(
    server: ServerThread, caplog: pytest.LogCaptureFixture
) -> None:
    # The client reads one message and stops; the server's next send waits on flow
    # control until the client cancels. That is an ordinary end of a call: grpc
    # logged each one at ERROR with a traceback, an alarm for every pager closed.
    async def go() -> None:
        q = unique()
        async with await AsyncEntroQ.open(server.url) as eq:
            for _ in range(10):
                await eq.modify(inserts=[TaskData(queue=q, value=b"x" * 20_000)] * 300)
        for _ in range(3):
            async with grpc.aio.insecure_channel(server.address) as channel:
                call = entroq_pb2_grpc.EntroQStub(channel).StreamTasks(pb.TasksRequest(queue=q))
                async for _message in call:
                    break
                await asyncio.sleep(1.0)  # the server's sends now wait on flow control
                call.cancel()
        async with await AsyncEntroQ.open(server.url) as eq:
            assert len(await eq.tasks(q, omit_values=True)) == 3000  # still serving

    with caplog.at_level(logging.WARNING):
        run(go())
        time.sleep(0.5)  # the server's handlers end after the clients have gone
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_ten_mib_value_round_trips(server: ServerThread) -> None:
    async def go() -> None:
        async with await AsyncEntroQ.open(server.url) as eq:
            q = unique()
            value = bytes(range(256)) * (10 * 1024 * 1024 // 256)
            await eq.modify(Modification().insert(q, value))
            task = await eq.claim(q, 10, timeout=WAIT)
            assert task.value == value
            await eq.modify(Modification().delete(task))

    run(go())


def test_a_value_over_the_server_limit_is_message_too_large(small_server: ServerThread) -> None:
    async def go() -> None:
        async with await AsyncEntroQ.open(small_server.url) as eq:
            with pytest.raises(MessageTooLarge):
                await eq.modify(Modification().insert(unique(), b"x" * (2 * 1024 * 1024)))

    run(go())


# --- URLs, registry, connection failures ------------------------------------------------


def test_the_registry_opens_grpc_urls(server: ServerThread) -> None:
    async def go() -> None:
        backend = await connect(server.url)
        assert isinstance(backend, GrpcBackend)
        assert (await backend.time()).tzinfo is not None
        await backend.aclose()

    run(go())


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("grpc://example.com", "example.com:37706"),
        ("grpc://127.0.0.1:1234", "127.0.0.1:1234"),
        ("grpcs://[::1]:5", "[::1]:5"),
        ("GRPC://host/", "host:37706"),
    ],
)
def test_parse_target(url: str, target: str) -> None:
    assert parse_target(url)[1] == target


@pytest.mark.parametrize(
    ("url", "options", "field"),
    [
        ("http://host", {}, "url"),
        ("grpc://", {}, "url"),
        ("grpc://host:99999", {}, "url"),
        ("grpc://host/path", {}, "url"),
        ("grpc://host", {"colour": "blue"}, "options"),
        ("grpc://host?ca=/x.pem", {}, "options"),
        ("grpc://host", {"claim_call_seconds": 0}, "claim_call_seconds"),
        ("grpc://host?claim_call_seconds=nan", {}, "claim_call_seconds"),
        ("grpc://host?keepalive_seconds=inf", {}, "keepalive_seconds"),
        ("grpc://host", {"keepalive_seconds": -1}, "keepalive_seconds"),
        ("grpcs://host", {"cert": "/c.pem"}, "cert"),
        ("grpcs://host", {"ca": "/no/such/file.pem"}, "ca"),
    ],
)
def test_bad_urls_and_options_are_invalid_arguments(
    url: str, options: dict[str, Any], field: str
) -> None:
    with pytest.raises(InvalidArgument) as info:
        run(open_backend(url, **options))
    assert info.value.field == field


def test_nothing_listening_is_backend_unavailable() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, not listening: connections are refused

        async def go() -> None:
            async with await AsyncEntroQ.open(f"grpc://127.0.0.1:{port}") as eq:
                with pytest.raises(BackendUnavailable):
                    await eq.time()

        run(go())


# --- TLS ----------------------------------------------------------------------------------------


def test_grpcs_with_a_private_ca(pki: Path) -> None:
    tls = TlsFiles(pki / "server.pem", pki / "server.key")
    with ServerThread("mem://", tls=tls) as srv:
        url = f"grpcs://localhost:{srv.port}?ca={pki / 'ca.pem'}"

        async def go() -> None:
            async with await AsyncEntroQ.open(url) as eq:
                q = unique()
                await eq.modify(Modification().insert(q, b"secure"))
                assert (await eq.claim(q, 1, timeout=WAIT)).value == b"secure"
            # Plaintext to a TLS port does not work, and says so as unavailable.
            async with await AsyncEntroQ.open(srv.url) as plain:
                with pytest.raises(BackendUnavailable):
                    await plain.time()

        run(go())


def test_mutual_tls_requires_a_client_certificate(pki: Path) -> None:
    tls = TlsFiles(pki / "server.pem", pki / "server.key", client_ca=pki / "ca.pem")
    with ServerThread("mem://", tls=tls) as srv:
        base = f"grpcs://127.0.0.1:{srv.port}"

        async def go() -> None:
            with_cert = await AsyncEntroQ.open(
                base,
                ca=pki / "ca.pem",
                cert=pki / "client.pem",
                key=pki / "client.key",
                server_name="localhost",
            )
            assert (await with_cert.time()).year >= 2024
            await with_cert.aclose()
            without = await AsyncEntroQ.open(base, ca=str(pki / "ca.pem"))
            with pytest.raises(BackendUnavailable):
                await without.time()
            await without.aclose()

        run(go())
