"""Bad input and bad environments end in the errors of SPEC section 3, never a raw gRPC one."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
from collections.abc import Iterator
from datetime import timedelta

import pytest

from entroq_core.errors import (
    AuthenticationError,
    BackendUnavailable,
    DependencyError,
    InvalidArgument,
    MessageTooLarge,
    PermissionDenied,
)
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.types import TaskChange, TaskData, TaskID
from entroq_etcd.backend import open_backend
from scripts.servers.etcd import EtcdCluster, free_port

from .conftest import require_etcd
from .rawetcd import RawEtcd

# Generous: these guard against hangs, they do not measure anything.
HANG_GUARD = 60


def test_unreachable_endpoints_are_named_in_the_error() -> None:
    ports = [free_port(), free_port()]
    url = f"etcd://127.0.0.1:{ports[0]},127.0.0.1:{ports[1]}"

    async def run() -> None:
        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(BackendUnavailable) as info:
                await open_backend(url, call_timeout=2)
        assert f"127.0.0.1:{ports[0]}" in str(info.value)
        assert f"127.0.0.1:{ports[1]}" in str(info.value)

    asyncio.run(run())


@pytest.fixture
def silent_endpoint() -> Iterator[str]:
    """A port that accepts TCP connections and never says a word."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(16)
        yield f"127.0.0.1:{s.getsockname()[1]}"


def test_a_silent_endpoint_fails_within_the_call_timeout(silent_endpoint: str) -> None:
    async def run() -> None:
        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(BackendUnavailable) as info:
                await open_backend(f"etcd://{silent_endpoint}", call_timeout=1)
        assert silent_endpoint in str(info.value)

    asyncio.run(run())


def test_values_over_etcds_request_limit_name_the_field(etcd_url: str) -> None:
    big = b"x" * (1536 * 1024)
    half = b"y" * (900 * 1024)

    async def run() -> None:
        backend = await open_backend(etcd_url)
        try:
            with pytest.raises(MessageTooLarge) as info:
                await backend.modify(ModifyRequest("me", inserts=(TaskData("q", value=big),)))
            assert info.value.field == "inserts[0].value"
            with pytest.raises(MessageTooLarge) as info:
                await backend.modify(
                    ModifyRequest(
                        "me", inserts=(TaskData("q", value=half), TaskData("q", value=half))
                    )
                )
            assert info.value.field == "modification"
            done = await backend.modify(ModifyRequest("me", inserts=(TaskData("q", value=half),)))
            task = done.inserted[0]
            with pytest.raises(MessageTooLarge) as info:
                await backend.modify(
                    ModifyRequest(
                        "me", changes=(TaskChange(task.as_id(), TaskData("q", value=big)),)
                    )
                )
            assert info.value.field == "changes[0].new.value"
            claimed = await backend.try_claim(ClaimRequest("me", ("q",), 10_000))
            assert claimed is not None and claimed.value == half
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_task_with_the_largest_value_can_be_renewed_and_moved(etcd_url: str) -> None:
    # A change writes more keys than an insert; longest names make that gap widest.
    queue, elsewhere = "q" * 1023 + "a", "q" * 1023 + "b"
    task_id = "i" * 128
    largest = 1536 * 1024 - 32 * 1024

    async def run() -> None:
        backend = await open_backend(etcd_url)
        try:
            with pytest.raises(MessageTooLarge) as info:
                too_big = TaskData(queue, value=b"v" * (largest + 1))
                await backend.modify(ModifyRequest("me", inserts=(too_big,)))
            assert info.value.field == "inserts[0].value"
            assert f"largest value this backend stores, {largest} bytes" in str(info.value)
            value = b"v" * largest
            data = TaskData(queue, value=value, id=task_id)
            await backend.modify(ModifyRequest("me", inserts=(data,)))
            task = await backend.try_claim(ClaimRequest("me", (queue,), 60_000))
            assert task is not None and task.value == value
            renewal = TaskData(queue, value=value, at=task.at + timedelta(minutes=5))
            done = await backend.modify(
                ModifyRequest("me", changes=((TaskChange(task.as_id(), renewal)),))
            )
            [renewed] = done.changed
            moved = TaskData(elsewhere, value=value)
            done = await backend.modify(
                ModifyRequest("me", changes=((TaskChange(renewed.as_id(), moved)),))
            )
            assert done.changed[0].queue == elsewhere and done.changed[0].value == value
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_depend_on_the_largest_version_is_a_dependency_error(etcd_url: str) -> None:
    # etcd counts a key's writes in an int64: version + 1 cannot be compared.
    largest = 2**63 - 1

    async def run() -> None:
        backend = await open_backend(etcd_url)
        try:
            [task] = (await backend.modify(ModifyRequest("me", inserts=(TaskData("q"),)))).inserted
            for task_id in ("no-such-task", task.id):
                with pytest.raises(DependencyError) as info:
                    await backend.modify(ModifyRequest("me", depends=(TaskID(task_id, largest),)))
                assert [d.id for d in info.value.depends] == [task_id]
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_more_operations_than_etcd_allows_in_one_txn_is_invalid(etcd_url: str) -> None:
    # The launcher allows 4096 operations per Txn; an insert takes four.
    inserts = tuple(TaskData("q", value=b"v") for _ in range(1100))

    async def run() -> None:
        backend = await open_backend(etcd_url)
        try:
            with pytest.raises(InvalidArgument) as info:
                await backend.modify(ModifyRequest("me", inserts=inserts))
            assert info.value.field == "modification"
            assert "--max-txn-ops" in str(info.value)
            assert await backend.try_claim(ClaimRequest("me", ("q",), 1000)) is None
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_closed_backend_refuses_calls(etcd_url: str) -> None:
    async def run() -> None:
        backend = await open_backend(etcd_url)
        await backend.aclose()
        with pytest.raises(BackendUnavailable):
            await backend.try_claim(ClaimRequest("me", ("q",), 1000))

    asyncio.run(run())


