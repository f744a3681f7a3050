"""examples/wordcount end to end: real entroq-svc, real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from examples.wordcount.counting import count_words
from scripts.servers.entroq_svc import svc_process

ROOT = Path(__file__).resolve().parents[2]


def test_wordcount_matches_a_direct_count(tmp_path: Path) -> None:
    texts = {
        "a.txt": "the quick brown fox jumps over the lazy dog\n" * 50,
        "b.txt": "The dog sleeps. The fox doesn't!\n" * 30,
        "c.txt": "Ünïcode words count too: café café\n",
    }
    files = []
    for name, text in texts.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        files.append(str(path))
    expected: Counter[str] = Counter()
    for text in texts.values():
        expected.update(count_words(text))
    with svc_process("mem") as url:
        done = subprocess.run(
            [sys.executable, "-m", "examples.wordcount", "--url", url, "--json", *files, files[0]],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=180,
        )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    # The repeated file is counted once.
    assert result["files"] == 3
    assert Counter(result["counts"]) == expected
    assert result["counts"]["the"] == 50 * 2 + 30 * 2
    assert (result["counts"]["café"], result["counts"]["doesn't"]) == (2, 30)


def test_wordcount_rejects_missing_files() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "examples.wordcount", "--url", "grpc://127.0.0.1:1", "/no/file"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "not a readable file: /no/file" in done.stderr
