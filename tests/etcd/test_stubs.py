"""The committed etcd stubs are what the generator makes (the CI staleness check)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from scripts import gen_etcd_stubs

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gen_etcd_stubs.py"


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=600
    )


def test_committed_stubs_match_a_fresh_generation() -> None:
    result = _run("--check")
    assert result.returncode == 0, result.stdout + result.stderr


def test_committed_protos_match_debians_stripped_protos() -> None:
    # Downloads the recorded .deb version with apt-get (Debian's registry is
    # reachable here and in CI); if that exact version is gone from the archive
    # the committed protos cannot be re-derived, which is not a staleness failure.
    if shutil.which("apt-get") is None or shutil.which("dpkg-deb") is None:
        pytest.skip("needs apt-get and dpkg-deb (Debian) to fetch golang-etcd-server-dev")
    result = _run("--check", "--from-deb")
    if result.returncode == gen_etcd_stubs.EXIT_NO_DEB:
        pytest.skip(f"recorded .deb not downloadable: {result.stderr.strip()}")
    assert result.returncode == 0, result.stdout + result.stderr


def test_stripping_removes_go_options_and_http_annotations() -> None:
    source = """syntax = "proto3";
package etcdserverpb;

import "gogoproto/gogo.proto";
import "etcd/mvcc/mvccpb/kv.proto";

// for grpc-gateway
import "google/api/annotations.proto";

option (gogoproto.marshaler_all) = true;

service KV {
  rpc Range(RangeRequest) returns (RangeResponse) {
      option (google.api.http) = {
        post: "/v3/kv/range"
        body: "*"
    };
  }
}

message RangeRequest {
  bytes key = 1 [(gogoproto.nullable) = false];
  int64 limit = 2 [deprecated = true, (gogoproto.customname) = "Lim"];
}
"""
    text = gen_etcd_stubs.strip_proto(source, "rpc.proto")
    body = text.split("\n", 2)[2]  # after the two header comment lines
    assert "gogoproto" not in body and "google" not in body
    assert "rpc Range(RangeRequest) returns (RangeResponse) {}" in text
    assert 'import "entroq_etcd/_etcdpb/kv.proto";' in text
    assert "bytes key = 1;" in text
    assert "int64 limit = 2 [deprecated = true];" in text
