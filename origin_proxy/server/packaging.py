"""GET/HEAD of a packaging resource of a mapped MP4 (DESIGN.md §5): HLS and DASH manifests, CMAF init and media
segments, cut on demand from the cached sample tables.

Flow: the media path is mapped again on its own (so remap's checks hold for it) -> open the source -> cached
MovieFile -> cached Packaging (timelines + sample entry facts, key (identity, validator, "packaging", target))
-> a manifest (cached text), the init segment, or a media segment Plan (generated moof + the source's byte
ranges) -> served by server/respond.py with the same ETag/Last-Modified/Range/HEAD/304 handling as the file itself.
Tracks a protocol cannot carry are left out of its manifest with one log line when the manifest is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from fractions import Fraction

from aiohttp import web

from ..config import ServiceConfig
from ..errors import NotFound
from ..package import manifests, smooth
from ..package.cmaf import cmaf_fragment, cmaf_header
from ..package.tracks import CARRIED_BY, Packaging, PackagedTrack, Protocol, package_movie
from ..package.urls import FORMAT_TOKEN, PackageResource, version_token
from ..plan import Plan
from ..remap import SourceRef
from ..store.catalog import HeadKey, ManifestKey, PackagingKey, Presentation, SmoothKey, SourceVersion
from ..store.heads import HeadCache
from ..store.source import Source
from ..store.metadata import cached_movie_file
from .respond import Planned, serve_plan
from .state import EdgeState

log = logging.getLogger("origin_proxy.server")

# The media type USP and Azure Media Services answer with; Shaka Player (4.x) took Smooth only by this type.
SMOOTH_CONTENT_TYPE = "application/vnd.ms-sstr+xml"
HLS_CONTENT_TYPE = "application/vnd.apple.mpegurl"
DASH_CONTENT_TYPE = "application/dash+xml"


@dataclass(frozen=True)
class Rendered:
    """A generated body (manifest, init segment) as the metadata cache holds it."""

    body: bytes

    @property
    def nbytes(self) -> int:
        return len(self.body) + 64


async def handle_package(request: web.Request, state: EdgeState, ref: SourceRef,
                         resource: PackageResource) -> web.StreamResponse:
    """Serve `resource` of the MP4 that `ref` (the whole request path) names. Raises NotFound for a track or
    segment the file does not have, UnpackageableMedia (415) when no track can be packaged."""
    raw_path = request.rel_url.raw_path
    if not raw_path.endswith("/" + resource.text):  # the resource part was percent-encoded: not one of ours
        raise NotFound("no such packaging resource", resource=resource.text)
    media_ref = state.remap.resolve(raw_path[: -len(resource.text) - 1], request.host)
    target_s = Fraction(str(media_ref.rule.segment_duration_s))
    service = state.config.service

    async def build(source: Source) -> Planned:
        version = version_token((source.validator,), target_s)
        resource.check_version(version)  # VersionGone (410): the URL names a replaced file
        movie_file = await cached_movie_file(media_ref, state, source)
        presentation = Presentation(SourceVersion(source.identity, source.validator), target_s)

        async def load_packaging() -> Packaging:
            return package_movie(movie_file.movie, target_s)

        packaging = await state.cache.get_or_load(PackagingKey(presentation), load_packaging)
        variant = f"{FORMAT_TOKEN}\0{resource.kind}\0{resource.representation_id}\0{resource.segment_number}" \
                  f"\0{target_s}"
        if resource.kind in ("smooth", "fragment"):
            return await smooth_planned(media_ref.identity, packaging, resource, variant, state, presentation,
                                        version)
        if resource.kind in ("master", "mpd"):
            return await manifest_planned(media_ref.identity, packaging, resource.kind, version, presentation,
                                          variant, state)

        return await track_planned(packaging.track(resource.representation_id), resource, variant, service, version,
                                   heads=state.heads, head_version=presentation,
                                   head_params=resource.representation_id or "")

    return await serve_plan(request, state, media_ref, build)


async def manifest_planned(identity: str, packaging: Packaging, kind: str, version: str | None,
                           presentation: Presentation, variant: str, state: EdgeState) -> Planned:
    """The HLS master playlist (`kind` "master") or MPD ("mpd") of `packaging`, rendered once per presentation
    (ManifestKey in the metadata cache) with segment URLs under `version`; the manifests' Cache-Control."""
    protocol: Protocol = "hls" if kind == "master" else "dash"

    async def render() -> Rendered:
        return render_manifest(identity, packaging, protocol, version)

    rendered = await state.cache.get_or_load(ManifestKey(presentation, kind), render)
    content_type = HLS_CONTENT_TYPE if protocol == "hls" else DASH_CONTENT_TYPE
    return Planned(Plan((rendered.body,), content_type), variant, state.config.service.cache_control_manifests)


def render_manifest(identity: str, packaging: Packaging, protocol: Protocol, version: str | None = None) -> Rendered:
    """The HLS master playlist or the MPD of `packaging` (segment URLs under `version`, package/urls.py); tracks the
    protocol cannot carry are left out with one log line. Raises UnpackageableMedia when none is left."""
    kept, left_out = packaging.carried_by(protocol)
    if left_out:
        log.info("%s: %s leaves out %s (codec not carried)", identity, protocol.upper(),
                 ", ".join(f"track {t.timeline.track.track_id} {t.info.fourcc.decode('latin-1')}"
                           for t in left_out))
    text = manifests.master_playlist(kept) if protocol == "hls" else manifests.mpd(packaging, kept, version)
    return Rendered(text.encode())


