"""Regenerate (or check) the Python stubs for etcd's v3 gRPC API.

    python scripts/gen_etcd_stubs.py --from-deb      # fetch Debian's protos, strip, regenerate
    python scripts/gen_etcd_stubs.py                 # regenerate from the committed stripped protos
    python scripts/gen_etcd_stubs.py --check         # exit 1 if the committed code is stale
    python scripts/gen_etcd_stubs.py --check --from-deb   # also check the stripped protos

Debian's ``golang-etcd-server-dev`` ships etcd's API protos (``apt-get download``,
no install needed). They use Go-only gogoproto options and grpc-gateway HTTP
annotations that Python needs neither of, so this script strips those, keeps the
result in ``packages/entroq-etcd/proto/`` (so the check works without the .deb),
and generates ``entroq_etcd/_etcdpb/`` with imports made package-relative.

grpcio-tools is pinned HERE (the same version as scripts/gen_proto.py, so both
generated packages share one protobuf major): the generated code records the
protoc version that made it. If the running Python lacks that exact version, the
script builds a private virtualenv with it under the user cache directory and
re-runs itself there.
"""

from __future__ import annotations

import argparse
import difflib
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

# Run as a file (python scripts/x.py) or imported as scripts.x: find the sibling either way.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from scripts.pinned_protoc import GRPCIO_TOOLS_VERSION, rerun_with_pinned_tools, tools_ok

DEB_PACKAGE = "golang-etcd-server-dev"

ROOT = Path(__file__).resolve().parent.parent
PKG_DIR = ROOT / "packages" / "entroq-etcd"
PROTO_ROOT = PKG_DIR / "proto"
# Proto paths double as descriptor-pool file names: keep them unique to this package.
PROTO_PKG = "entroq_etcd/_etcdpb"
OUT_DIR = PKG_DIR / "src" / "entroq_etcd" / "_etcdpb"
VERSION_FILE = PROTO_ROOT / "ETCD_VERSION"

# Our file name -> where the .deb keeps it (under usr/share/gocode/src/go.etcd.io/etcd).
SOURCES = {
    "kv.proto": "mvcc/mvccpb/kv.proto",
    "auth.proto": "auth/authpb/auth.proto",
    "rpc.proto": "etcdserver/etcdserverpb/rpc.proto",
}
DEB_TREE = "usr/share/gocode/src/go.etcd.io/etcd"
IMPORT_RENAMES = {
    "etcd/mvcc/mvccpb/kv.proto": f"{PROTO_PKG}/kv.proto",
    "etcd/auth/authpb/auth.proto": f"{PROTO_PKG}/auth.proto",
}
EXIT_NO_DEB = 3  # --from-deb could not download the package (not a staleness failure)
GENERATED = (
    "kv_pb2.py",
    "kv_pb2.pyi",
    "auth_pb2.py",
    "auth_pb2.pyi",
    "rpc_pb2.py",
    "rpc_pb2.pyi",
    "rpc_pb2_grpc.py",
)


# --- stripping -----------------------------------------------------------------


def _drop_http_options(text: str) -> str:
    """Remove every ``option (google.api.http) = {...};`` block, nested braces included."""
    out = []
    pos = 0
    pattern = re.compile(r"[ \t]*option\s*\(google\.api\.http\)\s*=\s*\{")
    while (m := pattern.search(text, pos)) is not None:
        out.append(text[pos : m.start()])
        depth, i = 1, m.end()
        while depth:
            if i >= len(text):
                raise SystemExit("unbalanced braces in a google.api.http option")
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        end = re.compile(r"\s*;?[ \t]*\n?").match(text, i)
        pos = end.end() if end else i
    out.append(text[pos:])
    return "".join(out)


def _drop_field_options(text: str) -> str:
    """Remove gogoproto entries from field option brackets, and brackets left empty."""

    def fix(m: re.Match[str]) -> str:
        kept = [p for p in m.group(1).split(",") if "gogoproto." not in p]
        return f" [{','.join(kept).strip()}]" if kept else ""

    return re.sub(r"\s*\[([^\]]*gogoproto\.[^\]]*)\]", fix, text)


