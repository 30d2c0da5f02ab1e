"""What the edge keeps per application: config, remap table, metadata cache, the shared upstream session."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from ..store.cache import MetadataCache
from ..store.heads import HeadCache
from ..config import AppConfig
from ..store.moov import MediaLimits
from ..store.redis_cache import RedisMoovCache
from ..remap import RemapTable, SourceRef
from ..store.source import Source, open_source
from ..store.source.local import KnownFiles
from ..store.source.upstream import UpstreamVersions


@dataclass
class EdgeState:
    """Built by make_app; `session` is set by the app's cleanup_ctx while the app runs."""

    config: AppConfig
    remap: RemapTable
    cache: MetadataCache
    limits: MediaLimits
    session: aiohttp.ClientSession | None = field(default=None)
    l2: RedisMoovCache | None = field(default=None)  # shared moov cache when service.redis.url is set
    upstream_versions: UpstreamVersions | None = field(default=None)  # None when upstream.version_ttl_s is 0
    heads: HeadCache = field(default_factory=lambda: HeadCache(64 * 1024 * 1024, 300.0, 0))  # store/heads.py
    known_files: KnownFiles | None = field(default=None)  # local opens without a thread hop (store/source/local.py)

    @classmethod
    def from_config(cls, config: AppConfig) -> EdgeState:
        service = config.service
        movies = MetadataCache(service.cache.max_bytes, service.cache.metadata_ttl_s)
        heads = HeadCache(service.cache.head_max_bytes, service.cache.head_ttl_s, service.cache.build_threads,
                          inline_budget_s=service.cache.inline_build_budget_s)
        heads.follow(movies)  # a clip head lives only as long as the movie whose tables it shares
        return cls(
            config=config,
            remap=RemapTable(config.remap.remap),
            cache=movies,
            heads=heads,
            limits=service.limits.media_limits(),
            l2=_l2_cache(config),
            upstream_versions=UpstreamVersions(service.upstream.version_ttl_s) if service.upstream.version_ttl_s
            else None,
            known_files=KnownFiles(service.cache.known_files, service.cache.known_file_ttl_s)
            if service.cache.known_files else None,
        )

    async def open_source(self, ref: SourceRef) -> Source:
        """Open `ref` (source.open_source) with the shared session and the recent upstream versions."""
        return await open_source(ref, self.session, self.upstream_versions, self.known_files)

    def forget_upstream_versions(self) -> None:
        """After a SourceChanged: the next opens ask the upstream again (replacements are rare; forget all)."""
        if self.upstream_versions is not None:
            self.upstream_versions.clear()

    def apply_rules(self, config: AppConfig) -> None:
        """Take the live-reloadable part of `config` (remap rules, cache_control, default_mode) on SIGHUP.

        Both attributes change with no await in between, so every request sees the old rules or the new ones,
        never a mix. Caches, limits and the listen address keep their startup values.
        """
        live = {"cache_control": config.service.cache_control, "default_mode": config.service.default_mode}
        service = self.config.service.model_copy(update=live)
        self.config, self.remap = (AppConfig(service=service, remap=config.remap),
                                   RemapTable(config.remap.remap))


def _l2_cache(config: AppConfig) -> RedisMoovCache | None:
    redis = config.service.redis
    if redis.url is None:
        return None
    return RedisMoovCache.from_url(redis.url, key_prefix=redis.key_prefix, ttl_s=redis.ttl_s,
                                   lock_ttl_s=redis.lock_ttl_s, timeout_s=redis.timeout_s)


EDGE_STATE = web.AppKey("edge_state", EdgeState)


async def l2_cache_ctx(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx: close the Redis connections of the L2 cache (if any) when the app stops."""
    yield
    app[EDGE_STATE].heads.close()
    l2 = app[EDGE_STATE].l2
    if l2 is not None:
        await l2.aclose()
