"""GET/HEAD of a packaging resource of a multi-bitrate set: a `.ism` server manifest naming several MP4s
(DESIGN.md §5, package/ism.py), packaged as one HLS master playlist / one MPD / one Smooth client manifest.

Flow: the .ism path is mapped on its own -> its bytes (bounded) -> cached ServerManifest -> each src is mapped
relative to the .ism's folder through the same remap rule (a src resolving under another rule is refused) ->
every member MP4 through the usual source + MovieFile + Packaging caches -> the set's Packaging (tracks renamed to
their switch tokens "v1", "a4", with the switch's systemBitrate) -> manifests served from the .ism's source;
playlists, init and media segments served from the member's source (SourceRanges of that file), so sendfile and
Range work as for single files.
Smooth (MS-SSTR, package/smooth.py): the set's Packaging gives one "video" StreamIndex whose QualityLevels are
the video variants (Bitrate = systemBitrate) and one StreamIndex per audio entry. A fragment URL
`set.ism/QualityLevels(<bitrate>)/Fragments(video=<t>)` is routed through the set (cached) to the QualityLevel's
member, then served from that member's source like a segment. A video variant whose chunk boundaries differ from
the first variant's is left out of the Smooth manifest with one WARNING (its fragments are 404); HLS and DASH keep
it.

ETags: manifests depend on the .ism and every member's validator; track resources on the member's and the .ism's;
Smooth fragments on every member's (the shared chunk list and the Bitrates come from the whole set).
A src that does not exist, or names a track its file lacks, is MalformedMedia (502: our upstream's .ism is wrong).
Mismatched GOPs across video variants are allowed, with one WARNING when the set's Packaging is built.
"""

from __future__ import annotations

import asyncio
import logging
from fractions import Fraction
from dataclasses import replace
from urllib.parse import quote

from aiohttp import web

from ..errors import MalformedMedia, NotFound, SourceChanged, UnsupportedMedia
from ..package.ism import MAX_ISM_BYTES, ServerManifest, SwitchEntry, parse_ism
from ..package.tracks import Packaging, PackagedTrack, misaligned_variants, package_movie, package_set
from ..package.urls import FORMAT_TOKEN, PackageResource, version_token
from ..remap import SourceRef
from ..store.catalog import IsmKey, PackagingKey, Presentation, SourceVersion
from ..store.source import Source
from .packaging import cached_smooth_presentation, manifest_planned, smooth_planned, track_planned
from ..store.metadata import cached_movie_file
from .respond import Planned, serve_plan
from .state import EdgeState

log = logging.getLogger("origin_proxy.server")

# Path characters a src may keep literal when it is appended to the .ism's (percent-encoded) folder.
_SRC_SAFE = "/-._~!$&'()*+,;=@"


