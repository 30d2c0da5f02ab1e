"""What the edge keeps per application: config, remap table, metadata cache, the shared upstream session."""

from __future__ import annotations

from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ..cache import MetadataCache
from ..config import AppConfig
from ..loader import MediaLimits
from ..remap import RemapTable


@dataclass
class EdgeState:
    """Built by make_app; `session` is set by the app's cleanup_ctx while the app runs."""

    config: AppConfig
    remap: RemapTable
    cache: MetadataCache
    limits: MediaLimits
    session: aiohttp.ClientSession | None = field(default=None)

    @classmethod
    def from_config(cls, config: AppConfig) -> EdgeState:
        service = config.service
        return cls(
            config=config,
            remap=RemapTable(config.remap.remap),
            cache=MetadataCache(service.cache.max_bytes, service.cache.metadata_ttl_s),
            limits=service.limits.media_limits(),
        )


EDGE_STATE = web.AppKey("edge_state", EdgeState)
