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
    if request.method in ("POST", "PUT"):
        seed_ingest = rest == name.removesuffix(".isml") + ".ism"  # POST BASE/NAME.ism?stream_id=ID
        if egress_route(rest) is not None and not seed_ingest:  # viewers' URLs never take a write
            request["route"] = "live_manifest"
            raise MethodNotAllowed(f"{request.method} is not allowed on {rest!r}", allowed=("GET", "HEAD"))
        request["route"] = "live_ingest"
        return await ingest(request, ref, name, stream_id_of(request, name, rest))
    if request.method not in ("GET", "HEAD"):
        raise MethodNotAllowed(f"{request.method} is not allowed on a publishing point",
                               allowed=("GET", "HEAD", "POST", "PUT"))
    return await egress(request, ref, name, rest)
