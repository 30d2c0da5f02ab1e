"""Live egress of publishing points (DESIGN.md §6, issue 11, docs/live.md): manifests and segments from the index.

GET/HEAD under BASE = /live/NAME.isml, one declared route per URL kind (ROUTES, read top to bottom):

| URL (after BASE/)                                        | route label   | answer                              |
|----------------------------------------------------------|---------------|-------------------------------------|
| `state`, `statistics`                                    | live_state    | JSON, no-cache                      |
| `time`                                                   | live_state    | ISO 8601 UTC now (MPD UTCTiming)    |
| `NAME.ism`                                               | live_manifest | the SMIL server manifest, no-cache  |
| `Manifest`                                               | live_manifest | Smooth client manifest              |
| `master.m3u8`, `.m3u8`                                   | live_manifest | HLS master playlist                 |
| `manifest.mpd`, `.mpd`                                   | live_manifest | DASH MPD                            |
| `cmaf1/E<event>/<rendition>/playlist.m3u8`               | live_manifest | HLS media playlist                  |
| `cmaf1/E<event>/<rendition>/init.mp4`                    | live_segment  | CMAF header, immutable              |
| `cmaf1/E<event>/<rendition>/<number>.m4s`                | live_segment  | CMAF segment, immutable             |
| `E<event>/QualityLevels(<bitrate>)/Fragments(<kind>=<t>)`  | live_segment  | Smooth fragment (tfxd, tfrf), immutable |
| `QualityLevels(<bitrate>)/Fragments(<kind>=<t>)`           | live_segment  | the same (current event), as a manifest |

Segment numbers are the event's fragment numbers and Smooth t its listed start times: neither moves when the DVR
window prunes or the process restarts (live/egress.py: cmaf_position, smooth_position). Manifests are cached for
about half a fragment (`cache_control_live_manifests` overrides); after end of stream for a minute.
`?dvr_window_length=S` (seconds > 0) narrows a live manifest's window (to no less than 3.5 fragments); anything
else is 400.
Byte bodies (segments, fragments, init) all go through `_bytes_response` (server/body.py's writer): strong ETag of the bytes (identical on
two nodes fed the same ingest), 304, Range (RFC 9110 §14; one range 206, several multipart/byteranges), HEAD.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from aiohttp import web

from ..errors import BadRequest, NotFound
from ..live.egress import (SMOOTH_TIMESCALE, cmaf_position, discontinuous_presentation, live_state, presentation,
                           segment, smooth_next, smooth_position, smooth_streams)
from ..live.point import LiveTrack, PublishingPoint
from ..manifest import dash, hls, smooth
from ..manifest.model import Live, Presentation, UrlTemplates
from ..plan import Plan
from ..remap import SourceRef
from .http_semantics import if_range_allows, multipart_body, not_modified, parse_range
from .body import BodyWriter
from .live_points import get_point

IMMUTABLE = "public, max-age=31536000, immutable"
ENDED_MANIFEST = "public, max-age=60"
NO_CACHE = "no-cache"
FORMAT_TOKEN = "cmaf1"
HLS_TYPE = "application/vnd.apple.mpegurl"
HOLD_POLL_S = 0.05  # how often a held Smooth fragment request looks for the next fragment


@dataclass
class _Ask:
    """One egress request: the point, the parsed URL and what every manifest needs."""

    request: web.Request
    point: PublishingPoint
    name: str
    match: re.Match
    now_s: float

    @property
    def rest(self) -> str:
        return self.match.string

    def window_s(self) -> float | None:
        """Seconds a manifest lists: the DVR window, narrowed by ?dvr_window_length; None (all) after EOS."""
        return _window(self.request.query.get("dvr_window_length"), self.point.settings.dvr_window_s,
                       self.point.fragment_duration_s(), self.point.ended)

    def model(self) -> Presentation:
        point = self.point
        views = point.views(self.window_s())
        if not views:
            raise NotFound(f"{self.name} has no media yet")
        return presentation(views, self.live(), self._urls())

    def live(self) -> Live:
        """The manifests' Live block, made now."""
        window = self.window_s()
        point = self.point
        return live_state(point.availability_start_time(), datetime.fromtimestamp(self.now_s, timezone.utc),
                          point.settings.dvr_window_s if window is None else window, point.fragment_duration_s(),
                          point.ended, utc_timing_uri=self.base_url() + "time")

    def base_url(self) -> str:
        """Absolute URL of BASE/ as this request reached us (Host as sent)."""
        path = self.request.path
        return str(self.request.url.with_path(path[: len(path) - len(self.rest)]).with_query(None))

    def _urls(self) -> UrlTemplates:
        prefix = f"{FORMAT_TOKEN}/E{self.point.event}/$RepresentationID$"
        return UrlTemplates(media_playlist=f"{prefix}/playlist.m3u8", initialization=f"{prefix}/init.mp4",
                            media=f"{prefix}/$Number$.m4s")


