"""Live egress of publishing points (DESIGN.md §6, issue 11): manifests and segments from the in-memory index.

GET/HEAD under BASE = /live/NAME.isml: `Manifest` (Smooth), `master.m3u8`/`.m3u8`, `manifest.mpd`/`.mpd`,
`cmaf1/E<event>/<rendition>/playlist.m3u8|init.mp4|<number>.m4s`, `QualityLevels(B)/Fragments(video=T)`,
`NAME.ism` (server manifest), `state`, `statistics`. Numbers are fragment numbers of the event: they never move.
"""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timezone

from aiohttp import web

from ..errors import NotFound
from ..live.egress import SMOOTH_TIMESCALE, egress_span, live_state, presentation, segment, smooth_streams
from ..live.point import PublishingPoint
from ..manifest import dash, hls, smooth
from ..manifest.model import UrlTemplates
from ..remap import SourceRef
from .live_points import get_point

_SMOOTH_FRAGMENT = re.compile(r"QualityLevels\((\d+)\)/Fragments\((video|audio)=(\d+)\)")
_CMAF = re.compile(r"cmaf1/E(\d+)/([A-Za-z0-9]+)/(playlist\.m3u8|init\.mp4|(\d+)\.m4s)")
IMMUTABLE = "public, max-age=31536000, immutable"
FORMAT_TOKEN = "cmaf1"


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


async def egress(request: web.Request, ref: SourceRef, name: str, rest: str) -> web.StreamResponse:
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
