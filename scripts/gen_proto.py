"""Regenerate (or check) the Python code for proto/entroq.proto.

    python scripts/gen_proto.py           # rewrite packages/entroq-grpc/src/entroq_grpc/_proto/
    python scripts/gen_proto.py --check   # exit 1 if the committed code is stale

grpcio-tools is pinned HERE and nowhere else: the generated code records the
protoc and grpc versions that made it, so a different tool version would change
the committed files. If the running Python lacks that exact version, the script
builds a private virtualenv with it (under the user cache directory) and re-runs
itself there; it needs nothing from the project's environments.
"""

from __future__ import annotations

import argparse
import difflib
import sys
import tempfile
from pathlib import Path

# Run as a file (python scripts/x.py) or imported as scripts.x: find the sibling either way.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.pinned_protoc import GRPCIO_TOOLS_VERSION, rerun_with_pinned_tools, tools_ok

ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = ROOT / "proto"
PROTO_FILE = "entroq.proto"
OUT_DIR = ROOT / "packages" / "entroq-grpc" / "src" / "entroq_grpc" / "_proto"

INIT_TEXT = '''"""Generated from proto/entroq.proto by scripts/gen_proto.py; do not edit."""
'''

# protoc writes a top-level import in the gRPC module; inside a package it must be relative.
GRPC_IMPORT = "import entroq_pb2 as entroq__pb2"
GRPC_IMPORT_FIXED = "from . import entroq_pb2 as entroq__pb2"


def generate(into: Path) -> dict[str, str]:
    """Run protoc into ``into`` and return the package files by name, ready to commit."""
    from grpc_tools import protoc  # only importable in the pinned environment

    args = [
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"--python_out={into}",
        f"--pyi_out={into}",
        f"--grpc_python_out={into}",
        PROTO_FILE,
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    files = {"__init__.py": INIT_TEXT}
    for name in ("entroq_pb2.py", "entroq_pb2.pyi", "entroq_pb2_grpc.py"):
        files[name] = (into / name).read_text(encoding="utf-8")
    grpc_text = files["entroq_pb2_grpc.py"]
    if GRPC_IMPORT not in grpc_text:
        raise SystemExit(f"expected {GRPC_IMPORT!r} in the generated gRPC module")
    files["entroq_pb2_grpc.py"] = grpc_text.replace(GRPC_IMPORT, GRPC_IMPORT_FIXED)
    return files


def main(argv: list[str]) -> int:
    """Generate or check; return the exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code differs")
    opts = parser.parse_args(argv)
    if not tools_ok():
        return rerun_with_pinned_tools(__file__, argv)

    with tempfile.TemporaryDirectory() as tmp:
        files = generate(Path(tmp))

    if opts.check:
        stale = []
        present = {p.name for p in OUT_DIR.glob("*") if p.is_file()} if OUT_DIR.is_dir() else set()
        for extra in sorted(present - set(files)):
            stale.append(f"{extra}: not produced by the generator")
        for name, text in files.items():
            path = OUT_DIR / name
            old = path.read_text(encoding="utf-8") if path.exists() else ""
            if old != text:
                diff = difflib.unified_diff(
                    old.splitlines(),
                    text.splitlines(),
                    f"committed/{name}",
                    f"fresh/{name}",
                    lineterm="",
                    n=1,
                )
                stale.append("\n".join(list(diff)[:40]))
        if stale:
            print("generated code is stale; run: python scripts/gen_proto.py", file=sys.stderr)
            print("\n".join(stale), file=sys.stderr)
            return 1
        print(f"{OUT_DIR.relative_to(ROOT)} is up to date (grpcio-tools {GRPCIO_TOOLS_VERSION})")
        return 0

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
