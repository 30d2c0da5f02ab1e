"""The edge's route table: every kind of request it answers, the handler that answers it and its metrics label.

Remap prefixes are configuration, so aiohttp sees fixed routes only for /healthz and /metrics and one catch-all
that server/app.py's dispatch sends on by the kind of the matching remap rule (VOD `to`, `live`, `relay`). The
finer routes below are told apart by the path after the rule (package/urls.py) and the query; the handler that
recognises one calls `set_route(request, label)`, and server/observe.py counts the request under that label
(`origin_proxy_http_requests_total{route=...}`), a fixed set whatever paths clients ask for.

| label             | request (GET/HEAD unless said)                                   | handler                     |
|-------------------|------------------------------------------------------------------|-----------------------------|
| healthz           | /healthz                                                         | server/app.py healthz       |
| metrics           | /metrics                                                         | server/observe.py           |
| media_passthrough | <rule>/<file>                      the file as is                | server/media.py handle_media  |
| media_clip        | <rule>/<file>?start=&end=          a rewritten MP4               | server/media.py handle_media  |
| hls_master        | <media>/master.m3u8, <media>/.m3u8                               | server/packaging.py (set: package_set.py) |
| hls_playlist      | <media>/cmaf1/<rep>/playlist.m3u8                                | server/packaging.py           |
| dash_mpd          | <media>/manifest.mpd, <media>/.mpd                               | server/packaging.py           |
| cmaf_init         | <media>/cmaf1/<rep>/init.mp4                                     | server/packaging.py           |
| cmaf_segment      | <media>/cmaf1/<rep>/<n>.m4s                                      | server/packaging.py           |
| smooth_manifest   | <media>/Manifest                                                 | server/packaging.py           |
| smooth_fragment   | <media>/QualityLevels(<bitrate>)/Fragments(<stream>=<t>)         | server/packaging.py           |
| live_*            | any method under a `live` rule (live_ingest, live_manifest, live_segment ...) | server/live.py, live_ingest.py, live_egress.py |
| relay_*           | any method under a `relay` rule (relay_publish, relay_view ...)  | server/relay.py             |
| other             | anything else (unmapped methods, errors before a handler chose)  | -                           |

`<media>` is a path ending in .mp4/.m4v/.m4a/.mp4a/.mov/.isma/.ismv/.ism (package/urls.py MEDIA_SUFFIXES);
`<rep>` is v1, a2 ...
"""

from __future__ import annotations

from aiohttp import web

ROUTE_KEY = "route"

#: The label of each packaging resource kind (package/urls.py ResourceKind).
RESOURCE_ROUTES = {"master": "hls_master", "playlist": "hls_playlist", "mpd": "dash_mpd", "init": "cmaf_init",
                   "segment": "cmaf_segment", "smooth": "smooth_manifest", "fragment": "smooth_fragment"}
VOD_ROUTES = ("healthz", "metrics", "media_passthrough", "media_clip", *RESOURCE_ROUTES.values(), "other")


def set_route(request: web.Request, label: str) -> None:
    """Count `request` under `label` (one of VOD_ROUTES, or a live_*/relay_* label of those handlers)."""
    request[ROUTE_KEY] = label


def route_label(request: web.Request) -> str:
    """The label a handler set; else what the path and method tell (before a handler chose, e.g. an unmapped
    path's 404): /healthz, /metrics, a GET/HEAD with ?start/?end (media_clip) or without (media_passthrough),
    anything else "other"."""
    label = request.get(ROUTE_KEY)
    if label is not None:
        return label
    if request.path == "/healthz":
        return "healthz"
    if request.path == "/metrics":
        return "metrics"
    if request.method in ("GET", "HEAD"):
        return "media_clip" if "start" in request.query or "end" in request.query else "media_passthrough"
    return "other"
