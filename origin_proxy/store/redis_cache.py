"""L2 metadata cache: raw moov bytes shared by N nodes through Redis (DESIGN.md §7).

Sits under the in-process L1 (cache.py). What is stored is the serialized form of the metadata, a MoovBlob (the
moov box exactly as it lies in the file, the ftyp box and a few file-level numbers), never a pickled Python
object: a node parses what another node wrote with the same hostile-input parser it uses on upstream bytes.

Key: `<key_prefix>moov:v<FORMAT_VERSION>:<sha256(identity NUL validator)>`, so a changed upstream object (new
ETag or mtime/size) gets a new key and never meets its old metadata. Value framing (big-endian):

    magic "OPMB" | u8 format version | u8 moov_before_mdat | u64 file_size | u64 moov_offset
    | u16 len + identity (UTF-8) | u16 len + validator (UTF-8) | u32 len + ftyp | u32 len + moov

A value that does not decode exactly (wrong magic or version, lengths that disagree with the value's size,
another identity or validator, a moov that does not start with its own box header) is counted and treated as a
miss.

Fleet-wide single flight: on an L2 miss a node takes `<key>:lock` with `SET NX PX lock_ttl`; the holder reads the
moov from the upstream, writes the value and deletes the lock (only if it still holds it). Other nodes poll the
key with a short backoff for up to lock_ttl, taking the lock themselves if it is released without a value, and
then fall back to reading the upstream on their own.

Failure: any Redis error or a call slower than `timeout_s` marks L2 unavailable (one WARNING line, `degraded`
+1) and the node serves from L1 + upstream; L2 is tried again after `retry_after_s`, and the first success logs
one INFO line. Viewers never see a Redis error.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
import struct
import time
from collections.abc import Awaitable, Callable
from typing import Any

from .limits import MoovBlob

log = logging.getLogger("origin_proxy.store.redis_cache")

FORMAT_VERSION = 1
_MAGIC = b"OPMB"
_FIXED = struct.Struct(">4sBBQQ")
# Compare-and-delete: release the lock only when it still carries our token (it may have expired and been
# taken by another node meanwhile).
_UNLOCK_SCRIPT = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class BadValue(Exception):
    """An L2 value that does not decode to a MoovBlob for the expected identity and validator."""


def encode_blob(identity: str, validator: str, blob: MoovBlob) -> bytes:
    """The L2 value for `blob` (framing in the module docstring)."""
    ident, valid = identity.encode(), validator.encode()
    if len(ident) > 0xFFFF or len(valid) > 0xFFFF:
        raise BadValue("identity or validator too long to store")
    return b"".join((
        _FIXED.pack(_MAGIC, FORMAT_VERSION, int(blob.moov_before_mdat), blob.file_size, blob.moov_offset),
        struct.pack(">H", len(ident)), ident, struct.pack(">H", len(valid)), valid,
        struct.pack(">I", len(blob.ftyp)), blob.ftyp, struct.pack(">I", len(blob.moov)), blob.moov,
    ))


def decode_blob(value: bytes, identity: str, validator: str) -> MoovBlob:
    """Decode an L2 value written by `encode_blob` for the same identity and validator.

    Raises:
        BadValue: anything that is not exactly such a value.
    """
    view = memoryview(value)
    pos = 0

    def take(size: int) -> memoryview:
        nonlocal pos
        if size < 0 or pos + size > len(view):
            raise BadValue(f"value ends early ({len(view)} bytes)")
        pos += size
        return view[pos - size : pos]

    magic, version, before_mdat, file_size, moov_offset = _FIXED.unpack(take(_FIXED.size))
    if magic != _MAGIC or version != FORMAT_VERSION or before_mdat > 1:
        raise BadValue("wrong magic, version or flag")
    (n,) = struct.unpack(">H", take(2))
    stored_identity = bytes(take(n))
    (n,) = struct.unpack(">H", take(2))
    stored_validator = bytes(take(n))
    if stored_identity != identity.encode() or stored_validator != validator.encode():
        raise BadValue("value names another object or version")
    (n,) = struct.unpack(">I", take(4))
    ftyp = bytes(take(n))
    (n,) = struct.unpack(">I", take(4))
    moov = bytes(take(n))
    if pos != len(view):
        raise BadValue("trailing bytes")
    if len(moov) < 8 or moov[4:8] != b"moov" or int.from_bytes(moov[:4], "big") not in (len(moov), 1):
        raise BadValue("moov does not start with its own box header")
    if moov_offset + len(moov) > file_size:
        raise BadValue("moov lies past the end of the file")
    return MoovBlob(ftyp, moov, file_size, moov_offset, bool(before_mdat))


class RedisMoovCache:
    """Shared moov store with fleet-wide single flight; degrades to a pass-through when Redis fails.

    Args:
        client: a `redis.asyncio.Redis` (or anything with get/set/exists/eval/aclose of the same shape).
        key_prefix: prepended to every key, e.g. "op:".
        ttl_s: lifetime of a stored value, seconds.
        lock_ttl_s: lifetime of a fill lock, and how long another node waits for the holder, seconds.
        timeout_s: bound on one Redis call (values add time per MiB), seconds.
        retry_after_s: once degraded, how long to skip Redis before trying it again, seconds.
    Attributes (counters, monotonic):
        hits: values found (directly or after waiting for another node's fill).
        misses: lookups that found no usable value.
        fills: values this node read from the upstream and stored (it held the lock).
        waits: lookups that waited for another node's fill; wait_hits: of those, answered from L2.
        fallbacks: upstream reads without the lock (lock wait ran out, or Redis failed mid-way).
        bad_values: values that did not decode (treated as misses).
        errors: Redis calls that failed or timed out; degraded: transitions to "unavailable".
        available: False while degraded.
    """

    def __init__(self, client: Any, key_prefix: str = "op:", ttl_s: float = 3600.0, lock_ttl_s: float = 30.0,
                 timeout_s: float = 0.2, retry_after_s: float = 5.0,
                 timer: Callable[[], float] = time.monotonic) -> None:
        self._client = client
        self.key_prefix = key_prefix
        self.ttl_ms = max(1, int(ttl_s * 1000))
        self.lock_ttl_s = lock_ttl_s
        self.timeout_s = timeout_s
        self.retry_after_s = retry_after_s
        self._timer = timer
        self._retry_at = 0.0
        self.available = True
        self.hits = self.misses = self.fills = self.waits = self.wait_hits = 0
        self.fallbacks = self.bad_values = self.errors = self.degraded = 0

    @classmethod
    def from_url(cls, url: str, **settings: Any) -> RedisMoovCache:
        """A cache over `redis.asyncio.Redis.from_url(url)`; connections are opened on first use."""
        import redis.asyncio  # optional dependency, only needed when service.redis.url is set

        timeout_s = settings.get("timeout_s", 0.2)
        client = redis.asyncio.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s,
                                              retry_on_timeout=False)
        return cls(client, **settings)

    async def aclose(self) -> None:
        await self._client.aclose()

    def key(self, identity: str, validator: str) -> str:
        digest = hashlib.sha256(identity.encode() + b"\0" + validator.encode()).hexdigest()
        return f"{self.key_prefix}moov:v{FORMAT_VERSION}:{digest}"

    @property
    def counters(self) -> dict[str, int]:
        names = ("hits", "misses", "fills", "waits", "wait_hits", "fallbacks", "bad_values", "errors", "degraded")
        return {name: getattr(self, name) for name in names}

    async def get_or_fetch(self, identity: str, validator: str,
                           fetch: Callable[[], Awaitable[MoovBlob]]) -> MoovBlob:
        """The stored blob for (identity, validator), else `fetch()` (at most one node at a time fetches).

        Raises only what `fetch()` raises; Redis problems are absorbed (see the module docstring).
        """
        if not self._usable():
            return await fetch()
        key = self.key(identity, validator)
        blob = await self._get(key, identity, validator)
        if blob is not None:
            self.hits += 1
            return blob
        self.misses += 1
        token = secrets.token_hex(16)
        lock_key = key + ":lock"
        deadline = self._timer() + self.lock_ttl_s
        delay_s = 0.01
        waited = False
        while True:
            locked = await self._call(self._client.set(lock_key, token, nx=True, px=int(self.lock_ttl_s * 1000)))
            if locked is _FAILED:
                break
            if locked:
                return await self._fill(key, lock_key, token, identity, validator, fetch)
            if not waited:
                waited = True
                self.waits += 1
            if self._timer() + delay_s > deadline:
                break
            await asyncio.sleep(delay_s)
            delay_s = min(delay_s * 2, 0.2)
            blob = await self._get(key, identity, validator)
            if blob is not None:
                self.hits += 1
                self.wait_hits += 1
                return blob
            if not self.available:
                break
        self.fallbacks += 1
        return await fetch()

    async def _fill(self, key: str, lock_key: str, token: str, identity: str, validator: str,
                    fetch: Callable[[], Awaitable[MoovBlob]]) -> MoovBlob:
        try:
            blob = await fetch()
            self.fills += 1
            value = encode_blob(identity, validator, blob)
            await self._call(self._client.set(key, value, px=self.ttl_ms), extra_bytes=len(value))
            return blob
        finally:
            # Shielded: a cancelled holder must still free the lock, or every node waits lock_ttl for nothing.
            await asyncio.shield(self._call(self._client.eval(_UNLOCK_SCRIPT, 1, lock_key, token)))

    async def _get(self, key: str, identity: str, validator: str) -> MoovBlob | None:
        value = await self._call(self._client.get(key), extra_bytes=0, read=True)
        if value is _FAILED or value is None:
            return None
        try:
            return decode_blob(value, identity, validator)
        except (BadValue, struct.error, UnicodeError) as exc:
            self.bad_values += 1
            log.warning("L2 value at %s is unusable (%s); treating it as a miss", key, exc)
            return None

    def _usable(self) -> bool:
        return self.available or self._timer() >= self._retry_at

    async def _call(self, awaitable: Awaitable[Any], extra_bytes: int = 0, read: bool = False) -> Any:
        """Await one Redis call within the time bound; _FAILED (and degraded) on any Redis problem."""
        from redis.exceptions import RedisError

        # A value needs time to cross the wire: allow 1 s per 64 MiB on top of the base bound.
        bound_s = self.timeout_s + extra_bytes / (64 << 20) + (0.5 if read else 0.0)
        try:
            async with asyncio.timeout(bound_s):
                result = await awaitable
        except (RedisError, OSError, TimeoutError) as exc:
            self._failed(exc)
            return _FAILED
        if not self.available:
            self.available = True
            log.info("Redis L2 reachable again; sharing metadata with the fleet")
        return result

    def _failed(self, exc: BaseException) -> None:
        self.errors += 1
        self._retry_at = self._timer() + self.retry_after_s
        if self.available:
            self.available = False
            self.degraded += 1
            log.warning("Redis L2 unavailable (%s); serving from in-process cache and upstream only",
                        type(exc).__name__ + (f": {exc}" if str(exc) else ""))


_FAILED = object()