async def handle_set(request: web.Request, state: EdgeState, ref: SourceRef,
                     resource: PackageResource) -> web.StreamResponse:
    """Serve `resource` of the set whose .ism the request path names. Raises NotFound (no such track or segment,
    no .ism), MalformedMedia (bad .ism, missing member), UnsupportedMedia (.ism too large)."""
    raw_path = request.rel_url.raw_path
    if not raw_path.endswith("/" + resource.text):  # the resource part was percent-encoded: not one of ours
        raise NotFound("no such packaging resource", resource=resource.text)
    ism_raw = raw_path[: -len(resource.text) - 1]
    ism_ref = state.remap.resolve(ism_raw, request.host)
    target_s = Fraction(str(ism_ref.rule.segment_duration_s))
    service = state.config.service
    folder_raw = ism_raw.rsplit("/", 1)[0]

    def member_ref(src: str) -> SourceRef:
        member = state.remap.resolve(f"{folder_raw}/{quote(src, safe=_SRC_SAFE)}", request.host)
        if member.rule != ism_ref.rule:
            raise MalformedMedia("the .ism names a source outside its remap rule", src=src)
        return member

    async def member_packaging(src: str) -> tuple[str, Packaging]:
        """(the member's validator, its Packaging), through the usual caches."""
        mref = member_ref(src)
        try:
            source = await state.open_source(mref)
        except NotFound:
            raise MalformedMedia("the .ism names a file that does not exist", src=src) from None
        async with source:
            movie_file = await cached_movie_file(mref, state, source)

            async def load() -> Packaging:
                return package_movie(movie_file.movie, target_s)

            key = PackagingKey(Presentation(SourceVersion(source.identity, source.validator), target_s))
            packaging = await state.cache.get_or_load(key, load)
            return source.validator, packaging

    async def set_packaging(ism_source: Source) -> tuple[ServerManifest, tuple[str, ...], Presentation, Packaging]:
        """(the .ism, every src's validator in `manifest.sources` order, the set's cache version, its Packaging)."""
        manifest = await _server_manifest(state, ism_ref, ism_source)
        loaded = dict(zip(manifest.sources, await asyncio.gather(*map(member_packaging, manifest.sources))))
        validators = tuple(loaded[src][0] for src in manifest.sources)
        version = Presentation(SourceVersion(ism_source.identity, ism_source.validator), target_s, validators)

        async def load_set() -> Packaging:
            members = [(e.representation_id, _select(loaded[e.src][1], e)) for e in manifest.entries]
            packaging = package_set(members, target_s)
            misaligned = misaligned_variants(packaging)
            if misaligned:
                log.warning("%s: segment boundaries of %s differ from the first variant's (mismatched GOPs); "
                            "players may glitch when switching", ism_ref.identity, ", ".join(misaligned))
            return packaging

        return manifest, validators, version, await state.cache.get_or_load(PackagingKey(version), load_set)

    if resource.kind in ("master", "mpd", "smooth"):
        async def build_manifest(ism_source: Source) -> Planned:
            _, validators, version, packaging = await set_packaging(ism_source)
            token = version_token((ism_source.validator, *validators), target_s)  # in the segment URLs
            variant = "\0".join((FORMAT_TOKEN, resource.kind, str(target_s), *validators))
            if resource.kind == "smooth":
                return await smooth_planned(ism_ref.identity, packaging, resource, variant, state, version, token)
            return await manifest_planned(ism_ref.identity, packaging, resource.kind, token, version, variant, state)

        return await serve_plan(request, state, ism_ref, build_manifest)

    if resource.kind == "fragment":
        # Route by the set's Smooth presentation (which member holds the QualityLevel), then serve from that
        # member's source, so its bytes go out like a segment's (sendfile, Range, its validator in the ETag).
        async with await state.open_source(ism_ref) as ism_source:
            manifest, validators, version, packaging = await set_packaging(ism_source)
        token = version_token((version.source.validator, *validators), target_s)
        resource.check_version(token)  # VersionGone (410): the URL names a replaced .ism or member
        presentation = await cached_smooth_presentation(ism_ref.identity, packaging, state, version)
        stream, level = presentation.find(resource.stream or "", resource.bitrate or 0)
        stream.fragment_index(resource.fragment_time or 0)  # NotFound before any member is opened
        src = manifest.entry(level.track.representation_id).src
        validator = validators[manifest.sources.index(src)]
        variant = "\0".join((FORMAT_TOKEN, "fragment", str(target_s), str(version.source.validator), *validators))

        async def build_fragment(source: Source) -> Planned:
            if source.validator != validator:  # the member changed since the set was built: not this chunk list
                raise SourceChanged("a member of the set changed while it was served", src=src)
            return await smooth_planned(ism_ref.identity, packaging, resource, variant, state, version, token)

        return await serve_plan(request, state, member_ref(src), build_fragment)

    if resource.kind not in ("playlist", "init", "segment"):
        raise NotFound("no such packaging resource for a .ism set", resource=resource.text)
    async with await state.open_source(ism_ref) as ism_source:
        # Every member's validator: the version token of the set's URLs covers them all.
        manifest, validators, _, _ = await set_packaging(ism_source)
        ism_validator = ism_source.validator
    token = version_token((ism_validator, *validators), target_s)
    resource.check_version(token)  # VersionGone (410): the URL names a replaced .ism or member
    try:
        entry = manifest.entry(resource.representation_id)
    except KeyError:
        raise NotFound("no such track in the set", representation_id=resource.representation_id) from None
    mref = member_ref(entry.src)

    member_validator = validators[manifest.sources.index(entry.src)]

    async def build_track(source: Source) -> Planned:
        if source.validator != member_validator:  # changed since the token was computed: reopen (SourceChanged)
            raise SourceChanged("a member of the set changed while it was served", src=entry.src)
        movie_file = await cached_movie_file(mref, state, source)

        async def load() -> Packaging:
            return package_movie(movie_file.movie, target_s)

        key = PackagingKey(Presentation(SourceVersion(source.identity, source.validator), target_s))
        packaging = await state.cache.get_or_load(key, load)
        track = package_set([(entry.representation_id, _select(packaging, entry))], target_s).tracks[0]
        variant = "\0".join((FORMAT_TOKEN, resource.text, str(target_s), ism_validator))
        member = Presentation(SourceVersion(source.identity, source.validator), target_s)
        return await track_planned(track, resource, variant, service, token, heads=state.heads, head_version=member,
                                   head_params=f"{ism_ref.identity}\0{ism_validator}\0{entry.representation_id}")

    try:
        return await serve_plan(request, state, mref, build_track)
    except NotFound as exc:
        if exc.message == "no such file":
            raise MalformedMedia("the .ism names a file that does not exist", src=entry.src) from None
        raise


async def _server_manifest(state: EdgeState, ism_ref: SourceRef, ism_source: Source) -> ServerManifest:
    """The parsed .ism of the opened source's version, from the metadata cache or one shared load."""

    async def load() -> ServerManifest:
        if ism_source.size_bytes > MAX_ISM_BYTES:
            raise UnsupportedMedia(f"the .ism is larger than {MAX_ISM_BYTES} bytes", identity=ism_ref.identity)
        return parse_ism(await ism_source.read(0, ism_source.size_bytes))

    return await state.cache.get_or_load(IsmKey(SourceVersion(ism_source.identity, ism_source.validator)), load)


def _select(packaging: Packaging, entry: SwitchEntry) -> PackagedTrack:
    """The member track an entry names (its trackID, or the file's first track of its kind), with the entry's
    systemBitrate. Raises MalformedMedia."""
    want_video = entry.kind == "video"
    for track in packaging.tracks:
        if track.is_video != want_video or track.timeline.track.handler_type not in (b"vide", b"soun"):
            continue
        if entry.track_id is None or track.timeline.track.track_id == entry.track_id:
            return replace(track, system_bitrate_bps=entry.system_bitrate_bps or None)
    raise MalformedMedia(f"the .ism names {entry.kind} track {entry.track_id or '(first)'} of a file without it",
                         src=entry.src)
