"""The ``entroq`` command: look at queues and fix them, against any backend URL.

Exit codes scripts can rely on: 0 ok, 1 dependency error or nothing claimed,
2 bad usage or invalid argument, 3 backend unavailable.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence

from ..errors import (
    AuthenticationError,
    BackendUnavailable,
    DeadlineExceeded,
    DependencyError,
    EntroQError,
    InvalidArgument,
    PermissionDenied,
    UnknownBackend,
)
from .arguments import seconds
from .commands import COMMANDS, CommandParser, add_commands

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_UNAVAILABLE = 3
EXIT_BROKEN_PIPE = 141  # what a shell reports for a command ended by SIGPIPE

DEFAULT_URL = "grpc://localhost:37706"


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for every subcommand."""
    parser = argparse.ArgumentParser(
        prog="entroq",
        description="Inspect and modify EntroQ queues.",
        epilog=(
            "examples:\n"
            "  entroq qs --prefix jobs/\n"
            "  entroq --url mem:// time\n"
            "  ENTROQ_URL=grpc://queue.internal:37706 entroq ts jobs/resize --limit 5\n\n"
            "exit codes: 0 ok, 1 dependency error or nothing claimed, 2 bad usage,\n"
            "3 backend unavailable"
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_global_options(parser, defaults=True)
    # The same options after the command (`entroq qs --json`); given there, they win.
    after_command = argparse.ArgumentParser(add_help=False)
    _add_global_options(after_command, defaults=False)
    add_commands(
        parser.add_subparsers(
            dest="command", required=True, metavar="COMMAND", parser_class=CommandParser
        ),
        parents=[after_command],
    )
    return parser


def _add_global_options(parser: argparse.ArgumentParser, *, defaults: bool) -> None:
    """Options every command takes; without ``defaults`` an absent one sets nothing."""

    def default(value: object) -> object:
        return value if defaults else argparse.SUPPRESS

    url_default = os.environ.get("ENTROQ_URL", DEFAULT_URL)
    parser.add_argument(
        "--url",
        default=default(url_default),
        help=f"backend URL (default: $ENTROQ_URL or {DEFAULT_URL})",
    )
    parser.add_argument(
        "--json", action="store_true", default=default(False), help="print JSON instead of tables"
    )
    parser.add_argument(
        "--claimant", default=default(None), help="claimant id to act as (default: a fresh one)"
    )
    parser.add_argument(
        "--rpc-timeout",
        type=seconds,
        default=default(30.0),
        help="seconds to wait for the backend on non-blocking commands (default 30)",
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run one ``entroq`` command; return its exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return exit_.code if isinstance(exit_.code, int) else EXIT_USAGE
    try:
        return asyncio.run(COMMANDS[args.command](args))
    except BrokenPipeError:  # before ConnectionError, its base class
        # The reader went away (`entroq ts q | head`): stop quietly, as other
        # commands do, and keep the interpreter from failing to flush at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except DependencyError as exc:
        if exc.claims and getattr(args, "force", None) is False:
            return _fail(EXIT_FAILED, f"{exc}\n(held by another claimant; --force acts for it)")
        return _fail(EXIT_FAILED, exc)
    except (InvalidArgument, UnknownBackend) as exc:
        return _fail(EXIT_USAGE, exc)
    # Order matters: DeadlineExceeded < TimeoutError < OSError, BackendUnavailable < OSError.
    except DeadlineExceeded as exc:
        return _fail(EXIT_FAILED, exc)
    except (BackendUnavailable, ConnectionError, TimeoutError) as exc:
        return _fail(EXIT_UNAVAILABLE, str(exc) or "the backend did not answer in time")
    except (OSError, UnicodeDecodeError) as exc:
        # Local files: unreadable input is a usage problem.
        return _fail(EXIT_USAGE, exc)
    except (AuthenticationError, PermissionDenied) as exc:
        return _fail(EXIT_USAGE, exc)
    except EntroQError as exc:
        return _fail(EXIT_FAILED, exc)
    except KeyboardInterrupt:
        return 130


def _fail(code: int, exc: object) -> int:
    text = str(exc) or type(exc).__name__
    print(f"entroq: error: {text}", file=sys.stderr)
    return code


__all__ = ["EXIT_FAILED", "EXIT_OK", "EXIT_UNAVAILABLE", "EXIT_USAGE", "build_parser", "main"]
