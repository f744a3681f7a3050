"""`pip install entroq-core entroq-pg` works on its own: no gRPC, no etcd, no workspace."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

from scripts.build_all import build_all

PROBE = textwrap.dedent(
    """
    import asyncio, importlib.util, json, sys
    import entroq_core
    from entroq_core import AsyncEntroQ, Modification

    async def round_trip(url):
        async with await AsyncEntroQ.open(url) as eq:
            await eq.modify(Modification().insert("isolated/q", b"v"))
            task = await eq.claim("isolated/q", 10, timeout=10)
            await eq.modify(Modification().delete(task))
            return task.value.decode()

    print(json.dumps({
        "schemes": entroq_core.installed_schemes(),
        "grpc": importlib.util.find_spec("grpc") is not None,
        "value": asyncio.run(round_trip(sys.argv[1])),
        "core_file": entroq_core.__file__,
    }))
    """
)


def test_core_plus_pg_install_and_work_alone(tmp_path: Path, pg_url: str) -> None:
    wheels = build_all(tmp_path / "dist", only=("entroq-core", "entroq-pg"))
    assert {w.name.split("-")[0] for w in wheels if w.suffix == ".whl"} == {
        "entroq_core",
        "entroq_pg",
    }
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = str(venv / "bin" / "python")
    install = subprocess.run(
        [
            python,
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            "--find-links",
            str(tmp_path / "dist"),
            "entroq-core==0.1.0",
            "entroq-pg==0.1.0",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    probe = subprocess.run(
        [python, "-c", PROBE, pg_url], capture_output=True, text=True, timeout=120, cwd=tmp_path
    )
    assert probe.returncode == 0, probe.stderr
    result = json.loads(probe.stdout)
    assert result["schemes"] == ["mem", "pg", "postgresql"]
    assert result["grpc"] is False
    assert result["value"] == "v"
    # The installed wheel, not the workspace's editable source.
    assert str(venv) in result["core_file"]
