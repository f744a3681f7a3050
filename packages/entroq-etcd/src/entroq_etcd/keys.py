"""The key layout: every etcd key this backend reads or writes is made here.

Under the prefix ``P`` (default ``/entroq/``), each task has four keys:

- ``P t/<id>``: the task's record without its value (see ``record``). The etcd
  version of this key is the task's version + 1: every put of it is one EntroQ
  version, so a depend is a bare ``version`` compare, with no read.
- ``P v/<id>``: the task's value, written only by inserts and changes (a claim
  never rewrites a large value).
- one index key holding a copy of the record, where claims find it:
  ``P r/<queue>\\0<hash(id)>\\0<id>`` while it was available when written (the
  *ready* index, in hash order), or ``P f/<queue>\\0<at>\\0<id>`` while its arrival
  time was in the future (the *future* index, in time order). A task whose
  future ``at`` has passed stays in ``f`` until claimed or promoted to ``r``.
- ``P s/<queue>\\0<inverted claims>\\0<at>\\0<id>`` with no value: stats count
  these, and the first one in a queue has the most claims.

and each queue that ever held a task has ``P q/<queue>`` (value ``QUEUE_MARK``;
removed by a guarded Txn once the queue is empty) so queues can be listed without
scanning tasks. Keys under the prefix that EntroQ did not write are skipped by
claims and listings and never deleted (a registry key is only deleted if it
holds ``QUEUE_MARK``); only a key made to look like one of a queue's index keys,
NUL separators included, could be counted by its stats.

Why a hash-ordered ready index: etcd 3.4 walks every key of a range in memory
even when the range has a limit, so a claim must read a key range that holds
few keys. Ready keys spread uniformly over the hash space; a claim reads a
random window sized to hold a handful (see ``claimwindow``), which is also a
uniformly random choice of task. Queue names, ids and claimants never contain
NUL (requests reject it), so ``\\0`` ends each variable part and a queue's keys
never mix with those of a queue whose name extends it.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

DEFAULT_PREFIX = "/entroq/"
QUEUE_MARK = b"\xe1queue"

HASH_DIGITS = 8
HASH_SPACE: int = 1 << (4 * HASH_DIGITS)
AT_DIGITS = 15  # ms since the epoch; datetime's year 9999 still fits.
CLAIMS_DIGITS = 10
MAX_CLAIMS: int = int("9" * CLAIMS_DIGITS)
_SEP = b"\x00"


def prefix_end(key: bytes) -> bytes:
    """Return the smallest key greater than every key starting with ``key``."""
    trimmed = key.rstrip(b"\xff")
    if not trimmed:
        return b"\x00"  # etcd: from key to the end of the keyspace
    return trimmed[:-1] + bytes([trimmed[-1] + 1])


def id_hash(task_id: str) -> int:
    """Position of a task in its queue's ready index (uniform over HASH_SPACE)."""
    digest = hashlib.blake2b(task_id.encode(), digest_size=4).digest()
    return int.from_bytes(digest, "big") % HASH_SPACE


_MAX_AT: int = int("9" * AT_DIGITS)


def _at(ms: int) -> bytes:
    return b"%0*d" % (AT_DIGITS, max(0, min(ms, _MAX_AT)))


@dataclass(frozen=True, slots=True)
class IndexKey:
    """A parsed ready or future index key."""

    queue: str
    task_id: str
    ready: bool
    at_ms: int  # -1 for ready keys (their order is the hash, not the time)


