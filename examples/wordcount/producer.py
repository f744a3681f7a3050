"""Insert one map task per file, and the empty result, in one transaction."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from entroq_core import AsyncEntroQ, Modification

from .counting import Queues, encode_file, encode_result


async def produce(eq: AsyncEntroQ, queues: Queues, files: list[Path]) -> None:
    """Queue every file for mapping and create the result task."""
    mod = Modification().insert(queues.result, encode_result([], Counter()), id=queues.result_id)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        mod.insert(queues.map, encode_file(str(path), text))
    await eq.modify(mod)
