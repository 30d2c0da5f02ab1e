"""Publishing points (DESIGN.md §6, issue 11, docs/live.md): dispatch of a `live:` rule's requests.

POST/PUT go to the ingest glue (server/live_ingest.py), GET/HEAD to the egress (server/live_egress.py); every
other method answers 405. Points come from the registry in server/live_points.py.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import MethodNotAllowed, NotFound
from ..live.point import NAME
from ..remap import SourceRef
from .live_egress import egress, egress_route
from .live_ingest import ingest, stream_id_of


async def handle_live(request: web.Request, ref: SourceRef) -> web.StreamResponse:
    """Any method under a live rule: ingest (POST/PUT) or egress (GET/HEAD)."""
    name, _, rest = ref.rest.partition("/")
    if not name.endswith(".isml") or not NAME.fullmatch(name) or name in (".isml",) or ".." in name:
        request["route"] = "live_state"
        raise NotFound(f"not a publishing point: {name!r}")
    seed_ingest = rest == name.removesuffix(".isml") + ".ism"  # POST BASE/NAME.ism?stream_id=ID (and GET: SMIL)
    viewers_only = egress_route(rest) is not None and not seed_ingest  # viewers' URLs never take a write
    if request.method in ("GET", "HEAD"):
        return await egress(request, ref, name, rest)
    if request.method in ("POST", "PUT") and not viewers_only:
        request["route"] = "live_ingest"
        return await ingest(request, ref, name, stream_id_of(request, name, rest))
    request["route"] = "live_manifest" if viewers_only else "live_ingest"
    allowed = ("GET", "HEAD") if viewers_only else ("GET", "HEAD", "POST", "PUT")
    raise MethodNotAllowed(f"{request.method} is not allowed on {rest!r}", allowed=allowed)
