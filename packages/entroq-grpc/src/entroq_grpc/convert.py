"""Conversions between entroq_core values and the EntroQ wire messages.

This is the only module that imports the generated code in ``_proto``; everything
else speaks entroq_core types. Building core request objects here (``*_from_pb``)
is how the server validates wire input: the core requests check every field.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from google.protobuf.any_pb2 import Any as AnyPB
from google.protobuf.message import DecodeError, Message
from google.rpc import code_pb2, status_pb2

from entroq_core.errors import DependencyError, InvalidArgument
from entroq_core.requests import (
    MAX_VALUE_BYTES,
    ClaimRequest,
    ModifyRequest,
    QueuesRequest,
    TasksRequest,
)
from entroq_core.timeutil import from_ms, to_ms
from entroq_core.types import ModifyResult, QueueStats, Task, TaskChange, TaskData, TaskID

from ._proto import entroq_pb2 as pb

SERVICE_NAME: str = pb.DESCRIPTOR.services_by_name["EntroQ"].full_name
"""The fully qualified service name, ``proto.EntroQ``."""

DEPENDENCY_MESSAGE = "modification dependency error"
"""The status message of every dependency error (NOT_FOUND)."""

MODIFY_DEP_TYPE_URL = "type.googleapis.com/" + pb.ModifyDep.DESCRIPTOR.full_name
"""The type URL of the ``proto.ModifyDep`` details packed in a dependency error."""

STATUS_DETAILS_KEY = "grpc-status-details-bin"
"""The trailer that carries a serialized ``google.rpc.Status``."""


# --- method table ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Undecodable:
    """Stands in for a request whose bytes are not a valid message, so the handler can say so."""

    type_name: str
    size: int
    error: str

    def invalid(self) -> InvalidArgument:
        """The InvalidArgument that describes the bad bytes."""
        return InvalidArgument(
            "request", f"<{self.size} bytes>", f"is not a valid {self.type_name}: {self.error}"
        )


@dataclass(frozen=True, slots=True)
class WireMethod:
    """One RPC of the EntroQ service and how its messages are (de)serialized."""

    name: str
    path: str
    server_streaming: bool
    request_type: type[Message]
    response_type: type[Message]

    def serialize(self, message: Message) -> bytes:
        """Serialize a request or response message."""
        return message.SerializeToString()

    def parse_request(self, raw: bytes) -> Message | Undecodable:
        """Parse request bytes; never raises, so bad bytes become INVALID_ARGUMENT, not UNKNOWN."""
        try:
            return self.request_type.FromString(raw)
        except (DecodeError, ValueError, TypeError) as exc:
            return Undecodable(self.request_type.DESCRIPTOR.full_name, len(raw), str(exc))

    @property
    def parse_response(self) -> Callable[[bytes], Message]:
        """The response deserializer for a client."""
        return self.response_type.FromString


def _methods() -> dict[str, WireMethod]:
    service = pb.DESCRIPTOR.services_by_name["EntroQ"]
    classes = {
        name: getattr(pb, name)
        for name in (
            "ClaimRequest",
            "ClaimResponse",
            "ModifyRequest",
            "ModifyResponse",
            "TasksRequest",
            "TasksResponse",
            "QueuesRequest",
            "QueuesResponse",
            "TimeRequest",
            "TimeResponse",
        )
    }
    return {
        m.name: WireMethod(
            name=m.name,
            path=f"/{service.full_name}/{m.name}",
            server_streaming=m.server_streaming,
            request_type=classes[m.input_type.name],
            response_type=classes[m.output_type.name],
        )
        for m in service.methods
    }


METHODS: dict[str, WireMethod] = _methods()
"""Every RPC of ``proto.EntroQ`` by method name."""


# --- tasks ----------------------------------------------------------------


def _at_ms(at: datetime | None) -> int:
    return to_ms(at) if at is not None else 0


# The last millisecond a datetime can hold (9999-12-31T23:59:59.999Z).
MAX_AT_MS = to_ms(datetime.max.replace(tzinfo=UTC))


def _at(ms: int, field: str) -> datetime | None:
    # 0 (unset) and negative times mean "now", as in the classic protocol.
    if ms > MAX_AT_MS:
        raise InvalidArgument(field, ms, f"is after the year 9999 (at most {MAX_AT_MS} ms)")
    return from_ms(ms) if ms > 0 else None


def task_to_pb(task: Task) -> pb.Task:
    """Encode a stored task."""
    return pb.Task(
        queue=task.queue,
        id=task.id,
        version=task.version,
        at_ms=to_ms(task.at),
        claimant_id=task.claimant,
        value=task.value,
        created_ms=to_ms(task.created),
        modified_ms=to_ms(task.modified),
        claims=task.claims,
        attempt=task.attempt,
        err=task.err,
    )


def task_from_pb(msg: pb.Task) -> Task:
    """Decode a stored task sent by a server."""
    return Task(
        queue=msg.queue,
        id=msg.id,
        version=msg.version,
        at=from_ms(msg.at_ms),
        claimant=msg.claimant_id,
        value=msg.value,
        created=from_ms(msg.created_ms),
        modified=from_ms(msg.modified_ms),
        claims=msg.claims,
        attempt=msg.attempt,
        err=msg.err,
    )


def task_id_to_pb(task_id: TaskID) -> pb.TaskID:
    """Encode an id+version reference."""
    return pb.TaskID(id=task_id.id, version=task_id.version, queue=task_id.queue)


def task_id_from_pb(msg: pb.TaskID) -> TaskID:
    """Decode an id+version reference (unvalidated)."""
    return TaskID(id=msg.id, version=msg.version, queue=msg.queue)


def data_to_pb(data: TaskData) -> pb.TaskData:
    """Encode insert or change data (``skip_colliding`` has no wire field)."""
    return pb.TaskData(
        queue=data.queue,
        at_ms=_at_ms(data.at),
        value=data.value,
        id=data.id,
        attempt=data.attempt,
        err=data.err,
    )


def data_from_pb(msg: pb.TaskData, field: str = "data") -> TaskData:
    """Decode insert or change data named ``field`` (only its time is checked here).

    Raises:
        InvalidArgument: an arrival time no datetime can hold.
    """
    return TaskData(
        queue=msg.queue,
        at=_at(msg.at_ms, f"{field}.at"),
        value=msg.value,
        id=msg.id,
        attempt=msg.attempt,
        err=msg.err,
    )


# --- requests -------------------------------------------------------------


def claim_to_pb(request: ClaimRequest, poll_ms: int = 0) -> pb.ClaimRequest:
    """Encode a claim; ``poll_ms`` only matters to Claim (0: server default)."""
    return pb.ClaimRequest(
        claimant_id=request.claimant,
        queues=request.queues,
        duration_ms=request.duration_ms,
        poll_ms=poll_ms,
    )


def claim_from_pb(msg: pb.ClaimRequest) -> tuple[ClaimRequest, float | None]:
    """Decode and validate a claim; return it with the poll in seconds (None: default).

    Raises:
        InvalidArgument: a bad claimant, queue list, duration or poll.
    """
    request = ClaimRequest(
        claimant=msg.claimant_id, queues=tuple(msg.queues), duration_ms=msg.duration_ms
    )
    if msg.poll_ms < 0:
        raise InvalidArgument("poll", msg.poll_ms, "must not be negative (0 uses the default)")
    return request, (msg.poll_ms / 1000.0 if msg.poll_ms else None)


MAX_WIRE_VERSION = 2**31 - 1
"""Versions are int32 on the classic wire."""


def _check_wire_versions(request: ModifyRequest) -> None:
    named = (
        [(f"changes[{i}].old.version", c.old.version) for i, c in enumerate(request.changes)]
        + [(f"deletes[{i}].version", d.version) for i, d in enumerate(request.deletes)]
        + [(f"depends[{i}].version", d.version) for i, d in enumerate(request.depends)]
    )
    for field, version in named:
        if version > MAX_WIRE_VERSION:
            raise InvalidArgument(field, version, f"exceeds the wire limit of {MAX_WIRE_VERSION}")


def modify_to_pb(request: ModifyRequest) -> pb.ModifyRequest:
    """Encode a modification.

    Raises:
        InvalidArgument: a version does not fit the wire's int32.
    """
    _check_wire_versions(request)
    return pb.ModifyRequest(
        claimant_id=request.claimant,
        inserts=[data_to_pb(d) for d in request.inserts],
        changes=[
            pb.TaskChange(old_id=task_id_to_pb(c.old), new_data=data_to_pb(c.new))
            for c in request.changes
        ],
        deletes=[task_id_to_pb(d) for d in request.deletes],
        depends=[task_id_to_pb(d) for d in request.depends],
    )


def modify_from_pb(msg: pb.ModifyRequest, max_value_bytes: int = MAX_VALUE_BYTES) -> ModifyRequest:
    """Decode and validate a modification, with values limited to ``max_value_bytes``.

    Raises:
        InvalidArgument: any field breaks the contract (names the field).
    """
    return ModifyRequest(
        claimant=msg.claimant_id,
        inserts=tuple(data_from_pb(d, f"inserts[{i}]") for i, d in enumerate(msg.inserts)),
        changes=tuple(
            TaskChange(
                old=task_id_from_pb(c.old_id), new=data_from_pb(c.new_data, f"changes[{i}].new")
            )
            for i, c in enumerate(msg.changes)
        ),
        deletes=tuple(task_id_from_pb(d) for d in msg.deletes),
        depends=tuple(task_id_from_pb(d) for d in msg.depends),
        max_value_bytes=max_value_bytes,
    )


def tasks_to_pb(request: TasksRequest) -> pb.TasksRequest:
    """Encode a listing request."""
    return pb.TasksRequest(
        claimant_id=request.claimant,
        queue=request.queue,
        limit=request.limit,
        task_id=request.ids,
        omit_values=request.omit_values,
    )


def tasks_from_pb(msg: pb.TasksRequest) -> TasksRequest:
    """Decode and validate a listing request.

    Raises:
        InvalidArgument: neither queue nor ids, a bad name, or a negative limit.
    """
    return TasksRequest(
        queue=msg.queue,
        claimant=msg.claimant_id,
        ids=tuple(msg.task_id),
        limit=msg.limit,
        omit_values=msg.omit_values,
    )


def queues_to_pb(request: QueuesRequest) -> pb.QueuesRequest:
    """Encode a queue selection."""
    return pb.QueuesRequest(
        match_prefix=request.prefixes, match_exact=request.exact, limit=request.limit
    )


def queues_from_pb(msg: pb.QueuesRequest) -> QueuesRequest:
    """Decode and validate a queue selection.

    Raises:
        InvalidArgument: a bad exact name or a negative limit.
    """
    return QueuesRequest(
        prefixes=tuple(msg.match_prefix), exact=tuple(msg.match_exact), limit=msg.limit
    )


# --- responses ------------------------------------------------------------


def claim_response(task: Task | None) -> pb.ClaimResponse:
    """Encode a claim result; an unset task means nothing was available (TryClaim)."""
    return pb.ClaimResponse(task=task_to_pb(task)) if task is not None else pb.ClaimResponse()


def claimed_task(msg: pb.ClaimResponse) -> Task | None:
    """Decode a claim result."""
    return task_from_pb(msg.task) if msg.HasField("task") else None


def result_to_pb(result: ModifyResult) -> pb.ModifyResponse:
    """Encode a modification result."""
    return pb.ModifyResponse(
        inserted=[task_to_pb(t) for t in result.inserted],
        changed=[task_to_pb(t) for t in result.changed],
    )


def result_from_pb(msg: pb.ModifyResponse) -> ModifyResult:
    """Decode a modification result."""
    return ModifyResult(
        inserted=tuple(task_from_pb(t) for t in msg.inserted),
        changed=tuple(task_from_pb(t) for t in msg.changed),
    )


def tasks_response(tasks: Iterable[pb.Task]) -> pb.TasksResponse:
    """Wrap encoded tasks in one TasksResponse."""
    return pb.TasksResponse(tasks=tasks)


def tasks_in(msg: Message) -> list[Task]:
    """Decode the tasks of one TasksResponse."""
    assert isinstance(msg, pb.TasksResponse)
    return [task_from_pb(t) for t in msg.tasks]


def stats_response(stats: Iterable[QueueStats], names_only: bool = False) -> pb.QueuesResponse:
    """Encode queue stats; ``names_only`` fills just name and num_tasks (the Queues RPC)."""
    if names_only:
        return pb.QueuesResponse(
            queues=[pb.QueueStats(name=s.name, num_tasks=s.num_tasks) for s in stats]
        )
    return pb.QueuesResponse(
        queues=[
            pb.QueueStats(
                name=s.name,
                num_tasks=s.num_tasks,
                num_claimed=s.num_claimed,
                num_available=s.num_available,
                max_claims=s.max_claims,
                num_future=s.num_future,
            )
            for s in stats
        ]
    )


def stats_from_pb(msg: pb.QueuesResponse) -> dict[str, QueueStats]:
    """Decode queue stats by name, in the server's order."""
    return {
        s.name: QueueStats(
            name=s.name,
            num_tasks=s.num_tasks,
            num_available=s.num_available,
            num_claimed=s.num_claimed,
            num_future=s.num_future,
            max_claims=s.max_claims,
        )
        for s in msg.queues
    }


