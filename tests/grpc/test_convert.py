"""Conversions between core values and wire messages, and the committed generated code."""

from __future__ import annotations

import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import grpc
import pytest
from google.protobuf.any_pb2 import Any as AnyPB
from google.rpc import status_pb2

from entroq_core.errors import DependencyError, InvalidArgument
from entroq_core.requests import ClaimRequest, ModifyRequest, QueuesRequest, TasksRequest
from entroq_core.timeutil import utcnow
from entroq_core.types import Task, TaskChange, TaskData, TaskID
from entroq_grpc import convert
from entroq_grpc._proto import entroq_pb2 as pb
from entroq_grpc.status import error_for, failure_for

ROOT = Path(__file__).resolve().parents[2]


def test_task_round_trip_keeps_every_field() -> None:
    now = utcnow()
    task = Task(
        queue="q",
        id="i",
        version=7,
        at=now + timedelta(seconds=5),
        claimant="c",
        value=b"\x00v",
        created=now - timedelta(days=1),
        modified=now,
        claims=3,
        attempt=2,
        err="boom",
    )
    assert (
        convert.task_from_pb(pb.Task.FromString(convert.task_to_pb(task).SerializeToString()))
        == task
    )


def test_modify_request_round_trip() -> None:
    at = utcnow() + timedelta(minutes=1)
    request = ModifyRequest(
        claimant="me",
        inserts=(
            TaskData(queue="a", at=at, value=b"1", id="new", attempt=1, err="e"),
            TaskData("b"),
        ),
        changes=(TaskChange(TaskID("x", 2, "a"), TaskData(queue="c", value=b"2")),),
        deletes=(TaskID("y", 0),),
        depends=(TaskID("z", 5, "d"),),
    )
    assert convert.modify_from_pb(convert.modify_to_pb(request)) == request


def test_other_requests_round_trip() -> None:
    claim = ClaimRequest("me", ("a", "b"), 1500)
    assert convert.claim_from_pb(convert.claim_to_pb(claim, poll_ms=250)) == (claim, 0.25)
    assert convert.claim_from_pb(convert.claim_to_pb(claim))[1] is None
    tasks = TasksRequest(queue="q", claimant="c", ids=("1", "2"), limit=3, omit_values=True)
    assert convert.tasks_from_pb(convert.tasks_to_pb(tasks)) == tasks
    queues = QueuesRequest(prefixes=("p",), exact=("e",), limit=4)
    assert convert.queues_from_pb(convert.queues_to_pb(queues)) == queues


def test_at_zero_or_negative_means_now() -> None:
    assert convert.data_from_pb(pb.TaskData(queue="q", at_ms=0)).at is None
    assert convert.data_from_pb(pb.TaskData(queue="q", at_ms=-5)).at is None
    assert convert.data_to_pb(TaskData("q")).at_ms == 0


def test_wire_validation_is_core_validation() -> None:
    with pytest.raises(InvalidArgument) as info:
        convert.claim_from_pb(pb.ClaimRequest(claimant_id="c", queues=["q"], duration_ms=0))
    assert info.value.field == "duration"


def test_dependency_error_round_trips_through_status_details() -> None:
    err = DependencyError(
        inserts=[TaskID("i", 0, "q")],
        depends=[TaskID("d", 1)],
        deletes=[TaskID("x", 2)],
        changes=[TaskID("c", 3)],
        claims=[TaskID("l", 4, "q")],
        message="why",
    )
    back = convert.dependency_from_status(convert.dependency_status(err))
    assert back is not None
    assert (back.inserts, back.depends, back.deletes, back.changes, back.claims) == (
        err.inserts,
        err.depends,
        err.deletes,
        err.changes,
        err.claims,
    )
    assert back.message == "why"


def _status_with(*deps: pb.ModifyDep, extra: list[AnyPB] | None = None) -> bytes:
    details = []
    for dep in deps:
        packed = AnyPB()
        packed.Pack(dep)
        details.append(packed)
    status = status_pb2.Status(code=5, message="x", details=details + (extra or []))
    return status.SerializeToString()