def _window(asked: str | None, dvr_window_s: float, fragment_s: float, ended: bool) -> float | None:
    """`dvr_window_length` checked (a positive finite number of seconds, else BadRequest) and applied: never wider
    than the DVR window, never narrower than 3.5 fragments (a live HLS playlist lists at least 3 segments,
    RFC 8216 §6.2.2)."""
    window = dvr_window_s
    if asked is not None:
        try:
            value = float(asked)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or value <= 0:
            raise BadRequest(f"dvr_window_length must be a positive number of seconds, not {asked[:40]!r}")
        window = min(window, max(value, 3.5 * fragment_s))
    return None if ended else window


def _manifest_cache(point: PublishingPoint) -> str:
    if point.ended:
        return ENDED_MANIFEST
    # about half a fragment: a CDN asks again about twice per new fragment
    return point.settings.cache_control_live_manifests or \
        f"public, max-age={max(1, round(point.fragment_duration_s() / 2))}"


def _manifest_response(ask: _Ask, text: str, content_type: str) -> web.Response:
    return web.Response(text=text, content_type=content_type, headers={"Cache-Control": _manifest_cache(ask.point)})


async def _bytes_response(request: web.Request, data: bytes, content_type: str = "video/mp4",
                          cache_control: str = IMMUTABLE) -> web.StreamResponse:
    """The one answer for segment, fragment and init bytes, written by server/body.py's BodyWriter (zero-copy
    slices, drain between them: a slow viewer holds about one slice, not a copy of the segment).

    Strong ETag = a hash of the bytes (segments depend on the ingest only, so two nodes agree); If-None-Match ->
    304; Range -> 206 with Content-Range, several ranges as multipart/byteranges (RFC 9110 §14.6), unsatisfiable
    -> RangeNotSatisfiable (416); HEAD gets the headers only.
    """
    etag = '"' + hashlib.blake2b(data, digest_size=16).hexdigest() + '"'
    headers = {"Cache-Control": cache_control, "ETag": etag, "Accept-Ranges": "bytes"}
    if not_modified(request.headers, etag, None):
        return web.Response(status=304, headers=headers)
    ranges = parse_range(request.headers.get("Range"), len(data)) if if_range_allows(request.headers, etag, None) \
        else None
    view = memoryview(data)
    if ranges is None:
        status, parts = 200, [view]
        headers["Content-Type"] = content_type
    elif len(ranges) == 1:
        first, last = ranges[0]
        headers["Content-Range"] = f"bytes {first}-{last}/{len(data)}"
        headers["Content-Type"] = content_type
        status, parts = 206, [view[first : last + 1]]
    else:
        body = multipart_body(Plan((data,), content_type), ranges, secrets.token_hex(12))
        headers["Content-Type"] = body.content_type
        status, parts = 206, [memoryview(part) if isinstance(part, (bytes, bytearray)) else part
                              for part in body.parts]
    response = web.StreamResponse(status=status, headers=headers)
    response.content_length = sum(len(part) for part in parts)
    await response.prepare(request)
    if request.method != "HEAD":
        writer = BodyWriter(request, response)
        for part in parts:
            await writer.write_bytes(part)
    await response.write_eof()
    return response


