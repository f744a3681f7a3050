from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ActionType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CLAIM: _ClassVar[ActionType]
    DELETE: _ClassVar[ActionType]
    CHANGE: _ClassVar[ActionType]
    DEPEND: _ClassVar[ActionType]
    DETAIL: _ClassVar[ActionType]
    INSERT: _ClassVar[ActionType]
    READ: _ClassVar[ActionType]
CLAIM: ActionType
DELETE: ActionType
CHANGE: ActionType
DEPEND: ActionType
DETAIL: ActionType
INSERT: ActionType
READ: ActionType

class TaskID(_message.Message):
    __slots__ = ("id", "version", "queue")
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    id: str
    version: int
    queue: str
    def __init__(self, id: _Optional[str] = ..., version: _Optional[int] = ..., queue: _Optional[str] = ...) -> None: ...

class TaskData(_message.Message):
    __slots__ = ("queue", "at_ms", "value", "id", "attempt", "err")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    queue: str
    at_ms: int
    value: bytes
    id: str
    attempt: int
    err: str
    def __init__(self, queue: _Optional[str] = ..., at_ms: _Optional[int] = ..., value: _Optional[bytes] = ..., id: _Optional[str] = ..., attempt: _Optional[int] = ..., err: _Optional[str] = ...) -> None: ...

class TaskChange(_message.Message):
    __slots__ = ("old_id", "new_data")
    OLD_ID_FIELD_NUMBER: _ClassVar[int]
    NEW_DATA_FIELD_NUMBER: _ClassVar[int]
    old_id: TaskID
    new_data: TaskData
    def __init__(self, old_id: _Optional[_Union[TaskID, _Mapping]] = ..., new_data: _Optional[_Union[TaskData, _Mapping]] = ...) -> None: ...