def strip_proto(text: str, origin: str) -> str:
    """Return ``text`` without Go-only options and HTTP annotations, imports renamed."""
    text = text.replace("\r\n", "\n")
    text = re.sub(
        r'(?m)^[ \t]*// for grpc-gateway\n(?=import "google/api/annotations\.proto";)', "", text
    )
    text = re.sub(
        r'(?m)^[ \t]*import "(gogoproto/gogo|google/api/annotations)\.proto";\n', "", text
    )
    text = re.sub(r"(?m)^[ \t]*option \(gogoproto\.[^;]*;\n", "", text)
    text = _drop_http_options(text)
    text = _drop_field_options(text)
    # An rpc whose only option was the HTTP one keeps an empty body; write it as {}.
    text = re.sub(r"\)\s*\{\s*\}", ") {}", text)
    for old, new in IMPORT_RENAMES.items():
        text = text.replace(f'import "{old}";', f'import "{new}";')
    text = re.sub(r"\n{3,}", "\n\n", text)
    for leftover in ("gogoproto", "google.api", "google/api"):
        if leftover in text:
            raise SystemExit(f"{origin}: {leftover!r} survived stripping")
    header = (
        f"// Stripped copy of etcd's {origin} made by scripts/gen_etcd_stubs.py:\n"
        "// gogoproto options and google.api.http annotations removed, imports renamed.\n"
    )
    return header + text


def fetch_deb(workdir: Path, version: str | None) -> tuple[Path, str]:
    """Download the .deb with apt-get (a given version, or the candidate).

    Returns the .deb's path and its Debian version.
    """
    spec = f"{DEB_PACKAGE}={version}" if version else DEB_PACKAGE
    result = subprocess.run(
        ["apt-get", "download", spec], cwd=workdir, capture_output=True, text=True, check=False
    )
    debs = sorted(workdir.glob(f"{DEB_PACKAGE}_*.deb"))
    if result.returncode != 0 or not debs:
        raise FileNotFoundError(f"apt-get download {spec} failed: {result.stderr.strip()}")
    deb = debs[0]
    got = subprocess.run(
        ["dpkg-deb", "-f", str(deb), "Version"], capture_output=True, text=True, check=True
    ).stdout.strip()
    return deb, got


def stripped_from_deb(deb: Path, deb_version: str, workdir: Path) -> dict[str, str]:
    """Extract the three protos from the .deb and return them stripped, plus ETCD_VERSION."""
    tree = workdir / "deb"
    subprocess.run(["dpkg", "-x", str(deb), str(tree)], check=True)
    files = {}
    for name, rel in SOURCES.items():
        source = (tree / DEB_TREE / rel).read_text(encoding="utf-8")
        files[name] = strip_proto(source, rel)
    upstream = deb_version.split("-")[0].split("+")[0]
    files["ETCD_VERSION"] = (
        f"etcd {upstream}\ndebian package {DEB_PACKAGE} {deb_version}\n"
        f"grpcio-tools {GRPCIO_TOOLS_VERSION}\n"
    )
    return files


def committed_protos() -> dict[str, str]:
    """Return the committed stripped protos and version record."""
    files = {name: (PROTO_ROOT / PROTO_PKG / name).read_text(encoding="utf-8") for name in SOURCES}
    files["ETCD_VERSION"] = VERSION_FILE.read_text(encoding="utf-8")
    return files


def recorded_deb_version() -> str | None:
    """Return the Debian version the committed protos came from, if recorded."""
    if not VERSION_FILE.exists():
        return None
    for line in VERSION_FILE.read_text(encoding="utf-8").splitlines():
        if line.startswith(f"debian package {DEB_PACKAGE} "):
            return line.split()[-1]
    return None


# --- generation ----------------------------------------------------------------


def _relative_imports(text: str) -> str:
    # protoc writes absolute imports from the proto path; inside the package they
    # must be relative so the code works wherever entroq_etcd is installed.
    dotted = PROTO_PKG.replace("/", ".")
    text = re.sub(rf"(?m)^from {re.escape(dotted)} import ", "from . import ", text)
    return text


def init_text(protos: dict[str, str]) -> str:
    """Return the _etcdpb package's __init__.py, recording where the code came from."""
    record = dict(line.split(" ", 1) for line in protos["ETCD_VERSION"].splitlines() if line)
    etcd = record.get("etcd", "?")
    return (
        f'"""Generated gRPC stubs for etcd {etcd}\'s v3 API '
        "(scripts/gen_etcd_stubs.py; do not edit).\n"
        "\n"
        f"Made from the protos in Debian's {record.get('debian', '?')}\n"
        f"with grpcio-tools "
        f"{GRPCIO_TOOLS_VERSION}; the stripped protos are in packages/entroq-etcd/proto/.\n"
        '"""\n'
        "\n"
        f'ETCD_VERSION = "{etcd}"\n'
        f'GRPCIO_TOOLS_VERSION = "{GRPCIO_TOOLS_VERSION}"\n'
    )


