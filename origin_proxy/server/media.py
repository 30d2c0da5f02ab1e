"""GET/HEAD of a mapped media path: the file as is, or cut at `?start=&end=` (DESIGN.md §2, §4), or a packaging
resource of it (`movie.mp4/master.m3u8` ..., handed to server/packaging.py, DESIGN.md §5), or of a multi-bitrate set
(`set.ism/master.m3u8` ..., server/packaging_set.py).

Flow: remap -> open the source -> a Plan (the whole file, or plan_clip over the cached MovieFile, built once per
source version and clip in the head cache, store/heads.py) -> served by
server/respond.py (conditionals, ranges, HEAD, streaming; shared with the packaging handler).
"""

from __future__ import annotations

import posixpath

from aiohttp import web

from ..package.ism import is_ism_path
from ..package.urls import split_package_path
from ..plan import Plan, SourceRange
from ..remap import SourceRef
from ..rewrite.clip import plan_clip
from ..rewrite.params import ClipRequest, parse_clip_query
from ..store.catalog import HeadKey, MovieKey, SourceVersion
from ..store.source import Source
from .packaging import handle_package
from .packaging_set import handle_set
from .routes import RESOURCE_ROUTES, set_route
from ..store.metadata import cached_movie_file
from .respond import CHUNK_BYTES, Planned, serve_plan
from .state import EDGE_STATE, EdgeState

__all__ = ["CHUNK_BYTES", "EDGE_STATE", "content_type_for", "handle_media"]

CONTENT_TYPES = {".mp4": "video/mp4", ".m4v": "video/mp4", ".m4a": "audio/mp4", ".mp4a": "audio/mp4",
                 ".mov": "video/quicktime", ".isma": "audio/mp4", ".ismv": "video/mp4"}


def content_type_for(path: str) -> str:
    return CONTENT_TYPES.get(posixpath.splitext(path)[1].lower(), "application/octet-stream")


async def handle_media(request: web.Request, ref: SourceRef | None = None) -> web.StreamResponse:
    """GET/HEAD of a `to` rule's path; `ref` is the request's remap result when the caller has it already."""
    state = request.app[EDGE_STATE]
    if ref is None:
        ref = state.remap.resolve(request.rel_url.raw_path, request.host)
    packaged = split_package_path(ref.rest)
    if packaged is not None:
        set_route(request, RESOURCE_ROUTES[packaged[1].kind])
        handler = handle_set if is_ism_path(packaged[0]) else handle_package
        return await handler(request, state, ref, packaged[1])
    clip = _clip_request(request, ref, state)
    set_route(request, "media_passthrough" if clip is None else "media_clip")

    async def build(source: Source) -> Planned:
        content_type = content_type_for(ref.rest)
        if clip is None:
            parts = (SourceRange(0, source.size_bytes),) if source.size_bytes else ()
            plan = Plan(parts, content_type=content_type)
            variant = ""
        else:
            movie_file = await cached_movie_file(ref, state, source)
            version = SourceVersion(source.identity, source.validator)
            variant = clip.normalized()
            key = HeadKey(version, "clip", f"{variant}\0{content_type}")
            plan = await state.heads.plan(key, lambda: plan_clip(movie_file, clip, content_type),
                                          depends_on=MovieKey(version))
        return Planned(plan, variant, ref.rule.cache_control or state.config.service.cache_control)

    return await serve_plan(request, state, ref, build)


def _clip_request(request: web.Request, ref: SourceRef, state: EdgeState) -> ClipRequest | None:
    """The validated ?start=&end= request, or None to serve the file as is. Raises BadRequest."""
    if "start" not in request.query and "end" not in request.query:
        return None
    return parse_clip_query(request.query, default_mode=ref.rule.mode or state.config.service.default_mode)