def test_writes_queued_behind_a_stalled_etcd_fail_by_their_own_deadline(
    own_etcd: EtcdCluster,
) -> None:
    """etcd stops answering (SIGSTOP) with a dozen writes on one handle: two are in
    flight, the rest queue behind them. Each must fail within its call_timeout
    counted from when it was asked, not one call_timeout per send ahead of it
    (6 s for the last of 12 here), and one never sent must never be applied."""
    member = own_etcd.members[0]
    assert member.proc is not None

    async def run() -> None:
        backend = await open_backend(own_etcd.url + "/stall/", call_timeout=1)
        try:
            await backend.modify(ModifyRequest("me", inserts=(TaskData("jobs"),)))
            os.kill(member.proc.pid, signal.SIGSTOP)
            try:
                loop = asyncio.get_running_loop()
                started = loop.time()

                async def insert() -> tuple[float, bool]:
                    with pytest.raises(BackendUnavailable) as info:
                        await backend.modify(ModifyRequest("me", inserts=(TaskData("jobs"),)))
                    return loop.time() - started, "was not sent" in str(info.value)

                async with asyncio.timeout(HANG_GUARD):
                    outcomes = await asyncio.gather(*(insert() for _ in range(12)))
            finally:
                os.kill(member.proc.pid, signal.SIGCONT)
            # 1 s each, and slack for a loaded machine; well short of 6 s.
            assert max(took for took, _ in outcomes) < 4.5, outcomes
            not_sent = sum(unsent for _, unsent in outcomes)
            assert not_sent >= 8, outcomes  # all but the first two sends' writes
            async with asyncio.timeout(HANG_GUARD):
                listed = [t async for t in backend.tasks(TasksRequest(queue="jobs"))]
            assert 1 <= len(listed) <= 1 + 12 - not_sent
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_an_outage_is_logged_once_and_its_end_once(
    own_etcd: EtcdCluster, caplog: pytest.LogCaptureFixture
) -> None:
    member = own_etcd.members[0]
    assert member.proc is not None

    async def run() -> None:
        backend = await open_backend(own_etcd.url + "/outage-log/", call_timeout=0.5)
        try:
            # A claim waits on the watch stream meanwhile, which breaks and retries.
            waiting = asyncio.create_task(
                backend.claim(ClaimRequest("me", ("idle",), 10_000), poll=3600)
            )
            await asyncio.sleep(0.3)
            member.kill()
            for _ in range(4):
                with pytest.raises(BackendUnavailable):
                    await backend.try_claim(ClaimRequest("me", ("jobs",), 10_000))
            await asyncio.sleep(1.5)  # several of the stream's reconnects
            own_etcd.restart(member)
            async with asyncio.timeout(HANG_GUARD):
                while True:  # the channel may still be backing off from the refusals
                    try:
                        await backend.queue_stats(QueuesRequest())
                        break
                    except BackendUnavailable:
                        await asyncio.sleep(0.1)
                # The waiting claim may have failed as unavailable meanwhile (its
                # retry after the stream broke); a new one is woken by the stream.
                again = waiting
                if waiting.done():
                    again = asyncio.create_task(
                        backend.claim(ClaimRequest("me", ("idle",), 10_000), poll=3600)
                    )
                await backend.modify(ModifyRequest("me", inserts=(TaskData("idle"),)))
                assert (await again).queue == "idle"
        finally:
            await backend.aclose()

    with caplog.at_level(logging.INFO, logger="entroq.etcd"):
        asyncio.run(run())
    for name, what in (("entroq.etcd", "answers again"), ("entroq.etcd.watch", "works again")):
        logged = [(r.levelname, r.getMessage()) for r in caplog.records if r.name == name]
        assert [level for level, _ in logged] == ["WARNING", "INFO"], logged
        assert what in logged[1][1]


