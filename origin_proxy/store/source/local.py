"""A file under a file: remap root, as a Source.

Opening resolves the real path (symlinks included) and refuses anything outside the root's real path, then keeps
the file descriptor open for the request: every read and `loop.sendfile` use that one inode, so a file replaced on
disk mid-request is never spliced with its successor. The validator is "mtime_ns-size" of the opened inode.
Blocking calls (the checked open, pread) run in the default executor, never on the event loop.

A `KnownFiles` table (optional, one per edge) remembers for a while what a checked open found: the real path and
the inode's (st_dev, st_ino, st_mtime_ns, st_size). The next open of that path runs on the loop without a thread
hop: `stat` of the requested path, `open` of the remembered real path and `fstat` of what was opened, all three
of which must show the remembered inode, size and mtime, else the checked open runs as before (so a file replaced
in place, renamed over or re-linked is seen by the very next request, and a symlink changed to leave the root is
checked again). Three system calls on a local inode the previous request just used, instead of realpath's lstat per
component and two thread hops (~0.2 ms a request, issue 13).
"""

from __future__ import annotations

import asyncio
import errno
import os
import stat
import time
from collections.abc import AsyncIterator, Callable
from typing import BinaryIO, NamedTuple

from cachetools import TTLCache

from ...errors import NotFound, UpstreamError

# open() failures that mean "nothing servable here": missing, a file used as a directory, a directory, no permission,
# a symlink loop (ELOOP would otherwise surface as a 500), a name too long.
_MISSING_ERRNOS = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.ELOOP,
                             errno.ENAMETOOLONG, errno.ENXIO})


class _Known(NamedTuple):
    real: str
    dev: int
    ino: int
    mtime_ns: int
    size: int


def _same(known: _Known, st: os.stat_result) -> bool:
    return (st.st_ino == known.ino and st.st_dev == known.dev and st.st_mtime_ns == known.mtime_ns
            and st.st_size == known.size and stat.S_ISREG(st.st_mode))


class KnownFiles:
    """What recent checked opens found, by (requested path, root): bounded to `max_files` entries, each trusted
    for `ttl_s` seconds after its checked open (then checked again). Loop-only; no I/O of its own."""

    def __init__(self, max_files: int = 4096, ttl_s: float = 10.0, timer: Callable[[], float] = time.monotonic) -> None:
        self._entries: TTLCache = TTLCache(maxsize=max_files, ttl=ttl_s, timer=timer)
        self.fast_opens = 0  # opens answered on the loop from a known entry
        self.checked_opens = 0  # opens that ran the full check in a thread

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, path: str, root_dir: str) -> _Known | None:
        return self._entries.get((path, root_dir))

    def remember(self, path: str, root_dir: str, source: LocalSource, st: os.stat_result) -> None:
        self._entries[(path, root_dir)] = _Known(source.path, st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)

    def forget(self, path: str, root_dir: str) -> None:
        self._entries.pop((path, root_dir), None)


