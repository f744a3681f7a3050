"""Start throwaway etcd servers on loopback for tests and benchmarks.

    python -m scripts.servers.etcd               # one member; prints its etcd:// URL
    python -m scripts.servers.etcd --members 3   # a 3-member cluster

Each member gets a temp data dir and free 127.0.0.1 client and peer ports, and is
stopped by pid. Standard library only, so tests and benchmarks can use it before
anything else is importable.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

INSTALL_HINT = "apt-get install -y etcd-server"
URL_ENV = "ENTROQ_TEST_ETCD_URL"
# etcd's default of 128 operations per Txn caps a modification at ~30 tasks; the
# backend reports that limit clearly, but tests and benchmarks want headroom.
MAX_TXN_OPS = 4096
COMPACTION_RETENTION = "1m"


class EtcdNotInstalled(RuntimeError):
    """The etcd binary is not on this machine."""


def etcd_binary() -> str | None:
    """Return the path of the etcd server binary, or None if it is not installed."""
    return shutil.which("etcd") or (
        "/usr/bin/etcd" if os.access("/usr/bin/etcd", os.X_OK) else None
    )


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class EtcdMember:
    """One etcd process with its own data dir and loopback ports."""

    def __init__(self, name: str, root: Path, binary: str, flags: tuple[str, ...] = ()) -> None:
        self.name = name
        self.binary = binary
        self.flags = flags  # more command-line flags, after the launcher's own
        self.data_dir = root / name
        self.log_path = root / f"{name}.log"
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        """host:port of the client API."""
        return f"127.0.0.1:{self.client_port}"

    @property
    def peer_url(self) -> str:
        """URL the other members use to reach this one."""
        return f"http://127.0.0.1:{self.peer_port}"

    def start(self, initial_cluster: str, state: str = "new") -> None:
        """Start (or restart, keeping the data dir) the process."""
        if self.alive:
            return
        args = [
            self.binary,
            "--name",
            self.name,
            "--data-dir",
            str(self.data_dir),
            "--listen-client-urls",
            f"http://{self.endpoint}",
            "--advertise-client-urls",
            f"http://{self.endpoint}",
            "--listen-peer-urls",
            self.peer_url,
            "--initial-advertise-peer-urls",
            self.peer_url,
            "--initial-cluster",
            initial_cluster,
            "--initial-cluster-state",
            state,
            "--initial-cluster-token",
            f"entroq-test-{os.getpid()}",
            "--max-txn-ops",
            str(MAX_TXN_OPS),
            # Deleted keys stay in etcd's index until compacted and every range
            # walks them: as in production, compact the history regularly.
            "--auto-compaction-mode",
            "periodic",
            "--auto-compaction-retention",
            COMPACTION_RETENTION,
            *self.flags,
        ]
        log = self.log_path.open("ab")
        try:
            self.proc = subprocess.Popen(
                args, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        finally:
            log.close()

    @property
    def alive(self) -> bool:
        """True while the process runs."""
        return self.proc is not None and self.proc.poll() is None

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Send ``sig`` to the process (by pid) and reap it."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=15)
        self.proc = None

    def healthy(self) -> bool:
        """True if the member answers /health with a leader."""
        try:
            with urllib.request.urlopen(f"http://{self.endpoint}/health", timeout=1) as r:
                return b'"health":"true"' in r.read()
        except (OSError, urllib.error.URLError):
            return False

    def log_tail(self, lines: int = 20) -> str:
        """Return the last lines of the member's log."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


class EtcdCluster:
    """A throwaway etcd of one or more members on loopback."""

    def __init__(
        self, members: int = 1, binary: str | None = None, flags: tuple[str, ...] = ()
    ) -> None:
        binary = binary or etcd_binary()
        if binary is None:
            raise EtcdNotInstalled(f"etcd is not installed; install it with: {INSTALL_HINT}")
        self.root = Path(tempfile.mkdtemp(prefix="entroq-etcd-"))
        self.members = [EtcdMember(f"m{i}", self.root, binary, flags) for i in range(members)]
        self.initial_cluster = ",".join(f"{m.name}={m.peer_url}" for m in self.members)

    @property
    def endpoints(self) -> list[str]:
        """host:port of every member's client API."""
        return [m.endpoint for m in self.members]

    @property
    def url(self) -> str:
        """The etcd:// URL naming every member."""
        return "etcd://" + ",".join(self.endpoints)

    def start(self, timeout: float = 60.0) -> EtcdCluster:
        """Start every member and wait until all are healthy."""
        for m in self.members:
            m.start(self.initial_cluster)
        self.wait_healthy(self.members, timeout)
        return self

    def restart(self, member: EtcdMember, timeout: float = 60.0) -> None:
        """Start a stopped member again on its old data dir and ports."""
        member.start(self.initial_cluster, state="existing")
        self.wait_healthy([member], timeout)

    def wait_healthy(self, members: list[EtcdMember], timeout: float) -> None:
        """Wait until every given member reports a leader, or raise with its log."""
        deadline = time.monotonic() + timeout
        pending = list(members)
        while pending:
            pending = [m for m in pending if not m.healthy()]
            for m in pending:
                if not m.alive:
                    raise RuntimeError(f"etcd member {m.name} exited:\n{m.log_tail()}")
            if not pending:
                return
            if time.monotonic() > deadline:
                tails = "\n".join(f"--- {m.name}\n{m.log_tail()}" for m in pending)
                raise RuntimeError(f"etcd members not healthy after {timeout}s:\n{tails}")
            time.sleep(0.1)

    def stop(self) -> None:
        """Stop every member and remove the data dirs."""
        for m in self.members:
            m.kill(signal.SIGTERM)
        shutil.rmtree(self.root, ignore_errors=True)


@contextlib.contextmanager
def running_etcd(members: int = 1) -> Iterator[EtcdCluster]:
    """Run a throwaway etcd for the duration of the block."""
    cluster = EtcdCluster(members)
    try:
        yield cluster.start()
    finally:
        cluster.stop()


def main() -> None:
    """Run etcd until interrupted, printing its URL."""
    parser = argparse.ArgumentParser(description="run a throwaway etcd on loopback")
    parser.add_argument("--members", type=int, default=1)
    opts = parser.parse_args()
    with running_etcd(opts.members) as cluster:
        print(cluster.url, flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()
