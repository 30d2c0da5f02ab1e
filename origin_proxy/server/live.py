"""Publishing points (DESIGN.md §6, issue 11, docs/live.md): ingest POST/PUT and live egress under a `live:` rule.

Ingest: `POST|PUT BASE/Streams(ID)` (Smooth ingest long POST, CMAF ingest long POST per track, or per-segment
POST/PUT of the header then each segment) and the seed's `POST BASE/NAME.ism?stream_id=ID`. The token is checked
before a byte of the body is read; the body is parsed as it arrives (live/ingest.py). A rejected body is answered
at once with its status and the connection closed: 403 token, 404 unknown point/bad name, 412 fragment before a
header, 415 codec, 400 anything else malformed.

Egress (GET/HEAD, BASE = /live/NAME.isml): `Manifest` (Smooth), `master.m3u8`/`.m3u8`, `manifest.mpd`/`.mpd`,
`cmaf1/E<event>/<rendition>/playlist.m3u8|init.mp4|<number>.m4s`, `QualityLevels(B)/Fragments(video=T)`,
`NAME.ism` (server manifest), `state`, `statistics`. Numbers are fragment numbers of the event: they never move.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import re
import time
import weakref
from datetime import datetime, timezone
from pathlib import Path

from aiohttp import web

from ..errors import Forbidden, IngestError, MethodNotAllowed, NotFound, OriginError
from ..live.egress import SMOOTH_TIMESCALE, egress_span, live_state, presentation, segment, smooth_streams
from ..live.ingest import NEED_DATA, EndOfStream, Fragment, Header, IngestParser
from ..live.point import NAME, PublishingPoint
from ..manifest import dash, hls, smooth
from ..manifest.model import UrlTemplates
from ..remap import SourceRef
from .errors import status_for

log = logging.getLogger("origin_proxy.live")

_POINTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_STREAMS = re.compile(r"Streams\(([A-Za-z0-9_.\-]+)\)")
_SMOOTH_FRAGMENT = re.compile(r"QualityLevels\((\d+)\)/Fragments\((video|audio)=(\d+)\)")
_CMAF = re.compile(r"cmaf1/E(\d+)/([A-Za-z0-9]+)/(playlist\.m3u8|init\.mp4|(\d+)\.m4s)")
IMMUTABLE = "public, max-age=31536000, immutable"
FORMAT_TOKEN = "cmaf1"


def _registry(app: web.Application) -> dict:
    return _POINTS.setdefault(app, {})


def get_point(app: web.Application, ref: SourceRef, name: str, create: bool) -> PublishingPoint:
    """The point NAME.isml of this rule, loaded from its directory (archive) on first use."""
    settings = ref.rule.live
    key = (ref.rule.from_, name)
    points = _registry(app)
    point = points.get(key)
    if point is not None:
        return point
    directory = Path(settings.storage) / name
    if not directory.is_dir():
        if not create:
            raise NotFound(f"no publishing point {name}")
        directory.mkdir(parents=True, exist_ok=True)
    point = PublishingPoint(name, directory, settings)
    point.load()
    points[key] = point
    return point


async def handle_live(request: web.Request, ref: SourceRef) -> web.StreamResponse:
    """Any method under a live rule: ingest (POST/PUT) or egress (GET/HEAD)."""
    name, _, rest = ref.rest.partition("/")
    if not name.endswith(".isml") or not NAME.fullmatch(name) or name in (".isml",) or ".." in name:
        request["route"] = "live_state"
        raise NotFound(f"not a publishing point: {name!r}")
    if request.method in ("POST", "PUT"):
        request["route"] = "live_ingest"
        stream_id = _stream_id(request, name, rest)
        return await _ingest(request, ref, name, stream_id)
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{request.method} is not allowed on a publishing point",
                               allowed=("GET", "HEAD", "POST", "PUT"))
    return await _egress(request, ref, name, rest)


def _stream_id(request: web.Request, name: str, rest: str) -> str:
    match = _STREAMS.fullmatch(rest)
    if match:
        return match.group(1)
    if rest == name.removesuffix(".isml") + ".ism":
        stream_id = request.query.get("stream_id", "")
        if re.fullmatch(r"[A-Za-z0-9_.\-]+", stream_id):
            return stream_id
    raise NotFound(f"not an ingest URL: {rest!r} (POST to Streams(ID))")


def _check_token(request: web.Request, expected: str | None) -> None:
    given = request.headers.get("Authorization", "")
    if expected is None or not given.startswith("Bearer "):
        raise Forbidden("ingest needs Authorization: Bearer <token>")
    if not hmac.compare_digest(given[7:].strip().encode(), expected.encode()):
        raise Forbidden("wrong ingest token")


async def _ingest(request: web.Request, ref: SourceRef, name: str, stream_id: str) -> web.StreamResponse:
    settings = ref.rule.live
    connected = False
    point: PublishingPoint | None = None
    try:
        _check_token(request, settings.ingest_token)
        point = get_point(request.app, ref, name, settings.create_on_ingest)
        stream = point.streams.get(stream_id)
        parser = IngestParser(header=stream.header if stream is not None else None)
        lost = False

        def drain() -> None:
            nonlocal connected
            while (event := parser.next_event()) is not NEED_DATA:
                if isinstance(event, Header):
                    point.on_header(stream_id, event)
                    connected = True
                elif isinstance(event, Fragment):
                    if not connected:  # per-segment ingest: a segment after a header sent earlier
                        point.on_header(stream_id, parser.header)
                        connected = True
                    point.on_fragment(stream_id, event, time.time())
                elif isinstance(event, EndOfStream):
                    point.on_end(stream_id, event)

        try:
            async for chunk in request.content.iter_any():
                parser.feed(chunk)
                drain()
        except (ConnectionError, asyncio.IncompleteReadError, OSError) as exc:
            lost = True
            log.info("%s %s: encoder connection lost after %d bytes (%r); a partial fragment is dropped",
                     request.method, request.path, parser.bytes_seen, exc)
        except Exception as exc:  # aiohttp payload errors (a chunked body cut off)
            if isinstance(exc, OriginError):
                raise
            lost = True
            log.info("%s %s: encoder body ended abnormally after %d bytes (%r); a partial fragment is dropped",
                     request.method, request.path, parser.bytes_seen, exc)
        if not lost:
            parser.feed(b"")
            drain()
        return web.Response(status=200, text="ok\n")
    except OriginError as exc:
        status = status_for(exc)
        log.warning("%s %s -> %d %s: %s", request.method, request.path, status, type(exc).__name__, exc.message)
        response = web.Response(status=status, text=exc.message.splitlines()[0] + "\n",
                                headers={"Connection": "close"})
        response.force_close()
        if isinstance(exc, IngestError) and request.transport is not None:
            request.transport.pause_reading()
        return response
    finally:
        if connected and point is not None:
            point.disconnect(stream_id)


def _window(request: web.Request, point: PublishingPoint) -> float | None:
    if point.ended:
        return None
    window = point.settings.dvr_window_s
    asked = request.query.get("dvr_window_length")
    if asked:
        try:
            window = min(window, max(float(asked), 1.0))
        except ValueError:
            raise NotFound("dvr_window_length must be a number of seconds") from None
    return window


def _manifest_response(request: web.Request, point: PublishingPoint, text: str, content_type: str) -> web.Response:
    if point.ended:
        cache = "public, max-age=60"
    else:
        cache = point.settings.cache_control_live_manifests or \
            f"public, max-age={max(1, int(point.fragment_duration_s() / 2))}"
    return web.Response(text=text, content_type=content_type, headers={"Cache-Control": cache})


def _bytes_response(data: bytes, content_type: str = "video/mp4") -> web.Response:
    return web.Response(body=data, content_type=content_type, headers={"Cache-Control": IMMUTABLE})


async def _egress(request: web.Request, ref: SourceRef, name: str, rest: str) -> web.StreamResponse:
    point = get_point(request.app, ref, name, create=False)
    now = time.time()
    if rest in ("state", "statistics"):
        request["route"] = "live_state"
        body = {"name": name, "state": point.state.value} if rest == "state" else point.statistics(now)
        return web.Response(text=json.dumps(body, indent=1) + "\n", content_type="application/json",
                            headers={"Cache-Control": "no-cache"})
    if rest == name.removesuffix(".isml") + ".ism":
        request["route"] = "live_manifest"
        path = point.directory / rest
        if not path.is_file():
            raise NotFound("no server manifest yet")
        return web.Response(body=path.read_bytes(), content_type="application/smil+xml",
                            headers={"Cache-Control": "no-cache"})
    window = _window(request, point)
    views = point.views(window)
    live = live_state(point.availability_start_time(), datetime.fromtimestamp(now, timezone.utc),
                      point.settings.dvr_window_s if window is None else window, point.fragment_duration_s(),
                      point.ended)
    urls = UrlTemplates(media_playlist=f"{FORMAT_TOKEN}/E{point.event}/$RepresentationID$/playlist.m3u8",
                        initialization=f"{FORMAT_TOKEN}/E{point.event}/$RepresentationID$/init.mp4",
                        media=f"{FORMAT_TOKEN}/E{point.event}/$RepresentationID$/$Number$.m4s")
    if rest == "Manifest":
        request["route"] = "live_manifest"
        text = smooth.client_manifest(smooth_streams(views), live)
        return _manifest_response(request, point, text, "text/xml")
    if rest in ("master.m3u8", ".m3u8", "manifest.mpd", ".mpd"):
        request["route"] = "live_manifest"
        if not views:
            raise NotFound(f"{name} has no media yet")
        model = presentation(views, live, urls)
        if rest.endswith("m3u8"):
            return _manifest_response(request, point, hls.master_playlist(model), "application/vnd.apple.mpegurl")
        return _manifest_response(request, point, dash.mpd(model), "application/dash+xml")
    match = _CMAF.fullmatch(rest)
    if match:
        event, rendition, leaf, number = int(match.group(1)), match.group(2), match.group(3), match.group(4)
        if event != point.event:
            raise NotFound(f"event {event} of {name} is not served (current: {point.event})")
        live_track = point.track_by_rendition(rendition)
        if leaf == "playlist.m3u8":
            request["route"] = "live_manifest"
            model = presentation(views, live, urls)
            return _manifest_response(request, point, hls.media_playlist(model, rendition),
                                      "application/vnd.apple.mpegurl")
        request["route"] = "live_segment"
        if leaf == "init.mp4":
            return _bytes_response(live_track.header.cmaf_header(live_track.track_id))
        index = live_track.index
        position = int(number) - index.first_number
        if not 0 <= position < len(index):
            raise NotFound(f"fragment {number} of {rendition} is not (or no longer) available")
        data = point.read(index.locations[position])
        return _bytes_response(segment(data, live_track.track_id, index.times[position], int(number)))
    match = _SMOOTH_FRAGMENT.fullmatch(rest)
    if match:
        request["route"] = "live_segment"
        bitrate, kind, t = int(match.group(1)), match.group(2), int(match.group(3))
        for live_track in point.tracks.values():
            if live_track.bitrate_bps == bitrate and live_track.track.kind == kind:
                break
        else:
            raise NotFound(f"no {kind} QualityLevel of {bitrate} bit/s")
        index = live_track.index
        ts = index.timescale
        for position in range(len(index) - 1, -1, -1):  # the fragment whose span holds t (levels of other
            start, duration = egress_span(index.times[position], index.durations[position])  # encoders differ)
            if start * SMOOTH_TIMESCALE // ts <= t:
                break
        else:
            raise NotFound("fragment not available")
        if t >= (start + duration) * SMOOTH_TIMESCALE // ts:
            raise NotFound(f"no fragment at {t}")
        data = point.read(index.locations[position])
        return _bytes_response(segment(data, live_track.track_id, index.times[position],
                                       index.first_number + position, scale=(SMOOTH_TIMESCALE, ts), smooth=True))
    raise NotFound(f"{rest!r} is not a publishing point resource")
