"""entroq-svc: the real command as a subprocess, its options, and graceful shutdown."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from entroq_core import AsyncEntroQ, EntroQ, Modification
from entroq_core.errors import BackendUnavailable, InvalidArgument
from entroq_core.mem import MemBackend
from entroq_core.requests import ClaimRequest, ModifyRequest
from entroq_core.types import ModifyResult, Task
from entroq_grpc._proto import entroq_pb2 as pb
from entroq_grpc._proto import entroq_pb2_grpc
from entroq_svc.server import backend_url
from entroq_svc.tls import TlsFiles
from scripts.servers.entroq_svc import ServerThread, start_svc, svc_command

WAIT = 60.0


def health_status(address: str, service: str = "") -> int:
    with grpc.insecure_channel(address) as channel:
        reply = health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=WAIT
        )
    return int(reply.status)


def serving_watch(channel: grpc.Channel, timeout: float) -> Any:
    """An open health Watch of ``proto.EntroQ``, after its first answer: SERVING."""
    watch = health_pb2_grpc.HealthStub(channel).Watch(
        health_pb2.HealthCheckRequest(service="proto.EntroQ"), timeout=timeout
    )
    assert next(watch).status == health_pb2.HealthCheckResponse.SERVING
    return watch


def run_svc(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*svc_command(), *args],
        capture_output=True,
        text=True,
        timeout=WAIT,
        env={**os.environ, **(env or {})},
    )


# --- the real process ----------------------------------------------------------------------


def test_svc_serves_then_stops_on_sigterm_with_exit_0() -> None:
    svc = start_svc("mem")
    try:
        assert health_status(svc.address) == health_pb2.HealthCheckResponse.SERVING
        assert health_status(svc.address, "proto.EntroQ") == health_pb2.HealthCheckResponse.SERVING
        claim_error: list[BaseException] = []
        with EntroQ(svc.url) as eq:
            eq.modify(Modification().insert("svc/q", b"hello"))
            task = eq.claim("svc/q", 10, timeout=WAIT)
            assert task.value == b"hello"

        def wait_forever() -> None:
            with EntroQ(svc.url) as waiter:
                try:
                    waiter.claim("svc/empty", 10)
                except BaseException as exc:
                    claim_error.append(exc)

        waiting = threading.Thread(target=wait_forever)
        waiting.start()
        # The server answers before it is stopped. The claim may be parked, in
        # its first try, or not yet sent when SIGTERM arrives: each way it must
        # end UNAVAILABLE (the gated test below pins the first-try case).
        with grpc.insecure_channel(svc.address) as channel:
            stub = entroq_pb2_grpc.EntroQStub(channel)
            stub.Time(pb.TimeRequest(), timeout=WAIT)
        assert svc.terminate(timeout=WAIT) == 0
        waiting.join(WAIT)
        assert not waiting.is_alive()
    finally:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()
        text = svc.logs()
        svc.close()
    assert claim_error and isinstance(claim_error[0], BackendUnavailable)
    logs = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    messages = [entry["message"] for entry in logs]
    assert "serving" in messages and "shutdown requested" in messages and "stopped" in messages
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in logs)


def test_sigint_also_stops_cleanly() -> None:
    svc = start_svc("mem")
    svc.proc.send_signal(signal.SIGINT)
    try:
        assert svc.proc.wait(WAIT) == 0
    finally:
        svc.close()


@pytest.mark.parametrize("loop", ["uvloop", "asyncio"])
def test_each_event_loop_serves_waiting_claims_and_stops_cleanly(loop: str) -> None:
    svc = start_svc("mem", ["--loop", loop])
    try:
        with EntroQ(svc.url) as waiter, EntroQ(svc.url) as producer:
            claimed: list[Task] = []
            parked = threading.Thread(
                target=lambda: claimed.append(waiter.claim("svc/loop", 10, timeout=WAIT))
            )
            parked.start()
            producer.modify(Modification().insert("svc/loop", b"woken"))
            parked.join(WAIT)
            assert [t.value for t in claimed] == [b"woken"]
            waiter.modify(Modification().delete(claimed[0]))
            assert producer.tasks("svc/loop") == []
        assert svc.terminate(timeout=WAIT) == 0
    finally:
        if svc.proc.poll() is None:
            svc.proc.kill()
            svc.proc.wait()
        text = svc.logs()
        svc.close()
    opening = [json.loads(line) for line in text.splitlines() if '"opening backend"' in line]
    assert opening and opening[0]["loop"] == loop


def test_list_backends_shows_installed_schemes() -> None:
    done = run_svc("--list-backends")
    assert done.returncode == 0, done.stderr
    schemes = {line.split("\t")[0] for line in done.stdout.splitlines()}
    assert {"mem", "grpc", "grpcs"} <= schemes


def test_list_backends_reports_a_broken_plugin_without_dying(tmp_path: Path) -> None:
    dist = tmp_path / "broken_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: broken-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(
        "[entroq.backends]\nbroken = no_such_module_anywhere:open_backend\n"
    )
    path = os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))
    done = run_svc("--list-backends", env={"PYTHONPATH": path})
    assert done.returncode == 0, done.stderr
    assert "mem" in done.stdout
    assert "broken" in done.stderr and "BROKEN" in done.stderr
    assert "no_such_module_anywhere" in done.stderr


def test_unknown_backend_fails_with_the_installed_list() -> None:
    done = run_svc("--backend", "nosuch", "--port", "0")
    assert done.returncode == 2
    assert "nosuch" in done.stderr and "mem" in done.stderr


@pytest.mark.parametrize(
    ("args", "complaint"),
    [
        (["--tls-cert", "/x.pem"], "go together"),
        (["--tls-client-ca", "/ca.pem"], "needs --tls-cert"),
        (["--port", "70000"], "--port"),
        (
            ["--tls-cert", "/no/cert.pem", "--tls-key", "/no/key.pem"],
            "--tls-cert /no/cert.pem: no such file",
        ),
        (["--tls-cert", "/tmp", "--tls-key", "/tmp"], "--tls-cert /tmp: not a file"),
        (["--max-message-mb", "100000"], "at most 2047"),
        (["--max-message-mb", "nan"], "--max-message-mb"),
        (["--grace", "-1"], "argument --grace: must be 0 or more seconds, got '-1'"),
        (["--grace", "inf"], "--grace"),
        (["--log-level", "loud"], "--log-level"),
    ],
)
def test_bad_options_are_refused_with_status_2_and_no_traceback(
    args: list[str], complaint: str
) -> None:
    done = run_svc("--port", "0", *args)
    assert done.returncode == 2
    assert complaint in done.stderr
    assert "Traceback" not in done.stderr


def test_log_level_takes_any_case() -> None:
    svc = start_svc("mem", ["--log-level", "WARNING"])
    try:
        with EntroQ(svc.url) as eq:
            assert eq.time() is not None
    finally:
        assert svc.terminate(WAIT) == 0
        svc.close()


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        done = run_svc("--port", str(s.getsockname()[1]))
    assert done.returncode == 2
    assert "cannot listen: Address already in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_address_of_another_machine_is_named_as_such() -> None:
    # 192.0.2.0/24 is reserved for documentation: never an address of this host.
    done = run_svc("--host", "192.0.2.1", "--port", "0")
    assert done.returncode == 2
    assert "192.0.2.1" in done.stderr and "Cannot assign requested address" in done.stderr


def test_an_unreachable_backend_exits_3_naming_it() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        done = run_svc("--port", "0", "--backend", f"etcd://127.0.0.1:{port}?call_timeout=5")
    assert done.returncode == 3, done.stderr
    assert f"127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr


# --- TLS files that cannot serve ---------------------------------------------------------


def _refusal(tls: TlsFiles) -> str:
    with pytest.raises(InvalidArgument) as refused:
        tls.credentials()
    return str(refused.value)


def test_a_key_of_another_certificate_is_named(pki: Path) -> None:
    message = _refusal(TlsFiles(pki / "server.pem", pki / "client.key"))
    assert "tls_key" in message and "client.key" in message and "server.pem" in message


def test_files_that_are_not_pem_are_named_by_their_option(pki: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_bytes(b"not a certificate")
    assert "tls_cert" in _refusal(TlsFiles(junk, pki / "server.key"))
    assert "tls_key" in _refusal(TlsFiles(pki / "server.pem", junk))
    assert "tls_client_ca" in _refusal(TlsFiles(pki / "server.pem", pki / "server.key", junk))


def test_an_encrypted_key_is_refused_without_asking_for_a_password(
    pki: Path, tmp_path: Path
) -> None:
    locked = tmp_path / "locked.key"
    subprocess.run(
        ["openssl", "rsa", "-aes256", "-in", str(pki / "server.key"), "-out", str(locked),
         "-passout", "pass:secret"],
        check=True, capture_output=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert "encrypted" in _refusal(TlsFiles(pki / "server.pem", locked))


def test_svc_names_the_tls_file_it_cannot_use(pki: Path) -> None:
    done = run_svc(
        "--port", "0", "--tls-cert", str(pki / "server.pem"), "--tls-key", str(pki / "client.key")
    )  # fmt: skip
    assert done.returncode == 2
    assert "tls_key" in done.stderr and "client.key" in done.stderr
    assert "cannot listen" not in done.stderr


def test_max_message_mb_sets_the_value_limit() -> None:
    svc = start_svc("mem", ["--max-message-mb", "0.5"])
    try:
        with EntroQ(svc.url) as eq:
            eq.modify(Modification().insert("svc/size", b"x" * (512 * 1024)))
            with pytest.raises(InvalidArgument):
                eq.modify(Modification().insert("svc/size", b"x" * (512 * 1024 + 1)))
    finally:
        assert svc.terminate(WAIT) == 0
        svc.close()


# --- backend names -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "env", "url"),
    [
        ("mem", {}, "mem://"),
        ("pg", {}, "pg://"),
        ("pg", {"ENTROQ_PG_URL": "pg://u@db/q"}, "pg://u@db/q"),
        ("ETCD", {"ENTROQ_ETCD_URL": "etcd://h:2379"}, "etcd://h:2379"),
        ("pg://explicit/db", {"ENTROQ_PG_URL": "pg://ignored"}, "pg://explicit/db"),
        ("my-store", {}, "my-store://"),
    ],
)
def test_backend_names_become_urls(given: str, env: dict[str, str], url: str) -> None:
    assert backend_url(given, env) == url


@pytest.mark.parametrize("given", ["", "  ", "a b", "x;y"])
def test_bad_backend_names_are_invalid(given: str) -> None:
    with pytest.raises(InvalidArgument):
        backend_url(given, {})


# --- graceful shutdown, observed from inside ------------------------------------------------


class GatedBackend(MemBackend):
    """mem whose Modify (of queue "gated") and first claim try (of queue
    "gated-claim") wait for the test to open a gate, and which records aclose."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = threading.Event()
        self.gate = threading.Event()
        self.claim_entered = threading.Event()
        self.claim_gate = threading.Event()
        self.closed = threading.Event()

    async def try_claim(self, request: ClaimRequest) -> Task | None:
        if "gated-claim" in request.queues and not self.claim_entered.is_set():
            self.claim_entered.set()
            await asyncio.to_thread(self.claim_gate.wait, WAIT)
        return await super().try_claim(request)

    async def modify(self, request: ModifyRequest) -> ModifyResult:
        if any(d.queue == "gated" for d in request.inserts):
            self.entered.set()
            await asyncio.to_thread(self.gate.wait, WAIT)
        return await super().modify(request)

    async def aclose(self) -> None:
        self.closed.set()
        await super().aclose()


