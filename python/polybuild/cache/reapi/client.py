"""The REAPI v2 calls polybuild makes, over one gRPC channel: capabilities, CAS (batch and ByteStream), action cache.

Services are called by method name with the generated messages (no stub code). Every call has a deadline
(`timeout` seconds, plus one per MIN_RATE bytes it moves) and is retried with backoff when the server says it is
UNAVAILABLE or RESOURCE_EXHAUSTED, or does not answer in time; what still fails raises `ReapiUnavailable`. What
comes back is checked by the caller (cache.py): nothing a server says is trusted.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.longrunning.operations_pb2 import Operation

from polybuild.cache.reapi.protos import bytestream_pb2 as bs
from polybuild.cache.reapi.protos import remote_execution_pb2 as re

MIN_RATE = 256 * 1024  # bytes per second a transfer may not fall below
MAX_BACKOFF = 2.0
CHUNK = 1 << 20  # ByteStream message payload
MAX_MESSAGE = 64 << 20  # gRPC message limit of our channel (the default 4 MiB would cap batch reads)
DEFAULT_BATCH = 4 << 20  # a server that states no batch limit gets batches of this size
BATCH_OVERHEAD = 64 << 10  # room for the framing of a batch (digests and statuses), below the server's limit
RETRIED = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED,
                     grpc.StatusCode.DEADLINE_EXCEEDED})
SHA256 = re.DigestFunction.SHA256

_SERVICE = "/build.bazel.remote.execution.v2."


class ReapiUnavailable(Exception):
    """The server could not be reached, kept failing or refused a call."""


@dataclass(frozen=True)
class Capabilities:
    digest_functions: tuple[str, ...]
    max_batch: int  # bytes, 0 when the server states no limit
    cache_update: bool  # may clients write the action cache
    exec_enabled: bool
    api_version: str

    @property
    def sha256(self) -> bool:
        return "SHA256" in self.digest_functions

    def describe(self) -> str:
        batch = f"{self.max_batch} bytes" if self.max_batch else f"not stated (polybuild uses {DEFAULT_BATCH} bytes)"
        return (f"REAPI {self.api_version}; digest functions {', '.join(self.digest_functions)}; max batch size "
                f"{batch}; action cache {'writable' if self.cache_update else 'read-only'} by clients; execution "
                f"{'enabled' if self.exec_enabled else 'not enabled'}")

    @property
    def batch_limit(self) -> int:
        """The payload one batch call may carry."""
        return max(1, (self.max_batch or DEFAULT_BATCH) - BATCH_OVERHEAD)


def digest(data: bytes) -> re.Digest:
    return re.Digest(hash=hashlib.sha256(data).hexdigest(), size_bytes=len(data))


def _method(channel: grpc.Channel, kind: str, path: str, request: Any, response: Any) -> Any:
    factory = getattr(channel, kind)
    return factory(path, request_serializer=request.SerializeToString, response_deserializer=response.FromString)


class ReapiClient:
    """One server (`target` as host:port), one instance name; safe to share between threads."""

    def __init__(self, target: str, *, tls: bool = False, instance: str = "", headers: dict[str, str] | None = None,
                 timeout: float = 10.0, retries: int = 2) -> None:
        options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE),
                   ("grpc.enable_retries", 0)]  # retried here, within our deadline
        self.channel = (grpc.secure_channel(target, grpc.ssl_channel_credentials(), options) if tls
                        else grpc.insecure_channel(target, options))
        self.instance = instance
        self.metadata = tuple((name.lower(), value) for name, value in (headers or {}).items())
        self.timeout = timeout
        self.retries = retries
        ch = self.channel
        self._capabilities = _method(ch, "unary_unary", "/build.bazel.remote.execution.v2.Capabilities/"
                                     "GetCapabilities", re.GetCapabilitiesRequest, re.ServerCapabilities)
        self._find_missing = _method(ch, "unary_unary", _SERVICE + "ContentAddressableStorage/FindMissingBlobs",
                                     re.FindMissingBlobsRequest, re.FindMissingBlobsResponse)
        self._batch_update = _method(ch, "unary_unary", _SERVICE + "ContentAddressableStorage/BatchUpdateBlobs",
                                     re.BatchUpdateBlobsRequest, re.BatchUpdateBlobsResponse)
        self._batch_read = _method(ch, "unary_unary", _SERVICE + "ContentAddressableStorage/BatchReadBlobs",
                                   re.BatchReadBlobsRequest, re.BatchReadBlobsResponse)
        self._get_result = _method(ch, "unary_unary", _SERVICE + "ActionCache/GetActionResult",
                                   re.GetActionResultRequest, re.ActionResult)
        self._update_result = _method(ch, "unary_unary", _SERVICE + "ActionCache/UpdateActionResult",
                                      re.UpdateActionResultRequest, re.ActionResult)
        self._execute = _method(ch, "unary_stream", _SERVICE + "Execution/Execute", re.ExecuteRequest, Operation)
        self._wait = _method(ch, "unary_stream", _SERVICE + "Execution/WaitExecution", re.WaitExecutionRequest,
                             Operation)
        self._read = _method(ch, "unary_stream", "/google.bytestream.ByteStream/Read", bs.ReadRequest,
                             bs.ReadResponse)
        self._write = _method(ch, "stream_unary", "/google.bytestream.ByteStream/Write", bs.WriteRequest,
                              bs.WriteResponse)

    def close(self) -> None:
        self.channel.close()

    # -- one deadline per call, retried with backoff -----------------------------------------------------------

    def _call(self, what: str, fn: Callable[[float], Any], size: int = 0, budget: float | None = None) -> Any:
        """fn(timeout) with retries, all within `budget` seconds (default: `timeout` plus the time `size` bytes
        take at MIN_RATE); NOT_FOUND comes back as None."""
        end = time.monotonic() + (budget if budget is not None else self.timeout + size / MIN_RATE)
        last: grpc.RpcError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                pause = min(MAX_BACKOFF, 0.2 * 2 ** attempt)
                if end - time.monotonic() < pause:
                    break
                time.sleep(pause)
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                return fn(left)
            except grpc.RpcError as exc:
                if exc.code() == grpc.StatusCode.NOT_FOUND:
                    return None
                last = exc
                if exc.code() not in RETRIED:
                    break
        reason = f"{last.code().name}: {last.details()}" if last is not None else "no answer in time"
        raise ReapiUnavailable(f"{what} failed ({reason})")

    # -- the calls ---------------------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        caps = self._call("GetCapabilities", lambda t: self._capabilities(
            re.GetCapabilitiesRequest(instance_name=self.instance), timeout=t, metadata=self.metadata))
        if caps is None:
            raise ReapiUnavailable(f"GetCapabilities: no instance {self.instance!r}")
        cache, execution = caps.cache_capabilities, caps.execution_capabilities
        functions = (set(cache.digest_functions) | {execution.digest_function}) - {re.DigestFunction.Value.UNKNOWN}
        version = caps.high_api_version
        return Capabilities(
            # servers before v2.1 state none: SHA256 is implied
            digest_functions=tuple(sorted(re.DigestFunction.Value.Name(f) for f in functions)) or ("SHA256",),
            max_batch=cache.max_batch_total_size_bytes,
            cache_update=cache.action_cache_update_capabilities.update_enabled,
            exec_enabled=execution.exec_enabled,
            api_version=f"{version.major}.{version.minor}" if version.major or version.minor else "unknown",
        )

    def find_missing(self, digests: list[re.Digest]) -> list[re.Digest]:
        request = re.FindMissingBlobsRequest(instance_name=self.instance, blob_digests=digests,
                                             digest_function=SHA256)
        answer = self._call("FindMissingBlobs", lambda t: self._find_missing(request, timeout=t,
                                                                             metadata=self.metadata))
        return list(answer.missing_blob_digests) if answer is not None else list(digests)

    def batch_update(self, blobs: list[tuple[re.Digest, bytes]]) -> None:
        request = re.BatchUpdateBlobsRequest(
            instance_name=self.instance, digest_function=SHA256,
            requests=[re.BatchUpdateBlobsRequest.Request(digest=d, data=data) for d, data in blobs])
        size = sum(d.size_bytes for d, _ in blobs)
        answer = self._call("BatchUpdateBlobs", lambda t: self._batch_update(request, timeout=t,
                                                                             metadata=self.metadata), size)
        refused = [r for r in (answer.responses if answer is not None else []) if r.status.code != 0]
        if answer is None or refused:
            detail = f"{refused[0].digest.hash[:12]}: {refused[0].status.message}" if refused else "NOT_FOUND"
            raise ReapiUnavailable(f"BatchUpdateBlobs refused a blob ({detail})")

    def batch_read(self, digests: list[re.Digest]) -> dict[str, bytes | None]:
        """hash -> content as the server sent it (unverified), None for a blob it does not have."""
        request = re.BatchReadBlobsRequest(instance_name=self.instance, digests=digests, digest_function=SHA256)
        size = sum(d.size_bytes for d in digests)
        answer = self._call("BatchReadBlobs", lambda t: self._batch_read(request, timeout=t,
                                                                         metadata=self.metadata), size)
        found: dict[str, bytes | None] = {d.hash: None for d in digests}
        for response in answer.responses if answer is not None else []:
            if response.digest.hash in found and response.status.code == 0:
                found[response.digest.hash] = response.data
        return found

    def read(self, blob: re.Digest, write: Callable[[bytes], object]) -> bool:
        """Stream a blob to `write` chunk by chunk (unverified: the caller's writer checks it); False when the server
        does not have it. Retried only while nothing has been written."""
        name = f"{self.instance}/blobs/{blob.hash}/{blob.size_bytes}".lstrip("/")
        started = False

        def fetch(timeout: float) -> bool:
            nonlocal started
            try:
                for response in self._read(bs.ReadRequest(resource_name=name), timeout=timeout,
                                           metadata=self.metadata):
                    started = True
                    write(response.data)
            except grpc.RpcError as exc:
                if started:  # the bytes already written cannot be taken back: no retry
                    raise ReapiUnavailable(f"ByteStream.Read broke off ({exc.code().name}: {exc.details()})") \
                        from None
                raise
            return True

        return bool(self._call("ByteStream.Read", fetch, blob.size_bytes))

    def write(self, blob: re.Digest, chunks: Callable[[], Iterable[bytes]]) -> None:
        """Upload a blob from `chunks()` (called again for a retry), in CHUNK-sized messages."""
        name = f"{self.instance}/uploads/{uuid.uuid4()}/blobs/{blob.hash}/{blob.size_bytes}".lstrip("/")

        def requests() -> Iterator[bs.WriteRequest]:
            offset = 0
            for chunk in chunks():
                for start in range(0, len(chunk), CHUNK):
                    piece = chunk[start:start + CHUNK]
                    yield bs.WriteRequest(resource_name=name if offset == 0 else "", write_offset=offset,
                                          data=piece)
                    offset += len(piece)
            yield bs.WriteRequest(resource_name=name if offset == 0 else "", write_offset=offset, finish_write=True)

        answer = self._call("ByteStream.Write", lambda t: self._write(requests(), timeout=t, metadata=self.metadata),
                            blob.size_bytes)
        if answer is None or answer.committed_size not in (blob.size_bytes, -1):
            raise ReapiUnavailable(f"ByteStream.Write of {blob.hash[:12]} was not committed")

    def get_action_result(self, action: re.Digest) -> re.ActionResult | None:
        request = re.GetActionResultRequest(instance_name=self.instance, action_digest=action,
                                            digest_function=SHA256, inline_stdout=False)
        return self._call("GetActionResult", lambda t: self._get_result(request, timeout=t, metadata=self.metadata))

    def update_action_result(self, action: re.Digest, result: re.ActionResult) -> None:
        request = re.UpdateActionResultRequest(instance_name=self.instance, action_digest=action,
                                               action_result=result, digest_function=SHA256)
        if self._call("UpdateActionResult", lambda t: self._update_result(request, timeout=t,
                                                                          metadata=self.metadata)) is None:
            raise ReapiUnavailable("UpdateActionResult: NOT_FOUND")

    def execute(self, action: re.Digest, timeout: float) -> re.ExecuteResponse:
        """Run an action (the server may answer from its cache) and follow its operation to the end; when the
        stream breaks, WaitExecution picks the operation up again. ReapiUnavailable when the server cannot."""
        request = re.ExecuteRequest(instance_name=self.instance, action_digest=action, digest_function=SHA256)
        end = time.monotonic() + timeout
        name = ""

        def follow(left: float) -> Operation | None:
            nonlocal name
            stream = (self._wait(re.WaitExecutionRequest(name=name), timeout=left, metadata=self.metadata) if name
                      else self._execute(request, timeout=left, metadata=self.metadata))
            for operation in stream:
                name = operation.name or name
                if operation.done:
                    return operation
            raise _StreamEnded()

        for _attempt in range(self.retries + 3):
            left = end - time.monotonic()
            if left <= 0:
                break
            try:
                operation = self._call("Execute", follow, budget=left)
            except _StreamEnded:
                continue
            if operation is None:  # NOT_FOUND: the operation is gone (server restarted); start again
                name = ""
                continue
            if operation.HasField("error"):
                raise ReapiUnavailable(f"Execute failed ({operation.error.message or operation.error.code})")
            response = re.ExecuteResponse()
            if not operation.response.Unpack(response):
                raise ReapiUnavailable("Execute answered something other than an ExecuteResponse")
            return response
        raise ReapiUnavailable(f"Execute did not finish within {timeout:.0f}s")


class _StreamEnded(Exception):
    """The operation stream ended before the operation was done."""


def batches(digests: Iterable[re.Digest], limit: int) -> Iterator[list[re.Digest]]:
    """Consecutive groups whose sizes add up to at most `limit` (a blob larger than it is not batched at all)."""
    group: list[re.Digest] = []
    total = 0
    for d in digests:
        if group and total + d.size_bytes > limit:
            yield group
            group, total = [], 0
        group.append(d)
        total += d.size_bytes
    if group:
        yield group
