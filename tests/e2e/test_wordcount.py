"""examples/wordcount end to end: real entroq-svc, real worker processes."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from examples.wordcount.counting import count_words
from scripts.servers.entroq_svc import start_svc, svc_process
from scripts.servers.etcd import free_port

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


def test_wordcount_without_a_service_says_so_instead_of_a_traceback(tmp_path: Path) -> None:
    text = tmp_path / "t.txt"
    text.write_text("words\n")
    done = subprocess.run(
        [sys.executable, "-m", "examples.wordcount", "--url", "grpc://127.0.0.1:1", "--wait",
         "0.5", str(text)],
        cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 3
    assert "no EntroQ service answers at grpc://127.0.0.1:1" in done.stderr
    assert "Traceback" not in done.stderr


def test_wordcount_started_before_its_service_waits_for_it(tmp_path: Path) -> None:
    # The README starts `entroq-svc &` and the example back to back.
    text = tmp_path / "t.txt"
    text.write_text("late service late\n")
    port = free_port()
    counting = subprocess.Popen(
        [sys.executable, "-m", "examples.wordcount", "--url", f"grpc://127.0.0.1:{port}",
         "--wait", "120", "--json", str(text)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        time.sleep(1.0)  # it is already trying
        svc = start_svc("mem", ["--port", str(port)])
        try:
            out, err = counting.communicate(timeout=180)
        finally:
            svc.terminate()
            svc.close()
    finally:
        if counting.poll() is None:
            counting.kill()
            counting.wait()
    assert counting.returncode == 0, err
    assert json.loads(out)["counts"] == {"late": 2, "service": 1}
