"""Fixtures for the etcd backend tests: a real etcd, started here or given by URL."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest

from scripts.servers.etcd import INSTALL_HINT, URL_ENV, EtcdCluster, etcd_binary, running_etcd


def require_etcd() -> None:
    """Skip (or, under CI, fail) when the etcd binary is missing."""
    if etcd_binary() is None:
        message = f"etcd is not installed; install it with: {INSTALL_HINT}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


@pytest.fixture(scope="session")
def etcd_server_url() -> Iterator[str]:
    """URL of a single etcd member for the whole session (ENTROQ_TEST_ETCD_URL wins)."""
    given = os.environ.get(URL_ENV)
    if given:
        yield given
        return
    require_etcd()
    cluster = EtcdCluster(1).start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def etcd_url(etcd_server_url: str) -> str:
    """The session's etcd with a fresh key prefix, so tests never see each other's keys."""
    return f"{etcd_server_url.rstrip('/')}/entroq-test-{uuid.uuid4().hex[:12]}/"


@pytest.fixture
def own_etcd() -> Iterator[EtcdCluster]:
    """A throwaway single-member etcd of one test's own, to stop, freeze or restart."""
    require_etcd()
    with running_etcd() as cluster:
        yield cluster
