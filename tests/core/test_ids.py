"""Task ids: valid UUIDv4 text, never repeated, not even across a fork."""

from __future__ import annotations

import os
import threading
import uuid

from entroq_core.ids import new_task_id


def test_ids_are_uuid4_text() -> None:
    for _ in range(1000):
        text = new_task_id()
        parsed = uuid.UUID(text)
        assert str(parsed) == text
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122


def test_ids_do_not_repeat_across_buffer_refills_and_threads() -> None:
    seen: list[str] = []

    def make() -> None:
        seen.extend(new_task_id() for _ in range(3000))

    threads = [threading.Thread(target=make) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 12_000
    assert len(set(seen)) == 12_000


def test_forked_child_does_not_reuse_the_parents_buffered_ids() -> None:
    new_task_id()  # the parent now holds buffered random bytes
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: report the next few ids and leave at once
        os.close(read_end)
        os.write(write_end, "\n".join(new_task_id() for _ in range(5)).encode())
        os._exit(0)
    os.close(write_end)
    parent_ids = {new_task_id() for _ in range(5)}
    with os.fdopen(read_end, "rb") as pipe:
        child_ids = set(pipe.read().decode().split("\n"))
    os.waitpid(pid, 0)
    assert len(child_ids) == 5
    assert not parent_ids & child_ids
