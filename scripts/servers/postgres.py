"""Start a throwaway PostgreSQL server for tests and benchmarks.

initdb + postgres in a temp dir on a free 127.0.0.1 port, as an unprivileged
user when run as root (postgres refuses root), stopped by pid with a fast
shutdown. ``ENTROQ_TEST_PG_URL`` (see :func:`external_url`) names an existing
server instead. The binaries come from /usr/local/bin, PATH, or Debian's
``apt-get install -y postgresql`` (/usr/lib/postgresql/<version>/bin).

Run ``python -m scripts.servers.postgres`` to start one by hand; it prints the
URL and stops on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

ENV_URL = "ENTROQ_TEST_PG_URL"
INSTALL_HINT = "apt-get update && apt-get install -y postgresql"
SUPERUSER = "entroq"


def external_url() -> str | None:
    """The URL of an existing server to use instead of starting one, if configured."""
    return os.environ.get(ENV_URL) or None


def find_bindir() -> Path | None:
    """Return the directory holding initdb and postgres, or None if not installed."""
    candidates = []
    on_path = shutil.which("initdb")
    if on_path:
        candidates.append(Path(on_path).resolve().parent)
    candidates.append(Path("/usr/local/bin"))
    # Debian puts server binaries off PATH; prefer the newest version.
    versions = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"),
        key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(Path(p) for p in versions)
    for bindir in candidates:
        if (bindir / "initdb").is_file() and (bindir / "postgres").is_file():
            return bindir
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _run_as() -> tuple[int, int] | None:
    """(uid, gid) to run postgres as, or None to run as ourselves."""
    if os.geteuid() != 0:
        return None
    user = pwd.getpwnam(os.environ.get("ENTROQ_PG_USER", "nobody"))
    return user.pw_uid, user.pw_gid


class _DiedAtStart(RuntimeError):
    """The postmaster exited before it was ready."""


class PostgresServer:
    """One PostgreSQL instance in a private temp dir."""

    def __init__(
        self,
        bindir: Path | None = None,
        *,
        settings: dict[str, str] | None = None,
    ) -> None:
        found = bindir or find_bindir()
        if found is None:
            raise FileNotFoundError(f"PostgreSQL server binaries not found; {INSTALL_HINT}")
        self.bindir = found
        self.settings = dict(settings or {})
        self.password = secrets.token_hex(8)
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.root = Path(tempfile.mkdtemp(prefix="entroq-pg-"))
        self.datadir = self.root / "data"
        self.logfile = self.root / "postgres.log"
        self._owner = _run_as()
        if self._owner is not None:
            os.chown(self.root, *self._owner)
        self._initdb()

    @property
    def url(self) -> str:
        """A postgresql:// URL for the superuser (password auth over TCP)."""
        return self.url_for("postgres")

    def url_for(self, database: str, *, password: str | None = None) -> str:
        """A URL to ``database`` on this server, optionally with another password."""
        pw = self.password if password is None else password
        return f"postgresql://{SUPERUSER}:{pw}@127.0.0.1:{self.port}/{database}"

    def _popen_user(self) -> dict[str, int]:
        if self._owner is None:
            return {}
        uid, gid = self._owner
        return {"user": uid, "group": gid, "extra_groups": []}

    def _initdb(self) -> None:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password + "\n")
        if self._owner is not None:
            os.chown(pwfile, *self._owner)
        subprocess.run(
            [
                str(self.bindir / "initdb"),
                "-D",
                str(self.datadir),
                "-U",
                SUPERUSER,
                "-E",
                "UTF8",
                "--locale=C",
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
            ],
            check=True,
            capture_output=True,
            cwd=self.root,
            **self._popen_user(),  # type: ignore[call-overload]
        )
        pwfile.unlink()

    def start(self, timeout: float = 60.0) -> str:
        """Start the server (again, on the same data dir and port) and return its URL.

        A start right after a stop gets a second try: in loaded full-suite runs
        here the new postmaster now and then died at once (exit -11, nothing in
        its log), twice in about ten runs, failing restart tests for a reason
        outside them.
        """
        try:
            return self._start_once(timeout)
        except _DiedAtStart:
            time.sleep(1.0)
            return self._start_once(timeout)

    def _start_once(self, timeout: float) -> str:
        if self.proc is not None and self.proc.poll() is None:
            return self.url
        if not self.port:
            self.port = free_port()
        args = [
            str(self.bindir / "postgres"),
            "-D",
            str(self.datadir),
            "-c",
            "listen_addresses=127.0.0.1",
            "-c",
            f"port={self.port}",
            "-c",
            f"unix_socket_directories={self.root}",
        ]
        for key, value in self.settings.items():
            args += ["-c", f"{key}={value}"]
        log = open(self.logfile, "ab")  # noqa: SIM115 - handed to the child
        try:
            self.proc = subprocess.Popen(
                args,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=self.root,
                start_new_session=True,
                **self._popen_user(),  # type: ignore[call-overload]
            )
        finally:
            log.close()
        self._wait_ready(timeout)
        return self.url

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        pidfile = self.datadir / "postmaster.pid"
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise _DiedAtStart(
                    f"postgres exited with {self.proc.returncode}; log:\n{self.log_tail()}"
                )
            with contextlib.suppress(OSError):
                lines = pidfile.read_text().splitlines()
                # Line 8 of postmaster.pid is the server status once it is up.
                if len(lines) >= 8 and lines[7].strip() == "ready" and self._accepts():
                    return
            time.sleep(0.05)
        self.stop()
        raise TimeoutError(f"postgres not ready after {timeout}s; log:\n{self.log_tail()}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def stop(self, mode: str = "fast", timeout: float = 60.0) -> None:
        """Stop the server by pid: ``fast`` (SIGINT), ``smart`` (SIGTERM) or ``immediate``."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        proc.send_signal(sig)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def restart(self, mode: str = "fast") -> str:
        """Stop and start again on the same data dir and port."""
        self.stop(mode)
        return self.start()

    def cleanup(self) -> None:
        """Stop the server and delete its directory."""
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        """The last lines of the server log."""
        try:
            return "\n".join(self.logfile.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "<no log>"


@contextlib.contextmanager
def running(settings: dict[str, str] | None = None) -> Iterator[PostgresServer]:
    """Start a server for the duration of the block."""
    server = PostgresServer(settings=settings)
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


def main() -> None:
    """Start a server, print its URL, stop on Ctrl-C."""
    with running() as server:
        print(server.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