@pytest.fixture
def gated() -> Iterator[tuple[ServerThread, GatedBackend]]:
    backend = GatedBackend()
    srv = ServerThread(backend=backend).start()
    yield srv, backend
    backend.gate.set()
    backend.claim_gate.set()
    srv.stop()


def test_a_claim_whose_first_try_spans_the_drain_is_told_to_go_elsewhere(
    gated: tuple[ServerThread, GatedBackend],
) -> None:
    # drain() ends the claims already waiting; a claim still in its first try
    # at that moment must not start waiting afterwards (it would hold shutdown
    # for the whole grace period and then end CANCELLED, not UNAVAILABLE).
    srv, backend = gated
    assert srv.server is not None
    servicer = srv.server.servicer
    with grpc.insecure_channel(srv.address) as channel:
        stub = entroq_pb2_grpc.EntroQStub(channel)
        # A deadline far beyond the wait below: a claim that started waiting
        # after the drain would still be waiting when that wait gives up.
        claim = stub.Claim.future(
            pb.ClaimRequest(claimant_id="c", queues=["gated-claim"], duration_ms=1000),
            timeout=10 * WAIT,
        )
        assert backend.claim_entered.wait(WAIT)

        async def drain() -> int:
            return servicer.drain()

        assert asyncio.run_coroutine_threadsafe(drain(), srv.loop).result(WAIT) == 0
        backend.claim_gate.set()
        with pytest.raises(grpc.RpcError) as info:
            claim.result(WAIT)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        assert servicer.waiting_claims == 0


