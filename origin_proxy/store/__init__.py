"""store/: async glue between sources and the pure cores, the only opener of sources.

source/ (Source protocol, local files, HTTP upstreams), moov.py (find, read and parse the moov of a source),
cache.py (L1 single-flight metadata cache), redis_cache.py (shared L2 moov cache), limits.py (MediaLimits and
MoovBlob, plain values the config imports). This package's __init__ imports nothing, so `origin_proxy.config`
stays free of construct, numpy and aiohttp.
"""
