"""Migrations: from empty, idempotent, concurrent, refusing newer schemas, the CLI."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

import entroq_pg
from entroq_core import AsyncEntroQ, Modification
from entroq_core.errors import PermissionDenied
from entroq_pg.schema import LATEST


async def _version(url: str, schema: str = "entroq") -> int | None:
    async with await psycopg.AsyncConnection.connect(url) as conn:
        cur = await conn.execute(
            "SELECT to_regclass(%s) IS NOT NULL", (f'"{schema}".schema_version',)
        )
        row = await cur.fetchone()
        if not row or not row[0]:
            return None
        cur = await conn.execute(f'SELECT version FROM "{schema}".schema_version')
        row = await cur.fetchone()
        return int(row[0]) if row else None


def test_open_migrates_an_empty_database(fresh_db: str) -> None:
    async def run() -> None:
        assert await _version(fresh_db) is None
        eq = AsyncEntroQ(await entroq_pg.open_backend(fresh_db))
        try:
            assert await _version(fresh_db) == LATEST
            done = await eq.modify(Modification().insert("m", b"x"))
            assert (await eq.tasks("m"))[0].id == done.inserted[0].id
        finally:
            await eq.aclose()

    asyncio.run(run())


def test_migrations_are_idempotent_and_keep_data(fresh_db: str) -> None:
    async def run() -> None:
        eq = AsyncEntroQ(await entroq_pg.open_backend(fresh_db))
        inserted = (await eq.modify(Modification().insert("keep", b"data"))).inserted[0]
        await eq.aclose()
        async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
            assert await entroq_pg.schema.migrate(conn, "entroq") == (LATEST, LATEST)
        for _ in range(2):
            eq = AsyncEntroQ(await entroq_pg.open_backend(fresh_db))
            assert await eq.tasks("keep") == [inserted]
            await eq.aclose()

    asyncio.run(run())


def test_concurrent_first_opens_all_succeed(fresh_db: str) -> None:
    async def run() -> None:
        backends = await asyncio.gather(*(entroq_pg.open_backend(fresh_db) for _ in range(6)))
        for b in backends:
            await b.aclose()
        assert await _version(fresh_db) == LATEST

    asyncio.run(run())


def test_separate_schemas_hold_separate_tasks(fresh_db: str) -> None:
    async def run() -> None:
        a = AsyncEntroQ(await entroq_pg.open_backend(fresh_db + "?schema=alpha"))
        b = AsyncEntroQ(await entroq_pg.open_backend(fresh_db, schema="beta"))
        try:
            await a.modify(Modification().insert("shared-name", b"a"))
            assert await b.tasks("shared-name") == []
            assert [t.value for t in await a.tasks("shared-name")] == [b"a"]
        finally:
            await a.aclose()
            await b.aclose()

    asyncio.run(run())


def test_newer_schema_is_refused_with_a_clear_message(fresh_db: str) -> None:
    async def run() -> None:
        await (await entroq_pg.open_backend(fresh_db)).aclose()
        async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
            await conn.execute("UPDATE entroq.schema_version SET version = %s", (LATEST + 1,))
        for migrate in (True, False):
            with pytest.raises(entroq_pg.SchemaError, match=f"version {LATEST + 1}"):
                await entroq_pg.open_backend(fresh_db, migrate=migrate)

    asyncio.run(run())


def test_migrate_off_refuses_a_missing_schema(fresh_db: str) -> None:
    async def run() -> None:
        with pytest.raises(entroq_pg.SchemaError, match="python -m entroq_pg migrate"):
            await entroq_pg.open_backend(fresh_db + "?migrate=false")
        assert await _version(fresh_db) is None

    asyncio.run(run())


def test_cli_migrates_then_reports_up_to_date(fresh_db: str) -> None:
    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "entroq_pg", *args],
            capture_output=True,
            text=True,
            timeout=120,
        )

    first = cli("migrate", fresh_db, "--schema", "clischema")
    assert first.returncode == 0, first.stderr
    assert f"to {LATEST}" in first.stdout
    again = cli("migrate", fresh_db, "--schema", "clischema")
    assert again.returncode == 0, again.stderr
    assert "already at version" in again.stdout
    status = cli("status", fresh_db, "--schema", "clischema")
    assert f"version {LATEST}" in status.stdout
    assert asyncio.run(_version(fresh_db, "clischema")) == LATEST
    bad = cli("migrate", "pg://127.0.0.1:1/x")
    assert bad.returncode == 1
    assert "error:" in bad.stderr and "Traceback" not in bad.stderr


def _as_user(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


def test_a_user_with_only_data_rights_opens_a_migrated_schema(fresh_db: str) -> None:
    """The owner migrates; services then run as a user that may only read and
    write the tables (the default migrate=true must not need CREATE rights
    for a schema that is already current)."""
    tag = uuid.uuid4().hex[:8]
    worker, stranger = f"worker_{tag}", f"stranger_{tag}"

    async def admin(*statements: str) -> None:
        async with await psycopg.AsyncConnection.connect(fresh_db, autocommit=True) as conn:
            for statement in statements:
                await conn.execute(statement)  # type: ignore[arg-type]

    async def run() -> None:
        await (await entroq_pg.open_backend(fresh_db)).aclose()
        await admin(
            f"CREATE ROLE {worker} LOGIN PASSWORD 'pw'",
            f"CREATE ROLE {stranger} LOGIN PASSWORD 'pw'",
            f"GRANT USAGE ON SCHEMA entroq TO {worker}",
            f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA entroq TO {worker}",
        )
        try:
            async with await AsyncEntroQ.open(_as_user(fresh_db, worker, "pw")) as eq:
                await eq.modify(Modification().insert("rights/q", b"v"))
                task = await eq.try_claim("rights/q", 30)
                assert task is not None and task.value == b"v"
            with pytest.raises(PermissionDenied) as info:
                await entroq_pg.open_backend(_as_user(fresh_db, stranger, "pw"))
            assert "python -m entroq_pg migrate" in str(info.value)
        finally:
            for role in (worker, stranger):
                await admin(f"DROP OWNED BY {role}", f"DROP ROLE {role}")

    asyncio.run(run())
