"""source/: async byte access to one upstream object, a local file or an HTTP resource.

Every source implements the `Source` protocol below; callers never know which kind they have.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol


class Source(Protocol):
    """One media object at an upstream, opened (validated) once per request.

    Attributes:
        identity: stable key of the object, e.g. "file:///srv/media/a.mp4" or the upstream URL.
        size_bytes: total length of the object.
        validator: strong validator of the current version: the upstream ETag, or
            "mtime_ns-size" for files and for upstreams without an ETag (Last-Modified + size).
        last_modified: POSIX seconds, or None when unknown.
    """

    identity: str
    size_bytes: int
    validator: str
    last_modified: float | None

    async def read(self, offset: int, size: int) -> bytes:
        """Exactly `size` bytes at `offset` (fewer only at end of file). Raises NotFound,
        UpstreamError, UpstreamTimeout, SourceChanged."""
        ...

    async def read_ranges(self, ranges: list[tuple[int, int]]) -> bytes:
        """The bytes of several small (offset, size) ranges, concatenated in order, each exactly `size` long;
        the caller bounds their total (held in memory). Raises as `read`, and UpstreamError when one ends short."""
        ...

    def stream(self, offset: int, size: int, chunk_bytes: int = 262144,
               first_chunk_bytes: int | None = None) -> AsyncIterator[bytes]:
        """The bytes offset..offset+size-1 in chunks of at most chunk_bytes (the first of up to first_chunk_bytes,
        when given); raises SourceChanged when the object changed since it was opened, UpstreamError when it ends
        short."""
        ...


async def open_source(ref, session=None, versions=None, known_files=None):
    """Open the object a remap SourceRef names: a LocalSource for file: rules, else an UpstreamSource.

    (remap.SourceRef, aiohttp.ClientSession | None, upstream.UpstreamVersions | None) -> Source.
    The returned source has `aclose()` and is an async context manager; `session` is required for HTTP rules;
    `versions` lets an HTTP open reuse what a recent open of the same URL learned; `known_files`
    (local.KnownFiles) lets a local open skip the thread hop while the path still names the same inode.
    Raises NotFound, UpstreamError, UpstreamTimeout (see the two implementations).
    """
    # Imported here so that `import origin_proxy.store.source` (store/moov.py does) never pulls in aiohttp.
    if ref.is_local:
        from .local import LocalSource

        return await LocalSource.open(ref.location, ref.rule.root_dir, ref.identity, known_files)
    from .upstream import UpstreamSource

    if session is None:
        raise RuntimeError("an HTTP remap rule needs the shared aiohttp ClientSession")
    return await UpstreamSource.open(session, ref.location, versions)
