"""The entroq command, in-process against a shared mem store and as a real process."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from entroq_core import AsyncEntroQ
from entroq_core.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from entroq_core.mem import MemBackend, open_backend

URL = "mem://cli-tests"


@pytest.fixture
def store() -> Iterator[MemBackend]:
    # Holding a handle keeps the named store alive between CLI invocations.
    backend = asyncio.run(open_backend(URL))
    yield backend
    asyncio.run(backend.aclose())


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["--url", URL, *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_insert_list_stats_and_json(store: MemBackend, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = cli(capsys, "ins", "cli/q", "hello", "wörld")
    assert code == EXIT_OK
    assert len(out.splitlines()) == 2 and all(":v0" in line for line in out.splitlines())
    code, out, _ = cli(capsys, "--json", "ts", "cli/q")
    tasks = json.loads(out)
    assert sorted(t["value"] for t in tasks) == ["hello", "wörld"]
    assert {t["value_encoding"] for t in tasks} == {"utf-8"}
    code, out, _ = cli(capsys, "qs", "--prefix", "cli/")
    header, row = out.splitlines()
    assert header.split() == ["QUEUE", "TASKS", "AVAILABLE", "CLAIMED", "FUTURE", "MAX_CLAIMS"]
    assert row.split() == ["cli/q", "2", "2", "0", "0", "0"]


def test_binary_values_show_as_base64(
    store: MemBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli(capsys, "ins", "cli/bin", "AAH/", "--base64")[0] == EXIT_OK
    code, out, _ = cli(capsys, "--json", "ts", "cli/bin")
    [task] = json.loads(out)
    assert (task["value"], task["value_encoding"]) == ("AAH/", "base64")
    code, out, _ = cli(capsys, "ts", "cli/bin")
    assert code == EXIT_OK
    assert "base64:AAH/" in out


def test_stdin_lines_and_file(
    store: MemBackend,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: object,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"one\ntwo\n\nthree\n")))
    assert cli(capsys, "ins", "cli/lines", "--stdin")[0] == EXIT_OK
    code, out, _ = cli(capsys, "--json", "ts", "cli/lines")
    assert code == EXIT_OK
    assert sorted(t["value"] for t in json.loads(out)) == ["one", "three", "two"]


def test_claim_mod_rm_and_exit_codes(store: MemBackend, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(capsys, "claim", "--try", "cli/empty")[0] == EXIT_FAILED
    assert cli(capsys, "claim", "cli/empty", "--timeout", "0.2")[0] == EXIT_FAILED
    cli(capsys, "ins", "cli/work", "job", "--id", "cli-job-1")
    code, out, _ = cli(capsys, "--json", "--claimant", "worker-a", "claim", "cli/work")
    [claimed] = json.loads(out)
    assert (claimed["id"], claimed["version"], claimed["claimant"]) == ("cli-job-1", 1, "worker-a")
    # Leased by worker-a: a plain change fails (exit 1), --force acts for the holder.
    code, _, err = cli(capsys, "mod", "cli-job-1", "--queue", "cli/moved")
    assert code == EXIT_FAILED and "claims" in err
    assert "held by another claimant; --force acts for it" in err
    code, _, err = cli(capsys, "mod", "cli-job-1", "--version", "7", "--now")
    assert code == EXIT_FAILED and "version 1, not 7" in err
    code, out, _ = cli(capsys, "--json", "mod", "cli-job-1", "--queue", "cli/moved", "--force")
    [moved] = json.loads(out)
    assert (moved["queue"], moved["version"], moved["claimant"]) == ("cli/moved", 2, "worker-a")
    assert cli(capsys, "rm", "cli-job-1")[0] == EXIT_FAILED  # still leased by worker-a
    assert cli(capsys, "rm", "cli-job-1", "--force")[0] == EXIT_OK
    assert cli(capsys, "rm", "cli-job-1")[0] == EXIT_FAILED  # gone now


def test_clear_needs_force_for_leased_tasks(
    store: MemBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "ins", "cli/clear", "a", "b", "c")
    cli(capsys, "--claimant", "someone", "claim", "cli/clear")
    assert cli(capsys, "clear", "cli/clear")[0] == EXIT_FAILED
    code, out, _ = cli(capsys, "clear", "cli/clear", "--force")
    assert (code, out.strip()) == (EXIT_OK, "deleted 3")

    async def left() -> dict[str, int]:
        async with AsyncEntroQ(await open_backend(URL)) as eq:
            return await eq.queues(exact=["cli/clear"])

    assert asyncio.run(left()) == {}


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--url", "nope://x", "qs"], "no EntroQ backend for scheme 'nope'"),
        (["--url", "not a url", "qs"], "has no scheme"),
        (["--url", URL, "ins", "cli/x", "--file", "/no/such/file"], "No such file"),
        (["--url", URL, "ins", "cli/x", "a", "b", "--id", "x"], "needs exactly one value"),
        (["--url", URL, "ins", "cli/x", "!!!", "--base64"], "not valid base64"),
        (["--url", URL, "ins", "", "v"], "invalid inserts[0].queue"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err
    assert len(err.strip().splitlines()) == 1
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "argv, message",
    [
        (["claim", "cli/x", "--duration", "0"], "argument --duration: must be a positive"),
        (["claim", "cli/x", "--duration", "nan"], "argument --duration: must be a finite"),
        (["claim", "cli/x", "--timeout", "-1"], "argument --timeout: must be a positive"),
        (["--rpc-timeout", "0", "qs"], "argument --rpc-timeout: must be a positive"),
        (["qs", "--rpc-timeout", "-1"], "argument --rpc-timeout: must be a positive"),
        (["ins", "cli/x", "v", "--delay", "-5"], "argument --delay: must be 0 or more"),
        (["mod", "some-id", "--delay", "-1"], "argument --delay: must be 0 or more"),
        (["qs", "--limit", "-1"], "argument --limit: must be 0 (no limit) or more"),
        (["ts", "cli/x", "--limit", "many"], "argument --limit: must be a whole number"),
    ],
)
def test_bad_numbers_are_usage_errors_naming_the_option(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--url", URL, *argv]) == EXIT_USAGE
    err = capsys.readouterr().err
    assert message in err and "got '" in err
    assert "Traceback" not in err


def test_common_options_may_follow_the_command(
    store: MemBackend, capsys: pytest.CaptureFixture[str]
) -> None:
    cli(capsys, "ins", "cli/after", "v")
    code, out, _ = cli(capsys, "ts", "cli/after", "--json", "--claimant", "me")
    assert code == EXIT_OK and [t["value"] for t in json.loads(out)] == ["v"]
    # Given after the command, an option wins over the same one before it.
    assert main(["--url", "nope://x", "qs", "--url", URL, "--json"]) == EXIT_OK
    assert json.loads(capsys.readouterr().out)[0]["name"] == "cli/after"


def test_values_may_follow_options(store: MemBackend, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = cli(capsys, "ins", "cli/mixed", "--delay", "60", "a.png", "b.png")
    assert code == EXIT_OK, err
    code, out, _ = cli(capsys, "ins", "cli/mixed", "c.png", "--delay", "60", "d.png")
    assert code == EXIT_OK
    code, out, _ = cli(capsys, "--json", "ts", "cli/mixed")
    assert sorted(t["value"] for t in json.loads(out)) == ["a.png", "b.png", "c.png", "d.png"]
    code, out, _ = cli(capsys, "qs", "--exact", "cli/mixed")
    assert out.splitlines()[1].split() == ["cli/mixed", "4", "0", "0", "4", "0"]


def test_help_of_every_command_has_an_example() -> None:
    for command in ("qs", "ts", "ins", "claim", "mod", "rm", "clear", "time"):
        done = subprocess.run(
            [sys.executable, "-m", "entroq_core.cli", command, "--help"],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 0, done.stderr
        assert "example:" in done.stdout and f"entroq {command}" in done.stdout


def test_real_process_usage_error_exit_code() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "entroq_core.cli", "--url", "mem://", "frobnicate"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == EXIT_USAGE
    assert "invalid choice" in done.stderr


def test_a_reader_that_stops_early_ends_the_command_quietly() -> None:
    # `entroq ts q | head -1` with more output than head reads.
    script = (
        "import sys\n"
        "from entroq_core import EntroQ, Modification\n"
        "from entroq_core.cli import main\n"
        "with EntroQ('mem://pipe') as eq:\n"
        "    mod = Modification()\n"
        "    for i in range(5000):\n"
        "        mod.insert('q', b'v%d' % i)\n"
        "    eq.modify(mod)\n"
        "    sys.exit(main(['--url', 'mem://pipe', 'ts', 'q']))\n"
    )
    done = subprocess.run(
        f"{sys.executable} -c \"{script}\" | head -1",
        shell=True, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.stdout.split() == [
        "QUEUE",
        "ID",
        "VER",
        "AT",
        "CLAIMANT",
        "CLAIMS",
        "ATTEMPT",
        "VALUE",
    ]
    assert done.stderr == "", done.stderr  # no "error: Broken pipe", no traceback
