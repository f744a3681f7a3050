"""Direct etcd access for tests: plant foreign keys, read keys back, turn auth on."""

from __future__ import annotations

import grpc
import grpc.aio

from entroq_etcd._etcdpb import rpc_pb2, rpc_pb2_grpc


class RawEtcd:
    """A bare gRPC connection to one etcd endpoint, outside the backend under test."""

    def __init__(self, endpoint: str, token: str | None = None) -> None:
        self.channel = grpc.aio.insecure_channel(endpoint)
        self.kv = rpc_pb2_grpc.KVStub(self.channel)
        self.auth = rpc_pb2_grpc.AuthStub(self.channel)
        self.metadata = (("token", token),) if token else ()

    async def put(self, key: bytes, value: bytes) -> None:
        """Write one key."""
        await self.kv.Put(rpc_pb2.PutRequest(key=key, value=value), metadata=self.metadata)

    async def get(self, key: bytes) -> bytes | None:
        """Read one key's value, or None."""
        r = await self.kv.Range(rpc_pb2.RangeRequest(key=key), metadata=self.metadata)
        return r.kvs[0].value if r.kvs else None

    async def keys(self, prefix: bytes) -> list[bytes]:
        """Every key under ``prefix``."""
        end = prefix[:-1] + bytes([prefix[-1] + 1])
        r = await self.kv.Range(
            rpc_pb2.RangeRequest(key=prefix, range_end=end, keys_only=True), metadata=self.metadata
        )
        return [kv.key for kv in r.kvs]

    async def compact(self) -> int:
        """Compact etcd's history up to the current revision; return that revision."""
        revision = (
            await self.kv.Range(rpc_pb2.RangeRequest(key=b"\0"), metadata=self.metadata)
        ).header.revision
        await self.kv.Compact(rpc_pb2.CompactionRequest(revision=revision), metadata=self.metadata)
        return revision

    async def enable_auth(self, root_password: str) -> None:
        """Create root (with the root role) and switch authentication on."""
        await self.auth.UserAdd(rpc_pb2.AuthUserAddRequest(name="root", password=root_password))
        await self.auth.RoleAdd(rpc_pb2.AuthRoleAddRequest(name="root"))
        await self.auth.UserGrantRole(rpc_pb2.AuthUserGrantRoleRequest(user="root", role="root"))
        await self.auth.AuthEnable(rpc_pb2.AuthEnableRequest())

    async def close(self) -> None:
        """Close the channel."""
        await self.channel.close()
