"""A random walk of valid and invalid operations checked against a simple model."""

from __future__ import annotations

import random
from dataclasses import dataclass

from ..errors import DependencyError, InvalidArgument
from ..modification import Modification
from ..types import Task, TaskID
from .harness import Harness, conformance


@dataclass
class _Expected:
    queue: str
    version: int
    value: bytes
    claims: int


class ModelCases:
    """After every operation, accepted or rejected, the store matches the model."""

    random_steps = 300

    @conformance
    async def test_random_operations_keep_invariants(self, h: Harness) -> None:
        rng = random.Random(20261128)
        queues = [h.q(f"m{i}") for i in range(3)]
        model: dict[str, _Expected] = {}
        held: dict[str, Task] = {}

        def pick_task() -> Task | None:
            return held[rng.choice(sorted(held))] if held else None

        for step in range(self.random_steps):
            op = rng.choice(["insert", "claim", "change", "delete", "stale", "invalid", "depend"])
            if op == "insert":
                count = rng.randint(1, 3)
                mod = Modification()
                for _ in range(count):
                    mod.insert(rng.choice(queues), rng.randbytes(rng.randint(0, 16)))
                for t in (await h.eq.modify(mod)).inserted:
                    model[t.id] = _Expected(t.queue, 0, t.value, 0)
            elif op == "claim":
                claimed = await h.eq.try_claim(queues, 60)
                if claimed is not None:
                    expected = model[claimed.id]
                    assert claimed.version == expected.version + 1
                    expected.version += 1
                    expected.claims += 1
                    held[claimed.id] = claimed
                else:
                    assert len(held) == len(model), "claim found nothing with tasks available"
            elif op == "change" and (task := pick_task()) is not None:
                new_queue = rng.choice(queues)
                value = rng.randbytes(4)
                [changed] = (
                    await h.eq.modify(Modification().change(task, queue=new_queue, value=value))
                ).changed
                model[task.id] = _Expected(new_queue, task.version + 1, value, task.claims)
                del held[task.id]
                assert changed.version == task.version + 1
            elif op == "delete" and (task := pick_task()) is not None:
                await h.eq.modify(Modification().delete(task))
                del model[task.id], held[task.id]
            elif op == "stale" and model:
                task_id = rng.choice(sorted(model))
                wrong = TaskID(task_id, model[task_id].version + rng.choice([1, 2, 9]))
                try:
                    await h.eq.modify(Modification().delete(wrong).insert(queues[0]))
                except DependencyError as err:
                    assert [d.id for d in err.deletes] == [task_id]
                else:
                    raise AssertionError("stale delete succeeded")
            elif op == "invalid":
                bad = rng.choice(
                    [
                        Modification().insert(""),
                        Modification().insert(queues[0], attempt=-5),
                        Modification().insert(queues[0], id="x" * 200),
                        Modification().insert(queues[0], id="same").insert(queues[1], id="same"),
                    ]
                )
                try:
                    await h.eq.modify(bad)
                except InvalidArgument:
                    pass
                else:
                    raise AssertionError("invalid modification accepted")
            elif op == "depend" and model:
                task_id = rng.choice(sorted(model))
                await h.eq.modify(Modification().depend(TaskID(task_id, model[task_id].version)))

            if step % 10 == 0 or step == self.random_steps - 1:
                await _check(h, queues, model)


async def _check(h: Harness, queues: list[str], model: dict[str, _Expected]) -> None:
    stored: dict[str, Task] = {}
    for queue in queues:
        for task in await h.eq.tasks(queue):
            assert task.id not in stored, "a task listed in two queues"
            stored[task.id] = task
    assert set(stored) == set(model)
    for task_id, task in stored.items():
        expected = model[task_id]
        assert (task.queue, task.version, task.value, task.claims) == (
            expected.queue,
            expected.version,
            expected.value,
            expected.claims,
        )
    counts = await h.eq.queues(exact=queues)
    for queue in queues:
        assert counts.get(queue, 0) == sum(1 for e in model.values() if e.queue == queue)