def test_shutdown_finishes_modify_ends_claims_and_closes_backend(
    gated: tuple[ServerThread, GatedBackend],
) -> None:
    srv, backend = gated
    assert srv.server is not None
    server = srv.server
    with grpc.insecure_channel(srv.address) as channel:
        stub = entroq_pb2_grpc.EntroQStub(channel)
        watch = serving_watch(channel, WAIT)
        modify = stub.Modify.future(
            pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="gated", value=b"v")]),
            timeout=WAIT,
        )
        claim = stub.Claim.future(
            pb.ClaimRequest(claimant_id="c", queues=["nothing"], duration_ms=1000), timeout=WAIT
        )
        assert backend.entered.wait(WAIT)
        servicer = server.servicer
        deadline = time.monotonic() + WAIT
        while servicer.waiting_claims == 0:
            assert time.monotonic() < deadline, "the claim never reached the server"
            time.sleep(0.01)
        stopping = asyncio.run_coroutine_threadsafe(server.stop(grace=WAIT), srv.loop)
        # Health turns NOT_SERVING while the Modify is still in flight.
        assert next(watch).status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        # The waiting claim is told to go elsewhere at once.
        with pytest.raises(grpc.RpcError) as info:
            claim.result(WAIT)
        assert info.value.code() == grpc.StatusCode.UNAVAILABLE
        # Well past the half second after which a stop ends the calls it will not
        # serve: a Modify in flight is not one of them, it keeps the grace.
        time.sleep(2.0)
        assert not modify.done() and not backend.closed.is_set()
        backend.gate.set()
        done = modify.result(WAIT)
        assert done.inserted[0].value == b"v"
        stopping.result(WAIT)
        assert backend.closed.is_set()
    srv.server = None  # already stopped


