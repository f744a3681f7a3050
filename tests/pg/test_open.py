"""Opening: URLs, credentials, unreachable servers, the registry; each one clear error."""

from __future__ import annotations

import asyncio

import psycopg
import pytest

import entroq_pg
from entroq_core import AsyncEntroQ, Modification, connect
from entroq_core.errors import AuthenticationError, BackendUnavailable, InvalidArgument
from scripts.servers import postgres


def _with_password(url: str, password: str) -> str:
    scheme, rest = url.split("://", 1)
    userinfo, host = rest.split("@", 1)
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:{password}@{host}"


def test_wrong_password_is_one_authentication_error(pg_url: str) -> None:
    bad = _with_password(pg_url, "definitely-wrong")
    with pytest.raises(AuthenticationError) as info:
        asyncio.run(entroq_pg.open_backend(bad))
    message = str(info.value)
    assert "definitely-wrong" not in message  # the password never appears
    assert "password" in message.lower() or "authentication" in message.lower()


def test_nothing_listening_is_backend_unavailable() -> None:
    url = f"pg://u:p@127.0.0.1:{postgres.free_port()}/db"
    with pytest.raises(BackendUnavailable) as info:
        asyncio.run(entroq_pg.open_backend(url))
    assert "127.0.0.1" in str(info.value)
    assert ":p@" not in str(info.value)


def test_missing_database_is_one_clear_error(pg_url: str) -> None:
    # Not "unavailable": no retry brings the database, so entroq-svc exits 2.
    base = pg_url.rsplit("/", 1)[0]
    with pytest.raises(InvalidArgument, match="no_such_db") as info:
        asyncio.run(entroq_pg.open_backend(f"{base}/no_such_db"))
    assert (info.value.field, info.value.value) == ("database", "no_such_db")


def test_ssl_required_of_a_server_without_it_is_invalid(pg_url: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        asyncio.run(entroq_pg.open_backend(f"{pg_url}?sslmode=require"))
    assert info.value.field == "sslmode"


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("mysql://host/db", "url"),
        ("pg://host:notaport/db", "url"),
        ("pg://host/db?no_such_libpq_option=1", "url"),
        ("pg://host/db?pool_max=zero", "pool_max"),
        ("pg://host/db?pool_min=5&pool_max=2", "pool_max"),
        ("pg://host/db?migrate=perhaps", "migrate"),
        ("pg://host/db?pool_min=-1", "pool_min"),
        ("pg://host/db?pool_timeout=nan", "pool_timeout"),
        ("pg://host/db?pool_timeout=inf", "pool_timeout"),
        ("pg://host/db?pool_max=2&pool_max=3", "url"),
    ],
)
def test_malformed_urls_are_invalid_arguments(url: str, field: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        asyncio.run(entroq_pg.open_backend(url))
    assert info.value.field == field


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("pool_max=zero", "invalid pool_max='zero': must be a whole number"),
        ("pool_max=2.5", "invalid pool_max='2.5': must be a whole number"),
        ("pool_timeout=soon", "invalid pool_timeout='soon': must be a number"),
    ],
)
def test_option_errors_say_what_the_value_must_be(query: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        asyncio.run(entroq_pg.open_backend(f"pg://host/db?{query}"))
    assert str(info.value) == message


@pytest.mark.parametrize(("option", "value"), [("pool_max", 2.5), ("pool_max", True)])
def test_keyword_options_are_not_quietly_converted(option: str, value: object) -> None:
    with pytest.raises(InvalidArgument) as info:
        asyncio.run(entroq_pg.open_backend("pg://host/db", **{option: value}))
    assert info.value.field == option
    assert "must be a whole number" in str(info.value)


def test_unknown_keyword_option_is_invalid() -> None:
    with pytest.raises(InvalidArgument) as info:
        asyncio.run(entroq_pg.open_backend("pg://h/db", pool_size=3))
    assert info.value.field == "options"


@pytest.mark.parametrize("scheme", ["pg", "postgresql"])
def test_registered_schemes_open_through_core(pg_url: str, scheme: str) -> None:
    url = scheme + "://" + pg_url.split("://", 1)[1]

    async def run() -> None:
        backend = await connect(url)
        try:
            assert isinstance(backend, entroq_pg.PgBackend)
            eq = AsyncEntroQ(backend)
            result = await eq.modify(Modification().insert(f"open/{scheme}", b"v"))
            assert result.inserted[0].value == b"v"
            await eq.modify(Modification().delete(result.inserted[0]))
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_calls_after_close_are_unavailable(pg_url: str) -> None:
    async def run() -> None:
        backend = await entroq_pg.open_backend(pg_url)
        await backend.aclose()
        with pytest.raises(BackendUnavailable):
            await backend.time()

    asyncio.run(run())


def test_bare_scheme_uses_pg_environment_variables(
    pg_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from urllib.parse import urlsplit

    parts = urlsplit(pg_url)
    monkeypatch.setenv("PGHOST", parts.hostname or "")
    monkeypatch.setenv("PGPORT", str(parts.port))
    monkeypatch.setenv("PGUSER", parts.username or "")
    monkeypatch.setenv("PGPASSWORD", parts.password or "")
    monkeypatch.setenv("PGDATABASE", parts.path.lstrip("/"))

    async def run() -> None:
        backend = await connect("pg://")
        try:
            assert (await backend.time()).tzinfo is not None
        finally:
            await backend.aclose()

    asyncio.run(run())


def test_escaped_spaces_reach_libpq_as_spaces(pg_url: str) -> None:
    # The usual way to set a server setting for every connection: options=-c ...
    query = "application_name=entroq%20test%20app&options=-c%20lock_timeout%3D1234"

    async def run() -> None:
        backend = await entroq_pg.open_backend(f"{pg_url}?{query}")
        try:
            await backend.time()
            async with await psycopg.AsyncConnection.connect(pg_url) as conn:
                cur = await conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s",
                    ("entroq test app",),
                )
                row = await cur.fetchone()
                assert row is not None and row[0] >= 1
        finally:
            await backend.aclose()

    asyncio.run(run())