class Task(_message.Message):
    __slots__ = ("queue", "id", "version", "at_ms", "claimant_id", "value", "created_ms", "modified_ms", "claims", "attempt", "err")
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    CLAIMANT_ID_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    CREATED_MS_FIELD_NUMBER: _ClassVar[int]
    MODIFIED_MS_FIELD_NUMBER: _ClassVar[int]
    CLAIMS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    ERR_FIELD_NUMBER: _ClassVar[int]
    queue: str
    id: str
    version: int
    at_ms: int
    claimant_id: str
    value: bytes
    created_ms: int
    modified_ms: int
    claims: int
    attempt: int
    err: str
    def __init__(self, queue: _Optional[str] = ..., id: _Optional[str] = ..., version: _Optional[int] = ..., at_ms: _Optional[int] = ..., claimant_id: _Optional[str] = ..., value: _Optional[bytes] = ..., created_ms: _Optional[int] = ..., modified_ms: _Optional[int] = ..., claims: _Optional[int] = ..., attempt: _Optional[int] = ..., err: _Optional[str] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("name", "num_tasks", "num_claimed", "num_available", "max_claims", "num_future")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NUM_TASKS_FIELD_NUMBER: _ClassVar[int]
    NUM_CLAIMED_FIELD_NUMBER: _ClassVar[int]
    NUM_AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    MAX_CLAIMS_FIELD_NUMBER: _ClassVar[int]
    NUM_FUTURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    num_tasks: int
    num_claimed: int
    num_available: int
    max_claims: int
    num_future: int
    def __init__(self, name: _Optional[str] = ..., num_tasks: _Optional[int] = ..., num_claimed: _Optional[int] = ..., num_available: _Optional[int] = ..., max_claims: _Optional[int] = ..., num_future: _Optional[int] = ...) -> None: ...

class ClaimRequest(_message.Message):
    __slots__ = ("claimant_id", "queues", "duration_ms", "poll_ms")
    CLAIMANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    DURATION_MS_FIELD_NUMBER: _ClassVar[int]
    POLL_MS_FIELD_NUMBER: _ClassVar[int]
    claimant_id: str
    queues: _containers.RepeatedScalarFieldContainer[str]
    duration_ms: int
    poll_ms: int
    def __init__(self, claimant_id: _Optional[str] = ..., queues: _Optional[_Iterable[str]] = ..., duration_ms: _Optional[int] = ..., poll_ms: _Optional[int] = ...) -> None: ...

class ClaimResponse(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: Task
    def __init__(self, task: _Optional[_Union[Task, _Mapping]] = ...) -> None: ...

class ModifyRequest(_message.Message):
    __slots__ = ("claimant_id", "inserts", "changes", "deletes", "depends")
    CLAIMANT_ID_FIELD_NUMBER: _ClassVar[int]
    INSERTS_FIELD_NUMBER: _ClassVar[int]
    CHANGES_FIELD_NUMBER: _ClassVar[int]
    DELETES_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_FIELD_NUMBER: _ClassVar[int]
    claimant_id: str
    inserts: _containers.RepeatedCompositeFieldContainer[TaskData]
    changes: _containers.RepeatedCompositeFieldContainer[TaskChange]
    deletes: _containers.RepeatedCompositeFieldContainer[TaskID]
    depends: _containers.RepeatedCompositeFieldContainer[TaskID]
    def __init__(self, claimant_id: _Optional[str] = ..., inserts: _Optional[_Iterable[_Union[TaskData, _Mapping]]] = ..., changes: _Optional[_Iterable[_Union[TaskChange, _Mapping]]] = ..., deletes: _Optional[_Iterable[_Union[TaskID, _Mapping]]] = ..., depends: _Optional[_Iterable[_Union[TaskID, _Mapping]]] = ...) -> None: ...

class ModifyResponse(_message.Message):
    __slots__ = ("inserted", "changed")
    INSERTED_FIELD_NUMBER: _ClassVar[int]
    CHANGED_FIELD_NUMBER: _ClassVar[int]
    inserted: _containers.RepeatedCompositeFieldContainer[Task]
    changed: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, inserted: _Optional[_Iterable[_Union[Task, _Mapping]]] = ..., changed: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class ModifyDep(_message.Message):
    __slots__ = ("type", "id", "msg")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    MSG_FIELD_NUMBER: _ClassVar[int]
    type: ActionType
    id: TaskID
    msg: str
    def __init__(self, type: _Optional[_Union[ActionType, str]] = ..., id: _Optional[_Union[TaskID, _Mapping]] = ..., msg: _Optional[str] = ...) -> None: ...

class AuthzDep(_message.Message):
    __slots__ = ("actions", "exact", "prefix", "msg")
    ACTIONS_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    MSG_FIELD_NUMBER: _ClassVar[int]
    actions: _containers.RepeatedScalarFieldContainer[ActionType]
    exact: str
    prefix: str
    msg: str
    def __init__(self, actions: _Optional[_Iterable[_Union[ActionType, str]]] = ..., exact: _Optional[str] = ..., prefix: _Optional[str] = ..., msg: _Optional[str] = ...) -> None: ...

class TasksRequest(_message.Message):
    __slots__ = ("claimant_id", "queue", "limit", "task_id", "omit_values")
    CLAIMANT_ID_FIELD_NUMBER: _ClassVar[int]
    QUEUE_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    OMIT_VALUES_FIELD_NUMBER: _ClassVar[int]
    claimant_id: str
    queue: str
    limit: int
    task_id: _containers.RepeatedScalarFieldContainer[str]
    omit_values: bool
    def __init__(self, claimant_id: _Optional[str] = ..., queue: _Optional[str] = ..., limit: _Optional[int] = ..., task_id: _Optional[_Iterable[str]] = ..., omit_values: bool = ...) -> None: ...

class TasksResponse(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Task]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Task, _Mapping]]] = ...) -> None: ...

class QueuesRequest(_message.Message):
    __slots__ = ("match_prefix", "match_exact", "limit")
    MATCH_PREFIX_FIELD_NUMBER: _ClassVar[int]
    MATCH_EXACT_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    match_prefix: _containers.RepeatedScalarFieldContainer[str]
    match_exact: _containers.RepeatedScalarFieldContainer[str]
    limit: int
    def __init__(self, match_prefix: _Optional[_Iterable[str]] = ..., match_exact: _Optional[_Iterable[str]] = ..., limit: _Optional[int] = ...) -> None: ...

class QueuesResponse(_message.Message):
    __slots__ = ("queues",)
    QUEUES_FIELD_NUMBER: _ClassVar[int]
    queues: _containers.RepeatedCompositeFieldContainer[QueueStats]
    def __init__(self, queues: _Optional[_Iterable[_Union[QueueStats, _Mapping]]] = ...) -> None: ...

class TimeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TimeResponse(_message.Message):
    __slots__ = ("time_ms",)
    TIME_MS_FIELD_NUMBER: _ClassVar[int]
    time_ms: int
    def __init__(self, time_ms: _Optional[int] = ...) -> None: ...
