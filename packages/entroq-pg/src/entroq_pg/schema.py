"""The database schema and its versioned migrations.

Everything lives in one PostgreSQL schema (default ``entroq``). ``schema_version``
holds a single row; a migration run locks that row, so concurrent openers
serialise instead of racing, and applies each missing step in one transaction.

Index design (the whole point of the table): the only secondary index is
``(queue, at, rnd)``. Every claim looks for ``at <= now`` inside one queue, so
this index finds available tasks in O(log n) whether the queue is mostly
available, mostly leased or mostly scheduled in the future, and also answers
"nothing available" and "next arrival" without scanning. A claim must move
``at`` (that is what a lease is), so claims can never be HOT updates while
``at`` is indexed; nothing the claim also writes (version, claimant, claims,
modified) is indexed, ``fillfactor`` leaves room for the new row version on the
same page, and autovacuum is told to visit this churning table early. See the
package README for the measurements.
"""

from __future__ import annotations

from collections.abc import Callable

import psycopg

from .errors import SchemaError

# Each step: a list of statements; {s} is the quoted schema name.
MIGRATIONS: list[list[str]] = [
    # 1: tasks and the claim index.
    [
        """
        CREATE TABLE {s}.tasks (
            id        text COLLATE "C" NOT NULL PRIMARY KEY,
            queue     text COLLATE "C" NOT NULL,
            version   bigint NOT NULL,
            at        timestamptz NOT NULL,
            rnd       integer NOT NULL,
            claims    bigint NOT NULL,
            attempt   integer NOT NULL,
            created   timestamptz NOT NULL,
            modified  timestamptz NOT NULL,
            claimant  text NOT NULL,
            err       text NOT NULL,
            value     bytea NOT NULL
        ) WITH (
            fillfactor = 70,
            autovacuum_vacuum_scale_factor = 0.02,
            autovacuum_vacuum_threshold = 1000,
            autovacuum_vacuum_cost_delay = 0
        )
        """,
        "CREATE INDEX tasks_claim ON {s}.tasks (queue, at, rnd)",
    ],
    # 2: which queues have waiting claims, so producers NOTIFY only those (waiters.py).
    # UNLOGGED: nothing here needs to survive a crash, and writes skip the WAL.
    [
        """
        CREATE UNLOGGED TABLE {s}.waiters (
            queue  text COLLATE "C" NOT NULL,
            token  text NOT NULL,
            until  timestamptz NOT NULL,
            PRIMARY KEY (queue, token)
        )
        """,
    ],
]

LATEST = len(MIGRATIONS)


def quote_ident(name: str) -> str:
    """Quote an identifier the way PostgreSQL expects (names here never hold NUL)."""
    return '"' + name.replace('"', '""') + '"'


async def current_version(conn: psycopg.AsyncConnection[object], schema: str) -> int | None:
    """Return the schema version in the database, or None if it was never created."""
    cur = await conn.execute(
        "SELECT 1 FROM information_schema.tables WHERE table_schema = %s"
        " AND table_name = 'schema_version'",
        (schema,),
    )
    if await cur.fetchone() is None:
        return None
    s = quote_ident(schema)
    cur = await conn.execute(f"SELECT version FROM {s}.schema_version")
    row = await cur.fetchone()
    return int(row[0]) if row else 0  # type: ignore[index]


async def migrate(
    conn: psycopg.AsyncConnection[object],
    schema: str,
    *,
    target: int = LATEST,
    log: Callable[[str], None] | None = None,
) -> tuple[int, int]:
    """Bring ``schema`` up to ``target``; return (version before, version after).

    Safe to run concurrently and repeatedly. ``conn`` must be in autocommit mode.

    Raises:
        SchemaError: the database is at a newer version than this code knows.
    """
    s = quote_ident(schema)
    # Already there: nothing to create, so a user with only data rights (the
    # usual way to run a service against a schema its owner migrated) can open it.
    now = await current_version(conn, schema)
    check_supported(now, schema)
    if now is not None and now >= target:
        return now, now
    # CREATE ... IF NOT EXISTS can still collide with a concurrent creator on the
    # catalog's unique indexes; a second try then sees the winner's objects.
    for attempt in range(3):
        try:
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {s}")
            await conn.execute(
                f"CREATE TABLE IF NOT EXISTS {s}.schema_version ("
                " singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),"
                " version integer NOT NULL)"
            )
            await conn.execute(
                f"INSERT INTO {s}.schema_version (version) VALUES (0) ON CONFLICT DO NOTHING"
            )
            break
        except (
            psycopg.errors.UniqueViolation,
            psycopg.errors.DuplicateObject,
            psycopg.errors.DuplicateTable,
            psycopg.errors.DuplicateSchema,
        ):
            if attempt == 2:
                raise
    async with conn.transaction():
        cur = await conn.execute(f"SELECT version FROM {s}.schema_version FOR UPDATE")
        row = await cur.fetchone()
        before = int(row[0])  # type: ignore[index]
        check_supported(before, schema)
        for version in range(before + 1, target + 1):
            for statement in MIGRATIONS[version - 1]:
                await conn.execute(statement.format(s=s))
            await conn.execute(f"UPDATE {s}.schema_version SET version = %s", (version,))
            if log is not None:
                log(f"schema {schema!r}: applied migration {version}")
    return before, max(before, target)


def check_supported(version: int | None, schema: str) -> None:
    """Refuse a database whose schema is newer than this code.

    Raises:
        SchemaError: ``version`` is above :data:`LATEST`.
    """
    if version is not None and version > LATEST:
        raise SchemaError(
            f"PostgreSQL schema {schema!r} is at version {version}, but this entroq-pg only"
            f" knows versions up to {LATEST}; upgrade entroq-pg before using this database"
        )


def check_current(version: int | None, schema: str) -> None:
    """Refuse a database whose schema is missing or older than this code (migrate=false).

    Raises:
        SchemaError: the schema is absent, behind, or ahead.
    """
    check_supported(version, schema)
    if version is None or version < LATEST:
        found = "absent" if version is None else f"at version {version}"
        raise SchemaError(
            f"PostgreSQL schema {schema!r} is {found}, this code needs version {LATEST};"
            " run `python -m entroq_pg migrate URL` or open with migrate=true"
        )
