"""A modification as one etcd Txn, and the reading of why a Txn's compares failed.

Pure functions over records: the backend does the I/O. The dependency rules are
SPEC section 2's, list for list the same as the mem backend's.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from entroq_core.dependencies import Holding, check_dependencies
from entroq_core.errors import DependencyError, InvalidArgument
from entroq_core.requests import ModifyRequest
from entroq_core.timeutil import to_ms
from entroq_core.types import TaskData

from . import ops
from .keys import QUEUE_MARK, KeyLayout
from .record import Record, decode, encode


@dataclass(frozen=True, slots=True)
class Current:
    """What etcd holds for one task id: a record with its mod_revision, or nothing."""

    record: Record | None
    mod_revision: int = 0
    foreign: bool = False  # a key is there, but EntroQ did not write it


ABSENT = Current(None)


def current_from(kvs: list[ops.KeyValue]) -> Current:
    """Interpret the result of reading one task key."""
    if not kvs:
        return ABSENT
    record = decode(kvs[0].value)
    if record is None:
        return Current(None, kvs[0].mod_revision, foreign=True)
    return Current(record, kvs[0].mod_revision)


@dataclass(frozen=True, slots=True)
class Insert:
    """One insert of the request, with its position and final id."""

    index: int
    data: TaskData
    id: str
    explicit: bool


@dataclass
class Verdict:
    """Why compares failed: a real dependency error, skippable inserts, or a race."""

    error: DependencyError | None = None
    skip: set[int] = field(default_factory=set)


def diagnose(
    request: ModifyRequest,
    inserts: list[Insert],
    state: dict[str, Current],
    keys: KeyLayout,
    now_ms: int,
) -> Verdict:
    """Check the request against ``state`` exactly as the mem backend does.

    Raises InvalidArgument if an explicit insert id is taken by a key EntroQ did
    not write (it must never be overwritten, and it has no version to report).
    """
    for ins in inserts:
        if ins.explicit and state.get(ins.id, ABSENT).foreign:
            raise InvalidArgument(
                f"inserts[{ins.index}].id",
                ins.id,
                f"etcd key {keys.task(ins.id)!r} holds data EntroQ did not write",
            )

    def lookup(task_id: str) -> Holding | None:
        record = state.get(task_id, ABSENT).record
        if record is None:
            return None
        leased = record.at_ms > now_ms
        return Holding(record.id, record.version, record.queue, record.claimant, leased)

    try:
        skip = check_dependencies(request, lookup)
    except DependencyError as error:
        return Verdict(error=error)
    return Verdict(skip=set(skip))


@dataclass
class Plan:
    """The Txn of one modification attempt and the tasks it will produce."""

    request: ops.TxnRequest
    inserted: list[tuple[Record, bytes]]
    changed: list[tuple[Record, bytes]]
    deleted: list[str]


def build(
    request: ModifyRequest,
    inserts: list[Insert],
    state: dict[str, Current],
    keys: KeyLayout,
    now_ms: int,
) -> Plan:
    """Build the single Txn for a modification whose deletes, changes and depends are
    in ``state``.

    Compares: every delete, change and depend on its record's mod_revision (so
    the lease and version seen in ``state`` still hold), every explicit insert
    id on absence. The failure branch reads
    every named task, so a failed Txn explains itself in the same round trip.
    """
    modifier = request.claimant
    compare: list[ops.Compare] = []
    success: list[ops.RequestOp] = []
    named: list[str] = []
    registry: set[str] = set()

    for d in request.deletes:
        current = state[d.id]
        record = current.record
        assert record is not None
        compare.append(ops.mod_is(keys.task(d.id), current.mod_revision))
        success.append(ops.delete(keys.task(d.id)))
        success.append(ops.delete(keys.value(d.id)))
        # Both places, always: a writer whose clock runs ahead may have filed it as ready.
        for key in keys.index_candidates(record.queue, record.at_ms, d.id):
            success.append(ops.delete(key))
        success.append(ops.delete(keys.stats(record.queue, record.claims, record.at_ms, d.id)))
        named.append(d.id)

    changed = []
    for c in request.changes:
        current = state[c.old.id]
        old = current.record
        assert old is not None
        new_at = to_ms(c.new.at) if c.new.at is not None else now_ms
        new = Record(
            queue=c.new.queue,
            id=old.id,
            version=old.version + 1,
            at_ms=new_at,
            claimant=modifier,
            created_ms=old.created_ms,
            modified_ms=now_ms,
            claims=old.claims,
            attempt=c.new.attempt,
            err=c.new.err,
        )
        compare.append(ops.mod_is(keys.task(old.id), current.mod_revision))
        success.extend(_replace_keys(keys, old, new, now_ms))
        success.append(ops.put(keys.value(old.id), c.new.value))
        registry.add(new.queue)
        changed.append((new, c.new.value))
        named.append(old.id)

    for d in request.depends:
        # On the write that was read, not on etcd's version count: a key EntroQ did
        # not write can have any version, and is no task to depend on.
        compare.append(ops.mod_is(keys.task(d.id), state[d.id].mod_revision))
        named.append(d.id)

    inserted = []
    for ins in inserts:
        data = ins.data
        record = Record(
            queue=data.queue,
            id=ins.id,
            version=0,
            at_ms=to_ms(data.at) if data.at is not None else now_ms,
            claimant=modifier,
            created_ms=now_ms,
            modified_ms=now_ms,
            claims=0,
            attempt=data.attempt,
            err=data.err,
        )
        if ins.explicit:
            compare.append(ops.absent(keys.task(ins.id)))
            named.append(ins.id)
        encoded = encode(record)
        success.append(ops.put(keys.task(ins.id), encoded))
        success.append(ops.put(keys.value(ins.id), data.value))
        success.append(ops.put(keys.index(record.queue, record.at_ms, ins.id, now_ms), encoded))
        success.append(ops.put(keys.stats(record.queue, 0, record.at_ms, ins.id), b""))
        registry.add(record.queue)
        inserted.append((record, data.value))

    for queue in sorted(registry):
        success.append(ops.put(keys.queue(queue), QUEUE_MARK))
    failure = [ops.get(keys.task(task_id)) for task_id in named]
    return Plan(
        request=ops.txn(compare, success, failure),
        inserted=inserted,
        changed=changed,
        deleted=[d.id for d in request.deletes],
    )


def claim_ops(keys: KeyLayout, index_key: bytes, old: Record, new: Record) -> list[ops.RequestOp]:
    """Operations moving a claimed task from ``index_key`` to its lease's future key."""
    encoded = encode(new)
    return [
        ops.put(keys.task(old.id), encoded),
        ops.delete(index_key),
        ops.put(keys.future(new.queue, new.at_ms, new.id), encoded),
        ops.delete(keys.stats(old.queue, old.claims, old.at_ms, old.id)),
        ops.put(keys.stats(new.queue, new.claims, new.at_ms, new.id), b""),
    ]


def _replace_keys(keys: KeyLayout, old: Record, new: Record, now_ms: int) -> list[ops.RequestOp]:
    """Rewrite a task's record, index and stats keys; etcd refuses a key twice in one Txn."""
    encoded = encode(new)
    out = [ops.put(keys.task(new.id), encoded)]
    new_index = keys.index(new.queue, new.at_ms, new.id, now_ms)
    for key in keys.index_candidates(old.queue, old.at_ms, old.id):
        if key != new_index:
            out.append(ops.delete(key))
    out.append(ops.put(new_index, encoded))
    old_stats = keys.stats(old.queue, old.claims, old.at_ms, old.id)
    new_stats = keys.stats(new.queue, new.claims, new.at_ms, new.id)
    if old_stats != new_stats:
        out.append(ops.delete(old_stats))
    out.append(ops.put(new_stats, b""))
    return out