def test_unknown_dependency_types_are_kept_as_text_not_dropped() -> None:
    raw = _status_with(
        pb.ModifyDep(type=pb.DETAIL, msg="detail"),
        pb.ModifyDep(type=99, id=pb.TaskID(id="future", version=1)),  # type: ignore[arg-type]
        pb.ModifyDep(type=pb.DELETE, id=pb.TaskID(id="gone", version=2)),
    )
    err = convert.dependency_from_status(raw)
    assert err is not None
    assert err.deletes == (TaskID("gone", 2),)
    assert "unknown dependency type 99" in err.message and "future" in err.message
    assert "detail" in err.message


def test_details_of_other_types_are_ignored() -> None:
    other = AnyPB()
    other.Pack(pb.TimeResponse(time_ms=1))
    assert convert.dependency_from_status(_status_with(extra=[other])) is None
    assert convert.dependency_from_status(b"\xff\xff not a status") is None


def test_not_found_without_details_is_still_a_dependency_error() -> None:
    err = error_for(grpc.StatusCode.NOT_FOUND, "classic server text")
    assert isinstance(err, DependencyError) and err.message == "classic server text"


@pytest.mark.parametrize("exc", [KeyError("k"), ZeroDivisionError(), OSError("disk")])
def test_no_exception_maps_to_unknown_or_internal(exc: Exception) -> None:
    assert failure_for(exc).code not in (grpc.StatusCode.UNKNOWN, grpc.StatusCode.INTERNAL)


def test_service_and_methods_come_from_the_proto() -> None:
    assert convert.SERVICE_NAME == "proto.EntroQ"
    assert convert.MODIFY_DEP_TYPE_URL == "type.googleapis.com/proto.ModifyDep"
    assert set(convert.METHODS) == {
        "TryClaim",
        "Claim",
        "Modify",
        "Tasks",
        "Queues",
        "QueueStats",
        "Time",
        "StreamTasks",
    }
    assert [m.name for m in convert.METHODS.values() if m.server_streaming] == ["StreamTasks"]


def test_field_numbers_are_the_classic_ones() -> None:
    def numbers(message: type) -> dict[str, int]:
        return {f.name: f.number for f in message.DESCRIPTOR.fields}  # type: ignore[attr-defined]

    assert numbers(pb.Task) == {
        "queue": 1, "id": 2, "version": 3, "at_ms": 4, "claimant_id": 5, "value": 6,
        "created_ms": 7, "modified_ms": 8, "claims": 9, "attempt": 10, "err": 11,
    }  # fmt: skip
    assert numbers(pb.TaskData) == {
        "queue": 1, "at_ms": 2, "value": 3, "id": 4, "attempt": 5, "err": 6,
    }  # fmt: skip
    assert numbers(pb.TaskID) == {"id": 1, "version": 2, "queue": 3}
    assert numbers(pb.QueueStats) == {
        "name": 1, "num_tasks": 2, "num_claimed": 3, "num_available": 4, "max_claims": 5,
        "num_future": 6,
    }  # fmt: skip
    assert numbers(pb.ClaimRequest) == {
        "claimant_id": 1,
        "queues": 2,
        "duration_ms": 3,
        "poll_ms": 4,
    }
    assert numbers(pb.ModifyRequest) == {
        "claimant_id": 1, "inserts": 2, "changes": 3, "deletes": 4, "depends": 5,
    }  # fmt: skip
    assert numbers(pb.TasksRequest) == {
        "claimant_id": 1, "queue": 2, "limit": 3, "task_id": 4, "omit_values": 5,
    }  # fmt: skip
    assert numbers(pb.ModifyDep) == {"type": 1, "id": 2, "msg": 3}
    assert dict(pb.ActionType.items()) == {
        "CLAIM": 0, "DELETE": 1, "CHANGE": 2, "DEPEND": 3, "DETAIL": 4, "INSERT": 5, "READ": 6,
    }  # fmt: skip


def test_committed_generated_code_is_fresh() -> None:
    """Regenerating with the pinned grpcio-tools changes nothing (CI fails otherwise)."""
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "gen_proto.py"), "--check"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr + done.stdout


def test_versions_beyond_the_wire_int32_are_invalid_arguments() -> None:
    request = ModifyRequest(claimant="c", depends=(TaskID("t", 2**31),))
    with pytest.raises(InvalidArgument) as info:
        convert.modify_to_pb(request)
    assert info.value.field == "depends[0].version"
