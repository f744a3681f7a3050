"""The README's examples run as written."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"
EXAMPLE = re.compile(r"<!-- readme-example: (\S+) -->\n```python\n(.*?)```", re.S)


def examples() -> dict[str, str]:
    """Code blocks marked `<!-- readme-example: NAME -->` in the README, by name."""
    return dict(EXAMPLE.findall(README.read_text()))


def run_example(name: str) -> str:
    code = examples()[name]
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_readme_has_the_examples() -> None:
    assert {"quickstart", "sync"} <= set(examples())


def test_quickstart_example() -> None:
    out = run_example("quickstart")
    assert "working on b'resize" in out
    assert "version 1" in out
    assert "stale commit refused" in out
    # One job left, one result recorded.
    assert "{'done': 1, 'jobs': 1}" in out


def test_sync_example() -> None:
    assert run_example("sync").strip() == "sent to hello@example.com"


@pytest.mark.parametrize("command", ["hatch test", "hatch run entroq-svc"])
def test_readme_shows_the_two_commands(command: str) -> None:
    assert command in README.read_text()
