"""The MovieFile of an opened source's version: from the L1 metadata cache, else one shared (single-flight) load,
which takes the raw moov from the Redis L2 when another node already read it. Async glue; no aiohttp server.

The load opens a source of its own: the request that started it may end before the load does, and its source
closes with it. It raises SourceChanged when the object is no longer the version the cache key names.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Protocol

from ..errors import SourceChanged
from ..isobmff.movie import MovieFile
from ..remap import SourceRef
from .cache import MetadataCache
from .catalog import MovieKey, SourceVersion
from .limits import MediaLimits, MoovBlob
from .moov import load_movie_file, load_moov_bytes, movie_file_from_blob
from .source import Source

if TYPE_CHECKING:
    from .redis_cache import RedisMoovCache


class MetadataStore(Protocol):
    """What the load needs of the edge's state (server/state.py EdgeState has it)."""

    cache: MetadataCache
    l2: RedisMoovCache | None
    limits: MediaLimits
    open_source: Callable[[SourceRef], Awaitable[Source]]


async def cached_movie_file(ref: SourceRef, state: MetadataStore, source: Source) -> MovieFile:
    """The MovieFile of the opened source's version (MovieKey), from the metadata cache or one shared load.
    Raises what the load raises (MalformedMedia, UnsupportedMedia, SourceChanged, the source's errors)."""
    key = MovieKey(SourceVersion(source.identity, source.validator))
    return await state.cache.get_or_load(key, lambda: _load_movie_file(ref, state, source.validator))


async def _load_movie_file(ref: SourceRef, state: MetadataStore, validator: str) -> MovieFile:
    async def fetch_moov() -> MoovBlob:
        async with await state.open_source(ref) as source:
            if source.validator != validator:
                raise SourceChanged("the object changed while its metadata was being loaded", identity=ref.identity)
            return await load_moov_bytes(source, state.limits)

    if state.l2 is not None:
        blob = await state.l2.get_or_fetch(ref.identity, validator, fetch_moov)
        return await movie_file_from_blob(blob, state.limits)
    async with await state.open_source(ref) as source:
        if source.validator != validator:
            raise SourceChanged("the object changed while its metadata was being loaded", identity=ref.identity)
        return await load_movie_file(source, state.limits)