def time_request() -> pb.TimeRequest:
    """The (empty) Time request."""
    return pb.TimeRequest()


def time_to_pb(now: datetime) -> pb.TimeResponse:
    """Encode the backend's clock."""
    return pb.TimeResponse(time_ms=to_ms(now))


def time_from_pb(msg: pb.TimeResponse) -> datetime:
    """Decode the backend's clock."""
    return from_ms(msg.time_ms)


def task_wire_size(task: Task) -> int:
    """A cheap upper-bound estimate of a task's encoded size, for chunking streams."""
    return (
        len(task.value)
        + 4 * (len(task.queue) + len(task.id) + len(task.claimant) + len(task.err))
        + 96
    )


# --- dependency errors ----------------------------------------------------

_DEP_LISTS = (
    ("inserts", pb.INSERT),
    ("depends", pb.DEPEND),
    ("deletes", pb.DELETE),
    ("changes", pb.CHANGE),
    ("claims", pb.CLAIM),
)
_LIST_BY_TYPE = {action: name for name, action in _DEP_LISTS}


def _pack(dep: pb.ModifyDep) -> AnyPB:
    packed = AnyPB()
    packed.Pack(dep)  # type URL: type.googleapis.com/proto.ModifyDep
    return packed


def dependency_status(error: DependencyError) -> bytes:
    """Serialize the ``google.rpc.Status`` for a dependency error's details trailer.

    One ``ModifyDep{type: DETAIL, msg}`` comes first, then one per offending task.
    """
    details = [_pack(pb.ModifyDep(type=pb.DETAIL, msg=error.message))]
    for name, action in _DEP_LISTS:
        for task_id in getattr(error, name):
            details.append(_pack(pb.ModifyDep(type=action, id=task_id_to_pb(task_id))))
    status = status_pb2.Status(code=code_pb2.NOT_FOUND, message=DEPENDENCY_MESSAGE, details=details)
    serialized: bytes = status.SerializeToString()
    return serialized