def _json(body: dict) -> web.Response:
    return web.Response(text=json.dumps(body, indent=1) + "\n", content_type="application/json",
                        headers={"Cache-Control": NO_CACHE})


# ---- one function per route ----------------------------------------------------------------------------------

async def _state(ask: _Ask) -> web.Response:
    return _json({"name": ask.name, "state": ask.point.state.value})


async def _statistics(ask: _Ask) -> web.Response:
    return _json(ask.point.statistics(ask.now_s))


async def _time(ask: _Ask) -> web.Response:
    """The server's clock for DASH clients (UTCTiming urn:mpeg:dash:utc:http-iso:2014, ISO 8601 with ms)."""
    moment = datetime.fromtimestamp(ask.now_s, timezone.utc)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return web.Response(text=text, content_type="text/plain", headers={"Cache-Control": "no-store"})


async def _server_manifest(ask: _Ask) -> web.Response:
    if ask.match.group("stem") != ask.name.removesuffix(".isml"):
        raise NotFound(f"{ask.match.group(0)!r} is not this point's server manifest")
    path = ask.point.directory / ask.match.group(0)
    if not path.is_file():
        raise NotFound("no server manifest yet")
    return web.Response(body=path.read_bytes(), content_type="application/smil+xml",
                        headers={"Cache-Control": NO_CACHE})


async def _smooth_manifest(ask: _Ask) -> web.Response:
    streams = smooth_streams(ask.point.views(ask.window_s()), lookahead=0 if ask.point.ended else 1)
    if not streams:
        raise NotFound(f"{ask.name} has no media yet")
    text = smooth.client_manifest(streams, ask.live(), url_prefix=f"E{ask.point.event}/")
    return _manifest_response(ask, text, "text/xml")


async def _master(ask: _Ask) -> web.Response:
    return _manifest_response(ask, hls.master_playlist(ask.model()), HLS_TYPE)


async def _mpd(ask: _Ask) -> web.Response:
    return _manifest_response(ask, dash.mpd(ask.model()), "application/dash+xml")


def _cmaf_track(ask: _Ask) -> LiveTrack:
    event = int(ask.match.group("event"))
    if event != ask.point.event:
        raise NotFound(f"event {event} of {ask.name} is not served (current: {ask.point.event})")
    return ask.point.track_by_rendition(ask.match.group("rendition"))


async def _media_playlist(ask: _Ask) -> web.Response:
    rendition = _cmaf_track(ask).rendition_id
    view = next((v for v in ask.point.views(ask.window_s()) if v.rendition_id == rendition), None)
    if view is None:
        raise NotFound(f"{ask.name} has no media yet")
    model = discontinuous_presentation(view, ask.live(), ask._urls())  # EXT-X-DISCONTINUITY at a shifted reconnect
    return _manifest_response(ask, hls.media_playlist(model, rendition), HLS_TYPE)


async def _init(ask: _Ask) -> web.Response:
    live = _cmaf_track(ask)
    return await _bytes_response(ask.request, live.header.cmaf_header(live.track_id))


async def _cmaf_segment(ask: _Ask) -> web.Response:
    live = _cmaf_track(ask)
    number = int(ask.match.group("number"))
    position = cmaf_position(live.index, number)
    data = await asyncio.to_thread(ask.point.read, live.index.locations[position])  # off the loop: disk
    return await _bytes_response(ask.request, segment(data, live.track_id, live.index.times[position], number))


