"""What a client written only from proto/entroq.proto can rely on (raw generated stubs)."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

import grpc
import pytest
from google.rpc import status_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc
from grpc_status import rpc_status

from entroq_grpc._proto import entroq_pb2 as pb
from entroq_grpc._proto import entroq_pb2_grpc
from scripts.servers.entroq_svc import ServerThread

WAIT = 60.0


def unique(name: str = "q") -> str:
    return f"wire-{uuid.uuid4().hex[:10]}/{name}"


def insert(
    stub: entroq_pb2_grpc.EntroQStub, *data: pb.TaskData, claimant: str = "c"
) -> list[pb.Task]:
    return list(
        stub.Modify(pb.ModifyRequest(claimant_id=claimant, inserts=data), timeout=WAIT).inserted
    )


def ref(task: pb.Task, version: int | None = None) -> pb.TaskID:
    return pb.TaskID(
        id=task.id, version=task.version if version is None else version, queue=task.queue
    )


def failure(call: object) -> grpc.RpcError:
    """Run a stub call expected to fail; return the error."""
    with pytest.raises(grpc.RpcError) as info:
        call()  # type: ignore[operator]
    return info.value


# --- dependency errors -------------------------------------------------------


def test_dependency_error_details_name_every_kind_of_failure(
    stub: entroq_pb2_grpc.EntroQStub,
) -> None:
    q = unique()
    depended, deleted, changed, leased, existing = insert(
        stub, *(pb.TaskData(queue=q, value=b"v") for _ in range(5))
    )
    # Another claimant leases one task for a long time.
    stub.Modify(
        pb.ModifyRequest(
            claimant_id="holder",
            changes=[
                pb.TaskChange(
                    old_id=ref(leased),
                    new_data=pb.TaskData(queue=q, at_ms=int(time.time() * 1000) + 3_600_000),
                )
            ],
        ),
        timeout=WAIT,
    )
    missing = str(uuid.uuid4())
    request = pb.ModifyRequest(
        claimant_id="c",
        inserts=[pb.TaskData(queue=q, id=existing.id)],
        depends=[ref(depended, 7), pb.TaskID(id=missing, version=0)],
        deletes=[ref(deleted, 3)],
        changes=[
            pb.TaskChange(old_id=ref(changed, 9), new_data=pb.TaskData(queue=q)),
            pb.TaskChange(old_id=pb.TaskID(id=leased.id, version=1), new_data=pb.TaskData(queue=q)),
        ],
    )
    err = failure(lambda: stub.Modify(request, timeout=WAIT))
    assert err.code() == grpc.StatusCode.NOT_FOUND
    assert err.details() == "modification dependency error"
    status = rpc_status.from_call(err)
    assert status is not None and status.code == grpc.StatusCode.NOT_FOUND.value[0]
    assert all(d.type_url == "type.googleapis.com/proto.ModifyDep" for d in status.details)
    deps = []
    for detail in status.details:
        dep = pb.ModifyDep()
        assert detail.Unpack(dep)
        deps.append(dep)
    assert deps[0].type == pb.DETAIL
    got = {(d.type, d.id.id, d.id.version) for d in deps[1:]}
    assert got == {
        (pb.INSERT, existing.id, 0),
        (pb.DEPEND, depended.id, 7),
        (pb.DEPEND, missing, 0),
        (pb.DELETE, deleted.id, 3),
        (pb.CHANGE, changed.id, 9),
        (pb.CLAIM, leased.id, 1),
    }
    # Nothing was applied.
    listed = stub.Tasks(pb.TasksRequest(queue=q), timeout=WAIT).tasks
    assert sorted(t.id for t in listed) == sorted(
        t.id for t in (depended, deleted, changed, leased, existing)
    )


def test_status_details_trailer_is_a_google_rpc_status(stub: entroq_pb2_grpc.EntroQStub) -> None:
    err = failure(
        lambda: stub.Modify(
            pb.ModifyRequest(claimant_id="c", deletes=[pb.TaskID(id="no-such-task", version=0)]),
            timeout=WAIT,
        )
    )
    raw = dict(err.trailing_metadata())["grpc-status-details-bin"]
    status = status_pb2.Status.FromString(raw)
    assert status.message == "modification dependency error"
    dep = pb.ModifyDep()
    status.details[1].Unpack(dep)
    assert (dep.type, dep.id.id) == (pb.DELETE, "no-such-task")


# --- bad input ----------------------------------------------------------------

LONG_QUEUE = "q" * 1025
LONG_ID = "i" * 129
ok_data = pb.TaskData(queue="bad-input/q")

BAD_REQUESTS = {
    "try-claim empty claimant": (
        "TryClaim",
        pb.ClaimRequest(queues=["q"], duration_ms=1000),
        "claimant",
    ),
    "try-claim long claimant": (
        "TryClaim",
        pb.ClaimRequest(claimant_id=LONG_ID, queues=["q"], duration_ms=1000),
        "claimant",
    ),
    "try-claim no queues": (
        "TryClaim",
        pb.ClaimRequest(claimant_id="c", duration_ms=1000),
        "queues",
    ),
    "try-claim empty queue": (
        "TryClaim",
        pb.ClaimRequest(claimant_id="c", queues=[""], duration_ms=1000),
        "queues",
    ),
    "try-claim long queue": (
        "TryClaim",
        pb.ClaimRequest(claimant_id="c", queues=[LONG_QUEUE], duration_ms=1000),
        "queues",
    ),
    "try-claim NUL in queue": (
        "TryClaim",
        pb.ClaimRequest(claimant_id="c", queues=["a\x00b"], duration_ms=1000),
        "queues",
    ),
    "try-claim zero duration": (
        "TryClaim",
        pb.ClaimRequest(claimant_id="c", queues=["q"]),
        "duration",
    ),
    "try-claim negative duration": (
        "TryClaim",
        pb.ClaimRequest(claimant_id="c", queues=["q"], duration_ms=-5),
        "duration",
    ),
    "claim zero duration": ("Claim", pb.ClaimRequest(claimant_id="c", queues=["q"]), "duration"),
    "claim negative poll": (
        "Claim",
        pb.ClaimRequest(claimant_id="c", queues=["q"], duration_ms=1000, poll_ms=-1),
        "poll",
    ),
    "modify empty claimant": ("Modify", pb.ModifyRequest(inserts=[ok_data]), "claimant"),
    "modify insert empty queue": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData()]),
        "inserts[0].queue",
    ),
    "modify insert long queue": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue=LONG_QUEUE)]),
        "inserts[0].queue",
    ),
    "modify insert long id": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="q", id=LONG_ID)]),
        "inserts[0].id",
    ),
    "modify insert negative attempt": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="q", attempt=-1)]),
        "inserts[0].attempt",
    ),
    "modify insert NUL in err": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="q", err="a\x00")]),
        "inserts[0].err",
    ),
    "modify change without old id": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", changes=[pb.TaskChange(new_data=ok_data)]),
        "changes[0].old.id",
    ),
    "modify change without new data": (
        "Modify",
        pb.ModifyRequest(
            claimant_id="c", changes=[pb.TaskChange(old_id=pb.TaskID(id="t", version=0))]
        ),
        "changes[0].new.queue",
    ),
    "modify change renames": (
        "Modify",
        pb.ModifyRequest(
            claimant_id="c",
            changes=[
                pb.TaskChange(
                    old_id=pb.TaskID(id="t", version=0),
                    new_data=pb.TaskData(queue="q", id="other"),
                )
            ],
        ),
        "changes[0].new.id",
    ),
    "modify negative version": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", deletes=[pb.TaskID(id="t", version=-1)]),
        "deletes[0].version",
    ),
    "modify empty depend id": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", depends=[pb.TaskID(version=0)]),
        "depends[0].id",
    ),
    "modify same id twice": (
        "Modify",
        pb.ModifyRequest(
            claimant_id="c",
            deletes=[pb.TaskID(id="t", version=0)],
            depends=[pb.TaskID(id="t", version=0)],
        ),
        "depends[0].id",
    ),
    "modify insert after the year 9999": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="q", at_ms=253402300800000)]),
        "inserts[0].at",
    ),
    "modify insert at the largest int64": (
        "Modify",
        pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="q", at_ms=2**63 - 1)]),
        "inserts[0].at",
    ),
    "modify change after the year 9999": (
        "Modify",
        pb.ModifyRequest(
            claimant_id="c",
            changes=[
                pb.TaskChange(
                    old_id=pb.TaskID(id="t", version=0),
                    new_data=pb.TaskData(queue="q", at_ms=2**62),
                )
            ],
        ),
        "changes[0].new.at",
    ),
    "tasks neither queue nor ids": ("Tasks", pb.TasksRequest(), "queue"),
    "tasks negative limit": ("Tasks", pb.TasksRequest(queue="q", limit=-1), "limit"),
    "tasks empty id": ("Tasks", pb.TasksRequest(task_id=[""]), "ids[0]"),
    "tasks long queue": ("Tasks", pb.TasksRequest(queue=LONG_QUEUE), "queue"),
    "stream-tasks neither queue nor ids": ("StreamTasks", pb.TasksRequest(), "queue"),
    "queue-stats empty exact name": (
        "QueueStats",
        pb.QueuesRequest(match_exact=[""]),
        "match_exact[0]",
    ),
    "queues negative limit": ("Queues", pb.QueuesRequest(limit=-3), "limit"),
}


@pytest.mark.parametrize("case", sorted(BAD_REQUESTS))
def test_each_bad_field_is_invalid_argument_naming_it(
    case: str,
    stub: entroq_pb2_grpc.EntroQStub,
    channel: grpc.Channel,
    still_serving: Callable[[grpc.Channel], None],
) -> None:
    method, request, field = BAD_REQUESTS[case]
    call = getattr(stub, method)
    if method == "StreamTasks":
        err = failure(lambda: list(call(request, timeout=WAIT)))
    else:
        err = failure(lambda: call(request, timeout=WAIT))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert f"invalid {field}=" in err.details()
    still_serving(channel)


def raw_call(channel: grpc.Channel, method: str, payload: bytes) -> grpc.RpcError:
    """Send ``payload`` as the request bytes of ``method``, bypassing any serializer."""
    call = channel.unary_unary(f"/proto.EntroQ/{method}")
    return failure(lambda: call(payload, timeout=WAIT))


GARBAGE = {
    "random bytes": b"\xff\xfe\xfd\xfc garbage \x00\x01",
    "truncated field": b"\x0a\x10abc",
    "invalid utf-8 string": b"\x0a\x02\xff\xfe",
    "bad wire type": b"\x0f",
}


@pytest.mark.parametrize("method", ["TryClaim", "Claim", "Modify", "Tasks", "Queues", "QueueStats"])
@pytest.mark.parametrize("garbage", sorted(GARBAGE))
def test_garbage_bytes_are_invalid_argument(
    method: str, garbage: str, channel: grpc.Channel, still_serving: Callable[[grpc.Channel], None]
) -> None:
    err = raw_call(channel, method, GARBAGE[garbage])
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT, err.details()
    assert "invalid request=" in err.details()
    still_serving(channel)


def test_garbage_to_stream_tasks_is_invalid_argument(
    channel: grpc.Channel, still_serving: Callable[[grpc.Channel], None]
) -> None:
    call = channel.unary_stream("/proto.EntroQ/StreamTasks")
    err = failure(lambda: list(call(GARBAGE["random bytes"], timeout=WAIT)))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    still_serving(channel)


def test_wrong_types_are_invalid_argument(
    channel: grpc.Channel, still_serving: Callable[[grpc.Channel], None]
) -> None:
    # duration_ms (an int64, field 3) sent as a length-delimited string.
    claim = pb.ClaimRequest(claimant_id="c", queues=["q"]).SerializeToString() + b"\x1a\x03abc"
    err = raw_call(channel, "TryClaim", claim)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "duration" in err.details()
    # A whole message of another type: a ModifyRequest sent to TryClaim.
    other = pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue="q")]).SerializeToString()
    err = raw_call(channel, "TryClaim", other)
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    still_serving(channel)


def test_unknown_fields_and_enum_values_are_ignored(
    channel: grpc.Channel,
    stub: entroq_pb2_grpc.EntroQStub,
    still_serving: Callable[[grpc.Channel], None],
) -> None:
    q = unique()
    body = pb.ModifyRequest(claimant_id="c", inserts=[pb.TaskData(queue=q)]).SerializeToString()
    # Field 99 as a varint (how an enum a newer client added would look) and field 98 as bytes.
    body += b"\x98\x06\x07" + b"\x92\x06\x02hi"
    call = channel.unary_unary(
        "/proto.EntroQ/Modify", response_deserializer=pb.ModifyResponse.FromString
    )
    done = call(body, timeout=WAIT)
    assert done.inserted[0].queue == q
    still_serving(channel)


def test_unknown_rpc_is_unimplemented_and_harmless(
    channel: grpc.Channel, still_serving: Callable[[grpc.Channel], None]
) -> None:
    err = raw_call(channel, "NoSuchMethod", b"")
    assert err.code() == grpc.StatusCode.UNIMPLEMENTED
    still_serving(channel)


def test_value_over_the_limit_is_rejected(
    small_server: ServerThread, still_serving: Callable[[grpc.Channel], None]
) -> None:
    with grpc.insecure_channel(small_server.address) as channel:
        stub = entroq_pb2_grpc.EntroQStub(channel)
        just_over = b"x" * (1024 * 1024 + 1)
        err = failure(
            lambda: stub.Modify(
                pb.ModifyRequest(
                    claimant_id="c", inserts=[pb.TaskData(queue="q", value=just_over)]
                ),
                timeout=WAIT,
            )
        )
        assert err.code() in (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.INVALID_ARGUMENT)
        assert "inserts[0].value" in err.details()
        # A value at the limit is fine.
        at_limit = b"x" * (1024 * 1024)
        done = stub.Modify(
            pb.ModifyRequest(
                claimant_id="c", inserts=[pb.TaskData(queue=unique(), value=at_limit)]
            ),
            timeout=WAIT,
        )
        assert len(done.inserted[0].value) == len(at_limit)
        still_serving(channel)


def test_message_over_the_limit_is_resource_exhausted(
    small_server: ServerThread, still_serving: Callable[[grpc.Channel], None]
) -> None:
    with grpc.insecure_channel(
        small_server.address, options=[("grpc.max_send_message_length", -1)]
    ) as channel:
        stub = entroq_pb2_grpc.EntroQStub(channel)
        huge = [pb.TaskData(queue="q", value=b"y" * 512 * 1024) for _ in range(4)]
        err = failure(
            lambda: stub.Modify(pb.ModifyRequest(claimant_id="c", inserts=huge), timeout=WAIT)
        )
        assert err.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        still_serving(channel)


# --- deadlines and cancellation ----------------------------------------------------


def test_claim_past_its_deadline_is_deadline_exceeded(
    stub: entroq_pb2_grpc.EntroQStub,
    channel: grpc.Channel,
    still_serving: Callable[[grpc.Channel], None],
) -> None:
    request = pb.ClaimRequest(claimant_id="c", queues=[unique()], duration_ms=1000)
    err = failure(lambda: stub.Claim(request, timeout=0.5))
    assert err.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    still_serving(channel)


def wait_until(condition: object, what: str) -> None:
    deadline = time.monotonic() + WAIT
    while not condition():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_cancelled_claim_is_cancelled_and_released(
    server: ServerThread,
    stub: entroq_pb2_grpc.EntroQStub,
    channel: grpc.Channel,
    still_serving: Callable[[grpc.Channel], None],
) -> None:
    assert server.server is not None
    servicer = server.server.servicer
    before = servicer.waiting_claims
    q = unique()
    future = stub.Claim.future(pb.ClaimRequest(claimant_id="c", queues=[q], duration_ms=1000))
    wait_until(lambda: servicer.waiting_claims > before, "the claim to wait on the server")
    assert future.cancel()
    assert future.code() == grpc.StatusCode.CANCELLED
    wait_until(lambda: servicer.waiting_claims == before, "the server to drop the claim")
    # The cancelled claim took nothing: a task inserted now is still available.
    (task,) = insert(stub, pb.TaskData(queue=q))
    claimed = stub.TryClaim(pb.ClaimRequest(claimant_id="c", queues=[q], duration_ms=1000))
    assert claimed.task.id == task.id and claimed.task.version == 1
    still_serving(channel)


def test_waiting_claim_wakes_on_insert(stub: entroq_pb2_grpc.EntroQStub) -> None:
    q = unique()
    future = stub.Claim.future(
        pb.ClaimRequest(claimant_id="c", queues=[q], duration_ms=1000), timeout=WAIT
    )
    (task,) = insert(stub, pb.TaskData(queue=q, value=b"wake"))
    got = future.result(WAIT).task
    assert (got.id, got.version, got.claims, got.value) == (task.id, 1, 1, b"wake")


def test_try_claim_with_nothing_available_returns_no_task(stub: entroq_pb2_grpc.EntroQStub) -> None:
    reply = stub.TryClaim(pb.ClaimRequest(claimant_id="c", queues=[unique()], duration_ms=1000))
    assert not reply.HasField("task")


# --- reads ---------------------------------------------------------------------------------


def test_stream_tasks_frames_100k_tasks_in_bounded_chunks(stub: entroq_pb2_grpc.EntroQStub) -> None:
    q = unique("big")
    total = 100_000
    batch = 10_000
    for start in range(0, total, batch):
        stub.Modify(
            pb.ModifyRequest(
                claimant_id="c",
                inserts=[
                    pb.TaskData(queue=q, value=b"%06d" % i) for i in range(start, start + batch)
                ],
            ),
            timeout=WAIT,
        )
    sizes, counts, ids = [], [], set()
    for message in stub.StreamTasks(pb.TasksRequest(queue=q), timeout=WAIT):
        sizes.append(message.ByteSize())
        counts.append(len(message.tasks))
        ids.update(t.id for t in message.tasks)
    assert sum(counts) == total and len(ids) == total
    assert len(counts) >= 100  # streamed, not one message
    assert max(counts) <= 500
    assert max(sizes) <= 1024 * 1024 + 64 * 1024
    # omit_values and limit are honoured on the stream too.
    streamed = [
        t
        for m in stub.StreamTasks(pb.TasksRequest(queue=q, limit=1234, omit_values=True))
        for t in m.tasks
    ]
    assert len(streamed) == 1234 and not any(t.value for t in streamed)
    # Clean up so the shared store stays small.
    for start in range(0, total, batch):
        chunk = [pb.TaskID(id=i, version=0) for i in sorted(ids)[start : start + batch]]
        stub.Modify(pb.ModifyRequest(claimant_id="c", deletes=chunk), timeout=WAIT)


def test_stream_tasks_sends_a_large_value_alone(stub: entroq_pb2_grpc.EntroQStub) -> None:
    q = unique()
    insert(stub, *(pb.TaskData(queue=q, value=b"z" * 700_000) for _ in range(3)))
    counts = [len(m.tasks) for m in stub.StreamTasks(pb.TasksRequest(queue=q), timeout=WAIT)]
    assert sum(counts) == 3 and len(counts) >= 2


def test_tasks_by_ids_in_request_order(stub: entroq_pb2_grpc.EntroQStub) -> None:
    q = unique()
    a, _, c = insert(stub, *(pb.TaskData(queue=q) for _ in range(3)))
    listed = stub.Tasks(pb.TasksRequest(task_id=[c.id, "missing", a.id]), timeout=WAIT).tasks
    assert [t.id for t in listed] == [c.id, a.id]


def test_queues_and_queue_stats(stub: entroq_pb2_grpc.EntroQStub) -> None:
    q = unique()
    now = int(time.time() * 1000)
    insert(
        stub,
        pb.TaskData(queue=q),
        pb.TaskData(queue=q),
        pb.TaskData(queue=q, at_ms=now + 3_600_000),
    )
    stub.TryClaim(pb.ClaimRequest(claimant_id="c", queues=[q], duration_ms=60_000))
    (stats,) = stub.QueueStats(pb.QueuesRequest(match_exact=[q]), timeout=WAIT).queues
    assert (stats.name, stats.num_tasks, stats.num_available, stats.num_claimed) == (q, 3, 1, 1)
    assert (stats.num_future, stats.max_claims) == (1, 1)
    (names_only,) = stub.Queues(pb.QueuesRequest(match_prefix=[q]), timeout=WAIT).queues
    assert (names_only.name, names_only.num_tasks, names_only.num_claimed) == (q, 3, 0)


def test_time_is_the_backend_clock_in_ms(stub: entroq_pb2_grpc.EntroQStub) -> None:
    before = int(time.time() * 1000)
    reply = stub.Time(pb.TimeRequest(), timeout=WAIT)
    after = int(time.time() * 1000)
    # mem's clock is this process's clock, so it lies between our two readings.
    assert before <= reply.time_ms <= after


def test_inserted_task_fields_on_the_wire(stub: entroq_pb2_grpc.EntroQStub) -> None:
    q = unique()
    at = int(time.time() * 1000) + 60_000
    (task,) = insert(
        stub,
        pb.TaskData(queue=q, at_ms=at, value=b"\x00\xff", id="explicit-" + q, attempt=2, err="e"),
        claimant="inserter",
    )
    assert (task.queue, task.id, task.version, task.at_ms) == (q, "explicit-" + q, 0, at)
    assert (task.claimant_id, task.value, task.claims, task.attempt, task.err) == (
        "inserter",
        b"\x00\xff",
        0,
        2,
        "e",
    )
    assert task.created_ms == task.modified_ms > 0


# --- health and reflection ---------------------------------------------------------------


def test_health_serving_for_server_and_service(channel: grpc.Channel) -> None:
    health = health_pb2_grpc.HealthStub(channel)
    for service in ("", "proto.EntroQ"):
        reply = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=WAIT)
        assert reply.status == health_pb2.HealthCheckResponse.SERVING
    err = failure(lambda: health.Check(health_pb2.HealthCheckRequest(service="nope"), timeout=WAIT))
    assert err.code() == grpc.StatusCode.NOT_FOUND


def _reflect(channel: grpc.Channel, request: reflection_pb2.ServerReflectionRequest) -> object:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (reply,) = list(stub.ServerReflectionInfo(iter([request]), timeout=WAIT))
    return reply


def test_reflection_lists_the_services(channel: grpc.Channel) -> None:
    reply = _reflect(channel, reflection_pb2.ServerReflectionRequest(list_services=""))
    names = {s.name for s in reply.list_services_response.service}  # type: ignore[attr-defined]
    assert {"proto.EntroQ", "grpc.health.v1.Health"} <= names


def test_reflection_describes_the_protocol(channel: grpc.Channel) -> None:
    from google.protobuf import descriptor_pb2

    reply = _reflect(
        channel, reflection_pb2.ServerReflectionRequest(file_containing_symbol="proto.EntroQ")
    )
    files = reply.file_descriptor_response.file_descriptor_proto  # type: ignore[attr-defined]
    parsed = [descriptor_pb2.FileDescriptorProto.FromString(f) for f in files]
    entroq = next(f for f in parsed if f.package == "proto")
    stats = next(m for m in entroq.message_type if m.name == "QueueStats")
    assert {f.name: f.number for f in stats.field}["num_future"] == 6
    (service,) = entroq.service
    assert {m.name for m in service.method} == {
        "TryClaim",
        "Claim",
        "Modify",
        "Tasks",
        "Queues",
        "QueueStats",
        "Time",
        "StreamTasks",
    }
