"""The benchmark command the README documents: one run prints a table, then JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_bench_prints_a_table_then_the_same_records_as_json(tmp_path: Path) -> None:
    written = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--backend", "mem", "--runs", "1", "--quick",
         "--json", str(written)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    table, _, printed = done.stdout.partition("\n\n")
    records = json.loads(printed)
    assert json.loads(written.read_text()) == records
    header, *rows = table.splitlines()
    assert header.split()[:4] == ["backend", "metric", "value", "unit"]
    assert len(rows) == len(records)
    for record, row in zip(records, rows, strict=True):
        assert set(record) == {"backend", "metric", "value", "unit", "params"}
        assert record["backend"] == "mem" and record["value"] > 0
        assert row.split()[:2] == ["mem", record["metric"]]
    measured = {(r["metric"], r["params"].get("workers")) for r in records}
    assert {("cycles_per_s", 1), ("cycles_per_s", 8), ("rss_mib", None)} <= measured
    assert {"insert_per_s", "claim_latency_ms_p50", "wake_latency_ms_p50"} <= {
        r["metric"] for r in records
    }