async def _smooth_fragment(ask: _Ask) -> web.Response:
    bitrate, kind, t = int(ask.match.group("bitrate")), ask.match.group("kind"), int(ask.match.group("t"))
    event = ask.match.group("event")
    if event is not None and int(event) != ask.point.event:
        raise NotFound(f"event {event} of {ask.name} is not served (current: {ask.point.event})")
    # Without E<event>/ (MS-SSTR's bare form) the URL means another fragment once a new event starts: it is
    # answered for the current event, cached only as long as a manifest.
    cache = IMMUTABLE if event is not None else _manifest_cache(ask.point)
    live = next((track for track in ask.point.tracks.values()
                 if track.bitrate_bps == bitrate and track.track.kind == kind), None)
    if live is None:
        raise NotFound(f"no {kind} QualityLevel of {bitrate} bit/s")
    index = live.index
    position = smooth_position(index, t)
    position = await _until_next_fragment(ask.point, live, position)
    announced = smooth_next(index, position, ask.point.ended)
    data = await asyncio.to_thread(ask.point.read, index.locations[position])
    return await _bytes_response(ask.request, segment(data, live.track_id, index.times[position],
                                                index.first_number + position,
                                                scale=(SMOOTH_TIMESCALE, index.timescale), smooth=True,
                                                smooth_next=announced), cache_control=cache)


async def _until_next_fragment(point: PublishingPoint, live: LiveTrack, position: int) -> int:
    """Hold a request for the newest fragment until the next one is indexed (its tfrf must name it) or the event
    ends, for at most about two fragments; then smooth_next decides (NotFound if it still is the newest).
    A tfrf announces the fragment after the one served, so a live client asks for it before it can be served:
    held, it is answered as soon as it can be, with the bytes every node and every later request get.
    Returns the fragment's position now (the DVR window may have pruned meanwhile); NotFound if it left."""
    index = live.index
    deadline = time.monotonic() + max(2.0, 2 * point.fragment_duration_s())
    number = index.first_number + position
    while not point.ended and number - index.first_number + 1 >= len(index) and time.monotonic() < deadline:
        await asyncio.sleep(HOLD_POLL_S)
    return cmaf_position(index, number)


_CMAF = rf"{FORMAT_TOKEN}/E(?P<event>\d+)/(?P<rendition>[A-Za-z0-9]+)/"
#: (path pattern after BASE/, route label for metrics, handler); the first full match answers.
ROUTES: tuple[tuple[re.Pattern, str, Callable[[_Ask], Awaitable[web.Response]]], ...] = (
    (re.compile(r"state"), "live_state", _state),
    (re.compile(r"statistics"), "live_state", _statistics),
    (re.compile(r"time"), "live_state", _time),
    (re.compile(r"(?P<stem>[A-Za-z0-9_.-]+)\.ism"), "live_manifest", _server_manifest),
    (re.compile(r"Manifest"), "live_manifest", _smooth_manifest),
    (re.compile(r"(?:master)?\.m3u8"), "live_manifest", _master),
    (re.compile(r"(?:manifest)?\.mpd"), "live_manifest", _mpd),
    (re.compile(_CMAF + r"playlist\.m3u8"), "live_manifest", _media_playlist),
    (re.compile(_CMAF + r"init\.mp4"), "live_segment", _init),
    (re.compile(_CMAF + r"(?P<number>\d{1,18})\.m4s"), "live_segment", _cmaf_segment),
    (re.compile(r"(?:E(?P<event>\d{1,9})/)?QualityLevels\((?P<bitrate>\d{1,12})\)"
                r"/Fragments\((?P<kind>video|audio)=(?P<t>\d{1,20})\)"), "live_segment", _smooth_fragment),
)


def egress_route(rest: str) -> tuple[str, Callable[[_Ask], Awaitable[web.Response]], re.Match] | None:
    """The route of `rest` (the path after BASE/), or None when it is not an egress URL."""
    for pattern, label, handler in ROUTES:
        match = pattern.fullmatch(rest)
        if match:
            return label, handler, match
    return None


async def egress(request: web.Request, ref: SourceRef, name: str, rest: str) -> web.StreamResponse:
    """GET/HEAD of BASE/`rest`. Raises NotFound (unknown point or URL, fragment not or no longer available),
    BadRequest (a bad dvr_window_length)."""
    route = egress_route(rest)
    if route is None:
        request["route"] = "live_state"
        raise NotFound(f"{rest!r} is not a publishing point resource")
    label, handler, match = route
    request["route"] = label
    point = get_point(request.app, ref, name, create=False)
    return await handler(_Ask(request, point, name, match, time.time()))