class KeyLayout:
    """Builds and parses the keys under one prefix."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        raw = prefix.encode()
        self.prefix = raw
        self._t = raw + b"t/"
        self._v = raw + b"v/"
        self._r = raw + b"r/"
        self._f = raw + b"f/"
        self._s = raw + b"s/"
        self._q = raw + b"q/"

    # --- single keys -----------------------------------------------------------

    def task(self, task_id: str) -> bytes:
        """Key of a task's record."""
        return self._t + task_id.encode()

    def value(self, task_id: str) -> bytes:
        """Key of a task's value."""
        return self._v + task_id.encode()

    def ready(self, queue: str, task_id: str) -> bytes:
        """Ready-index key of a task."""
        return b"%s%s\x00%0*x\x00%s" % (
            self._r,
            queue.encode(),
            HASH_DIGITS,
            id_hash(task_id),
            task_id.encode(),
        )

    def future(self, queue: str, at_ms: int, task_id: str) -> bytes:
        """Future-index key of a task arriving at ``at_ms``."""
        return self._f + queue.encode() + _SEP + _at(at_ms) + _SEP + task_id.encode()

    def index(self, queue: str, at_ms: int, task_id: str, now_ms: int) -> bytes:
        """The index key a task gets when written at ``now_ms``."""
        if at_ms <= now_ms:
            return self.ready(queue, task_id)
        return self.future(queue, at_ms, task_id)

    def index_candidates(self, queue: str, at_ms: int, task_id: str) -> tuple[bytes, bytes]:
        """Both places a stored task's index key may be (it may have been promoted)."""
        return self.ready(queue, task_id), self.future(queue, at_ms, task_id)

    def stats(self, queue: str, claims: int, at_ms: int, task_id: str) -> bytes:
        """Stats key of a task."""
        inverted = MAX_CLAIMS - min(claims, MAX_CLAIMS)
        return b"%s%s\x00%0*d\x00%s\x00%s" % (
            self._s,
            queue.encode(),
            CLAIMS_DIGITS,
            inverted,
            _at(at_ms),
            task_id.encode(),
        )

    def queue(self, queue: str) -> bytes:
        """Registry key of a queue."""
        return self._q + queue.encode()

    # --- ranges: (start, end) ---------------------------------------------------

    def ready_range(self, queue: str) -> tuple[bytes, bytes]:
        """Every ready key of a queue."""
        start = self._r + queue.encode() + _SEP
        return start, prefix_end(start)

    def ready_window(self, queue: str, start: int, width: int) -> list[tuple[bytes, bytes]]:
        """Ready keys whose hash is in [start, start+width), wrapping around the space."""
        base = self._r + queue.encode() + _SEP
        start %= HASH_SPACE
        if width >= HASH_SPACE and start == 0:
            return [(base, prefix_end(base))]
        # A whole-queue window still starts at a random point: a read with a limit
        # returns keys from its start, and that start must not favour any task.
        end = start + min(width, HASH_SPACE)
        pieces = [(start, min(end, HASH_SPACE))]
        if end > HASH_SPACE:
            pieces.append((0, end - HASH_SPACE))
        out = []
        for lo, hi in pieces:
            lo_key = base + b"%0*x" % (HASH_DIGITS, lo)
            hi_key = base + b"%0*x" % (HASH_DIGITS, hi) if hi < HASH_SPACE else prefix_end(base)
            out.append((lo_key, hi_key))
        return out

    def future_range(self, queue: str) -> tuple[bytes, bytes]:
        """Every future-index key of a queue."""
        start = self._f + queue.encode() + _SEP
        return start, prefix_end(start)

    def due_range(self, queue: str, now_ms: int, since_ms: int = 0) -> tuple[bytes, bytes]:
        """Future-index keys arriving in [since_ms, now_ms]."""
        start = self._f + queue.encode() + _SEP
        return start + (_at(since_ms) if since_ms > 0 else b""), start + _at(now_ms + 1)

    def not_due_range(self, queue: str, now_ms: int) -> tuple[bytes, bytes]:
        """Future-index keys still in the future at ``now_ms``."""
        start = self._f + queue.encode() + _SEP
        return start + _at(now_ms + 1), prefix_end(start)

    def stats_range(self, queue: str) -> tuple[bytes, bytes]:
        """Every stats key of a queue (the first has the most claims)."""
        start = self._s + queue.encode() + _SEP
        return start, prefix_end(start)

    def unclaimed_future_range(self, queue: str, now_ms: int) -> tuple[bytes, bytes]:
        """Stats keys of never-claimed tasks arriving after ``now_ms``."""
        start = b"%s%s\x00%0*d\x00" % (self._s, queue.encode(), CLAIMS_DIGITS, MAX_CLAIMS)
        return start + _at(now_ms + 1), prefix_end(start)

    def queues_range(self, prefix: str = "") -> tuple[bytes, bytes]:
        """Registry keys of queues whose names start with ``prefix``."""
        start = self._q + prefix.encode()
        return start, prefix_end(start)

    def queue_keys_range(self, queue: str) -> tuple[bytes, bytes]:
        """Stats keys of a queue: empty exactly when the queue holds no task."""
        return self.stats_range(queue)

    # --- parsing ----------------------------------------------------------------

    def parse_queue(self, key: bytes) -> str | None:
        """Queue name of a registry key, or None if the key is not one of ours."""
        if not key.startswith(self._q):
            return None
        try:
            name = key[len(self._q) :].decode()
        except UnicodeDecodeError:
            return None
        return name if name and "\x00" not in name else None

    def parse_index(self, key: bytes) -> IndexKey | None:
        """Parse a ready or future index key, or None if it is not one of ours."""
        if key.startswith(self._r):
            ready, rest = True, key[len(self._r) :]
        elif key.startswith(self._f):
            ready, rest = False, key[len(self._f) :]
        else:
            return None
        parts = rest.split(_SEP)
        if len(parts) != 3 or not parts[0] or not parts[2]:
            return None
        middle = parts[1]
        try:
            queue, task_id = parts[0].decode(), parts[2].decode()
            if ready:
                if len(middle) != HASH_DIGITS or int(middle, 16) != id_hash(task_id):
                    return None
                at = -1
            else:
                if len(middle) != AT_DIGITS or not middle.isdigit():
                    return None
                at = int(middle)
        except (UnicodeDecodeError, ValueError):
            return None
        return IndexKey(queue=queue, task_id=task_id, ready=ready, at_ms=at)

    def parse_future_at(self, key: bytes) -> int | None:
        """Arrival time of a future-index key, or None if it is not one of ours."""
        parsed = self.parse_index(key)
        return None if parsed is None or parsed.ready else parsed.at_ms

    def parse_stats_claims(self, key: bytes) -> int | None:
        """Claims count of a stats key, or None if it is not one of ours."""
        if not key.startswith(self._s):
            return None
        parts = key[len(self._s) :].split(_SEP)
        if len(parts) != 4 or len(parts[1]) != CLAIMS_DIGITS or not parts[1].isdigit():
            return None
        return MAX_CLAIMS - int(parts[1])
