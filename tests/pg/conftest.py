"""PostgreSQL fixtures: one throwaway server per session (or ENTROQ_TEST_PG_URL)."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from scripts.servers import postgres


def _missing(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails instead of skipping)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[postgres.PostgresServer | None]:
    """The session's server, or None when ENTROQ_TEST_PG_URL points at one."""
    if postgres.external_url():
        yield None
        return
    if postgres.find_bindir() is None:
        _missing(f"PostgreSQL server binaries not found; install with: {postgres.INSTALL_HINT}")
    server = postgres.PostgresServer(settings={"max_connections": "300", "fsync": "off"})
    try:
        server.start()
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def pg_admin_url(pg_server: postgres.PostgresServer | None) -> str:
    """A superuser URL (postgresql://) of the session's server."""
    return postgres.external_url() or pg_server.url  # type: ignore[union-attr]


@pytest.fixture(scope="session")
def pg_url(pg_admin_url: str) -> str:
    """The pg:// URL tests open backends with (default schema)."""
    return pg_admin_url


@pytest.fixture
def fresh_db(pg_admin_url: str) -> Iterator[str]:
    """A new empty database for one test; its URL."""
    name = f"t_{uuid.uuid4().hex[:12]}"

    async def admin(statement: str) -> None:
        async with await psycopg.AsyncConnection.connect(pg_admin_url, autocommit=True) as conn:
            await conn.execute(statement)  # type: ignore[arg-type]

    asyncio.run(admin(f'CREATE DATABASE "{name}"'))
    base, _, _ = pg_admin_url.rpartition("/")
    try:
        yield f"{base}/{name}"
    finally:
        asyncio.run(admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
