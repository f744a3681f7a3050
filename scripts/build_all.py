"""Build every distribution's wheel and sdist into dist/ (the root has no [project]).

hatch run build:all            # or: python scripts/build_all.py [OUT_DIR]
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def build_all(out: Path, only: tuple[str, ...] = ()) -> list[Path]:
    """Build each packages/* distribution (or only those named) with hatchling.

    Returns the files made.
    """
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.iterdir())
    for package in sorted((ROOT / "packages").iterdir()):
        if only and package.name not in only:
            continue
        if (package / "pyproject.toml").exists():
            subprocess.run(
                [sys.executable, "-m", "hatchling", "build", "-d", str(out)],
                cwd=package,
                check=True,
            )
    return sorted(set(out.iterdir()) - before)


if __name__ == "__main__":
    target = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT / "dist"
    for made in build_all(target):
        print(made.name)