def generate(protos: dict[str, str], into: Path) -> dict[str, str]:
    """Run protoc over ``protos`` in ``into``; return the package files by name."""
    from grpc_tools import protoc  # only importable in the pinned environment

    src = into / "src"
    out = into / "out"
    (src / PROTO_PKG).mkdir(parents=True)
    out.mkdir()
    for name in SOURCES:
        (src / PROTO_PKG / name).write_text(protos[name], encoding="utf-8")
    args = [
        "grpc_tools.protoc",
        f"-I{src}",
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(f"{PROTO_PKG}/{name}" for name in SOURCES),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")
    # Only rpc.proto declares services; protoc still writes empty grpc modules for the others.
    files = {"__init__.py": init_text(protos)}
    for name in GENERATED:
        files[name] = _relative_imports((out / PROTO_PKG / name).read_text(encoding="utf-8"))
    if "from . import rpc_pb2" not in files["rpc_pb2_grpc.py"]:
        raise SystemExit("expected a relative rpc_pb2 import in rpc_pb2_grpc.py")
    return files


def _compare(where: Path, files: dict[str, str], exhaustive: bool) -> list[str]:
    stale = []
    if exhaustive and where.is_dir():
        present = {p.name for p in where.iterdir() if p.is_file()}
        stale += [f"{x}: not produced by the generator" for x in sorted(present - set(files))]
    for name, text in files.items():
        path = where / name
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
            stale.append("\n".join(list(diff)[:40]) or f"{name}: differs")
    return stale


def main(argv: list[str]) -> int:
    """Generate or check; return the exit status."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if committed files differ")
    parser.add_argument(
        "--from-deb",
        action="store_true",
        help="start from Debian's .deb (apt-get download) instead of the committed stripped protos",
    )
    parser.add_argument("--deb", type=Path, help="use this .deb instead of downloading")
    opts = parser.parse_args(argv)
    if not tools_ok():
        return rerun_with_pinned_tools(__file__, argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        if opts.from_deb or opts.deb:
            if opts.deb:
                deb = opts.deb
                deb_version = subprocess.run(
                    ["dpkg-deb", "-f", str(deb), "Version"],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.strip()
            else:
                # A check pins the recorded version: a newer Debian upload is a
                # deliberate regeneration, not a CI failure.
                wanted = recorded_deb_version() if opts.check else None
                try:
                    deb, deb_version = fetch_deb(work, wanted)
                except FileNotFoundError as exc:
                    print(f"cannot get the .deb: {exc}", file=sys.stderr)
                    return EXIT_NO_DEB
            protos = stripped_from_deb(deb, deb_version, work)
        else:
            protos = committed_protos()
        files = generate(protos, work / "gen")

    if opts.check:
        stale = _compare(OUT_DIR, files, exhaustive=True)
        if opts.from_deb or opts.deb:
            proto_files = {k: v for k, v in protos.items() if k != "ETCD_VERSION"}
            stale += _compare(PROTO_ROOT / PROTO_PKG, proto_files, exhaustive=True)
            stale += _compare(
                PROTO_ROOT, {"ETCD_VERSION": protos["ETCD_VERSION"]}, exhaustive=False
            )
        if stale:
            print(
                "etcd stubs are stale; run: python scripts/gen_etcd_stubs.py --from-deb",
                file=sys.stderr,
            )
            print("\n".join(stale), file=sys.stderr)
            return 1
        print(f"{OUT_DIR.relative_to(ROOT)} is up to date (grpcio-tools {GRPCIO_TOOLS_VERSION})")
        return 0

    if opts.from_deb or opts.deb:
        (PROTO_ROOT / PROTO_PKG).mkdir(parents=True, exist_ok=True)
        for name in SOURCES:
            (PROTO_ROOT / PROTO_PKG / name).write_text(protos[name], encoding="utf-8")
        VERSION_FILE.write_text(protos["ETCD_VERSION"], encoding="utf-8")
    if OUT_DIR.is_dir():
        shutil.rmtree(OUT_DIR)
    OUT_DIR.mkdir(parents=True)
    for name, text in files.items():
        (OUT_DIR / name).write_text(text, encoding="utf-8")
    print(f"wrote {len(files)} files to {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