def test_stop_ends_calls_it_will_never_serve_instead_of_waiting_out_the_grace(
    gated: tuple[ServerThread, GatedBackend],
) -> None:
    # A stopping server hands no more calls to the service, yet grpc holds the
    # calls it still has (those that arrived as it began to stop, open health
    # Watch streams) until the grace ends. With no EntroQ call left running,
    # the stop must end them rather than wait: here a Watch, against a grace
    # of ten minutes.
    srv, backend = gated
    assert srv.server is not None
    server = srv.server
    with grpc.insecure_channel(srv.address) as channel:
        watch = serving_watch(channel, 10 * WAIT)
        stopping = asyncio.run_coroutine_threadsafe(server.stop(grace=10 * WAIT), srv.loop)
        stopping.result(WAIT)
        assert backend.closed.is_set()
        seen = []
        with pytest.raises(grpc.RpcError) as info:
            for reply in watch:
                seen.append(reply.status)
        assert info.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED)
        assert set(seen) <= {health_pb2.HealthCheckResponse.NOT_SERVING}
    srv.server = None  # already stopped


def test_module_entry_point_runs_the_same_command() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entroq_svc", "--list-backends"],
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert done.returncode == 0 and "mem" in done.stdout


def test_a_waiting_claim_fails_when_the_service_freezes_instead_of_waiting_forever() -> None:
    """The service stops answering (SIGSTOP: its host froze or vanished; the kernel
    still holds the connection open). A claim waiting on it must end with
    BackendUnavailable once keepalive pings go unanswered, not wait for ever: a
    worker could not move on to a service that took over meanwhile."""
    svc = start_svc("mem")
    try:

        async def run() -> None:
            eq = await AsyncEntroQ.open(svc.url + "?keepalive_seconds=1")
            try:
                waiting = asyncio.create_task(eq.claim("frozen/q", 30))
                await asyncio.sleep(0.5)
                assert not waiting.done()
                os.kill(svc.proc.pid, signal.SIGSTOP)
                try:
                    with pytest.raises(BackendUnavailable):
                        async with asyncio.timeout(20):  # 1 s pings, 1 s to answer
                            await waiting
                finally:
                    os.kill(svc.proc.pid, signal.SIGCONT)
            finally:
                await eq.aclose()

        asyncio.run(run())
        assert svc.terminate() == 0
    finally:
        svc.close()
