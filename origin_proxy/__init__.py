"""origin_proxy: a streaming-media origin and caching reverse proxy.

Data flows one way: server/ (HTTP edge) -> remap -> source/ -> cache -> isobmff/ (parse) ->
rewrite/ (pseudo-streaming) -> a Plan that server/ streams. See ../shared/DESIGN.md.
"""

__version__ = "0.1.0"
