"""The README's worker and producer run as written against a real entroq-svc."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from scripts.servers.entroq_svc import svc_process

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLE = re.compile(r"<!-- readme-example: (\S+) -->\n```python\n(.*?)```", re.S)
WAIT = 120.0


def test_worker_and_producer_examples_talk_through_the_service() -> None:
    examples = dict(EXAMPLE.findall(README.read_text()))
    with svc_process("mem") as url:
        env = {**os.environ, "ENTROQ_URL": url}
        worker = subprocess.Popen(
            [sys.executable, "-c", examples["svc-worker"]],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            producer = subprocess.run(
                [sys.executable, "-c", examples["svc-producer"]],
                env=env,
                capture_output=True,
                text=True,
                timeout=WAIT,
            )
            assert producer.returncode == 0, producer.stderr
            assert producer.stdout.strip() == "[b'HELLO', b'WORLD']"
        finally:
            worker.send_signal(signal.SIGTERM)
            _, err = worker.communicate(timeout=WAIT)
        assert worker.returncode == 0, err
