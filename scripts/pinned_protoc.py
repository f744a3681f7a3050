"""The one pinned grpcio-tools that every generated stub in this repository comes from.

Generation scripts call :func:`ensure_pinned_tools` first: when the running Python
lacks exactly this version, the script re-runs itself in a private venv that has it,
so regenerated code never depends on whatever grpcio-tools happens to be installed.
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

GRPCIO_TOOLS_VERSION = "1.74.0"


def tools_ok() -> bool:
    """True if this Python has exactly the pinned grpcio-tools."""
    try:
        return version("grpcio-tools") == GRPCIO_TOOLS_VERSION
    except PackageNotFoundError:
        return False


def rerun_with_pinned_tools(script: str, argv: list[str]) -> int:
    """Run ``script`` with ``argv`` in a cached venv holding the pinned grpcio-tools."""
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    env_dir = cache / "entroq-gen-proto" / f"grpcio-tools-{GRPCIO_TOOLS_VERSION}"
    python = env_dir / "bin" / "python"
    if not python.exists():
        print(f"creating {env_dir} with grpcio-tools=={GRPCIO_TOOLS_VERSION}", file=sys.stderr)
        venv.EnvBuilder(with_pip=True, clear=True).create(env_dir)
        subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"grpcio-tools=={GRPCIO_TOOLS_VERSION}",
            ],
            check=True,
        )
    return subprocess.run([str(python), script, *argv], check=False).returncode
