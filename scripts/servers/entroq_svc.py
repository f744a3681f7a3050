"""entroq-svc servers for tests and benchmarks: a real subprocess, or a thread in-process.

with svc_process("mem") as url:          # `entroq-svc --backend mem` on a free port
    ...
with ServerThread("mem://") as server:   # same server code, own event loop thread
    server.url, server.servicer ...
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

from entroq_core.backend import Backend
from entroq_core.registry import connect
from entroq_svc.server import EntroQServer
from entroq_svc.tls import TlsFiles

STARTUP_SECONDS = 60.0


def svc_command() -> list[str]:
    """How to run entroq-svc: the installed console script, else the module."""
    script = Path(sys.executable).with_name("entroq-svc")
    if script.exists():
        return [str(script)]
    found = shutil.which("entroq-svc")
    return [found] if found else [sys.executable, "-m", "entroq_svc"]


class SvcProcess:
    """A running ``entroq-svc`` subprocess."""

    def __init__(self, proc: subprocess.Popen[str], address: str, log: IO[str]) -> None:
        self.proc = proc
        self.address = address
        self.url = f"grpc://{address}"
        self._log = log

    def logs(self) -> str:
        """Everything the server wrote to stderr so far (JSON lines)."""
        self._log.seek(0)
        return self._log.read()

    def close(self) -> None:
        """Release the pipes and the log file (after the process has ended)."""
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self._log.close()

    def terminate(self, timeout: float = 60.0) -> int:
        """Send SIGTERM and return the exit status (kills it if it overstays ``timeout``)."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise
        finally:
            if self.proc.stdout is not None:
                self.proc.stdout.close()


def start_svc(
    backend: str = "mem", extra: Sequence[str] = (), env: dict[str, str] | None = None
) -> SvcProcess:
    """Start ``entroq-svc --backend BACKEND --port 0`` and wait for its listening line."""
    # Logs go to a file, not a pipe nobody drains, so a chatty server never blocks.
    log = tempfile.TemporaryFile("w+")  # noqa: SIM115 - closed by SvcProcess.close
    proc = subprocess.Popen(
        [*svc_command(), "--backend", backend, "--host", "127.0.0.1", "--port", "0", *extra],
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
        env={**os.environ, **(env or {})},
    )
    assert proc.stdout is not None
    line_box: list[str] = []
    reader = threading.Thread(target=lambda: line_box.append(proc.stdout.readline()), daemon=True)  # type: ignore[union-attr]
    reader.start()
    reader.join(STARTUP_SECONDS)
    line = line_box[0] if line_box else ""
    svc = SvcProcess(proc, line.rsplit("listening on ", 1)[-1].strip(), log)
    if "listening on " not in line:
        proc.kill()
        proc.wait()
        logs = svc.logs()
        svc.close()
        raise RuntimeError(f"entroq-svc did not start: {line!r}\n{logs}")
    return svc


# grpc:// URL -> pid of each entroq-svc that svc_process is running, so that a
# benchmark given only the URL can read the service's own CPU use.
_RUNNING: dict[str, int] = {}


def svc_pid(url: str) -> int | None:
    """The pid of the ``svc_process`` serving ``url``, or None if it is not one."""
    return _RUNNING.get(url)


@contextmanager
def svc_process(backend: str = "mem", extra: Sequence[str] = ()) -> Iterator[str]:
    """A throwaway ``entroq-svc`` process; yields its grpc:// URL and stops it by pid."""
    svc = start_svc(backend, extra)
    _RUNNING[svc.url] = svc.proc.pid
    try:
        yield svc.url
    finally:
        _RUNNING.pop(svc.url, None)
        svc.terminate()
        svc.close()


class ServerThread:
    """An EntroQServer on its own event loop in a daemon thread, for in-process tests."""

    def __init__(
        self,
        backend_url: str = "mem://",
        *,
        backend: Backend | None = None,
        port: int = 0,
        max_message_mb: float = 10,
        tls: TlsFiles | None = None,
        interceptors: Sequence[Any] = (),
    ) -> None:
        self._backend_url = backend_url
        self._backend = backend
        self._port = port
        self._options: dict[str, Any] = {
            "max_message_mb": max_message_mb,
            "tls": tls,
            "interceptors": tuple(interceptors),
        }
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: EntroQServer | None = None

    def run(self, coro: Any, timeout: float | None = STARTUP_SECONDS) -> Any:
        """Run a coroutine on the server's loop and return its result."""
        fut: Future[Any] = asyncio.run_coroutine_threadsafe(coro, self.loop)
        return fut.result(timeout)

    def start(self) -> ServerThread:
        """Start the loop and the server."""
        self._thread.start()

        async def start() -> EntroQServer:
            backend = self._backend or await connect(self._backend_url)
            return await EntroQServer.start(
                backend, host="127.0.0.1", port=self._port, **self._options
            )

        self.server = self.run(start())
        return self

    @property
    def port(self) -> int:
        """The bound port."""
        assert self.server is not None
        return self.server.port

    @property
    def address(self) -> str:
        """``127.0.0.1:PORT``."""
        return f"127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """``grpc://127.0.0.1:PORT`` (plaintext; build grpcs:// URLs yourself)."""
        return f"grpc://{self.address}"

    def stop(self, grace: float = 5.0) -> None:
        """Stop the server and the loop."""
        if self.server is not None:
            self.run(self.server.stop(grace), timeout=grace + STARTUP_SECONDS)
            self.server = None
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(STARTUP_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
