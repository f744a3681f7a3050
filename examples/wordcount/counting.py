"""Words, counts and the JSON that carries them between stages."""

from __future__ import annotations

import json
import re
from collections import Counter

# Letters and digits in any script, with inner apostrophes: "doesn't", "café".
WORD = re.compile(r"[^\W_]+(?:'[^\W_]+)*")


def count_words(text: str) -> Counter[str]:
    """Lower-cased words of ``text`` and how often each occurs."""
    return Counter(WORD.findall(text.lower()))


def encode_file(path: str, text: str) -> bytes:
    """A map task: one file's name and text."""
    return json.dumps({"path": path, "text": text}).encode()


def decode_file(value: bytes) -> tuple[str, str]:
    """The path and text of a map task."""
    data = json.loads(value)
    return data["path"], data["text"]


def encode_partial(path: str, counts: Counter[str]) -> bytes:
    """A mapper's output for one file."""
    return json.dumps({"path": path, "counts": counts}).encode()


def decode_partial(value: bytes) -> tuple[str, Counter[str]]:
    """The file path and counts of a mapper's output."""
    data = json.loads(value)
    return data["path"], Counter(data["counts"])


def encode_result(files: list[str], counts: Counter[str]) -> bytes:
    """The reducer's running total: which files are in it, and the counts."""
    return json.dumps({"files": sorted(files), "counts": counts}).encode()


def decode_result(value: bytes) -> tuple[list[str], Counter[str]]:
    """Files folded in so far and their total counts."""
    data = json.loads(value)
    return list(data["files"]), Counter(data["counts"])


class Queues:
    """Queue names and the result id of one word-count run."""

    def __init__(self, prefix: str) -> None:
        self.map = f"{prefix}/map"
        self.reduce = f"{prefix}/reduce"
        self.result = f"{prefix}/result"
        self.result_id = f"{prefix}/total"
