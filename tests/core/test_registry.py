"""Backend discovery by URL scheme."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

import entroq_core
from entroq_core import InvalidArgument, UnknownBackend, connect, installed_schemes, register
from entroq_core.mem import MemBackend
from entroq_core.registry import (
    KNOWN_DISTRIBUTIONS,
    load_all,
    opener_for,
    scheme_of,
    unregister,
)


def test_mem_is_found_through_its_entry_point() -> None:
    assert "mem" in installed_schemes()
    assert opener_for("mem") is entroq_core.mem.open_backend

    async def main() -> None:
        backend = await connect("mem://")
        assert isinstance(backend, MemBackend)
        await backend.aclose()

    asyncio.run(main())


def test_unknown_scheme_lists_installed_and_names_the_package() -> None:
    with pytest.raises(UnknownBackend) as info:
        opener_for("nosuch")
    assert "nosuch" in str(info.value)
    assert "installed: " in str(info.value) and "mem" in str(info.value)


def test_known_but_missing_scheme_suggests_its_distribution(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Every first-party backend is installed in the workspace, so name one that is not.
    monkeypatch.setitem(KNOWN_DISTRIBUTIONS, "fancy", "entroq-fancy")
    with pytest.raises(UnknownBackend, match="pip install entroq-fancy"):
        opener_for("fancy")


@pytest.mark.parametrize("url", ["", "no-scheme-here", 42])
def test_malformed_urls_are_invalid_arguments(url: Any) -> None:
    with pytest.raises(InvalidArgument) as info:
        scheme_of(url)
    assert info.value.field == "url"


def test_register_wins_and_unregister_forgets() -> None:
    opened: list[str] = []

    async def opener(url: str, **options: Any) -> MemBackend:
        opened.append(url)
        return MemBackend()

    register("Custom", opener)
    try:
        assert "custom" in installed_schemes()

        async def main() -> None:
            backend = await connect("CUSTOM://somewhere")
            await backend.aclose()

        asyncio.run(main())
        assert opened == ["CUSTOM://somewhere"]
        ok, broken = load_all()
        assert "custom" in ok and "mem" in ok
        assert all(b.scheme != "mem" for b in broken)
    finally:
        unregister("custom")
    assert "custom" not in installed_schemes()


def test_mem_rejects_options_and_foreign_urls() -> None:
    async def main() -> None:
        with pytest.raises(InvalidArgument) as info:
            await entroq_core.mem.open_backend("mem://", pool=3)
        assert info.value.field == "options"
        with pytest.raises(InvalidArgument):
            await entroq_core.mem.open_backend("pg://x")

    asyncio.run(main())
