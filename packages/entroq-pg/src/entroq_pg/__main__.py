"""``python -m entroq_pg migrate URL``: create or upgrade the schema; ``status`` reports it."""

from __future__ import annotations

import argparse
import asyncio
import sys

import psycopg

from entroq_core.errors import EntroQError

from .config import parse_url
from .errors import translate, translate_connect
from .schema import LATEST, check_supported, current_version, migrate


async def _run(command: str, url: str, schema: str | None) -> str:
    options = {"schema": schema} if schema else {}
    config = parse_url(url, **options)
    try:
        conn = await psycopg.AsyncConnection.connect(config.conninfo, autocommit=True)
    except Exception as exc:
        raise translate_connect(exc, f"connecting to {config.display}") from None
    try:
        if command == "status":
            version = await current_version(conn, config.schema)
            check_supported(version, config.schema)
            found = "absent" if version is None else f"version {version}"
            return f"schema {config.schema!r}: {found} (this code: {LATEST})"
        before, after = await migrate(conn, config.schema, log=print)
        if before == after:
            return f"schema {config.schema!r} already at version {after}"
        return f"schema {config.schema!r} migrated from version {before} to {after}"
    except EntroQError:
        raise
    except Exception as exc:
        raise translate(exc, f"schema {config.schema!r}") from None
    finally:
        await conn.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m entroq_pg``."""
    parser = argparse.ArgumentParser(prog="python -m entroq_pg", description=__doc__)
    parser.add_argument("command", choices=["migrate", "status"])
    parser.add_argument("url", help="pg:// or postgresql:// URL (empty parts from PG* variables)")
    parser.add_argument("--schema", help="PostgreSQL schema to use (default: entroq)")
    args = parser.parse_args(argv)
    try:
        print(asyncio.run(_run(args.command, args.url, args.schema)))
    except EntroQError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