async def track_planned(track: PackagedTrack, resource: PackageResource, variant: str, service: ServiceConfig,
                        version: str | None = None, *, heads: HeadCache | None = None,
                        head_version: Presentation | None = None, head_params: str = "") -> Planned:
    """The media playlist (its URLs under `version`), CMAF header or CMAF fragment of one track (kinds
    "playlist", "init", "segment"). With `heads`, the init segment's and the fragment's Plans are built once in the
    head cache (store/heads.py) under HeadKey(head_version, kind, head_params [+ segment index]); `head_params`
    names what besides the version selects the track. Raises NotFound for a segment the track does not have."""
    if resource.kind == "playlist":
        if track.info.fourcc not in CARRIED_BY["hls"]:
            raise NotFound("no such track in the HLS presentation", representation_id=track.representation_id)
        body = manifests.media_playlist(track, version).encode()
        return Planned(Plan((body,), HLS_CONTENT_TYPE), variant, service.cache_control_manifests)
    content_type = "video/mp4" if track.is_video else "audio/mp4"
    # Immutable only where the URL names the version; an unversioned URL's bytes change with the source.
    lifetime = service.cache_control_segments if resource.immutable else service.cache_control_manifests
    if resource.kind == "init":
        init = await _head(heads, head_version, "init", f"{head_params}\0{content_type}",
                           lambda: Plan((cmaf_header(track.timeline.track),), content_type))
        return Planned(init, variant, lifetime)
    if not 0 <= resource.segment_index < track.segment_count:
        raise NotFound("no such segment", segment_number=resource.segment_number,
                       segment_count=track.segment_count)

    def build() -> Plan:
        head, ranges = cmaf_fragment(track.timeline, resource.segment_index)
        return Plan((head, *ranges), content_type)

    segment = await _head(heads, head_version, "segment",
                          f"{head_params}\0{content_type}\0{resource.segment_index}", build)
    return Planned(segment, variant, lifetime)


async def _head(heads: HeadCache | None, version: Presentation | None, kind: str, params: str,
                build: Callable[[], Plan]) -> Plan:
    """`build()` through the head cache when there is one (and a version to key it by), else built now."""
    if heads is None or version is None:
        return build()
    return await heads.plan(HeadKey(version, kind, params), build)


async def cached_smooth_presentation(identity: str, packaging: Packaging, state: EdgeState,
                              key: Presentation) -> smooth.SmoothPresentation:
    """The Smooth StreamIndexes of `packaging` (package/smooth.py), from the metadata cache (SmoothKey(key)) or
    one shared build. The build logs tracks left out once: an INFO line for codecs Smooth does not
    carry, a WARNING for video tracks whose chunk boundaries differ from the first video track's (mismatched
    GOPs; HLS and DASH still list them). Raises UnpackageableMedia when no stream is left."""
    async def load() -> smooth.SmoothPresentation:
        presentation = smooth.smooth_presentation(packaging)
        if presentation.left_out:
            log.info("%s: SMOOTH leaves out %s (codec not carried)", identity,
                     ", ".join(f"track {t.timeline.track.track_id} {t.info.fourcc.decode('latin-1')}"
                               for t in presentation.left_out))
        if presentation.misaligned:
            log.warning("%s: SMOOTH leaves out %s: chunk boundaries differ from %s's (mismatched GOPs; the "
                        "QualityLevels of a StreamIndex share one chunk list)", identity,
                        ", ".join(t.representation_id for t in presentation.misaligned),
                        presentation.streams[0].levels[0].track.representation_id)
        return presentation

    return await state.cache.get_or_load(SmoothKey(key), load)


async def smooth_planned(identity: str, packaging: Packaging, resource: PackageResource, variant: str,
                         state: EdgeState, key: Presentation, version: str | None = None) -> Planned:
    """The Smooth client manifest (cached text, `SMOOTH_CONTENT_TYPE`) or one Smooth fragment (kinds "smooth",
    "fragment") of `packaging`, whose version the cache `key` names (source validators, target duration). A
    fragment's SourceRanges are in its QualityLevel's own file: the caller serves the Plan from that source.
    Raises NotFound for a stream, bitrate or time the manifest does not list."""
    service = state.config.service
    presentation = await cached_smooth_presentation(identity, packaging, state, key)
    if resource.kind == "smooth":
        async def render() -> Rendered:
            return Rendered(smooth.client_manifest(presentation.streams, version).encode())

        rendered = await state.cache.get_or_load(ManifestKey(key, "smooth"), render)
        return Planned(Plan((rendered.body,), SMOOTH_CONTENT_TYPE), variant, service.cache_control_manifests)
    stream, level = presentation.find(resource.stream or "", resource.bitrate or 0)
    index = stream.fragment_index(resource.fragment_time or 0)
    content_type = "video/mp4" if stream.is_video else "audio/mp4"

    def build() -> Plan:
        head, ranges = smooth.smooth_fragment(stream, level, index)
        return Plan((head, *ranges), content_type)

    fragment = await _head(state.heads, key, "fragment",
                           f"{stream.name}\0{level.bitrate}\0{index}\0{content_type}", build)
    lifetime = service.cache_control_segments if resource.immutable else service.cache_control_manifests
    return Planned(fragment, f"{variant}\0{resource.text}", lifetime)