@pytest.fixture(scope="module")
def auth_etcd() -> Iterator[EtcdCluster]:
    """A throwaway etcd with authentication on; root's password is 'rootpw'."""
    require_etcd()
    cluster = EtcdCluster(1).start()

    async def enable() -> None:
        raw = RawEtcd(cluster.endpoints[0])
        try:
            await raw.enable_auth("rootpw")
        finally:
            await raw.close()

    try:
        asyncio.run(enable())
        yield cluster
    finally:
        cluster.stop()


def test_credentials_for_an_etcd_without_auth_are_an_authentication_error(
    etcd_url: str,
) -> None:
    # Not "unavailable": no retry fixes it, so entroq-svc exits 2, not 3.
    async def run() -> None:
        with pytest.raises(AuthenticationError, match="not enabled"):
            await open_backend(etcd_url + "?user=root&password=x")

    asyncio.run(run())


def test_wrong_password_is_an_authentication_error(auth_etcd: EtcdCluster) -> None:
    async def run() -> None:
        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(AuthenticationError):
                await open_backend(auth_etcd.url, user="root", password="wrong")
            with pytest.raises(AuthenticationError):
                await open_backend(auth_etcd.url, user="nobody", password="x")

    asyncio.run(run())


def test_missing_credentials_are_an_authentication_error(auth_etcd: EtcdCluster) -> None:
    async def run() -> None:
        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(AuthenticationError):
                await open_backend(auth_etcd.url)

    asyncio.run(run())


def test_right_credentials_work(auth_etcd: EtcdCluster) -> None:
    url = auth_etcd.url.replace("etcd://", "etcd://root:rootpw@")

    async def run() -> None:
        backend = await open_backend(url, prefix="/auth-ok/")
        try:
            await backend.modify(ModifyRequest("me", inserts=(TaskData("q", value=b"v"),)))
            task = await backend.try_claim(ClaimRequest("me", ("q",), 10_000))
            assert task is not None and task.value == b"v"
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_a_user_without_permission_is_denied(auth_etcd: EtcdCluster) -> None:
    async def run() -> None:
        from entroq_etcd._etcdpb import rpc_pb2

        raw = RawEtcd(auth_etcd.endpoints[0])
        token = (
            await raw.auth.Authenticate(rpc_pb2.AuthenticateRequest(name="root", password="rootpw"))
        ).token
        admin = RawEtcd(auth_etcd.endpoints[0], token)
        await admin.auth.UserAdd(
            rpc_pb2.AuthUserAddRequest(name="guest", password="guestpw"), metadata=admin.metadata
        )
        await raw.close()
        await admin.close()
        async with asyncio.timeout(HANG_GUARD):
            with pytest.raises(PermissionDenied):
                await open_backend(auth_etcd.url, user="guest", password="guestpw")

    asyncio.run(run())
