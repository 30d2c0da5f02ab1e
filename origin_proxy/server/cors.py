"""CORS (Fetch Standard §3.2, "CORS protocol") for media and manifests: a player page on one origin reads our
URLs from another (the usual page host + CDN host deployment).

Two pieces, installed by `install_cors(app, settings)`:
- a middleware answering preflights (`OPTIONS` with `Origin` and `Access-Control-Request-Method`) with 204:
  `Access-Control-Allow-Methods: GET, HEAD, OPTIONS`, `Access-Control-Allow-Headers` naming Range and the
  conditional request headers, `Access-Control-Max-Age`. A plain `OPTIONS` (no preflight headers) goes on to
  the handler as before.
- an `on_response_prepare` hook adding `Access-Control-Allow-Origin` and `Access-Control-Expose-Headers`
  (Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified, Date) to every GET/HEAD answer, errors and
  304s included, before its headers go out (streamed bodies are prepared inside the handlers).

Shared caches: with `allow_origins: "*"` the answer is the same for every Origin (`*`, no Vary). With a list the
answer depends on Origin, so every answer carries `Vary: Origin` (also those without `Access-Control-Allow-Origin`,
which a cache must not hand to a listed origin). `/healthz` and `/metrics` are not media and get nothing.
"""

from __future__ import annotations

from aiohttp import web
from multidict import istr

from ..config import CorsSettings

ALLOW_METHODS = "GET, HEAD, OPTIONS"
# Range for seeks and segment byte ranges; the conditionals for revalidation by players that send them.
ALLOW_HEADERS = "Range, If-Range, If-Match, If-None-Match, If-Modified-Since, If-Unmodified-Since"
EXPOSE_HEADERS = "Content-Length, Content-Range, ETag, Accept-Ranges, Last-Modified, Date"
NOT_MEDIA = frozenset({"/healthz", "/metrics"})

_CORS_SETTINGS = web.AppKey("cors_settings", CorsSettings)


def allow_origin(settings: CorsSettings, origin: str | None) -> str | None:
    """The Access-Control-Allow-Origin value for a request's `Origin` (None: header absent): "*", the origin
    itself when it is listed, else None."""
    if settings.allow_origins == "*":
        return "*"
    if origin is not None and origin in settings.allow_origins:
        return origin
    return None


def _add_vary_origin(headers) -> None:
    present = [v.strip().lower() for v in headers.get("Vary", "").split(",") if v.strip()]
    if "origin" not in present and "*" not in present:
        headers["Vary"] = ", ".join([headers["Vary"], "Origin"]) if headers.get("Vary") else "Origin"


def cors_headers(settings: CorsSettings, origin: str | None) -> dict[str, str]:
    """The CORS headers of a GET/HEAD answer (Access-Control-Allow-Origin, -Expose-Headers), or {}."""
    allowed = allow_origin(settings, origin)
    if allowed is None:
        return {}
    return {"Access-Control-Allow-Origin": allowed, "Access-Control-Expose-Headers": EXPOSE_HEADERS}


@web.middleware
async def preflight_middleware(request: web.Request, handler) -> web.StreamResponse:
    """Answer a CORS preflight with 204; anything else goes to `handler`."""
    if (request.method != "OPTIONS" or "Origin" not in request.headers
            or "Access-Control-Request-Method" not in request.headers or request.path in NOT_MEDIA):
        return await handler(request)
    settings = request.app[_CORS_SETTINGS]
    headers: dict[str, str] = {}
    allowed = allow_origin(settings, request.headers["Origin"])
    if allowed is not None:
        headers.update({"Access-Control-Allow-Origin": allowed, "Access-Control-Allow-Methods": ALLOW_METHODS,
                        "Access-Control-Allow-Headers": ALLOW_HEADERS,
                        "Access-Control-Max-Age": str(settings.max_age_s)})
    response = web.Response(status=204, headers=headers)
    if settings.allow_origins != "*":
        _add_vary_origin(response.headers)
    return response


# The headers every GET/HEAD answer gets with `allow_origins: "*"` (whatever the Origin), made once.
_ANY_ORIGIN_HEADERS = ((istr("Access-Control-Allow-Origin"), "*"), (istr("Access-Control-Expose-Headers"), EXPOSE_HEADERS))


async def _on_prepare(request: web.Request, response: web.StreamResponse) -> None:
    if request.method not in ("GET", "HEAD") or request.path in NOT_MEDIA:
        return
    settings = request.app[_CORS_SETTINGS]
    headers = response.headers
    if settings.allow_origins == "*":
        for name, value in _ANY_ORIGIN_HEADERS:
            headers[name] = value
        return
    for name, value in cors_headers(settings, request.headers.get("Origin")).items():
        headers[istr(name)] = value
    _add_vary_origin(headers)


def install_cors(app: web.Application, settings: CorsSettings) -> None:
    """Answer preflights and label GET/HEAD answers of `app` as `settings` say; nothing when CORS is off."""
    if not settings.enabled:
        return
    app[_CORS_SETTINGS] = settings
    app.middlewares.append(preflight_middleware)
    app.on_response_prepare.append(_on_prepare)