def dependency_from_status(raw: bytes, message: str = "") -> DependencyError | None:
    """Rebuild a DependencyError from a details trailer, or None if it holds no ModifyDep.

    Details of other types are ignored; a ModifyDep whose type this version does
    not know is kept, as text, in the error's message rather than dropped.
    """
    try:
        status = status_pb2.Status.FromString(raw)
    except (DecodeError, ValueError):
        return None
    lists: dict[str, list[TaskID]] = {name: [] for name, _ in _DEP_LISTS}
    texts: list[str] = []
    found = False
    for detail in status.details:
        if detail.type_url.rpartition("/")[2] != pb.ModifyDep.DESCRIPTOR.full_name:
            continue
        dep = pb.ModifyDep()
        try:
            dep.ParseFromString(detail.value)
        except (DecodeError, ValueError):
            continue
        found = True
        if dep.type == pb.DETAIL:
            if dep.msg:
                texts.append(dep.msg)
            continue
        name = _LIST_BY_TYPE.get(dep.type)
        if name is None:
            texts.append(f"unknown dependency type {dep.type} for {task_id_from_pb(dep.id)}")
            continue
        lists[name].append(task_id_from_pb(dep.id))
    if not found:
        return None
    if not texts and message and message != DEPENDENCY_MESSAGE:
        texts.append(message)
    return DependencyError(message="; ".join(texts), **lists)
