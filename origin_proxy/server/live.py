"""Publishing points (DESIGN.md §6, issue 11): ingest POST/PUT and live egress under a rule with a `live:` block.

Placeholder until the live package lands: every request answers 501.
"""

from __future__ import annotations

from aiohttp import web

from ..errors import UnsupportedMedia
from ..remap import SourceRef


async def handle_live(request: web.Request, ref: SourceRef) -> web.StreamResponse:
    """Any method under a live rule. Raises UnsupportedMedia (501) for now."""
    request["route"] = "live"
    raise UnsupportedMedia("live publishing points are not built yet", path=ref.rest)