class LocalSource:
    """An opened local file. Build with `await LocalSource.open(path, root_dir)`; close with `await aclose()`.

    Attributes:
        path: the real (symlink-free) filesystem path.
        file: the open binary file object; the edge hands it to `loop.sendfile`. Its position is not used by reads.
    """

    def __init__(self, identity: str, path: str, file: BinaryIO, st: os.stat_result) -> None:
        self.identity = identity
        self.path = path
        self.file = file
        self.size_bytes = st.st_size
        self.validator = f"{st.st_mtime_ns}-{st.st_size}"
        self.last_modified: float | None = st.st_mtime

    @classmethod
    async def open(cls, path: str, root_dir: str, identity: str | None = None,
                   known: KnownFiles | None = None) -> LocalSource:
        """Open `path`, which must resolve inside `root_dir`; with `known`, on the loop when `path` still names
        the inode a recent checked open found (see the module docstring).

        Raises:
            NotFound: missing, not a regular file (a directory, a device), unreadable, or a symlink out of the root.
        """
        identity = identity or "file://" + path
        if known is not None:
            entry = known.get(path, root_dir)
            if entry is not None:
                source = cls._open_known(entry, path, identity)
                if source is not None:
                    known.fast_opens += 1
                    return source
                known.forget(path, root_dir)
            known.checked_opens += 1
            source, st = await asyncio.to_thread(cls._open_checked, path, root_dir, identity)
            known.remember(path, root_dir, source, st)
            return source
        return await asyncio.to_thread(cls._open_blocking, path, root_dir, identity)

    @classmethod
    def _open_known(cls, entry: _Known, path: str, identity: str) -> LocalSource | None:
        """The remembered inode opened on the loop, or None when the path, the real path or the opened file
        show anything else (the caller then runs the checked open)."""
        try:
            if not _same(entry, os.stat(path)):
                return None
            fd = os.open(entry.real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            st = os.fstat(fd)
            if not _same(entry, st):
                os.close(fd)
                return None
            os.set_blocking(fd, True)
        except OSError:
            os.close(fd)
            return None
        return cls(identity, entry.real, open(fd, "rb", buffering=0), st)  # noqa: SIM115 - closed by aclose()

    @classmethod
    def _open_checked(cls, path: str, root_dir: str, identity: str) -> tuple[LocalSource, os.stat_result]:
        source = cls._open_blocking(path, root_dir, identity)
        return source, os.fstat(source.file.fileno())

    @classmethod
    def _open_blocking(cls, path: str, root_dir: str, identity: str) -> LocalSource:
        real_root = os.path.realpath(root_dir)
        real = os.path.realpath(path)
        if os.path.commonpath([real_root, real]) != real_root:
            # A symlink leading out of the root: answer as if it did not exist (no hint about the outside).
            raise NotFound("no such file", path=path, real_path=real)
        try:
            # O_NONBLOCK: opening a FIFO for reading must not wait (forever, in a pool thread) for a writer.
            fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError as exc:
            if exc.errno in _MISSING_ERRNOS:
                raise NotFound("no such file", path=path) from None
            raise
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(fd)
            raise NotFound("no such file", path=path, reason="not a regular file")
        os.set_blocking(fd, True)
        return cls(identity, real, open(fd, "rb", buffering=0), st)  # noqa: SIM115 - closed by aclose()

    async def aclose(self) -> None:
        self.file.close()

    async def __aenter__(self) -> LocalSource:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def read(self, offset: int, size: int) -> bytes:
        """`size` bytes at `offset`; fewer only at end of file. Raises UpstreamError on an I/O error."""
        size = max(0, min(size, self.size_bytes - offset))
        if size == 0:
            return b""
        return await asyncio.to_thread(self._pread, offset, size)

    def read_blocking(self, offset: int, size: int) -> bytes:
        """`read` without the thread hop, for a caller already off the event loop (store/moov.py runs the moov's
        reads and its parse as one executor job). Raises UpstreamError on an I/O error."""
        size = max(0, min(size, self.size_bytes - offset))
        return self._pread(offset, size) if size else b""

    def _pread(self, offset: int, size: int) -> bytes:
        chunks = []
        try:
            while size:
                data = os.pread(self.file.fileno(), size, offset)
                if not data:
                    break
                chunks.append(data)
                offset += len(data)
                size -= len(data)
        except (OSError, ValueError) as exc:  # ValueError: the file was closed under a shared cache load
            raise UpstreamError("cannot read the file", path=self.path, error=str(exc)) from None
        return b"".join(chunks)

    async def read_ranges(self, ranges: list[tuple[int, int]]) -> bytes:
        """The bytes of several (offset, size) ranges, concatenated, read in one thread hop. Raises UpstreamError
        when the file ends inside one (it changed under us)."""

        def read_all() -> bytes:
            pieces = []
            for offset, size in ranges:
                data = self._pread(offset, size)
                if len(data) != size:
                    raise UpstreamError("file ended early", path=self.path, offset=offset + len(data))
                pieces.append(data)
            return b"".join(pieces)

        return await asyncio.to_thread(read_all)

    async def stream(self, offset: int, size: int, chunk_bytes: int = 262144,
                     first_chunk_bytes: int | None = None) -> AsyncIterator[bytes]:
        """offset..offset+size-1 in chunks of at most chunk_bytes (the first of at most first_chunk_bytes, when
        given). Raises UpstreamError when the file ends short."""
        end = offset + size
        first = first_chunk_bytes or chunk_bytes
        while offset < end:
            data = await self.read(offset, min(first, end - offset))
            first = chunk_bytes
            if not data:
                raise UpstreamError("file ended early", path=self.path, offset=offset)
            yield data
            offset += len(data)
