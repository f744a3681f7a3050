"""Builders for etcd Txn compares and operations, over the generated messages."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._etcdpb import kv_pb2, rpc_pb2

KeyValue = kv_pb2.KeyValue
TxnRequest = rpc_pb2.TxnRequest
TxnResponse = rpc_pb2.TxnResponse
RangeRequest = rpc_pb2.RangeRequest
RangeResponse = rpc_pb2.RangeResponse
RequestOp = rpc_pb2.RequestOp
Compare = rpc_pb2.Compare
EVENT_PUT = kv_pb2.Event.PUT
EVENT_DELETE = kv_pb2.Event.DELETE


def put(key: bytes, value: bytes) -> RequestOp:
    """Put ``value`` at ``key``."""
    return RequestOp(request_put=rpc_pb2.PutRequest(key=key, value=value))


def delete(key: bytes) -> RequestOp:
    """Delete ``key`` (a no-op if it is absent)."""
    return RequestOp(request_delete_range=rpc_pb2.DeleteRangeRequest(key=key))


def get(key: bytes) -> RequestOp:
    """Read one key."""
    return RequestOp(request_range=RangeRequest(key=key))


def scan(
    start: bytes,
    end: bytes,
    *,
    limit: int = 0,
    keys_only: bool = False,
    count_only: bool = False,
    serializable: bool = False,
    revision: int = 0,
) -> RangeRequest:
    """Read keys in [start, end)."""
    return RangeRequest(
        key=start,
        range_end=end,
        limit=limit,
        keys_only=keys_only,
        count_only=count_only,
        serializable=serializable,
        revision=revision,
    )


def ranged(request: RangeRequest) -> RequestOp:
    """Wrap a range request as a Txn operation."""
    return RequestOp(request_range=request)


def nested(compare: Sequence[Compare], success: Sequence[RequestOp]) -> RequestOp:
    """A Txn inside a Txn: its compares decide only its own operations."""
    return RequestOp(request_txn=TxnRequest(compare=compare, success=success))


def mod_is(key: bytes, revision: int) -> Compare:
    """The key was last written at ``revision`` (0: the key is absent)."""
    return Compare(key=key, target=Compare.MOD, result=Compare.EQUAL, mod_revision=revision)


def absent(key: bytes, end: bytes = b"") -> Compare:
    """No key exists at ``key`` (or, with ``end``, in [key, end))."""
    return Compare(
        key=key, range_end=end, target=Compare.CREATE, result=Compare.EQUAL, create_revision=0
    )


def value_is(key: bytes, value: bytes) -> Compare:
    """The key exists and holds ``value``."""
    return Compare(key=key, target=Compare.VALUE, result=Compare.EQUAL, value=value)


def txn(
    compare: Iterable[Compare] = (),
    success: Iterable[RequestOp] = (),
    failure: Iterable[RequestOp] = (),
) -> TxnRequest:
    """Build a Txn request."""
    return TxnRequest(compare=list(compare), success=list(success), failure=list(failure))


def linearizable(request: TxnRequest) -> TxnRequest:
    """A copy of a read-only Txn whose range reads all go through consensus."""
    copy = TxnRequest()
    copy.CopyFrom(request)
    for op in (*copy.success, *copy.failure):
        if op.HasField("request_range"):
            op.request_range.serializable = False
    return copy


def range_results(response: TxnResponse) -> list[RangeResponse]:
    """The range responses of a Txn's taken branch, in operation order."""
    return [r.response_range for r in response.responses if r.HasField("response_range")]


def written_keys(request: TxnRequest) -> frozenset[bytes]:
    """Keys a Txn's branches put or delete; empty if it deletes a range or nests Txns."""
    keys = set()
    for op in (*request.success, *request.failure):
        kind = op.WhichOneof("request")
        if kind == "request_put":
            keys.add(op.request_put.key)
        elif kind == "request_delete_range":
            if op.request_delete_range.range_end:
                return frozenset()
            keys.add(op.request_delete_range.key)
        elif kind == "request_txn":
            return frozenset()
    return frozenset(keys)


def read_keys(request: TxnRequest) -> frozenset[bytes] | None:
    """Keys a Txn compares or reads; None if it compares or reads a range or nests Txns."""
    keys = {c.key for c in request.compare if not c.range_end}
    if len(keys) < len(request.compare):
        return None
    for op in (*request.success, *request.failure):
        kind = op.WhichOneof("request")
        if kind == "request_range":
            if op.request_range.range_end:
                return None
            keys.add(op.request_range.key)
        elif kind == "request_txn":
            return None
    return frozenset(keys)
